"""``python -m kassa.cli``: the ``kassa`` command."""

from kassa.cli import main

raise SystemExit(main())
