"""WAL checkpoints off the sale path.

Why: in WAL mode SQLite copies the log back into the database file (a *checkpoint*) inside
the ``COMMIT`` of whichever transaction takes the log past ``wal_autocheckpoint`` pages: that
one sale then also writes ~1,000 pages and fsyncs the database file, a pause of several
milliseconds. A sale writes ~17 pages (member row, purchase, journal row, print job and
their indexes), so with the default threshold one sale in ~60 paid it: the p99 of the
cashier's wait. Here a thread with its own connection runs ``PRAGMA wal_checkpoint(PASSIVE)``
after every ``every`` commits instead; a passive checkpoint never blocks the writer, which
keeps appending to the log meanwhile.

Durability is unchanged: a committed sale is durable in the log (``synchronous=FULL``)
before any checkpoint; the checkpoint connection also runs with ``synchronous=FULL`` so the
database file is fsynced before the log is reused. The sale connection keeps an automatic
checkpoint at ``SAFETY_NET_PAGES`` in case this thread falls behind or has died.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

EVERY_COMMITS = 32
"""Commits between background checkpoints (~550 pages, ~2 MB of log at ~17 pages/sale)."""

SAFETY_NET_PAGES = 8000
"""``wal_autocheckpoint`` of the sale connection (pages): only reached if this thread lags."""


@dataclass
class CheckpointStats:
    """What the background checkpoints did (for tests and the bench)."""

    runs: int = 0
    frames_copied: int = 0
    errors: int = 0
    last_error: str = ""


class Checkpointer:
    """Runs passive checkpoints of one database in a daemon thread, when told to."""

    def __init__(self, path: Path, *, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.stats = CheckpointStats()
        self.done = threading.Condition()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Ask for a checkpoint soon (after a commit); starts the thread on first use."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"wal-checkpoint:{self.path.name}", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (finishing a checkpoint in progress) and close its connection.
        A later ``poke`` starts a new one (a bulk load stops it for its duration)."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        self._stop = False
        self._wake.clear()

    def _run(self) -> None:
        conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=self.timeout_s
        )
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                self._checkpoint(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:  # e.g. disk trouble: the sale path reports its own errors
            with self.done:
                self.stats.errors += 1
                self.stats.last_error = str(e)
                self.done.notify_all()
            return
        with self.done:
            self.stats.runs += 1
            self.stats.frames_copied += int(row[2]) if row and row[2] > 0 else 0
            self.done.notify_all()
