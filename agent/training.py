"""Training mode: staff practise on a copy of the till that can never reach the programme.

How "nothing is sent as real" is guaranteed (at the store, not by the UI remembering):

- Training runs on its own SQLite file (``<till>.training.db``), made afresh from the
  till's store each time training starts (``open_training_store``: SQLite's online
  backup, then scrubbed). Sales, refunds and registrations made in training change that
  copy only: the real members cache, journal and print queue are never written.
- The copy's journal can never be pushed: a trigger files every journal row it gets as
  ``status = 'training'`` (the uploader sends ``pending`` rows only) and counts it as
  settled, so the queue stays empty; the copy has no sync token or back office URL; its
  terminal id is ``TRN-<till>``, which the back office refuses for this till's token; and
  ``sync.client.SyncClient`` refuses a store marked ``training`` outright.
- Every slip queued in the copy is marked training by a trigger (``Slip.training``: the
  renderer prints «УЧЕБНЫЙ РЕЖИМ» at the top and «НЕ ЧЕК» at the bottom).
- Receipt numbers come from the copy's terminal id and a counter of the copy's own that
  starts again at 1 (``TRN-TILL-000001``), so a training cheque number never equals a real
  one, in full or in its short number (``agent.receipts``).
- Training has a shift of its own (``start_training_shift``): opened in the copy when
  training starts, by the signed-in cashier, on the copy's terminal id. The X report in
  training counts the training cheques from that opening time; the real shift is neither
  reported nor closed from training, and the training shift ends with the copy.
- The copy's files are the store's kind: created 0600 (``-wal``/``-shm`` take the mode of
  the database file), and all of them, its ownership lock file included, are deleted when
  training ends.

The link state is the till's as training began, held for the session: the copy's
programme allows a day of grace after the last contact, so training behaves as the till
did online (spending included) instead of turning "offline" two minutes in.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

from agent import codec, receipts, shifts
from agent.private import create_private, fsync_dir, fsync_file
from agent.results import Shift
from agent.store import Store

TRAINING_META = "training"
TRAINING_GRACE_SECONDS = 86_400
"""Online grace in the training copy (seconds): the rules' maximum, a day."""

_TRIGGERS = """
CREATE TRIGGER training_journal AFTER INSERT ON outbox
BEGIN
    UPDATE outbox SET status = 'training', acked_at = NEW.created_at WHERE seq = NEW.seq;
    INSERT OR REPLACE INTO sync_state(name, value, updated_at)
        VALUES ('acked_events', CAST(NEW.seq AS TEXT), NEW.created_at);
END;
CREATE TRIGGER training_slip AFTER INSERT ON print_jobs
BEGIN
    UPDATE print_jobs SET slip = json_set(slip, '$.training', json('true'))
        WHERE job_id = NEW.job_id;
END;
"""


def training_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.stem + ".training.db")


def is_training(store: Store) -> bool:
    return store.meta(TRAINING_META) == "1"


def training_files(path: Path) -> tuple[Path, ...]:
    """Every file a training copy at ``path`` has: the database, its WAL and shared-memory
    files, and the ownership lock file ``Store`` takes beside it."""
    return (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock"))


def _remove(path: Path) -> None:
    for p in training_files(path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def open_training_store(real: Store, now: datetime, path: Path | None = None) -> Store:
    """A fresh training copy of ``real`` (see module docstring), open and owned by the
    caller, who closes it. The previous training copy, if any, is thrown away."""
    if is_training(real):
        raise ValueError("already a training store")
    target = path or training_path(real.path)
    if target.resolve() == real.path.resolve():
        raise ValueError("the training copy cannot replace the till store")
    _remove(target)
    # Copied beside its name and renamed when complete (a kill mid-copy leaves no torn
    # training store); SQLite's -wal/-shm take the file's 0600.
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    create_private(tmp, exclusive=True)
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            with real.read() as conn:
                conn.backup(dest)
        finally:
            dest.close()
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    fsync_dir(target.parent)
    store = Store(target)
    try:
        with store.write() as conn:
            for table in ("outbox", "quarantine", "print_jobs", "holds"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM meta WHERE key IN ('sync_token', 'backoffice_url')")
            conn.execute("DELETE FROM meta WHERE key = ?", (receipts.COUNTER_META,))
            terminal = conn.execute("SELECT value FROM meta WHERE key = 'terminal_id'").fetchone()
            last = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            now_iso = now.isoformat()
            Store.set_meta(conn, "terminal_id", f"TRN-{terminal[0] if terminal else 'till'}")
            Store.set_meta(conn, "terminal_epoch", uuid.uuid4().hex)
            Store.set_meta(conn, TRAINING_META, "1")
            Store.set_sync(conn, "acked_events", str(last[0] if last else 0), now_iso)
            conn.execute("DELETE FROM sync_state WHERE name IN ('last_error', 'cursor')")
            for version, document in conn.execute("SELECT version, document FROM rules").fetchall():
                doc = json.loads(document)
                offline = doc.get("offline")
                if isinstance(offline, dict):
                    offline["online_grace_seconds"] = TRAINING_GRACE_SECONDS
                    conn.execute(
                        "UPDATE rules SET document = ? WHERE version = ?",
                        (codec.dumps(doc), version),
                    )
            for statement in _TRIGGERS.split("END;"):
                if statement.strip():
                    conn.execute(statement + "END;")
    except BaseException:
        store.close()
        raise
    return store


def discard_training_store(store: Store) -> None:
    """Close a training copy and delete its files: training data is thrown away when
    training ends. Refuses an open store that is not a training copy."""
    if store.conn is not None:
        if not is_training(store):
            raise ValueError("not a training store")
        store.close()
    _remove(store.path)


def start_training_shift(store: Store, cashier_id: str, now: datetime) -> Shift:
    """Open the training shift of ``cashier_id`` in a training copy (see module
    docstring): the X report in training is this shift's, from ``now``."""
    if not is_training(store):
        raise ValueError("not a training store")
    return shifts.open_shift(store, cashier_id, now)
