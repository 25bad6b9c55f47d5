"""The till store's backup and restore (``kassa store backup|restore``): an online SQLite
copy, and a restore that takes the store's lock and starts a new terminal epoch."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import InputError, StoreError


def backup_store(source: Path, dest: Path) -> dict[str, Any]:
    """Copy a live store with SQLite's online backup API (a consistent snapshot even while
    the agent writes; never a file copy of a WAL database). The copy is written beside
    ``dest`` and renamed into place after ``quick_check``; mode 0600 (it holds keys)."""
    if not source.exists():
        raise StoreError(f"no till store at {source}", f"база кассы {source} не найдена")
    if dest.exists():
        raise InputError(
            f"{dest} already exists; choose a new file", f"{dest} уже существует", field="dest"
        )
    from agent.private import online_copy

    try:
        copy = online_copy(source, dest)
    except sqlite3.Error as e:
        raise StoreError(
            f"backup of {source} failed: {e}", f"резервная копия не создана: {e}"
        ) from None
    except ValueError as e:
        raise StoreError(f"backup failed quick_check: {e}", "копия повреждена") from None
    return {
        "backup": str(dest),
        "bytes": dest.stat().st_size,
        "last_seq": copy.last_seq or 0,
        "quick_check": copy.quick_check,
    }


def restore_store(backup: Path, target: Path) -> dict[str, Any]:
    """Restore ``backup`` over ``target`` and give it a new terminal epoch.

    Takes the store's ownership lock first, so a running agent makes this fail instead of
    being overwritten under it. The store being replaced is itself backed up first
    (``<target>.before-restore-<time>``). Events journalled after the restore carry the
    new epoch, so the back office never mistakes them for the original's (DESIGN §3)."""
    from agent import journal
    from agent.private import online_copy
    from agent.store import Store

    if not backup.exists():
        raise InputError(f"no backup at {backup}", f"копия {backup} не найдена", field="backup")
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        check = src.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"backup {backup} is damaged: {check}", "копия повреждена")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        saved = None
        if target.exists():
            saved = target.with_name(f"{target.name}.before-restore-{stamp}")
        with Store(target) as store:  # the lock: refused while an agent runs
            if saved is not None:  # written beside its name, renamed when sound
                online_copy(target, saved)
            src.backup(store.conn)
        with Store(target) as store:  # migrations run forward on the restored data
            epoch = journal.start_new_epoch(store, datetime.now(UTC).isoformat())
            waiting = journal.status(store).events_waiting
    finally:
        src.close()
    return {
        "restored": str(target),
        "from": str(backup),
        "previous_saved_as": str(saved) if saved else None,
        "terminal_epoch": epoch,
        "events_waiting": waiting,
    }
