"""A full disk under the till store, for real: a small tmpfs (``tests/fullfs.py``) filled to
its last byte by a ballast file and freed again. The till says "disk full" plainly, keeps
going and recovers by itself as soon as space returns: the agent waits for space instead
of exiting, the print worker and the sync loop retry soon (a new job wakes the printer at
once), the sync loop records its failure and the views show the full disk, and the POS
API's 503 says when to retry."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster, TillNode
from fullfs import SmallDisk, small_disk
from synchelp import portal
from test_posapi import TestClient
from test_posapi_serve import KASSA, free_port, wait_ready

from agent import printq
from agent.errors import StoreFullError, StoreWriteError
from agent.identify import make_member_code
from agent.results import CheckoutRequest
from agent.store import Store
from drivers.printq import PrintWorker
from drivers.transport import CaptureTransport
from kassa.config import Config, StoreConfig
from kassa.doctor import check_disk, check_store, check_sync_error
from kassa.posapi import STORE_RETRY_AFTER_S, create_app
from sync.client import SyncRunner
from tests.conftest import FakeClock, Till, make_cart
from tui.widgets.status import status_text

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs: Linux")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", size_mib=8) as d:
        yield d


def until(cond: Callable[[], object], timeout_s: float = 60.0, what: str = "") -> None:
    """Wait for ``cond`` (readiness polling, not a timing assertion: the bounds are far
    beyond what each step takes, and far below the backoffs it must not wait out)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


def sell(till: Till, receipt: str) -> None:
    card = till.agent.identify(make_member_code(100_000_001))
    till.agent.commit(CheckoutRequest(card.member_id, make_cart(receipt, ("DR-1001", 1)), 0))


# ---------------------------------------------------------------------- 1. opening
def test_a_store_on_a_full_disk_says_disk_full_and_opens_once_space_is_freed(
    disk: SmallDisk,
) -> None:
    till = Till(disk.root / "till.db", FakeClock(), members=20)
    till.store.close()  # a clean stop: no -wal/-shm left, SQLite must make them on open
    disk.fill()
    with pytest.raises(StoreFullError) as info:
        Store(disk.root / "till.db")
    e = info.value
    assert e.code == "disk_full" and isinstance(e, StoreWriteError)
    assert "disk is full" in e.message_en and "нет места" in e.message_ru
    assert e.details["free_bytes"] == 0
    cfg = Config(store=StoreConfig(str(disk.root / "till.db")))
    found = check_disk(cfg)
    assert found.level == "error" and "диск заполнен" in found.message_ru
    assert "the disk is full" in found.message_en
    stored = check_store(cfg)[0]
    assert all("восстановите" not in f.hint_ru for f in stored)  # not called damaged
    disk.free()
    with Store(disk.root / "till.db") as store:
        assert store.meta("terminal_id") == "till-1"


def _agent_config(tmp_path: Path, disk: SmallDisk) -> tuple[Path, int]:
    store = disk.root / "till.db"
    subprocess.run(
        [*KASSA, "init", "--demo", "--members", "20", "--store", str(store)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    cfg = tmp_path / "kassa.toml"  # the config and token on another disk, the log on it
    cfg.write_text(
        f'[store]\npath = "{store}"\n[api]\nport = {port}\n[log]\ndir = "{disk.root / "log"}"\n'
        '[sync]\nenabled = false\n[printer]\nurl = ""\n',
        encoding="utf-8",
    )
    return cfg, port


def _serve(cfg: Path, err: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KASSA_CONFIG": str(cfg)}
    with err.open("wb") as stderr:
        return subprocess.Popen([*KASSA, "agent", "serve"], env=env, stderr=stderr)


@pytest.mark.xdist_group("real_processes")
def test_agent_on_a_full_disk_waits_says_disk_full_and_serves_once_space_is_freed(
    tmp_path: Path, disk: SmallDisk
) -> None:
    cfg, port = _agent_config(tmp_path, disk)
    disk.fill()
    err = tmp_path / "serve.stderr"
    # Stopped while it waits for space: a clean exit 0, not a kill.
    proc = _serve(cfg, err)
    try:
        until(lambda: "Диск заполнен" in err.read_text("utf-8"), what="the disk-full line")
        assert proc.poll() is None  # waiting, not exited with 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    text = err.read_text("utf-8")
    assert "Disk full" in text and "нет места" in text and "disk is full" in text
    assert "Logging error" not in text and "Traceback" not in text  # its log: same disk
    # Started again on the full disk, then space is freed: it comes up by itself.
    proc = _serve(cfg, err)
    try:
        until(lambda: "Диск заполнен" in err.read_text("utf-8"), what="the disk-full line")
        disk.free()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            until((tmp_path / "api-token").exists, what="the token file")
            token = (tmp_path / "api-token").read_text("utf-8").strip()
            wait_ready(client, proc, token)
            auth = {"authorization": f"Bearer {token}"}
            code = make_member_code(100_000_001)
            card = client.post("/v1/identify", json={"input": code}, headers=auth).json()
            sale = {"member_id": card["member_id"], "receipt_id": "DF-1"}
            sale["lines"] = [{"sku": "DR-1001"}]
            assert client.post("/v1/commit", json=sale, headers=auth).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()


# ---------------------------------------------------------------------- 2. printing
def _worker(till: Till, **kw: float) -> tuple[PrintWorker, CaptureTransport]:
    transport = CaptureTransport()
    worker = PrintWorker(
        till.store,
        transport,
        lambda slip: f"{slip.receipt_id}\n".encode(),
        status_supported=False,
        backoff_initial_s=3600,
        backoff_max_s=3600,  # no backoff may be waited out here
        idle_poll_s=3600,
        **kw,
    )
    return worker, transport


def test_print_worker_prints_soon_after_space_is_freed(disk: SmallDisk) -> None:
    till = Till(disk.root / "till.db", FakeClock(), members=20)
    worker, transport = _worker(till, store_retry_s=0.1)
    sell(till, "P-1")
    disk.fill()  # the job cannot even be claimed now
    worker.start()
    try:
        until(lambda: worker.store_error is not None, what="the worker to meet the full disk")
        assert transport.data == b""
        disk.free()
        until(lambda: transport.data == b"P-1\n", what="the slip")
        until(lambda: worker.store_error is None)
        assert printq.queue_depth(till.store) == 0
    finally:
        worker.stop()
        till.store.close()


def test_a_new_job_wakes_the_print_worker_waiting_for_the_store_at_once(
    disk: SmallDisk,
) -> None:
    till = Till(disk.root / "till.db", FakeClock(), members=20)
    worker, transport = _worker(till, store_retry_s=3600)  # only notify() can wake it
    sell(till, "P-1")
    disk.fill()
    worker.start()
    try:
        until(lambda: worker.store_error is not None, what="the worker to meet the full disk")
        with pytest.raises(StoreWriteError):
            sell(till, "P-lost")  # the POS is told 503; nothing written, nothing queued
        disk.free()
        sell(till, "P-2")
        worker.notify()  # what the POS API and the cashier app do after a commit
        until(lambda: transport.data == b"P-1\nP-2\n", what="both slips")
    finally:
        worker.stop()
        till.store.close()


# ---------------------------------------------------------------------- 3. sync
def test_sync_on_a_full_disk_is_a_recorded_transient_error_then_drains(
    tmp_path: Path, disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    from kassa.wiring import open_services

    caplog.set_level(logging.INFO, logger="kassa.sync")
    with portal() as p:
        cluster = Cluster(tmp_path, str(tmp_path / "bo.db"), p)
        try:
            TillNode(cluster, disk.root / "till.db", "till-1").close()
            services = open_services(
                disk.root / "till.db", http=cluster.http, printer_url=None, clock=cluster.clock
            )
            try:
                agent = services.agent
                for n in range(5):
                    card = agent.identify(make_member_code(100_000_001 + n))
                    agent.commit(
                        CheckoutRequest(card.member_id, make_cart(f"S-{n}", ("DR-1001", 1)), 0)
                    )
                disk.fill()
                assert services.till.sync is not None
                runner = SyncRunner(services.till.sync, interval_s=0.05, watch_s=0.05)
                runner.start()
                try:
                    # The back office applied the batch; the till could not store the answer.
                    until(lambda: len(cluster.events()) == 5, what="the events on the server")
                    until(lambda: runner.store_error is not None and runner.attempt >= 3)
                    assert runner.restarts == 0  # no crash, no watchdog restart
                    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
                    warned = [r for r in caplog.records if "cannot be written" in r.message]
                    assert len(warned) == 1  # said once, not per attempt

                    view = agent.sync_status()
                    assert view.disk_full and view.events_waiting == 5
                    assert view.last_error and "disk is full" in view.last_error
                    snap = services.status()
                    assert snap.disk_full
                    bar = status_text(snap, "ru", None, None).plain
                    assert "ДИСК ЗАПОЛНЕН" in bar
                    assert "DISK FULL" in status_text(snap, "en", None, None).plain
                    cfg = Config(store=StoreConfig(str(disk.root / "till.db")))
                    _, meta = check_store(cfg)
                    finding = check_sync_error(cfg, meta)
                    assert finding is not None and finding.level == "error"
                    assert "диск базы кассы заполнен" in finding.message_ru
                    status = subprocess.run(
                        [*KASSA, "sync", "status", "--store", str(disk.root / "till.db")],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    assert status.returncode == 0, status.stdout + status.stderr
                    shown = json.loads(status.stdout)
                    assert shown["disk_full"] and "disk is full" in shown["last_error"]

                    disk.free()
                    until(lambda: agent.sync_status().events_waiting == 0, what="the drain")
                    until(lambda: runner.store_error is None)
                    view = agent.sync_status()
                    assert not view.disk_full and view.last_error is None
                    assert runner.restarts == 0
                finally:
                    runner.close()
                assert len(cluster.events()) == 5  # the resent batch was a duplicate
            finally:
                services.stop()
        finally:
            cluster.close()


# ---------------------------------------------------------------------- 4. the POS API
TOKEN = "test-token-0123456789abcdef"


def test_pos_api_store_write_failure_answers_503_with_retry_after(disk: SmallDisk) -> None:
    till = Till(disk.root / "till.db", FakeClock(), members=20)
    try:
        auth = {"authorization": f"Bearer {TOKEN}"}
        with TestClient(create_app(till.agent, token=TOKEN), headers=auth) as api:
            card = api.post("/v1/identify", json={"input": make_member_code(100_000_001)})
            cheque = {
                "member_id": card.json()["member_id"],
                "receipt_id": "API-1",
                "lines": [{"sku": "DR-1001"}],
            }
            disk.fill()
            for path in ("/v1/commit", "/v1/holds"):
                resp = api.post(path, json=cheque)
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"] == "store_write_failed"
                assert resp.headers["retry-after"] == str(STORE_RETRY_AFTER_S)
            disk.free()
            assert api.post("/v1/commit", json=cheque).status_code == 200
    finally:
        till.store.close()
