"""Real SIGKILLs of a till process while it sells and syncs to a real back office over
loopback HTTP (notes/sync.md: "SIGKILL at random points during sales and sync", "kill
between server ack and local ack"). After every kill the till store is consistent; after
the last one, a drain leaves every committed event on the server exactly once, nothing
the till did not commit, equal balances, and an unbroken chain (each cheque's
balance_before is the member's balance after their previous event, though the victim pulls
the change feed one entry at a time behind its push answers)."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import httpx
import pytest
from chain import chain_breaks, events_checked
from kill_victims import sell_and_sync, victim

from agent import codec
from agent.model import MemberState
from agent.service import Agent
from agent.store import Store
from kassa.demo_sync import LoopbackServer
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.client import SyncClient
from sync.enroll import enroll_till

KILLS = int(os.environ.get("KASSA_SYNC_KILLS", "30"))
"""Kills per run: 30 in ``make test`` (about 30 s); ``make faults`` runs 300."""

# Real processes killed at random moments: on a parallel run they share one worker with
# the other real-process tests, so two of them never load the machine at once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_processes")]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_during_sales_and_sync_is_exactly_once(tmp_path: Path) -> None:
    from agent.seed import demo_programme, member_rows, seed_catalog

    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    from datetime import UTC, datetime

    bo.load_members(member_rows(40, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    path = tmp_path / "till.db"
    rng = random.Random(99)
    with LoopbackServer(bo) as server:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            enroll_till(path, http, bo.enroll_code("s1"), name="k1")
        with Store(path) as store:
            seed_catalog(store)
        start = 0
        for _ in range(KILLS):
            with victim(sell_and_sync, str(path), server.url, start) as kill:
                time.sleep(rng.uniform(0.01, 0.25))
                kill()
            with Store(path) as store:
                assert store.quick_check() == "ok"
                assert chain_breaks(store) == []
                start = int(store.meta("last_seq") or 0) + 1000 * (_ + 1)
        with Store(path) as store, httpx.Client(base_url=server.url, timeout=5) as http:
            agent = Agent(store)
            client = SyncClient(agent, http)
            client.drain()
            client.pull_all()
            with store.read() as conn:
                till = dict(conn.execute("SELECT event_id, payload_hash FROM outbox"))
                statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM outbox")}
                members = [r[0] for r in conn.execute("SELECT member_id FROM members")]
            assert statuses == {"acked"}
            assert chain_breaks(store) == []
            assert events_checked(store) > KILLS
            with bo.db.reading() as tx:
                on_server = dict(
                    tx.all("SELECT event_id, payload_hash FROM events WHERE status = 'applied'")
                )
                purchases = tx.one("SELECT count(*) FROM purchases")[0]
                states = dict(tx.all("SELECT member_id, state FROM members"))
            assert on_server == till  # exactly once, nothing extra
            assert purchases == sum(
                1 for _ in store.conn.execute("SELECT 1 FROM outbox WHERE type = 'purchase'")
            )
            now = agent.clock.now()
            for mid in members:
                assert agent.card(mid).balance == codec.loads(MemberState, states[mid]).balance(
                    now
                ), mid
    assert len(till) > KILLS  # the workers really sold between kills
