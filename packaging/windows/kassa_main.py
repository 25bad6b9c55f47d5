"""Entry point frozen by PyInstaller into kassa.exe and the Linux one-file binary (same
commands as the `kassa` script).

``freeze_support`` first: in a frozen program a ``multiprocessing`` "spawn" child is this
same executable, which must then run its worker instead of the CLI. (The demo seeding in
``kassa.setup`` already stays in one process when ``sys.frozen`` is set; this keeps any
other pool from starting a second CLI.)
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from kassa.cli import main

    sys.exit(main())
