"""The benchmarks' shared helpers (bench/_synclib.py) for the tests that reuse them, loaded
from their file: putting bench/ on sys.path would let bench/tui.py shadow the tui package
for every test collected after."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "_synclib.py"


def _load() -> object:
    if "_synclib" in sys.modules:
        return sys.modules["_synclib"]
    spec = importlib.util.spec_from_file_location("_synclib", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_synclib"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


synclib = _load()
