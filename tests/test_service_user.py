"""The agent as an unprivileged service user meets the install's directories: a config
directory it cannot write (``/etc/kassa``), a state directory it owns. Real processes
run through ``setpriv`` without the capabilities that let root ignore file modes
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): file modes then apply to them as to any user,
while the interpreter (which may live under root's home) stays reachable. The config
directory belongs to another user, as /etc/kassa (root's) does for the service user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

pytestmark = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a process as another user",
)


def as_user(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-all",
            sys.executable,
            "-m",
            "kassa.cli",
            *args,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def install() -> Iterator[Path]:
    """The README's layout in a fresh root: etc/ (another user's, 0755: read-only to the
    service), lib/ and log/ (the service's own, 0700)."""
    base = Path(tempfile.mkdtemp(prefix="kassa-svc-"))
    try:
        etc = base / "etc"
        etc.mkdir(mode=0o755)
        for d in ("lib", "log"):
            (base / d).mkdir(mode=0o700)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def env_for(base: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base / "lib")}


def write_config(base: Path, token_file: Path) -> Path:
    cfg = base / "etc" / "kassa.toml"
    cfg.write_text(
        f'[store]\npath = "{base / "lib" / "till.db"}"\n[api]\nport = 1\n'
        f'token_file = "{token_file}"\n[log]\ndir = "{base / "log"}"\n',
        encoding="utf-8",
    )
    cfg.chmod(0o644)
    os.chown(base / "etc", NOBODY, NOBODY)
    return cfg


def test_a_token_file_in_the_read_only_config_dir_is_a_clear_error_and_doctor_says_so(install):
    env = env_for(install)
    made = as_user("init", "--demo", "--members", "5", "--store", str(install / "lib" / "till.db"),
                   env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    cfg = write_config(install, install / "etc" / "api-token")

    served = as_user("agent", "serve", "--quiet", "--config", str(cfg), env=env)
    assert served.returncode == 2, served.stderr  # RestartPreventExitStatus: no restart loop
    err = json.loads(served.stdout)
    assert err["error"] == "config_error" and err["details"]["key"] == "api.token_file"
    assert "Traceback" not in served.stderr
    assert "/var/lib/kassa/api-token" in err["message_en"]

    doctor = as_user("doctor", "--json", "--config", str(cfg), env=env)
    findings = json.loads(doctor.stdout)["findings"]
    dirs = {f["message_en"]: f["level"] for f in findings if f["check"] == "dirs"}
    assert dirs == {
        f"store directory {install / 'lib'} is writable": "ok",
        f"log directory {install / 'log'} is writable": "ok",
        f"token directory {install / 'etc'} is not writable by this user: the service "
        "cannot start": "error",
    }
    assert doctor.returncode == 2


def test_with_the_token_in_the_state_dir_the_doctor_finds_every_directory_writable(install):
    env = env_for(install)
    made = as_user("init", "--demo", "--members", "5", "--store", str(install / "lib" / "till.db"),
                   env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    cfg = write_config(install, install / "lib" / "api-token")
    doctor = as_user("doctor", "--json", "--config", str(cfg), env=env)
    findings = json.loads(doctor.stdout)["findings"]
    levels = [f["level"] for f in findings if f["check"] == "dirs"]
    assert levels == ["ok", "ok", "ok"]
