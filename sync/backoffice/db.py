"""One database interface over SQLite (embedded default) and PostgreSQL.

The back office's SQL is written once, in the common subset of both (``?`` placeholders,
``ON CONFLICT``, ``RETURNING``, window functions); this module adapts placeholders and
transactions, so the ledger runs the same code path on both and the tests prove it.

- SQLite: one connection in WAL mode with ``synchronous=FULL``; every transaction is
  ``BEGIN IMMEDIATE`` under a process lock (SQLite has one writer anyway). WAL checkpoints
  run in a background thread after each write (``agent.checkpoint``), not inside the
  ``COMMIT`` of whichever push crosses the threshold (a pushed batch writes megabytes);
  the page cache is ``SQLITE_CACHE_KIB`` so a batch's pages stay in memory until commit.
- PostgreSQL: a small pool of psycopg connections; a transaction that appends to the
  change feed takes a transaction-scoped advisory lock so feed sequence numbers commit in
  order (a reader can never pass a number that a slower transaction commits later); an
  acceptance of pushed events takes another, for the same reason about event positions.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from agent import checkpoint
from agent.errors import AgentError
from agent.private import prepare_sqlite_file
from sync.backoffice.utf8 import UTF8_TEXT

FEED_LOCK_KEY = 7_301_001
ACCEPT_LOCK_KEY = 7_301_002
_PLAIN_INSERT = re.compile(r"^INSERT INTO (\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\(\?(?:\s*,\s*\?)*\)$")
_PINNED = (  # each turned off while plans are pinned (``Tx.pinned``)
    "enable_seqscan",
    "enable_bitmapscan",
    "enable_sort",
    "enable_hashjoin",
    "enable_mergejoin",
    "jit",  # the penalty of a scan with no index (a tiny table) would be compiled, ~30 ms
)
_PIN = "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in _PINNED)
_UNPIN = (  # each back to what it was before the transaction changed it
    "SELECT set_config(name, reset_val, true) FROM pg_settings "
    f"WHERE name IN ({', '.join(repr(name) for name in _PINNED)})"
)
SQLITE_CACHE_KIB = 65_536  # 64 MiB page cache for the back office's one connection


def marks(n: int) -> str:
    """``?,?,...``: ``n`` placeholders."""
    return ",".join("?" * n)


class PostgresDriverMissing(AgentError):
    """A ``postgresql://`` back office on an install without the ``backoffice`` extra (a
    till's install carries no PostgreSQL driver)."""

    code = "postgres_driver_missing"
    title_ru = "Нет драйвера PostgreSQL"
    title_en = "PostgreSQL driver missing"


def _pg_connect(url: str) -> Any:
    """A connection through ``sync.backoffice.pg``, imported only now (psycopg is optional)."""
    try:
        from sync.backoffice import pg  # noqa: PLC0415 - psycopg is the backoffice extra
    except ImportError as e:
        raise PostgresDriverMissing(
            "a PostgreSQL back office needs the driver: pip install 'kassa[backoffice]' "
            f"(or use a SQLite file for --db); {e}",
            "для бэк-офиса на PostgreSQL нужен драйвер: pip install 'kassa[backoffice]' "
            f"(или укажите в --db файл SQLite); {e}",
            extra="backoffice",
        ) from None
    return pg.connect(url)


def open_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "the database could not be opened or reached": SQLite's,
    and psycopg's when it is loaded (it is only once a PostgreSQL URL was opened)."""
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
    if (pg := sys.modules.get("sync.backoffice.pg")) is not None:
        errors += (pg.OperationalError,)
    return errors


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """A transaction: ``execute`` and ``executemany`` with ``?`` placeholders."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self._raw = raw
        self.dialect = dialect
        self._pinned = False

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cur: Cursor = self._raw.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` once per row. On PostgreSQL a plain ``INSERT INTO t(cols) VALUES
        (?, ...)`` (placeholders only) becomes one ``COPY t(cols) FROM STDIN``: a pushed
        batch inserts thousands of rows, and a pipelined statement per row still cost
        ~0.1 ms each; any other statement runs pipelined (psycopg ``executemany``)."""
        if isinstance(rows, Sequence) and not rows:
            return
        if self.dialect == "postgresql":
            with self._raw.cursor() as cur:
                plain = _PLAIN_INSERT.match(sql)
                if plain is None:
                    cur.executemany(self._sql(sql), rows)
                    return
                with cur.copy(f"COPY {plain[1]} ({plain[2]}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            self._raw.executemany(sql, rows)

    def insert_many(
        self, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]
    ) -> None:
        """``INSERT INTO table(columns) VALUES (?, ...)`` for each row. ``columns`` pairs
        each name with the type its values are sent as on PostgreSQL, where the rows go in
        one binary ``COPY``: nothing is escaped here or parsed back by the server (for a
        pushed batch, a text ``COPY`` cost ~20 us more per event). A column of ``Utf8Text``
        values is declared ``UTF8_TEXT``. SQLite: ``executemany``."""
        names = ", ".join(c for c, _ in columns)
        if self.dialect != "postgresql":
            values = ",".join("CAST(? AS TEXT)" if t == UTF8_TEXT else "?" for _, t in columns)
            self._raw.executemany(f"INSERT INTO {table}({names}) VALUES ({values})", rows)
            return
        if self._raw.info.encoding != "utf-8":
            self.executemany(f"INSERT INTO {table}({names}) VALUES ({marks(len(columns))})", rows)
            return
        sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
        with self._raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types([t for _, t in columns])
            for row in rows:
                copy.write_row(row)

    def update_many(
        self, table: str, key: str, columns: Sequence[tuple[str, str]], rows: Sequence[Any]
    ) -> None:
        """``UPDATE table SET col = ? ... WHERE key = ?`` for each row (the values of
        ``columns`` in order, then the key). ``columns`` pairs each name with its
        PostgreSQL type. There all rows go in one statement: one JSON text parameter,
        read by ``json_to_recordset`` into typed columns, joined to the table through the
        key's index (``pinned``). Arrays were the other way: as text psycopg escapes each
        with a regular expression, as binary it dumps each element in Python; for a
        projector pass of 1,000 members either cost ~0.15 s, the JSON ~5 ms."""
        if not rows:
            return
        names = [c for c, _ in columns]
        if self.dialect != "postgresql":
            sets = ", ".join(f"{c} = ?" for c in names)
            self._raw.executemany(f"UPDATE {table} SET {sets} WHERE {key} = ?", rows)
            return
        cols = [*names, key]
        doc = orjson.dumps([dict(zip(cols, row, strict=True)) for row in rows]).decode()
        spec = ", ".join(f"{c} {t}" for c, t in [*columns, (key, "text")])
        sets = ", ".join(f"{c} = v.{c}" for c in names)
        with self.pinned():
            self._raw.execute(
                f"UPDATE {table} AS t SET {sets} FROM json_to_recordset(%s::json) "
                f"AS v({spec}) WHERE t.{key} = v.{key}",
                (doc,),
            )

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """PostgreSQL told to walk an index (no sequential or bitmap scan, no sort, no
        hash or merge join, and no JIT) for the statements inside, then back to the server's
        configured values; one statement each way (``set_config``: each ``SET`` was a
        round trip of its own, ten per pinned statement), nothing more when already
        pinned. For the projector's statements on tables that a backlog grows by
        thousands of rows a second: until the next ANALYZE (autovacuum may be off, or a
        minute away) the statistics say the table is nearly empty, and the planner
        scanned it whole on every pass. No-op on SQLite."""
        if self.dialect != "postgresql" or self._pinned:
            yield
            return
        self._raw.execute(_PIN)
        self._pinned = True
        try:
            yield
        finally:
            self._pinned = False
        # (not after an error: the transaction may be aborted, and it is ending anyway)
        self._raw.execute(_UNPIN)

    def all_by_index(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """``all`` with the plan ``pinned`` to indexes (see there)."""
        with self.pinned():
            return self.all(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()


def sqlite_path(url: str) -> Path | None:
    """The SQLite file a back-office ``url`` names (a path, or ``sqlite:///`` + path);
    None for a PostgreSQL URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return None
    return Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


class Database:
    """Open with ``Database.open(url)``: a path / ``sqlite:///path`` or ``postgresql://...``."""

    dialect: str

    @staticmethod
    def open(url: str, *, pool_size: int = 4) -> Database:
        path = sqlite_path(url)
        if path is None:
            return PostgresDatabase(url, pool_size)
        return SqliteDatabase(path)

    @contextlib.contextmanager
    def transaction(self, *, feed: bool = False, accept: bool = False) -> Iterator[Tx]:
        """A write transaction; ``feed=True`` when it appends to the change feed,
        ``accept=True`` when it gives pushed events their positions (``ingest``)."""
        raise NotImplementedError  # pragma: no cover
        yield  # pragma: no cover

    @contextlib.contextmanager
    def reading(self) -> Iterator[Tx]:
        raise NotImplementedError  # pragma: no cover
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        prepare_sqlite_file(path)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint.SAFETY_NET_PAGES}")
        self.checkpointer = checkpoint.Checkpointer(path, timeout_s=30)

    @contextlib.contextmanager
    def transaction(self, *, feed: bool = False, accept: bool = False) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn, self.dialect)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        self.checkpointer.poke()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield Tx(self._conn, self.dialect)
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self.checkpointer.stop()
        with self._lock:
            self._conn.close()


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int) -> None:
        self.url = url
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        for _ in range(pool_size):
            conn = _pg_connect(url)
            self._all.append(conn)
            self._pool.put(conn)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        conn = self._pool.get()
        try:
            yield conn
        finally:
            if conn.closed:  # pragma: no cover - server went away; replace it
                conn = _pg_connect(self.url)
            self._pool.put(conn)

    @contextlib.contextmanager
    def transaction(self, *, feed: bool = False, accept: bool = False) -> Iterator[Tx]:
        with self._conn() as conn:
            try:
                with conn.transaction():
                    if feed:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_LOCK_KEY,))
                    if accept:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ACCEPT_LOCK_KEY,))
                    yield Tx(conn, self.dialect)
            finally:
                conn.rollback()  # leaves the connection idle (no-op after a commit)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._conn() as conn:
            try:
                yield Tx(conn, self.dialect)
            finally:
                conn.rollback()

    def close(self) -> None:
        for conn in self._all:
            conn.close()
