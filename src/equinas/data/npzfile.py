"""The structure of an ``.npz`` file, checked before numpy reads (and allocates) anything.

numpy trusts an array's header: a forged shape makes ``numpy.load`` allocate whatever it
claims, a file that is not a zip archive is read as one ``.npy`` array or, failing that, as
a pickle (and refused with a hint to load it unsafely). ``check_npz`` reads only the zip
directory and each array's header and refuses, with one line naming the file:

* anything but a regular, non-empty zip file (a lone ``.npy`` array is named as such);
* entries that are not ``.npy`` arrays, arrays of Python objects (pickles);
* a header whose shape and dtype need another number of bytes than the entry holds, or an
  entry that claims more bytes than deflate can expand its compressed size to (forged);
* arrays that need more memory in all than this process may have (``memory_limit``).
"""

from __future__ import annotations

import math
import os
import stat
import tokenize
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from equinas.data.errors import DataError, DataNotFoundError
from equinas.memory import gib, memory_limit

ZIP_HEADERS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip
NPY_HEADER = b"\x93NUMPY"
DEFLATE_MAX_RATIO = 1032  # deflate expands at most this much (RFC 1951 length/distance codes)


def _array_header(entry: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` from the header of an ``.npy`` stream (format 1.0 or 2.0)."""
    version = np.lib.format.read_magic(entry)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(entry)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(entry)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return shape, dtype


def _check_entry(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> int:
    """Bytes the array of entry ``info`` needs, after checking it (see the module docstring)."""
    name = info.filename
    if not name.endswith(".npy"):
        raise DataError(f"{path}: entry {name!r} is not an .npy array")
    expandable = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO)
    if info.compress_size > file_size or info.file_size > expandable + 1024:
        raise DataError(f"{path}: entry {name!r} claims more data than the file holds (forged or damaged)")
    with archive.open(info) as entry:
        shape, dtype = _array_header(entry)
        header_bytes = entry.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: array {name!r} holds Python objects (pickles), which are never loaded")
    needed = math.prod(shape) * dtype.itemsize
    if needed != info.file_size - header_bytes:
        raise DataError(
            f"{path}: array {name!r} claims shape {tuple(shape)} of {dtype} ({needed:,} bytes) but holds "
            f"{info.file_size - header_bytes:,} bytes (forged or damaged header)"
        )
    return needed


def check_npz(path: str | os.PathLike[str]) -> None:
    """Raise ``DataError`` (``DataNotFoundError`` when missing) unless ``path`` is an ``.npz``
    archive that numpy can load safely within memory (see the module docstring)."""
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: file not found") from None
    if not stat.S_ISREG(status.st_mode):
        raise DataError(f"{path}: not a regular file (expected an .npz archive)")
    if status.st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes; expected an .npz archive)")
    with open(path, "rb") as handle:
        head = handle.read(len(NPY_HEADER))
    if head.startswith(NPY_HEADER):
        raise DataError(f"{path}: a single .npy array, not an .npz archive (write one with numpy.savez)")
    if head[:4] not in ZIP_HEADERS:
        raise DataError(f"{path}: not an .npz archive (no zip header)")
    try:
        with zipfile.ZipFile(path) as archive:
            needed = sum(_check_entry(path, archive, entry, status.st_size) for entry in archive.infolist())
    except DataError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        EOFError,
        SyntaxError,
        tokenize.TokenError,
    ) as err:
        raise DataError(f"{path}: damaged .npz archive ({' '.join(str(err).split())})") from None
    limit = memory_limit()
    if limit is not None and needed > limit:
        raise DataError(
            f"{path}: its arrays need {gib(needed)}, more than the {gib(limit)} of memory "
            "this process may use now"
        )
