"""The projector's lease (``sync.backoffice.lease``): one node holds it, another takes it
over once the holder's session ends; SQLite's is always held (one node)."""

from __future__ import annotations

import threading
import time

from sync.backoffice.context import Context
from sync.backoffice.db import Database
from sync.backoffice.lease import projector_lease
from sync.backoffice.schema import migrate
from sync.backoffice.worker import RoundWorker


class Counting(RoundWorker):
    idle_s = 0.01

    def __init__(self, ctx: Context, lease: object) -> None:
        super().__init__(ctx, lease)  # type: ignore[arg-type]
        self.rounds = threading.Event()

    def round(self, busy: bool) -> int:
        self.rounds.set()
        return 0


def test_one_node_holds_the_lease_and_another_takes_it_over(db_url: str) -> None:
    a, b = Database.open(db_url, pool_size=1), Database.open(db_url, pool_size=1)
    try:
        first, second = projector_lease(a), projector_lease(b)
        assert first.held()
        if a.dialect == "sqlite":  # single node: always held
            assert second.held()
            return
        assert not second.held()
        assert first.held()  # still (its session is alive)
        first._conn.close()  # as when the node dies: its session ends, no unlock
        deadline = time.monotonic() + 5
        while not second.held():  # once the server has noticed
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not first.held()
        second.release()  # handed over at once
        assert first.held()
        first.release()
    finally:
        a.close()
        b.close()


def test_a_worker_runs_rounds_only_while_its_node_holds_the_lease(db_url: str) -> None:
    a, b = Database.open(db_url, pool_size=1), Database.open(db_url, pool_size=1)
    try:
        migrate(a)
        holder = projector_lease(a)
        assert holder.held()
        worker = Counting(Context.over(b), projector_lease(b))
        worker.start()
        try:
            if b.dialect == "postgresql":
                assert not worker.rounds.wait(0.3)  # the other node holds it
                holder.release()
            assert worker.rounds.wait(5)  # taken over
        finally:
            worker.stop()
        holder.release()
    finally:
        a.close()
        b.close()
