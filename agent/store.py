"""The till's local SQLite store: durable, single-owner, migrated by name.

Durability choices (see notes/sync.md): WAL with ``synchronous=FULL`` so a committed sale
survives power loss (a printed slip must never point at a vanished sale); every write is
one ``BEGIN IMMEDIATE`` transaction (a deferred ``BEGIN`` ignores the busy timeout and
fails at once under contention); a business event and its journal row commit together or
not at all. One process owns a store: an exclusive advisory lock on ``<db>.lock`` taken at
open and held until close; a second opener gets ``StoreLockedError`` naming the owner.

Tables (migration ``0001_initial``):
- ``meta``: terminal id and epoch, phone-hash key, journal sequence counter, key material;
- ``rules``: every programme version received, one marked active;
- ``members``: the members cache (hashed phone + mask only), the member state document
  and a points summary (balance, available, pending, next expiry) readable without it;
- ``purchases`` / ``refunds``: committed cheques keyed by the POS receipt / refund id;
- ``outbox``: the journal, gapless ``seq``, ``event_id`` made at commit;
- ``print_jobs``: slips queued in the same transaction as their sale;
- ``sync_state``: last contact, pull cursor, offline counters;
- ``cashiers`` / ``shifts``; ``coupons_used``; ``catalog`` (SKU -> category, for POS
  integrations that send only SKUs).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent import checkpoint
from agent.errors import StoreError, StoreFullError, StoreLockedError, StoreWriteError
from agent.private import create_private, prepare_sqlite_file

if TYPE_CHECKING:  # sqlite-utils is imported only when a store needs migrating (start-up)
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

T = TypeVar("T")

MIGRATION_SET = "kassa.till"
_MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = []


def _migration(
    name: str,
) -> Callable[[Callable[[sqlite_utils.Database], None]], Callable[[sqlite_utils.Database], None]]:
    """Register a named, transactional migration (applied in registration order)."""

    def register(
        fn: Callable[[sqlite_utils.Database], None],
    ) -> Callable[[sqlite_utils.Database], None]:
        _MIGRATIONS.append((name, fn))
        return fn

    return register


def migration_set() -> Migrations:
    """The sqlite-utils migration set of the till store, built on first use.

    Importing sqlite-utils costs ~0.1 s (more where numpy is installed, which it imports
    when present); a store that is already up to date (every start but the first after an
    upgrade) is checked with one plain SELECT instead, so the cashier app starts faster.
    """
    from sqlite_utils.migrations import Migrations  # noqa: PLC0415 - lazy, see above

    mset = Migrations(MIGRATION_SET)
    for name, fn in _MIGRATIONS:
        mset(name=name)(fn)
    return mset


@_migration("0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rules (
            version INTEGER PRIMARY KEY, document TEXT NOT NULL,
            received_at TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            code TEXT NOT NULL,
            phone_hash TEXT,
            phone_masked TEXT,
            first_name TEXT,
            state TEXT NOT NULL,
            balance INTEGER NOT NULL DEFAULT 0,
            available INTEGER NOT NULL DEFAULT 0,
            pending INTEGER NOT NULL DEFAULT 0,
            expiring_points INTEGER NOT NULL DEFAULT 0,
            expiring_on TEXT,
            tier TEXT,
            synced_at TEXT,
            provisional INTEGER NOT NULL DEFAULT 0,
            consent_programme INTEGER NOT NULL DEFAULT 0,
            consent_marketing INTEGER NOT NULL DEFAULT 0,
            offline_spent INTEGER NOT NULL DEFAULT 0,
            unsynced INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL);
        CREATE TABLE purchases (
            receipt_id TEXT PRIMARY KEY,
            op_id TEXT NOT NULL UNIQUE,
            member_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            result TEXT NOT NULL,
            effects TEXT NOT NULL,
            refunded TEXT NOT NULL DEFAULT '{}',
            cashier_id TEXT,
            shift_id TEXT,
            offline INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX purchases_member ON purchases(member_id, created_at);
        CREATE TABLE refunds (
            refund_id TEXT PRIMARY KEY,
            receipt_id TEXT NOT NULL REFERENCES purchases(receipt_id),
            op_id TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            result TEXT NOT NULL);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            terminal_id TEXT NOT NULL,
            terminal_epoch TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            payload TEXT NOT NULL,
            payload_hash TEXT NOT NULL,
            acked_at TEXT,
            status TEXT NOT NULL DEFAULT 'pending');
        CREATE INDEX outbox_pending ON outbox(status, seq);
        CREATE TABLE print_jobs (
            job_id INTEGER PRIMARY KEY,
            receipt_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            slip TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            printed_at TEXT,
            copy INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX print_jobs_status ON print_jobs(status, job_id);
        CREATE TABLE sync_state (name TEXT PRIMARY KEY, value TEXT NOT NULL,
                                 updated_at TEXT NOT NULL);
        CREATE TABLE cashiers (
            cashier_id TEXT PRIMARY KEY, name TEXT NOT NULL, pin_hash TEXT NOT NULL,
            role TEXT NOT NULL DEFAULT 'cashier', active INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE shifts (
            shift_id TEXT PRIMARY KEY, cashier_id TEXT NOT NULL REFERENCES cashiers(cashier_id),
            terminal_id TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT);
        CREATE TABLE coupons_used (
            coupon_id TEXT PRIMARY KEY, receipt_id TEXT NOT NULL, used_at TEXT NOT NULL);
        CREATE TABLE catalog (
            sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
            collection TEXT, price_kop INTEGER NOT NULL);
        """
    )
    # Indexes on the members cache are created here for small stores; a bulk load of a
    # large base drops and recreates them (``Store.bulk_load_members``).
    _member_indexes(db.conn)


@_migration("0002_sync")
def _sync(db: sqlite_utils.Database) -> None:
    """What the sync client needs: the member of each journal row (to settle the member's
    ``unsynced`` count on ack), a quarantine for events the back office refused, and a
    forward pointer for members the back office merged."""
    db.executescript(
        """
        ALTER TABLE outbox ADD COLUMN member_id TEXT;
        UPDATE outbox SET member_id = json_extract(payload, '$.member_id');
        ALTER TABLE members ADD COLUMN merged_into TEXT;
        CREATE TABLE quarantine (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL,
            status TEXT NOT NULL,
            code TEXT NOT NULL,
            message TEXT NOT NULL,
            quarantined_at TEXT NOT NULL);
        """
    )


@_migration("0003_holds")
def _holds(db: sqlite_utils.Database) -> None:
    """Points reserved for a cheque in progress (``agent.service.holds``): one row per POS cheque,
    kept in the store so a hold survives a restart of the agent and expires by time."""
    db.executescript(
        """
        CREATE TABLE holds (
            hold_id TEXT PRIMARY KEY,
            receipt_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            points INTEGER NOT NULL,
            request_hash TEXT NOT NULL,
            quote TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            closed_at TEXT);
        CREATE INDEX holds_receipt ON holds(receipt_id, status);
        CREATE INDEX holds_member ON holds(member_id, status, expires_at);
        """
    )


@_migration("0004_hold_cheque")
def _hold_cheque(db: sqlite_utils.Database) -> None:
    """What a hold was placed for (``agent.service.holds.cheque_hash``: cart, coupon) and the
    points it asked for ("max" or a number), so a commit naming the hold can be refused
    when its cheque is another one. NULL for holds placed before this migration."""
    db.executescript(
        """
        ALTER TABLE holds ADD COLUMN cheque_hash TEXT;
        ALTER TABLE holds ADD COLUMN redeem_asked TEXT;
        """
    )


@_migration("0005_member_feed_seq")
def _member_feed_seq(db: sqlite_utils.Database) -> None:
    """The back office's change-feed position a cached member record reflects (its
    ``feed_seq``; 0: unknown, as after a bulk snapshot load): a record from an older
    position (a feed page behind a push answer) never replaces a newer one
    (``agent.journal.upsert_members``)."""
    db.executescript("ALTER TABLE members ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;")


@_migration("0006_member_blocked")
def _member_blocked(db: sqlite_utils.Database) -> None:
    """A member's card the programme blocked (the back office's ``block`` change, or its
    ``erase``): identifying the member at this till is refused (``agent.erasure``)."""
    db.executescript("ALTER TABLE members ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;")


@_migration("0007_coupons_revoked")
def _coupons_revoked(db: sqlite_utils.Database) -> None:
    """Coupons the programme revoked (the back office's ``coupon_revoked`` change, or the
    snapshot's list): such a coupon is refused at this till (``agent.service.sales``)."""
    db.executescript(
        "CREATE TABLE coupons_revoked (coupon_id TEXT PRIMARY KEY, revoked_at TEXT NOT NULL,"
        " received_at TEXT NOT NULL);"
    )


@_migration("0008_phone_masks_hidden")
def _phone_masks_hidden(db: sqlite_utils.Database) -> None:
    """Cached members' masked phones lose their last digits (``agent.phonehash``): each
    shown digit divides a thief's work tenfold. Their v1 fingerprints stay until the back
    office's record of the member (snapshot, feed, push answer) brings v2; a lookup by
    phone tries both meanwhile (``agent.service.members.identify``)."""
    from agent.phonehash import strip_mask  # noqa: PLC0415 - only when migrating

    db.conn.create_function("kassa_strip_mask", 1, strip_mask, deterministic=True)
    db.execute(
        "UPDATE members SET phone_masked = kassa_strip_mask(phone_masked) "
        "WHERE phone_masked GLOB '*[0-9]'"
    )


def _member_indexes(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS members_code ON members(code)")
    conn.execute("CREATE INDEX IF NOT EXISTS members_phone ON members(phone_hash)")


_ENOSPC_HINTS = (
    "disk is full",
    "database or disk is full",
    "readonly",
    "read-only",
    "disk i/o error",
    "unable to open",
)


def _write_error(e: sqlite3.Error) -> StoreWriteError:
    return StoreWriteError(
        f"nothing was written: {e}",
        f"Не удалось записать в базу кассы, операция не выполнена: {e}",
        sqlite_error=str(e),
    )


FULL_BELOW_BYTES = 1 << 20
"""Free space on the store's filesystem (bytes, 1 MiB) under which its disk counts as
full: a sale's write (its WAL frames, a checkpoint) may fail at any moment, and with none
left SQLite cannot even open the store (it sizes its ``-shm`` index on open)."""


def disk_free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``
    (its nearest existing folder), or None when the system cannot say."""
    where = path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def disk_full(path: Path) -> bool:
    """Whether the store at ``path`` sits on a (nearly) full disk (``FULL_BELOW_BYTES``)."""
    free = disk_free_bytes(path)
    return free is not None and free < FULL_BELOW_BYTES


def _open_error(path: Path, e: Exception) -> StoreError:
    """Why the store at ``path`` did not open: ``StoreFullError`` saying "disk full" when
    that is the cause (SQLite reports a full disk met while opening as a plain "disk I/O
    error"), else ``StoreError`` with SQLite's words."""
    full = (isinstance(e, OSError) and e.errno == errno.ENOSPC) or disk_full(path)
    if full:
        free = disk_free_bytes(path) or 0
        return StoreFullError(
            f"cannot open till store {path}: the disk is full ({free} bytes free); it opens "
            "as soon as space is freed",
            f"база кассы {path} не открывается: на диске нет места (свободно {free} байт); "
            "она откроется, как только место освободится",
            path=str(path),
            free_bytes=free,
            reason=str(e),
        )
    return StoreError(
        f"cannot open till store {path}: {e}",
        f"Не удаётся открыть базу кассы {path}: {e}",
        path=str(path),
    )


class Store:
    """An open till store. Thread-safe: a re-entrant lock serialises access to the
    connection, so the UI workers, the POS API and the sync loop may share one ``Store``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout_s: float = 5.0,
        checkpoint_every: int = checkpoint.EVERY_COMMITS,
        read_only: bool = False,
    ) -> None:
        """Open (creating and migrating if needed) the store at ``path``.

        ``timeout_s``: how long a write waits for SQLite's lock (seconds).
        ``checkpoint_every``: commits between WAL checkpoints run by a background thread
        (``agent.checkpoint``); 0 leaves checkpoints to SQLite, inside commits.
        ``read_only``: open an existing store for reading only (``kassa journal``,
        ``kassa sync status``...) while another process may own it: SQLite ``mode=ro``, no
        ownership lock, no migrations, no checkpoints; :meth:`write` raises ``StoreError``.
        """
        self.path = Path(path)
        self.read_only = read_only
        self._mutex = threading.RLock()
        self._checkpoint_every = 0 if read_only else max(0, int(checkpoint_every))
        self._commits = 0
        self.checkpointer = checkpoint.Checkpointer(self.path, timeout_s=timeout_s)
        self._lock_file: Any = None
        if read_only:
            self._open_read_only(timeout_s)
            return
        try:
            self._lock_file = self._acquire_lock()
        except OSError as e:  # the lock file cannot be made or written (a full disk?)
            if e.errno != errno.ENOSPC and not disk_full(self.path):
                raise
            raise _open_error(self.path, e) from e
        try:
            prepare_sqlite_file(self.path)
            self.conn = sqlite3.connect(
                str(self.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=timeout_s,
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            if self._checkpoint_every:
                self.conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint.SAFETY_NET_PAGES}")
            self._db: sqlite_utils.Database | None = None
            if self._pending_migrations():
                with self.write():
                    migration_set().apply(self.db)
        except sqlite3.DatabaseError as e:
            self.close()
            raise _open_error(self.path, e) from e
        except (StoreWriteError, OSError) as e:  # the migrations' write, the file's creation
            self.close()
            full = isinstance(e, OSError) and e.errno == errno.ENOSPC
            if not (full or disk_full(self.path)):
                raise
            raise _open_error(self.path, e) from e
        except BaseException:
            self.close()
            raise

    def _open_read_only(self, timeout_s: float) -> None:
        if not self.path.exists():
            raise StoreError(
                f"no till store at {self.path}",
                f"база кассы {self.path} не найдена",
                path=str(self.path),
            )
        try:
            self.conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=timeout_s,
            )
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self._db = None
            pending = self._pending_migrations()
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(
                f"cannot open till store {self.path} for reading: {e}",
                f"Не удаётся открыть базу кассы {self.path} для чтения: {e}",
                path=str(self.path),
            ) from e
        if pending:
            self.close()
            raise StoreError(
                f"till store {self.path} needs migrating ({', '.join(pending)}); start the "
                "agent or run a command that writes to it first",
                f"База кассы {self.path} требует обновления: сначала запустите агент",
                path=str(self.path),
                pending=pending,
            )

    def _acquire_lock(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        create_private(lock_path)
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
        try:
            _lock_exclusive(handle)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLockedError(
                f"{self.path} is open in another process (pid {owner})",
                f"База кассы {self.path} уже открыта другой программой (pid {owner})",
                path=str(self.path),
                owner_pid=owner,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def close(self) -> None:
        """Close the connection and release the ownership lock (idempotent)."""
        with self._mutex:
            self.checkpointer.stop()
            conn = getattr(self, "conn", None)
            if conn is not None:
                conn.close()
                self.conn = None  # type: ignore[assignment]
            if self._lock_file is not None:
                _unlock(self._lock_file)
                self._lock_file.close()
                self._lock_file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back whole on
        any error. SQLite I/O failures (disk full, read-only) become ``StoreWriteError``.
        """
        if self.read_only:
            raise StoreError(
                f"till store {self.path} is open read-only; nothing was written",
                f"База кассы {self.path} открыта только для чтения: запись не выполнена",
                path=str(self.path),
            )
        with self._mutex:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise _write_error(e) from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(
                    e, sqlite3.OperationalError | sqlite3.DatabaseError
                ) and not isinstance(e, sqlite3.IntegrityError):
                    raise _write_error(e) from e
                raise
            self._commits += 1
            if self._checkpoint_every and self._commits % self._checkpoint_every == 0:
                self.checkpointer.poke()

    @contextlib.contextmanager
    def side_reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own, for a long read (a scan of the member cache)
        that must not hold the store's lock while sales are written: WAL lets it read a
        consistent snapshot beside the writer. Opened for the call and closed after (~1 ms).
        """
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            yield conn
        finally:
            conn.close()

    def run_if_free(self, fn: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, fn())`` if no other thread is using the store right now, else
        ``(False, None)`` without waiting and without calling ``fn``.

        For an event loop (the local POS API): it runs a short call in place when the
        store is free and hands it to a worker thread only when it would have to wait.
        ``fn`` runs holding the store's lock, so its own reads and writes nest as usual.
        """
        if not self._mutex.acquire(blocking=False):
            return False, None
        try:
            return True, fn()
        finally:
            self._mutex.release()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Serialised access for reads (one consistent snapshot per statement)."""
        with self._mutex:
            yield self.conn

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self.read() as conn:
            row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
            return row

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    @staticmethod
    def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
            "DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @staticmethod
    def set_sync(conn: sqlite3.Connection, name: str, value: str, now_iso: str) -> None:
        conn.execute(
            "INSERT INTO sync_state(name, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (name, value, now_iso),
        )

    def sync_value(self, name: str) -> str | None:
        row = self.one("SELECT value FROM sync_state WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    def quick_check(self) -> str:
        row = self.one("PRAGMA quick_check")
        return "error" if row is None else str(row[0])

    def applied_migrations(self) -> list[str]:
        """Names of the applied till migrations, in the order they were applied."""
        with self.read() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_sqlite_migrations'"
            ).fetchone()
            if exists is None:
                return []
            rows = conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set=? ORDER BY rowid",
                (MIGRATION_SET,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _pending_migrations(self) -> list[str]:
        applied = set(self.applied_migrations())
        return [name for name, _ in _MIGRATIONS if name not in applied]

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of the connection (migrations, bulk helpers), made lazily."""
        if self._db is None:
            import sqlite_utils  # noqa: PLC0415 - lazy, see migration_set()

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def bulk_load_members(
        self,
        rows: Any,
        *,
        batch: int = 50_000,
        side_files: Callable[[], Sequence[Path]] | None = None,
    ) -> int:
        """Load many member rows fast: one transaction, indexes dropped during the load.

        ``rows`` yields tuples in the column order of ``MEMBER_LOAD_COLUMNS``. Returns the
        number of rows. Used by the demo seed and the first snapshot of a big member base.

        ``side_files``, called once ``rows`` is exhausted, gives SQLite files whose
        ``members`` table (``MEMBER_LOAD_COLUMNS``) holds more rows, made meanwhile by
        another process (``agent.seed.write_member_rows``); they are copied in, in the same
        transaction, before the indexes are built. A side file that cannot be read fails
        the whole load, which then writes nothing.

        For the load only, the store uses a rollback journal instead of the WAL (a million
        rows would otherwise be written twice, to the log and again by the checkpoint, and
        the WAL index grows with the transaction) and a bigger page cache for the index
        builds (``BULK_CACHE_KIB``); ``synchronous=FULL`` stays, so the load is as atomic
        and durable as any write. WAL and the default cache are restored before returning,
        whatever happened; if the journal cannot be switched (another connection has the
        file open) the load runs in WAL mode.
        """
        cols = ", ".join(MEMBER_LOAD_COLUMNS)
        marks = ", ".join("?" * len(MEMBER_LOAD_COLUMNS))
        sql = f"INSERT INTO members({cols}) VALUES ({marks})"
        count = 0
        attached: list[str] = []
        flush: threading.Thread | None = None
        with self._mutex:
            self.checkpointer.stop()  # its connection would keep the WAL in use
            cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
            try:
                with contextlib.suppress(sqlite3.OperationalError):
                    self.conn.execute("PRAGMA journal_mode=DELETE")
                self.conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
                with self.write() as conn:
                    conn.execute("DROP INDEX IF EXISTS members_code")
                    conn.execute("DROP INDEX IF EXISTS members_phone")
                    source = iter(rows)
                    while chunk := list(itertools.islice(source, batch)):
                        conn.executemany(sql, chunk)
                        count += len(chunk)
                    for i, side in enumerate(side_files() if side_files is not None else ()):
                        # ATTACH is allowed inside the transaction, DETACH only after it.
                        conn.execute(f"ATTACH DATABASE ? AS side{i}", (str(side),))
                        attached.append(f"side{i}")
                        count += conn.execute(
                            f"INSERT INTO members({cols}) SELECT {cols} FROM side{i}.members"
                        ).rowcount
                    # The table's pages are written; the OS flushes them to disk while the
                    # indexes are built (CPU), so the commit's fsync has less left to do.
                    flush = _start_background_flush()
                    _member_indexes(conn)
                if flush is not None:
                    flush.join()
            finally:
                for name in attached:
                    with contextlib.suppress(sqlite3.OperationalError):
                        self.conn.execute(f"DETACH DATABASE {name}")
                self.conn.execute(f"PRAGMA cache_size={int(cache)}")
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(
                        f"could not return the till store to WAL mode (got {mode})",
                        f"Не удалось вернуть базу кассы в режим WAL ({mode})",
                        path=str(self.path),
                    )
        return count


def _start_background_flush() -> threading.Thread | None:
    """``os.sync()`` in a thread (POSIX only): the written pages of a bulk load go to disk
    while the indexes are built. It opens no file, so it cannot touch SQLite's locks (closing
    any other descriptor of the database would drop them); it only makes durable earlier
    what SQLite's own fsync at commit makes durable anyway."""
    if not hasattr(os, "sync"):
        return None
    thread = threading.Thread(target=os.sync, name="kassa-bulk-flush", daemon=True)
    thread.start()
    return thread


BULK_CACHE_KIB = 65536
"""Page cache during a bulk load (KiB, 64 MB): the index builds sort in memory."""


MEMBER_LOAD_COLUMNS = (
    "member_id",
    "code",
    "phone_hash",
    "phone_masked",
    "first_name",
    "state",
    "balance",
    "available",
    "pending",
    "expiring_points",
    "expiring_on",
    "tier",
    "synced_at",
    "provisional",
    "consent_programme",
    "consent_marketing",
    "updated_at",
)


WINDOWS_LOCK_OFFSET = 1 << 30
"""The byte of ``<db>.lock`` locked on Windows (an offset, bytes): far past the owner's pid
written at the file's start. Windows byte-range locks are mandatory: were the pid's bytes
locked, a second process could not read them (PermissionError) to name the owner in its
``StoreLockedError``. Windows allows locking past the end of a file."""


def windows_lock(handle: Any, msvcrt: Any, mode: int) -> None:
    """``msvcrt.locking`` of the one byte at ``WINDOWS_LOCK_OFFSET``; the file position is
    kept (``mode``: ``LK_NBLCK`` to take the lock without waiting, ``LK_UNLCK`` to free it)."""
    handle.flush()
    position = handle.tell()
    handle.seek(WINDOWS_LOCK_OFFSET)
    try:
        msvcrt.locking(handle.fileno(), mode, 1)
    finally:
        handle.seek(position)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows tills
    import msvcrt

    def _lock_exclusive(handle: Any) -> None:
        windows_lock(handle, msvcrt, msvcrt.LK_NBLCK)

    def _unlock(handle: Any) -> None:
        with contextlib.suppress(OSError):
            windows_lock(handle, msvcrt, msvcrt.LK_UNLCK)

else:
    import fcntl

    def _lock_exclusive(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
