"""A clean run raises no flag at the back office (issue 22, point 2): two POS lanes send
commits, refunds and registrations at once to the real POS API over loopback while the
till's sync runner pushes and pulls to a real back office over loopback (as in ``kassa
agent serve``: a POS call that finds the store busy waits for it in a worker thread), and
after the projector and the verifier ran
the back office holds no flag of any kind (``clock_backwards`` fired when the business
time was read before the write lock and the seq under it).

The clock is the edge faked here: the wall clock, but each reading takes a millisecond
(``SlowClock``), so a request that reads the time and then waits for the other lane's
transaction is the common case, not a rare one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from chain import chain_breaks, events_checked

from agent import codec
from agent.identify import make_member_code
from agent.model import MemberState
from agent.seed import demo_phone, demo_programme, member_rows, seed_catalog
from agent.service import Agent
from agent.store import Store
from kassa.demo_sync import LoopbackServer, _free_port
from kassa.posapi import create_app
from sync.backoffice import project, verify
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.client import SyncClient, SyncRunner
from sync.enroll import enroll_till

LANE_CHEQUES = 40


class SlowClock:
    """The wall clock in UTC, each reading a millisecond long (see the module doc)."""

    def now(self) -> datetime:
        moment = datetime.now(UTC)
        time.sleep(0.001)
        return moment


class PosServer:
    """The POS API of ``agent`` served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, agent: Agent, token: str) -> None:
        self.port = _free_port()
        app = create_app(agent, token=token, rate_per_s=10_000, rate_burst=10_000)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="posapi", daemon=True)

    def __enter__(self) -> PosServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the POS API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def backoffice(tmp_path: Path) -> Iterator[Backoffice]:
    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(40, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    yield bo
    bo.db.close()


def _lane(url: str, token: str, lane: int, errors: list[str]) -> None:
    """One POS: cheques (every third spending all it may), a refund of every fourth and
    two registrations, one request after the other."""
    auth = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=30) as pos:
            for n in range(LANE_CHEQUES):
                code = make_member_code(100_000_000 + (lane * 20 + n) % 40)
                card = pos.post("/v1/identify", json={"input": code}).json()
                receipt = f"L{lane}-{n}"
                cheque = {
                    "member_id": card["member_id"],
                    "receipt_id": receipt,
                    "lines": [{"sku": "BG-7001"}, {"sku": "SH-2001"}],
                    "redeem_points": "max" if n % 3 == 0 else 0,
                }
                done = pos.post("/v1/commit", json=cheque)
                assert done.status_code == 200, done.text
                if n % 4 == 1:
                    refund = {"refund_id": f"F{receipt}", "receipt_id": receipt, "lines": {"1": 1}}
                    back = pos.post("/v1/refund", json=refund)
                    assert back.status_code == 200, back.text
                if n % 20 == 7:
                    joined = pos.post(
                        "/v1/members",
                        json={
                            "phone": demo_phone(5000 + lane * 100 + n),
                            "first_name": "Ира",
                            "consent_programme": True,
                            "consent_marketing": False,
                        },
                    )
                    assert joined.status_code == 200, joined.text
    except Exception as e:  # reported by the test thread
        errors.append(f"lane {lane}: {e!r}")


def test_two_pos_lanes_at_once_raise_no_flag(tmp_path: Path, backoffice: Backoffice) -> None:
    path = tmp_path / "till.db"
    token = secrets.token_hex(16)
    with LoopbackServer(backoffice) as bo_server:
        with httpx.Client(base_url=bo_server.url, timeout=10) as http:
            enroll_till(path, http, backoffice.enroll_code("s1"), name="k1")
        with Store(path) as store, httpx.Client(base_url=bo_server.url, timeout=30) as http:
            seed_catalog(store)
            agent = Agent(store, SlowClock())
            client = SyncClient(agent, http, max_events=25)
            runner = SyncRunner(client, interval_s=0.01)
            with PosServer(agent, token) as pos:
                runner.start()
                url = f"http://127.0.0.1:{pos.port}"
                errors: list[str] = []
                lanes = [
                    threading.Thread(target=_lane, args=(url, token, lane, errors))
                    for lane in (0, 1)
                ]
                for t in lanes:
                    t.start()
                for t in lanes:
                    t.join(120)
                runner.close()
                assert errors == []
            client.drain()
            project.run_all(backoffice.context)
            client.confirm_all()
            client.pull_all()
            verify.run_all(backoffice.context)
            with store.read() as conn:
                statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM outbox")}
                times = [r[0] for r in conn.execute("SELECT created_at FROM outbox ORDER BY seq")]
                members = [r[0] for r in conn.execute("SELECT member_id FROM members")]
            with backoffice.db.reading() as tx:
                flags = tx.all("SELECT kind, event_id, detail FROM flags ORDER BY id")
                states = dict(tx.all("SELECT member_id, state FROM members"))
            assert statuses == {"acked"}
            assert flags == []
            assert times == sorted(times)  # business time in seq order
            assert chain_breaks(store) == []
            assert events_checked(store) >= 2 * LANE_CHEQUES
            now = agent.clock.now()
            for mid in members:
                server = codec.loads(MemberState, states[mid]).balance(now)
                assert agent.card(mid).balance == server, mid
