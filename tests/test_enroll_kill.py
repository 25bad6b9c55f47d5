"""Real SIGKILLs during set-up (issue 23): ``kassa enroll`` killed at each crash point
(``agent.crashpoint``: the pending request written, the back office's answer received,
the store opened, its keys written, its token written, the code confirmed, the members
loaded, and inside each atomic file write) is finished by running the same command again,
with the same one-time code; ``kassa agent serve`` killed while it writes its API token on
its first start comes back on the next start."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from crash_victims import run_kassa
from test_posapi_serve import free_port

from agent.seed import demo_programme, member_rows
from agent.store import Store
from kassa.demo_sync import LoopbackServer
from kassa.setup import init_store
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.enroll import pending_path

MEMBERS = 12

pytestmark = [
    pytest.mark.xdist_group("kill"),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL"),
]

ENROLL_POINTS = (
    "atomic.written@1",  # the pending request's temporary file, before its fsync
    "atomic.synced@1",  # ... before its rename
    "atomic.renamed@1",  # ... before the folder's fsync
    "enroll.request_saved",
    "enroll.answered",  # the back office made the terminal; the till holds nothing of it
    "enroll.store_opened",  # an empty schema
    "enroll.initialised",  # keys without a sync token
    "enroll.stored",  # the token, not confirmed
    "enroll.confirmed",  # confirmed at the back office, not noted in the store
    "enroll.loaded",  # members loaded, the pending request not yet removed
)


@pytest.fixture(scope="module")
def backoffice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backoffice, str]]:
    root = tmp_path_factory.mktemp("bo")
    bo = Backoffice(Database.open(str(root / "bo.db")))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(MEMBERS, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    with LoopbackServer(bo) as server:
        yield bo, server.url
    bo.db.close()


def code_row(bo: Backoffice, terminal_id: str) -> tuple[object, ...]:
    with bo.db.reading() as tx:
        return tuple(
            tx.one(
                "SELECT request_id IS NOT NULL, sealed_token IS NULL, confirmed_at IS NOT NULL "
                "FROM enroll_codes WHERE used_by = ?",
                (terminal_id,),
            )
        )


@pytest.mark.parametrize("point", ENROLL_POINTS)
def test_a_killed_enrollment_is_finished_by_the_same_command(
    backoffice: tuple[Backoffice, str], tmp_path: Path, point: str
) -> None:
    bo, url = backoffice
    store = tmp_path / "till.db"
    before = len(bo.terminals())
    argv = ["enroll", "--url", url, "--code", bo.enroll_code("s1"), "--store", str(store)]
    out = tmp_path / "out.txt"
    assert run_kassa(argv, out, crash_at=point) == -9, out.read_text()
    assert run_kassa(argv, out) == 0, out.read_text()
    info = json.loads(out.read_text())
    assert info["members"] in (0, MEMBERS)  # 0: the killed run had loaded them
    assert len(bo.terminals()) == before + 1  # one terminal for the code, whatever the kill
    with Store(store) as till:
        assert till.meta("terminal_id") == info["terminal_id"]
        assert till.meta("sync_token") and till.meta("enroll_confirmed") == "1"
        assert till.one("SELECT count(*) FROM members")[0] == MEMBERS
        assert till.quick_check() == "ok"
    assert store.stat().st_mode & 0o777 == 0o600
    assert not pending_path(store).exists()
    assert code_row(bo, info["terminal_id"]) == (1, 1, 1)  # retired, no sealed token kept
    # and a third run says it is done
    assert run_kassa(argv, out) != 0
    assert "already exists" in out.read_text() or "уже существует" in out.read_text()


def test_another_till_with_the_spent_code_is_refused(
    backoffice: tuple[Backoffice, str], tmp_path: Path
) -> None:
    bo, url = backoffice
    code = bo.enroll_code("s1")
    out = tmp_path / "out.txt"
    first = ["enroll", "--url", url, "--code", code, "--store", str(tmp_path / "a.db")]
    assert run_kassa(first, out, crash_at="enroll.answered") == -9
    other = ["enroll", "--url", url, "--code", code, "--store", str(tmp_path / "b.db")]
    assert run_kassa(other, out) != 0
    assert "enroll_code_used" in out.read_text()
    assert not (tmp_path / "b.db").exists()
    assert run_kassa(first, out) == 0, out.read_text()  # the first till still finishes


def test_a_store_an_older_version_left_half_made_says_what_to_do(
    backoffice: tuple[Backoffice, str], tmp_path: Path
) -> None:
    from agent.service import Agent

    bo, url = backoffice
    store = tmp_path / "till.db"
    with Store(store) as half:
        Agent.initialise(half, terminal_id="old-till")  # keys, no token, no pending request
    out = tmp_path / "out.txt"
    argv = ["enroll", "--url", url, "--code", bo.enroll_code("s1"), "--store", str(store)]
    assert run_kassa(argv, out) == 3, out.read_text()  # a store error
    text = out.read_text()
    assert "half_made_store" in text and f"rm {store}" in text
    for suffix in ("", "-wal", "-shm", ".lock"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)
    assert run_kassa(argv, out) == 0, out.read_text()  # done as it said: finished


def agent_config(tmp_path: Path, port: int) -> Path:
    cfg = tmp_path / "kassa.toml"
    cfg.write_text(
        f'[store]\npath = "{tmp_path / "till.db"}"\n[api]\nport = {port}\n'
        f'[log]\ndir = "{tmp_path / "log"}"\n',
        encoding="utf-8",
    )
    return cfg


def serve_until_ready(tmp_path: Path, cfg: Path, port: int) -> str:
    """Start ``kassa agent serve``, wait until it answers with its token, stop it."""
    import signal
    import subprocess

    err = (tmp_path / "serve.err").open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kassa.cli", "agent", "serve", "--quiet", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    token_file = tmp_path / "api-token"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(600):
                assert proc.poll() is None, (tmp_path / "serve.err").read_text()
                token = token_file.read_text().strip() if token_file.exists() else ""
                try:
                    if (
                        token
                        and client.get(
                            "/v1/status", headers={"authorization": f"Bearer {token}"}
                        ).is_success
                    ):
                        return token
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError("agent did not start")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        err.close()


@pytest.mark.parametrize("point", ["atomic.written@1", "atomic.synced@1", "atomic.renamed@1"])
def test_an_agent_killed_writing_its_token_on_first_start_comes_back(
    tmp_path: Path, point: str
) -> None:
    init_store(tmp_path / "till.db", demo=True, members=5)
    port = free_port()
    cfg = agent_config(tmp_path, port)
    out = tmp_path / "out.txt"
    argv = ["agent", "serve", "--quiet", "--config", str(cfg)]
    assert run_kassa(argv, out, crash_at=point) == -9, out.read_text()
    token_file = tmp_path / "api-token"
    assert not token_file.exists() or len(token_file.read_text().strip()) == 43
    token = serve_until_ready(tmp_path, cfg, port)
    assert token_file.stat().st_mode & 0o777 == 0o600 and len(token) == 43


def test_an_empty_token_file_an_older_agent_left_is_replaced_with_a_log_line(
    tmp_path: Path,
) -> None:
    init_store(tmp_path / "till.db", demo=True, members=5)
    port = free_port()
    cfg = agent_config(tmp_path, port)
    token_file = tmp_path / "api-token"
    token_file.touch(mode=0o600)  # what a power cut after O_CREAT left
    token = serve_until_ready(tmp_path, cfg, port)
    assert token_file.read_text() == token + "\n"
    logs = "".join(p.read_text() for p in (tmp_path / "log").glob("*"))
    logs += (tmp_path / "serve.err").read_text()
    assert "is empty" in logs


@pytest.mark.parametrize("point", ["enroll.store_opened", "enroll.initialised"])
def test_a_half_made_store_deleted_by_hand_is_finished_with_the_same_code(
    backoffice: tuple[Backoffice, str], tmp_path: Path, point: str
) -> None:
    """The installer clears the half-made store (``rm till.db*``) and runs the command
    again: the pending request is not among those files, so the same code finishes."""
    bo, url = backoffice
    store = tmp_path / "till.db"
    argv = ["enroll", "--url", url, "--code", bo.enroll_code("s1"), "--store", str(store)]
    out = tmp_path / "out.txt"
    assert run_kassa(argv, out, crash_at=point) == -9
    for leftover in tmp_path.glob("till.db*"):  # what rm till.db* removes
        leftover.unlink()
    assert pending_path(store).exists()
    assert run_kassa(argv, out) == 0, out.read_text()
    info = json.loads(out.read_text())
    assert info["members"] == MEMBERS
    assert code_row(bo, info["terminal_id"]) == (1, 1, 1)
