"""The back office taken down by a real SIGTERM and brought up again, as real processes
(``kassa backoffice serve``) on one loopback port, with a real till syncing to it: the
back office exits 0 whenever the signal comes (opening its database, or with a push batch
in flight), and the till's sync loop, probing ``/v1/live`` while its events wait, resyncs
soon after the back office is back instead of sleeping out its backoff."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_posapi_serve import KASSA, free_port

from agent.identify import make_member_code
from agent.results import CheckoutRequest
from agent.seed import demo_programme, member_rows, seed_catalog
from agent.service import Agent
from agent.store import Store
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.client import PushReport, SyncClient, SyncRunner, backoffice_http
from sync.enroll import enroll_till
from tests.conftest import make_cart

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGTERM, /proc"),
    pytest.mark.xdist_group("real_processes"),
]


def until(cond: Callable[[], object], timeout_s: float = 60.0, what: str = "") -> None:
    """Wait for ``cond`` (readiness polling; the bound is far beyond each step)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open now (``/proc/<pid>/fd``)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                return True
        except OSError:
            continue
    return False


def serve(db: Path, port: int, err: Path) -> subprocess.Popen[bytes]:
    with err.open("ab") as stderr:
        return subprocess.Popen(
            [*KASSA, "backoffice", "serve", "--db", str(db), "--port", str(port)],
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_while_the_database_opens_exits_0(tmp_path: Path) -> None:
    db, err = tmp_path / "bo.db", tmp_path / "bo.stderr"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")  # the migrations' write waits for this lock
    proc = serve(db, free_port(), err)
    try:
        until(lambda: proc.poll() is not None or has_open(proc.pid, db), what="the open")
        time.sleep(0.3)  # its busy wait has begun (it waits up to 30 s)
        proc.send_signal(signal.SIGTERM)  # used to kill it (-15) here
        holder.execute("ROLLBACK")
        assert proc.wait(30) == 0, err.read_text()
    finally:
        holder.close()
        proc.kill()
    assert "kassa back office on" not in err.read_text()  # stopped before serving
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"


HOUR_S = 3600.0


class Stretched(SyncRunner):
    """The real runner, whose backoff after a round that could not connect is an hour
    (instead of up to 300 s): a resync within the test's time can only come from the
    probe, however long the back office takes to start again on a loaded machine."""

    def step(self) -> float:
        delay = super().step()
        return HOUR_S if self.unreachable else delay


class Gated(SyncClient):
    """The real client, whose pushes after the first wait for ``gate``: the back office
    is stopped between two batches of a queue still waiting, however fast the machine."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gate = threading.Event()
        self.pushes = 0

    def push_once(self) -> PushReport:
        if self.pushes >= 1:
            self.gate.wait()
        self.pushes += 1
        return super().push_once()


def _backoffice(db: Path) -> str:
    bo = Backoffice(Database.open(str(db)))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(20, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    code = bo.enroll_code("s1")
    bo.db.close()
    return code


def _applied(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE status = 'applied'").fetchone()[0]
        )


def test_back_office_down_and_up_exits_0_and_the_till_resyncs_without_its_backoff(
    tmp_path: Path,
) -> None:
    db, port, err = tmp_path / "bo.db", free_port(), tmp_path / "bo.stderr"
    url = f"http://127.0.0.1:{port}"
    code = _backoffice(db)
    proc = serve(db, port, err)
    try:
        until(lambda: live(url), what="the back office")
        path = tmp_path / "till.db"
        with backoffice_http(url) as http:
            enroll_till(path, http, code, name="k1")
        store = Store(path)
        seed_catalog(store)
        agent = Agent(store)
        sales = 100
        for n in range(sales):
            card = agent.identify(make_member_code(100_000_000 + n % 20))
            cart = make_cart(f"K-{n}", ("BG-7001", 1))
            agent.commit(CheckoutRequest(card.member_id, cart, 0))
        http = backoffice_http(url)
        client = Gated(agent, http, max_events=2)
        runner = Stretched(client, interval_s=5)
        runner.start()
        try:
            # Down between batches of a queue still waiting: a clean exit 0.
            until(lambda: agent.sync_status().events_waiting < sales, what="the first push")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, err.read_text()
            assert agent.sync_status().events_waiting > 0
            client.gate.set()
            # A round that cannot connect: it waits an hour now, probing /v1/live each second.
            until(lambda: runner.unreachable, what="a round that cannot connect")
            proc = serve(db, port, err)
            until(lambda: live(url), timeout_s=60, what="the back office again")
            until(lambda: agent.sync_status().events_waiting == 0, what="the resync")
            until(lambda: runner.attempt == 0, what="the round to end")  # pulled too
            assert runner.restarts == 0
            assert agent.sync_status().last_error is None
        finally:
            runner.close()
            http.close()
            store.close()
        # Every event exactly once across the restart (applied by the projector: wait).
        until(lambda: _applied(db) >= sales, what="the projector")
        assert _applied(db) == sales
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
