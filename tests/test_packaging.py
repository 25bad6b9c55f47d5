"""The artefacts a store installs: what the wheel and the sdist carry, and how the installed
cashier app reports a failure.

The wheel and sdist are built with setuptools' own backend (no network, no isolation)
from a copy of the tracked sources, so the build leaves nothing in the work tree. The
full install-and-run check of a built wheel in a clean venv is ``make smoke``
(packaging/smoke/), which is too slow for the test suite.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "sync", "drivers", "tui", "kassa")


def _tracked(*paths: str) -> list[str]:
    """The work tree's files under ``paths``: tracked, and new ones not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [p for p in out.stdout.split() if (ROOT / p).is_file()]


def runtime_data_files() -> list[str]:
    """Every tracked non-Python file inside the importable packages: the code opens these at
    run time (stylesheet, rules, printer profiles) or type checkers read them (py.typed)."""
    return sorted(p for p in _tracked(*PACKAGES) if not p.endswith(".py"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from a copy of the tracked files of the package."""
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked(*PACKAGES, "pyproject.toml", "README.md"):
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    out = tmp_path_factory.mktemp("dist")
    for hook in ("build_wheel", "build_sdist"):  # one process each, as a frontend does
        code = f"import sys; from setuptools import build_meta as b; b.{hook}(sys.argv[1])"
        run = subprocess.run(
            [sys.executable, "-c", code, str(out)],
            cwd=src,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = out.glob("kassa-*.whl")
    (sdist,) = out.glob("kassa-*.tar.gz")
    return wheel, sdist


def test_runtime_data_files_are_found():
    files = runtime_data_files()
    assert "tui/kassa.tcss" in files
    assert "agent/data/demo_programme.toml" in files
    assert any(f.startswith("drivers/profiles/") for f in files)
    assert "sync/backoffice/console/static/htmx.min.js" in files
    assert "sync/backoffice/console/static/NOTICE.md" in files
    assert "sync/backoffice/console/templates/base.html" in files


def test_the_wheel_carries_every_runtime_data_file(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [f for f in runtime_data_files() if f not in names]
    assert missing == [], f"not in {wheel.name}: {missing}"


def test_the_sdist_carries_every_runtime_data_file(built):
    _, sdist = built
    with tarfile.open(sdist) as t:
        prefix = t.getnames()[0].split("/")[0]
        names = {n.removeprefix(prefix + "/") for n in t.getnames()}
    missing = [f for f in runtime_data_files() if f not in names]
    assert missing == [], f"not in {sdist.name}: {missing}"


def test_the_wheel_declares_no_back_office_database_driver_for_tills(built):
    """A till installs the wheel without extras: no PostgreSQL driver, no phone geodata."""
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in z.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    base = [r for r in requires if "extra ==" not in r]
    names = {r.split("==")[0].split("[")[0].strip().lower() for r in base}
    assert "psycopg" not in names
    assert "phonenumbers" not in names
    assert "phonenumberslite" in names
    assert any(r.startswith("psycopg") and 'extra == "backoffice"' in r for r in requires)
    assert all("==" in r for r in base), f"runtime pins must be exact: {base}"


def _run_in_pty(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run ``argv`` on a real 80x24 terminal; (exit status, everything it drew)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode("utf-8", "replace")


def test_the_cashier_app_exits_non_zero_when_it_dies_of_an_error(tmp_path):
    """A stylesheet the app cannot read (what an install without the .tcss did) ends
    `kassa tui` with an error status, not 0, on a real terminal."""
    store = tmp_path / "till.db"
    env = {**os.environ, "TERM": "xterm-256color", "HOME": str(tmp_path)}
    init = subprocess.run(
        [sys.executable, "-m", "kassa.cli", "init", "--store", str(store)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    # A short directory: the traceback wraps at 80 columns, and a long base temp path (a
    # pytest-xdist worker's) would split the file name across two lines of the screen.
    with tempfile.TemporaryDirectory(prefix="k") as short:
        missing = Path(short) / "gone.tcss"
        code = (
            "import sys, tui.app\n"
            f"tui.app.KassaApp.CSS_PATH = {str(missing)!r}\n"
            "from kassa.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        status, screen = _run_in_pty(
            [sys.executable, "-c", code, "tui", "--store", str(store), "--printer", "none"],
            env={**env, "PYTHONPATH": str(ROOT)},
            timeout_s=60,
        )
    assert "gone.tcss" in screen, screen[-2000:]
    assert status == 1, screen[-2000:]


BLOCK = (
    "import sys\n"
    "ABSENT = set(sys.argv.pop(1).split(','))\n"
    "class _Absent:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ABSENT:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, _Absent())\n"
    "from kassa.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
"""``python -c BLOCK absent,modules kassa ...``: the CLI on an install without those
distributions (an import of them fails as it would there)."""


def _kassa_without(absent: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK, absent, *args],
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_runs_without_the_back_office_and_usb_extras(tmp_path):
    """The scripted demo (a SQLite back office and a till) needs neither psycopg nor
    python-escpos, which a till's install does not carry."""
    run = _kassa_without("psycopg,escpos", "demo", "--script", "--members", "200", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "psycopg" not in run.stderr and "Traceback" not in run.stderr


def test_a_postgresql_back_office_without_the_driver_names_the_extra(tmp_path):
    run = _kassa_without(
        "psycopg",
        "backoffice",
        "seed",
        "--db",
        "postgresql://kassa:secret@127.0.0.1:1/kassa",
        cwd=tmp_path,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "postgres_driver_missing" in run.stdout + run.stderr
    assert "kassa[backoffice]" in run.stdout + run.stderr
    assert "secret" not in run.stdout + run.stderr
