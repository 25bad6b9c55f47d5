"""Entry point frozen by PyInstaller into kassa.exe (same commands as the `kassa` script)."""

import sys

from kassa.cli import main

if __name__ == "__main__":
    sys.exit(main())
