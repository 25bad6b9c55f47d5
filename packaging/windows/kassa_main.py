"""Entry point frozen by PyInstaller into kassa.exe and the Linux one-file binary (same
commands as the `kassa` script).

``freeze_support`` first: ``kassa init --demo`` seeds a big member base in a spawned
worker process (``multiprocessing`` "spawn"), and in a frozen program that child is this
same executable, which must run the worker instead of the CLI.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from kassa.cli import main

    sys.exit(main())
