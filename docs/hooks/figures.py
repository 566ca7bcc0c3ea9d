"""MkDocs hook: the few headline figures, served from where the benchmarks committed them.

MkDocs serves only files under ``docs/``; rather than keeping copies of the PNGs there, this
hook adds each figure of ``FIGURES`` to the build as ``figures/<name>`` with its committed file
as the source, so pages link ``figures/<name>`` and the repository holds each image once.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = {
    "headline.png": "benchmarks/results/acceptance/cpu-medium/headline.png",
    "equinas_d_alpha.png": "benchmarks/results/equinas_d_alpha.png",
    "paper_depth_groups.png": "benchmarks/results/paper_depth/groups.png",
    "scaling_rotmnist.png": "benchmarks/results/scaling/rotmnist.png",
    "scaling_mnist-c2.png": "benchmarks/results/scaling/mnist-c2.png",
}


def on_files(files, config, **_):
    root = Path(config.config_file_path).parent
    for name, source in FIGURES.items():
        path = root / source
        if not path.is_file():
            raise FileNotFoundError(f"figure {name}: {source} is missing")
        files.append(File.generated(config, f"figures/{name}", abs_src_path=str(path)))
    return files
