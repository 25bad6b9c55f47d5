"""`kassa doctor` against a healthy till and against each broken one.

Real pieces everywhere: a real store, the real back office served by uvicorn on
loopback, a loopback TCP 9100 printer that answers DLE EOT (the device is the edge we
fake), a real pty for the scanner port, and a real unprivileged process for the
unwritable-store case when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_drivers_transport import FakeTcpPrinter

from kassa.config import ensure_token, parse_config
from kassa.demo_sync import LoopbackServer
from kassa.doctor import exit_code, render, run_checks
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from tests.conftest import Till


def by_check(findings):
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.check, []).append(f.level)
    return {k: max(v, key=["ok", "info", "warning", "error"].index) for k, v in out.items()}


@pytest.fixture
def site(tmp_path, clock):
    """A healthy installation: enrolled till, back office up, printer calibrated."""
    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    bo.initialise()
    printer = FakeTcpPrinter()
    master, slave = os.openpty()
    till = Till(tmp_path / "till.db", clock)
    with LoopbackServer(bo) as server:
        from agent.store import Store

        with till.store.write() as conn:
            Store.set_meta(conn, "backoffice_url", server.url)
            Store.set_meta(conn, "sync_token", "t" * 32)
        doc = {
            "store": {"path": str(till.path)},
            "printer": {
                "url": f"tcp://127.0.0.1:{printer.port}",
                "profile": "epson-tm-80",
                "calibrated": True,
            },
            "scanner": {"ports": [os.ttyname(slave)]},
        }
        ensure_token(parse_config(doc, str(tmp_path / "kassa.toml")))
        till.path.chmod(0o600)  # as the agent leaves it
        yield doc, tmp_path, printer, server
    printer.close()
    os.close(master)
    os.close(slave)
    till.store.close()


def check(doc, tmp_path):
    findings = run_checks(parse_config(doc, str(tmp_path / "kassa.toml")))
    return findings, by_check(findings)


def test_the_health_probe_uses_the_one_back_office_client(site, monkeypatch):
    import sync.client

    doc, tmp_path, _, server = site
    made: list[tuple[str, float]] = []
    real = sync.client.backoffice_http

    def recording(url: str, **kw: float) -> object:
        made.append((url, kw["timeout_s"]))
        return real(url, **kw)

    monkeypatch.setattr(sync.client, "backoffice_http", recording)
    _, levels = check(doc, tmp_path)
    assert made == [(server.url, 3.0)] and levels["backoffice"] == "ok"


def test_healthy_setup_is_all_ok(site):
    doc, tmp_path, printer, _ = site
    findings, levels = check(doc, tmp_path)
    disk = levels.pop("disk")  # the machine's own disk: only "no space at all" would fail
    assert set(levels.values()) == {"ok"}, render(findings, "en")
    assert disk in ("ok", "warning") and exit_code(findings) == (0 if disk == "ok" else 1)
    assert {
        "store",
        "queue",
        "agent",
        "enrollment",
        "backoffice",
        "clock",
        "codepage",
        "printer",
        "scanner",
        "token",
    } <= set(levels)
    assert printer.connections >= 1  # the printer itself was asked for its status
    text = render(findings, "ru")
    assert "Всё в порядке" in text and "принтер" in text
    assert "All good" in render(findings, "en")


def test_no_back_office_is_a_warning(site):
    doc, tmp_path, _, server = site
    server.server.should_exit = True
    server.thread.join(10)
    findings, levels = check(doc, tmp_path)
    assert levels["backoffice"] == "warning" and exit_code(findings) == 1
    assert "offline" in render(findings, "en")


def test_missing_printer_is_an_error(site):
    doc, tmp_path, printer, _ = site
    printer.set_mode("refuse")
    findings, levels = check(doc, tmp_path)
    assert levels["printer"] == "error" and exit_code(findings) == 2
    assert "unreachable" in render(findings, "en")


def test_wrong_or_uncalibrated_code_page(site):
    doc, tmp_path, _, _ = site
    bad = tmp_path / "printer.toml"
    bad.write_text(
        'title = "x"\ncolumns = 48\ndots = 576\n[codepage]\nencoding = "cp437"\ncp866 = 17\n',
        encoding="utf-8",
    )
    findings, levels = check(doc | {"printer": {"profile": str(bad)}}, tmp_path)
    assert levels["codepage"] == "error" and exit_code(findings) == 2
    assert "encoding" in render(findings, "en")
    findings, levels = check(doc | {"printer": {**doc["printer"], "calibrated": False}}, tmp_path)
    assert levels["codepage"] == "warning" and "kassa printer calibrate" in render(findings, "en")


def test_no_printer_configured_is_info_not_a_code_page_warning(site):
    doc, tmp_path, _, _ = site
    findings, levels = check(doc | {"printer": {"calibrated": False}}, tmp_path)
    assert levels["printer"] == "info" and "codepage" not in levels
    assert "no printer configured" in render(findings, "en")
    assert "calibrate" not in render(findings, "en")


def test_missing_scanner_port_and_open_token_file(site):
    doc, tmp_path, _, _ = site
    (tmp_path / "api-token").chmod(0o644)
    findings, levels = check(doc | {"scanner": {"ports": ["/dev/ttyKASSA-none"]}}, tmp_path)
    assert levels["scanner"] == "error" and levels["token"] == "error"
    assert "chmod 600" in render(findings, "en")


def test_store_readable_by_others_is_a_warning(site):
    doc, tmp_path, _, _ = site
    Path(doc["store"]["path"]).chmod(0o644)
    findings, levels = check(doc, tmp_path)
    assert levels["store"] == "warning" and "readable by other users" in render(findings, "en")


def test_missing_store_is_an_error(tmp_path):
    findings, levels = check({"store": {"path": str(tmp_path / "none.db")}}, tmp_path)
    assert levels["store"] == "error" and exit_code(findings) == 2
    assert "kassa enroll" in render(findings, "en")


def test_unwritable_store_is_an_error(tmp_path, clock):
    """Root ignores file modes, so as root the store and its directory are made immutable
    (chattr +i); as another user they are made read-only (chmod)."""
    base = tmp_path / "ro"
    till = Till(base / "till.db", clock, members=10)
    till.store.close()
    doc = {"store": {"path": str(base / "till.db")}}
    files = [base / "till.db", base]
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("chattr not available to make the store unwritable for root")
        locked = subprocess.run(["chattr", "+i", *map(str, files)], check=False).returncode == 0
        if not locked:
            pytest.skip("this filesystem does not support chattr +i")
    else:
        for p in files:
            p.chmod(0o555)
    try:
        findings, levels = check(doc, tmp_path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        else:
            for p in files:
                p.chmod(0o755)
    assert levels["store"] == "error" and exit_code(findings) == 2
    assert "not writable" in render(findings, "en")
    assert "chown" in render(findings, "ru")


def test_bad_config_is_reported_by_the_doctor(tmp_path):
    cfg = tmp_path / "kassa.toml"
    cfg.write_text("[api]\nprot = 1\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "kassa.cli", "doctor", "--config", str(cfg), "--lang", "en"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and "api.prot" in out.stdout


def test_a_password_in_the_sync_url_is_never_printed(site):
    """``sync.url`` with credentials: the doctor's text and JSON show it masked, as
    ``kassa config show`` does, for both the reachable and the unreachable case."""
    doc, tmp_path, _, server = site
    host = server.url.removeprefix("http://")
    doc = {**doc, "sync": {"url": f"http://kassa:s3cret-pass@{host}"}}
    findings, _ = check(doc, tmp_path)
    server.server.should_exit = True
    server.thread.join(10)
    offline, _ = check(doc, tmp_path)
    for found in (findings, offline):
        shown = render(found, "ru") + render(found, "en") + repr(found)
        assert "s3cret-pass" not in shown
        assert f"http://kassa:***@{host}" in shown
