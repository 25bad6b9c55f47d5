"""Shared fixtures: the demo programme, a controllable clock, a real till store."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.model import Cart, CartLine
from agent.rules import Programme
from agent.seed import CATALOG, demo_programme, member_rows, seed_catalog
from agent.service import Agent
from agent.store import Store
from agent.tokens import TokenSigner, dump_key

NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)

# The back-office fixtures (``db_url``: SQLite and PostgreSQL; ``cluster``) for every module.
pytest_plugins = ("cluster",)


class FakeClock:
    """The edge we fake: time. Tests move it explicitly."""

    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def rules() -> Programme:
    return demo_programme()


def make_cart(receipt_id: str, *items: tuple[str, int], sale: bool = False) -> Cart:
    by_sku = {row[0]: row for row in CATALOG}
    lines = []
    for n, (sku, qty) in enumerate(items, start=1):
        _, name, category, collection, price = by_sku[sku]
        lines.append(CartLine(n, sku, name, category, price, qty, price * qty, sale, collection))
    return Cart(receipt_id, tuple(lines))


class Till:
    """A real store + agent + the demo back office keys (the test stands for the back office)."""

    def __init__(self, path: Path, clock: FakeClock, members: int = 200) -> None:
        self.path = path
        self.clock = clock
        self.signing = Ed25519PrivateKey.generate()
        self.signer = TokenSigner(1, self.signing)
        self.seal = X25519PrivateKey.generate()
        self.hash_key = secrets.token_bytes(32)
        self.store = Store(path)
        Agent.initialise(
            self.store,
            terminal_id="till-1",
            store_name="Тест",
            phone_hash_key=self.hash_key,
            token_public_key=dump_key(self.signing.public_key()),
            seal_public_key=dump_key(self.seal.public_key()),
        )
        self.agent = Agent(self.store, clock)
        self.agent.install_rules(demo_programme())
        seed_catalog(self.store)
        self.store.bulk_load_members(
            member_rows(members, demo_programme(), self.hash_key, clock.now())
        )
        self.agent.record_contact()

    def count(self, table: str) -> int:
        row = self.store.one(f"SELECT count(*) FROM {table}")
        assert row is not None
        return int(row[0])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def till(tmp_path: Path, clock: FakeClock) -> Iterator[Till]:
    t = Till(tmp_path / "till.db", clock)
    yield t
    t.store.close()


@contextlib.contextmanager
def store_busy(store: Store) -> Iterator[None]:
    """Another thread holds ``store`` (as a sale being written would) until the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.read():
            held.set()
            release.wait(30)

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert held.wait(30)
        yield
    finally:
        release.set()
        other.join(30)
