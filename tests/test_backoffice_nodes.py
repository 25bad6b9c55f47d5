"""Several back-office nodes (``kassa backoffice serve`` processes) on one PostgreSQL
database: one is SIGKILLed in the middle of a projector pass; every accepted event is
still applied exactly once and the members come out as a single node makes them.

The backlog: a till's outbox of cloned purchases (``bench/_synclib.fill_outbox``) pushed
and only accepted (the in-process app runs no projector). The database is then copied
(``CREATE DATABASE ... TEMPLATE``): the copy is projected by one in-process projector,
the reference; the original by three serving nodes (the test holds the projector's lease
until all three are up), of which the one inside a pass (it holds the feed lock) is
killed; the lease then passes to another node."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from benchlib import synclib as _synclib
from cluster import PG_ADMIN_URL, Cluster
from synchelp import portal

from sync.backoffice import project
from sync.backoffice.db import FEED_LOCK_KEY, Database
from sync.backoffice.lease import PROJECTOR_LEASE_KEY
from sync.backoffice.service import Backoffice

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("real_processes"),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL"),
]

EVENTS = 2000
NODES = 3
MEMBER_COLS = "member_id, state, balance, available, pending, expiring_points, tier, debt"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_pair() -> Iterator[tuple[str, str]]:
    """Two database names on the test server: the nodes' and the reference copy."""
    names = (f"kassa_test_{secrets.token_hex(4)}", f"kassa_test_{secrets.token_hex(4)}")
    _admin(f"CREATE DATABASE {names[0]}")
    try:
        yield names
    finally:
        for name in names:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _url(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _ledger(url: str) -> dict[str, Any]:
    db = Database.open(url, pool_size=1)
    try:
        with db.reading() as tx:
            return {
                "events": dict(tx.all("SELECT status, count(*) FROM events GROUP BY status")),
                "purchases": tx.one("SELECT count(*), count(DISTINCT event_id) FROM purchases"),
                "members": tx.all(f"SELECT {MEMBER_COLS} FROM members ORDER BY member_id"),
            }
    finally:
        db.close()


def _node(url: str, i: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kassa.cli", "backoffice", "serve", "--db", url, "--port", "0"],
        env={**os.environ, "PGAPPNAME": f"kassa-node-{i}"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _in_pass(conn: psycopg.Connection[Any]) -> str | None:
    """The node whose connection holds the feed lock now (inside a projector pass)."""
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s "
        "AND a.datname = current_database() AND a.application_name LIKE 'kassa-node-%%'",
        (FEED_LOCK_KEY,),
    ).fetchone()
    return None if row is None else str(row[0])


def test_nodes_on_one_database_apply_each_event_once_when_one_is_killed(
    tmp_path: Path, pg_pair: tuple[str, str]
) -> None:
    url, ref_url = _url(pg_pair[0]), _url(pg_pair[1])
    with portal() as p:
        c = Cluster(tmp_path, url, p, members=200)
        try:
            till = c.till("till-1")
            till.close()  # the filler opens the store itself
            _synclib.fill_outbox(till.path, EVENTS, 200, templates=48, seed=16)
            till.open()
            till.client.drain()
        finally:
            c.close()
    _admin(f"CREATE DATABASE {pg_pair[1]} TEMPLATE {pg_pair[0]}")
    assert _ledger(url)["events"] == {"accepted": EVENTS}

    ref = Database.open(ref_url, pool_size=1)
    try:
        assert project.run_all(Backoffice(ref).context) == EVENTS
    finally:
        ref.close()

    nodes = []
    watch = psycopg.connect(url, autocommit=True)
    try:
        # the test holds the projector's lease until every node is up, then lets it go
        watch.execute("SELECT pg_advisory_lock(%s)", (PROJECTOR_LEASE_KEY,))
        for i in range(NODES):  # one after another: each migrates the database on start
            nodes.append(_node(url, i))
            assert nodes[-1].stderr is not None
            assert b"kassa back office on" in nodes[-1].stderr.readline()
        assert _ledger(url)["events"] == {"accepted": EVENTS}  # nobody projected yet
        watch.execute("SELECT pg_advisory_unlock(%s)", (PROJECTOR_LEASE_KEY,))
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            victim = _in_pass(watch)
        assert victim is not None, "no node was seen inside a pass"
        killed = nodes[int(victim.rsplit("-", 1)[1])]
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        while time.monotonic() < deadline:
            row = watch.execute("SELECT count(*) FROM events WHERE status = 'accepted'")
            if row.fetchone()[0] == 0:
                break
            time.sleep(0.1)
    finally:
        watch.close()
        for node in nodes:
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
            assert node.stderr is not None
            node.stderr.close()

    got, want = _ledger(url), _ledger(ref_url)
    assert got["events"] == {"applied": EVENTS}
    assert got["purchases"] == (EVENTS, EVENTS)
    assert got["members"] == want["members"]
