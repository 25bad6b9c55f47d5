"""Where the till's files live by default, per platform (no imports of ours: the
configuration, the CLI and the set-up commands all read it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_store_path() -> Path:
    """``$KASSA_STORE``, else the platform's per-user data dir: .../kassa/till.db."""
    if env := os.environ.get("KASSA_STORE"):
        return Path(env)
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "kassa" / "till.db"
