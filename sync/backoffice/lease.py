"""Leases: which node of a back office does a background job's work, and who takes over
when that node dies.

Several ``kassa backoffice serve`` processes (nodes) may share one PostgreSQL database:
their web side keeps no state of its own (a push, a verdict page, the feed are all read
from and written to the database), so a load balancer may send any request to any node.
The projector's work is not split by the lease; it is made safe by the projector itself
(``project``: a pass claims accepted events inside its transaction, under the feed lock,
and writes their verdicts with their effects), and a node killed mid-pass leaves nothing
(its transaction rolls back when its connection drops). What the lease decides is which
node runs the projector's rounds, so the others do not queue passes behind it: the
holder keeps a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
its own, and PostgreSQL releases it the moment that session ends (the process exited or
was killed, the machine or the network went away); another node's next try takes it.

The lease connection's ``application_name`` names the node (host and process id), so
``pg_stat_activity`` / ``pg_locks`` show who holds which lease.

SQLite stays single-node (an embedded file, one writer): its lease is always held.
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
