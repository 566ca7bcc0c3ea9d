"""``python -m equinas.cli``."""

from equinas.cli import main

raise SystemExit(main())
