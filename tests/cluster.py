"""A real back office (SQLite or PostgreSQL) and real tills joined over a fake network."""

from __future__ import annotations

import atexit
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from conftest import NOW, FakeClock, make_cart
from synchelp import FaultyTransport, SyncASGITransport, portal

from agent.results import CheckoutRequest, CommitResult
from agent.seed import demo_programme, member_rows
from agent.service import Agent
from agent.store import Store
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.client import SyncClient
from sync.enroll import enroll_till

PG_ADMIN_URL = os.environ.get("KASSA_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    """A back office on ``db_url`` served to tills through a portal (a fixture of every test
    module: ``conftest`` loads this module as a plugin)."""
    with portal() as p:
        c = Cluster(tmp_path, db_url, p)
        yield c
        c.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The back office database: embedded SQLite, and an empty database on the real
    PostgreSQL server (the same code path; CI runs both)."""
    if request.param == "sqlite":
        yield str(tmp_path / "backoffice.db")
        return
    name = _PG_POOL.take()
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        _PG_POOL.give_back(name)


class PostgresPool:
    """Empty PostgreSQL databases for the tests of one pytest process, reused: a test's
    database is emptied (its connections ended, ``public`` dropped and made again) rather
    than dropped. ``CREATE``/``DROP DATABASE`` each force a checkpoint, which takes seconds
    while other workers write; the pool makes one database per concurrent test instead of
    one per test, and drops them when the process ends."""

    def __init__(self) -> None:
        self._free: list[str] = []
        self._made: list[str] = []

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        import psycopg

        name = f"kassa_test_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        if not self._made:
            atexit.register(self.drop_all)
        self._made.append(name)
        return name

    def give_back(self, name: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        self._free.append(name)

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in self._made:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_PG_POOL = PostgresPool()


class TillNode:
    """An enrolled till: its own store, agent and sync client."""

    def __init__(self, cluster: Cluster, path: Path, name: str, store_id: str = "s1") -> None:
        self.cluster = cluster
        self.path = path
        code = cluster.bo.enroll_code(store_id)
        enroll_till(path, cluster.http, code, name=name, terminal_id=name, clock=cluster.clock)
        self.open()

    def open(self) -> None:
        self.store = Store(self.path)
        self.agent = Agent(self.store, self.cluster.clock)
        self.client = SyncClient(self.agent, self.cluster.http)

    def close(self) -> None:
        self.store.close()

    def sale(
        self, receipt: str, member_id: str, *items: tuple[str, int], redeem: int = 0, **kw: Any
    ) -> CommitResult:
        cart = make_cart(receipt, *items)
        return self.agent.commit(
            CheckoutRequest(member_id, cart, redeem, cashier_id=kw.pop("cashier", "c1"), **kw)
        )

    def outbox(self) -> list[tuple[Any, ...]]:
        with self.store.read() as conn:
            return conn.execute(
                "SELECT seq, event_id, payload_hash, status FROM outbox ORDER BY seq"
            ).fetchall()

    def balance(self, member_id: str) -> int:
        return self.agent.card(member_id).balance


class Cluster:
    def __init__(self, tmp: Path, db_url: str, portal: BlockingPortal, members: int = 50) -> None:
        self.tmp = tmp
        self.clock = FakeClock(NOW)
        self.db = Database.open(db_url)
        self.bo = Backoffice(self.db, self.clock)
        self.bo.initialise()
        self.bo.ensure_store("s1", "Тверская")
        self.bo.load_members(
            member_rows(
                members, demo_programme(), bytes.fromhex(self.bo.setting("phone_hash_key")), NOW
            ),
            store_id="s1",
        )
        self.app = create_app(self.bo)
        self.transport = FaultyTransport(SyncASGITransport(self.app, portal))
        self.http = httpx.Client(transport=self.transport, base_url="http://backoffice")
        self.tills: list[TillNode] = []

    def till(self, name: str = "till-1", store_id: str = "s1") -> TillNode:
        """An enrolled till of store ``store_id`` (made by ``ensure_store`` first)."""
        node = TillNode(self, self.tmp / f"{name}.db", name, store_id)
        self.tills.append(node)
        return node

    def ledger(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.db.reading() as tx:
            return tx.all(sql, params)

    def server_balance(self, member_id: str) -> int:
        from agent import codec
        from agent.model import MemberState

        row = self.ledger("SELECT state FROM members WHERE member_id = ?", (member_id,))[0]
        return codec.loads(MemberState, row[0]).balance(self.clock.now())

    def events(self) -> dict[str, str]:
        return dict(
            self.ledger("SELECT event_id, payload_hash FROM events WHERE status = 'applied'")
        )

    def close(self) -> None:
        for t in self.tills:
            t.close()
        self.http.close()
        self.db.close()
