"""Revoking a till and rotating the admin token take effect at once on every node: two
``Backoffice`` services over one database (two processes' worth of caches), SQLite and
PostgreSQL, through the real HTTP app."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from synchelp import SyncASGITransport, portal

from agent.errors import InputError
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice, UnknownTerminal
from tests.conftest import FakeClock
from tests.test_cli import run_cli


@pytest.fixture
def nodes(db_url: str) -> Iterator[tuple[Backoffice, Backoffice, FakeClock]]:
    clock = FakeClock()
    first = Backoffice(Database.open(db_url), clock)
    first.initialise()
    second = Backoffice(Database.open(db_url), clock)
    try:
        yield first, second, clock
    finally:
        first.db.close()
        second.db.close()


@contextlib.contextmanager
def client(bo: Backoffice) -> Iterator[httpx.Client]:
    with (
        portal() as p,
        httpx.Client(
            transport=SyncASGITransport(create_app(bo, verifier=False), p), base_url="http://bo"
        ) as c,
    ):
        yield c


def rules_status(bo: Backoffice, token: str) -> int:
    with client(bo) as c:
        return c.get("/v1/rules", headers={"authorization": f"Bearer {token}"}).status_code


def kpi_status(bo: Backoffice, token: str) -> int:
    with client(bo) as c:
        return c.get("/v1/kpi", headers={"authorization": f"Bearer {token}"}).status_code


def test_a_revoked_till_is_refused_at_once_on_every_node(nodes):
    first, second, _ = nodes
    code = first.enroll_code("s1", store_name="Магазин 1")
    enrolled = first.enroll(code, "Касса 1")
    token, terminal_id = enrolled["token"], enrolled["terminal_id"]
    # Both nodes have served the till (so whatever they keep of it is warm).
    assert rules_status(first, token) == 200 and rules_status(second, token) == 200
    answer = second.revoke_till(terminal_id)
    assert answer["revoked"] is True and answer["already_revoked"] is False
    assert rules_status(first, token) == 401
    assert rules_status(second, token) == 401
    assert first.revoke_till(terminal_id)["already_revoked"] is True
    with pytest.raises(UnknownTerminal):
        first.revoke_till("no-such-till")


def test_a_rotated_admin_token_works_and_the_old_one_stops_at_once(nodes):
    first, second, _ = nodes
    old = first.new_admin_token()
    assert kpi_status(first, old) == 200 and kpi_status(second, old) == 200
    new = second.new_admin_token()
    assert kpi_status(first, new) == 200 and kpi_status(second, new) == 200
    assert kpi_status(first, old) == 401 and kpi_status(second, old) == 401


def test_a_rotation_with_a_grace_period_keeps_the_old_token_until_it_ends(nodes):
    first, second, clock = nodes
    old = first.new_admin_token()
    new = second.new_admin_token(grace_seconds=600)
    assert kpi_status(first, old) == 200 and kpi_status(first, new) == 200
    clock.advance(seconds=599)
    assert kpi_status(second, old) == 200
    clock.advance(seconds=2)
    assert kpi_status(first, old) == 401 and kpi_status(second, old) == 401
    assert kpi_status(first, new) == 200
    # The next rotation without a grace period ends the previous token's grace too.
    newer = first.new_admin_token()
    assert kpi_status(second, new) == 401 and kpi_status(second, newer) == 200
    with pytest.raises(InputError):
        first.new_admin_token(grace_seconds=-1)


def cli(*argv: str) -> tuple[int, dict]:
    ran = run_cli(list(argv))
    text = ran.stdout.strip() or ran.stderr.strip()
    return ran.returncode, json.loads(text) if text.startswith("{") else {"text": text}


def test_revoke_till_and_admin_token_grace_from_the_command_line(tmp_path):
    db = str(tmp_path / "bo.db")
    bo = Backoffice(Database.open(db))
    bo.initialise()
    enrolled = bo.enroll(bo.enroll_code("s1", store_name="Магазин 1"), "Касса 1")
    bo.db.close()
    code, out = cli("backoffice", "revoke-till", "--db", db, "--terminal", enrolled["terminal_id"])
    assert code == 0 and out["revoked"] is True, out
    code, out = cli("backoffice", "revoke-till", "--db", db, "--terminal", "nope")
    assert code == 2 and out["error"] == "unknown_terminal", out
    code, out = cli("backoffice", "admin-token", "--db", db, "--grace-minutes", "30")
    assert code == 0 and out["old_token_valid_minutes"] == 30 and len(out["admin_token"]) >= 40
    code, _ = cli("backoffice", "admin-token", "--db", db, "--grace-minutes", "99999")
    assert code == 2
    bo = Backoffice(Database.open(db))
    assert rules_status(bo, enrolled["token"]) == 401
    bo.db.close()


def test_two_rotations_at_once_keep_a_previous_token_in_grace(nodes):
    """Concurrent rotations with a grace period (two nodes, two threads): whichever
    commits last keeps the other's token as the previous one, so exactly one of the two
    new tokens is current and the other still works in its grace period."""
    import threading

    first, second, _ = nodes
    first.new_admin_token()
    made: list[str] = []
    barrier = threading.Barrier(2)

    def rotate(bo: Backoffice) -> None:
        barrier.wait()
        made.append(bo.new_admin_token(grace_seconds=600))

    threads = [threading.Thread(target=rotate, args=(bo,)) for bo in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(made) == 2
    assert all(kpi_status(first, token) == 200 for token in made), made
