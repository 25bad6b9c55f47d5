"""The core stays pure (DESIGN.md §2): importing every agent module loads no UI, device or
network library and none of our outer packages."""

import pkgutil
import subprocess
import sys

import agent

FORBIDDEN = ("textual", "httpx", "escpos", "serial", "tui", "drivers", "sync", "kassa")


def test_agent_imports_nothing_forbidden():
    modules = [f"agent.{m.name}" for m in pkgutil.iter_modules(agent.__path__)]
    assert "agent.service" in modules and "agent.engine" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_check_itself_detects_a_forbidden_import():
    code = "import sys, kassa.cli\nprint('kassa' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
