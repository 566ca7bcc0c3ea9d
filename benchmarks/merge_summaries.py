"""Merge the ``rows`` of several ``compare_methods.py`` summaries into one ``summary.json``.

python benchmarks/merge_summaries.py OUT/summary.json OUT/methods_*/summary.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    target, sources = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    rows = [row for source in sources for row in json.loads(source.read_text())["rows"]]
    target.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{target}: {len(rows)} rows from {len(sources)} summaries")


if __name__ == "__main__":
    main()
