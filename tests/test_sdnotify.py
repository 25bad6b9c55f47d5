"""`kassa agent serve` under a service manager, as a real process: readiness and the
watchdog over a real unix datagram socket (the test plays systemd), journal-style logs on
stderr when ``$JOURNAL_STREAM`` names it, and a request id on every POS call."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_posapi_serve import demo_till_config

from agent.errors import StoreLockedError
from agent.store import Store
from kassa import sdnotify
from kassa.requestid import accept_or_make

KASSA = [sys.executable, "-m", "kassa.cli"]


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path, int]:
    return demo_till_config(tmp_path, members=20)


class FakeSystemd:
    """The notification socket systemd would listen on: a real AF_UNIX datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(60)

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def close(self) -> None:
        self.sock.close()


def test_ready_after_the_store_and_port_are_taken_then_watchdog_then_stopping(site, tmp_path):
    store, cfg, port = site
    systemd = FakeSystemd(tmp_path / "notify.sock")
    env = {
        **os.environ,
        "KASSA_CONFIG": str(cfg),
        "NOTIFY_SOCKET": str(systemd.path),
        "WATCHDOG_USEC": "400000",  # 0.4 s: pings every 0.2 s
    }
    proc = subprocess.Popen(
        [*KASSA, "agent", "serve", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = systemd.next()
        assert first.startswith("READY=1\n"), first
        assert f"MAINPID={proc.pid}" in first.split("\n")
        assert f"STATUS=listening on http://127.0.0.1:{port}" in first
        # READY means both are ours already: the port answers, the store is locked.
        assert httpx.get(f"http://127.0.0.1:{port}/v1/live", timeout=10).status_code == 200
        with pytest.raises(StoreLockedError):
            Store(store)
        pings = [systemd.next() for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
        proc.send_signal(signal.SIGTERM)
        rest = []
        while (msg := systemd.next()) != "STOPPING=1":
            rest.append(msg)
        assert set(rest) <= {"WATCHDOG=1"}
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        systemd.close()


def test_under_the_journal_stderr_is_the_log_with_levels_and_request_ids(site, tmp_path):
    _store, cfg, port = site
    err_path = tmp_path / "journal.stream"
    with err_path.open("w", encoding="utf-8") as err:
        st = os.fstat(err.fileno())
        env = {
            **os.environ,
            "KASSA_CONFIG": str(cfg),
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
        }
        # --quiet as in an old unit file: under the journal stderr is the log anyway.
        proc = subprocess.Popen(
            [*KASSA, "agent", "serve", "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            token_file = tmp_path / "api-token"
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for _ in range(300):
                    try:
                        if client.get("/v1/live").is_success:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None, "agent exited"
                    time.sleep(0.1)  # start-up readiness polling, not a timing assertion
                token = token_file.read_text(encoding="utf-8").strip()
                ok = client.get(
                    "/v1/status",
                    headers={"authorization": f"Bearer {token}", "x-request-id": "pos-77.a"},
                )
                assert ok.status_code == 200 and ok.headers["x-request-id"] == "pos-77.a"
                refused = client.get("/v1/status", headers={"x-request-id": "pos-78"})
                assert refused.status_code == 401 and refused.headers["x-request-id"] == "pos-78"
                forged = client.get("/v1/status", headers={"x-request-id": "x" * 65})
                made = forged.headers["x-request-id"]
                assert re.fullmatch(r"[0-9a-f]{32}", made)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = err_path.read_text(encoding="utf-8").splitlines()
    records = [line for line in lines if line.startswith("<")]
    assert any(re.fullmatch(r"<6>kassa\.agent: agent started: .*", r) for r in records), lines
    assert any(r.startswith("<6>kassa.agent: agent stopped") for r in records)
    # No timestamps: the journal stamps each entry itself.
    assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", r) for r in records)
    assert "<6>kassa.api: GET /v1/status -> 401" in "\n".join(records)
    assert any("[request_id=pos-78]" in r for r in records if r.startswith("<6>kassa.api"))
    assert any(f"[request_id={made}]" in r for r in records)
    assert not any("x" * 65 in r for r in lines)
    # The JSON file carries the id too.
    logged = [
        json.loads(line)
        for line in (tmp_path / "log" / "kassa-agent.log").read_text("utf-8").splitlines()
    ]
    assert any(r.get("request_id") == "pos-78" and r["logger"] == "kassa.api" for r in logged)


def test_notify_outside_systemd_does_nothing_and_abstract_sockets_work():
    assert sdnotify.notify("READY=1", env={}) is False
    name = f"kassa-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(64) == b"READY=1"


def test_watchdog_interval_is_half_and_only_for_this_process():
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval_s(mine) == 15.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert sdnotify.watchdog_interval_s(other) is None
    assert sdnotify.watchdog_interval_s({}) is None


@pytest.mark.parametrize("sent", ["a b", "line\nbreak", "", "é", "x" * 65])
def test_an_unsafe_request_id_is_replaced_not_echoed(sent):
    made = accept_or_make(sent)
    assert made != sent and re.fullmatch(r"[0-9a-f]{32}", made)


def test_journal_mode_only_when_stderr_is_the_stream_systemd_named(tmp_path):
    from kassa.logs import stderr_is_journal

    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        named = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(named, a.fileno()) is True
        # inherited by a child whose stderr was redirected: not the journal any more
        assert stderr_is_journal(named, b.fileno()) is False
        assert stderr_is_journal({"JOURNAL_STREAM": "junk"}, a.fileno()) is False
        assert stderr_is_journal({}, a.fileno()) is False
