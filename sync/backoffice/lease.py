"""Leases: which node of a back office runs a background worker's rounds, and who takes
over when that node dies.

Several ``kassa backoffice serve`` processes (nodes) may share one PostgreSQL database.
Their web side keeps no state of its own (a push, a verdict page, the feed are read from
and written to the database), so a load balancer may send any request to any node; a
push's inline projection runs on the node that took it.

The background work is made safe by the workers themselves, not by the lease: a projector
pass claims accepted events inside its transaction, under the feed lock, and writes their
verdicts with their effects (``project``), so two passes never apply one event and a
node killed mid-pass leaves nothing (its transaction rolls back when its connection
drops); the verifier deletes each queue row it scored (``DELETE ... RETURNING``). The
lease decides which node runs the rounds: passes are exclusive anyway (the feed lock), and
two verifiers would score the same oldest purchases, so the other nodes stand by instead
of queueing behind the holder. The holder keeps a session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own; PostgreSQL releases it when that
session ends (the process exited or was killed, the machine or the network went away),
and another node's next try (every ``idle_s`` of its worker) takes it.

The projector's work is not split between nodes (by member partitions): a pass of one
partition would decide a terminal's events out of ``pos`` order, so a terminal's decided
events would no longer be a prefix of its accepted ones, and merges, refunds and a
terminal's receipt numbers tie members of different partitions together.

The lease connection's ``application_name`` names the node (host and process id), so
``pg_stat_activity`` and ``pg_locks`` show who holds which lease. SQLite stays single-node
(an embedded file, one writer): its lease is always held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

from sync.backoffice.db import Database, PostgresDatabase

log = logging.getLogger("kassa.backoffice.lease")

PROJECTOR_LEASE_KEY = 7_301_003  # next to db's FEED_LOCK_KEY and ACCEPT_LOCK_KEY
VERIFIER_LEASE_KEY = 7_301_004


def node_name() -> str:
    """This node as the lease connection names it: ``kassa <host> pid <pid>``."""
    return f"kassa {socket.gethostname()} pid {os.getpid()}"[:63]


class Lease:
    """One lease (``key``) over ``db``: ``held()`` says whether this node holds it, taking
    it when it is free. Not thread-safe: one worker thread owns a lease."""

    def __init__(self, db: Database, key: int) -> None:
        self.db = db
        self.key = key
        self._conn: Any = None
        self._held = db.dialect != "postgresql"

    def held(self) -> bool:
        """Whether this node holds the lease now: if it did, that its session is still
        alive; if not, one try to take it (never waits)."""
        if self.db.dialect != "postgresql":
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = self._connect()
            if self._held:
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                self._held = bool(row.fetchone()[0])
                if self._held:
                    log.info("lease %s taken by %s", self.key, node_name())
        except Exception as e:  # the server or the network: the lease is lost with it
            log.warning("lease %s: %s", self.key, e)
            self._drop()
        return self._held

    def release(self) -> None:
        """Give the lease up (at once: a session that just closed lets its locks go only
        once the server has noticed)."""
        if self._held and self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._drop()

    def _connect(self) -> Any:
        import psycopg  # noqa: PLC0415 - the backoffice extra, loaded for PostgreSQL only

        assert isinstance(self.db, PostgresDatabase)
        # autocommit: the lock belongs to the session; no transaction stays open on it
        return psycopg.connect(
            self.db.url, autocommit=True, application_name=node_name(), connect_timeout=10
        )

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a session already gone
                self._conn.close()
            self._conn = None


def projector_lease(db: Database) -> Lease:
    """The lease of the projector thread (``project.Projector``) of a serving node."""
    return Lease(db, PROJECTOR_LEASE_KEY)


def verifier_lease(db: Database) -> Lease:
    """The lease of the verifier thread (``verify.Verifier``): its queue is taken oldest
    first, so two verifiers would score the same purchases and one would throw its work
    away (``DELETE ... RETURNING`` keeps each verified once either way)."""
    return Lease(db, VERIFIER_LEASE_KEY)
