"""``python -m cardbridge``."""

from cardbridge.cli import main

raise SystemExit(main())
