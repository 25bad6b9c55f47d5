"""docs/architecture.md stays true to the code: every module path and dotted module name
it gives exists, every file name it mentions is a file of the repository's packages, and
every till service method it lists (``Agent.<name>``) is a method of
``agent.service.Agent``."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from agent.service import Agent

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
TOP = ("agent", "kassa", "tui", "sync", "drivers", "tests", "bench", "docs")
PACKAGES = ("agent", "kassa", "tui", "sync", "drivers")

PATH = re.compile(r"(?<![\w./])((?:" + "|".join(TOP) + r")/[\w./]*[\w/])")
BARE_FILE = re.compile(r"(?<![\w./])(\w+\.py)\b")
DOTTED = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)`")
METHOD = re.compile(r"\bAgent\.(\w+)\b")


def text() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_the_page_is_linked_from_the_readme() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_module_path_exists() -> None:
    paths = set(PATH.findall(text()))
    assert {"agent/service/__init__.py", "kassa/wiring.py", "sync/backoffice/"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing


def test_every_file_named_alone_exists_in_a_package() -> None:
    """A file named without its folder (``ingest.py`` in the back office's row of the
    diagram) is a module of one of the packages."""
    names = set(BARE_FILE.findall(text()))
    assert "ingest.py" in names
    known = {p.name for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    assert not sorted(names - known), sorted(names - known)


def _resolve(name: str) -> object:
    """The module, or the object inside the longest importable module, that ``name``
    (dotted) names."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise ModuleNotFoundError(name)


def test_every_dotted_name_resolves() -> None:
    names = set(DOTTED.findall(text()))
    assert {"agent.service", "agent.store", "kassa.cli"} <= names
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as e:  # pragma: no cover - the failure's text
            pytest.fail(f"{name}: {e}")


def test_every_listed_service_method_is_on_agent() -> None:
    methods = set(METHOD.findall(text()))
    # the page lists the use cases the issue names, at least
    assert {
        "identify",
        "card",
        "quote",
        "place_hold",
        "get_hold",
        "cancel_hold",
        "commit",
        "refund",
        "register",
        "slip",
        "reprint",
        "journal",
        "sync_status",
        "member_history",
        "open_shift",
        "close_shift",
        "x_report",
    } <= methods
    missing = sorted(m for m in methods if not callable(getattr(Agent, m, None)))
    assert not missing, missing
