"""`kassa backoffice backup|restore`: the back office's database to one file and back.

- SQLite: SQLite's online backup API, a consistent snapshot while the back office serves
  (never a file copy of a WAL database); written beside the destination, checked with
  ``quick_check``, renamed into place, mode 0600 (it holds the chain's keys and tokens).
  Restore copies a checked backup into the database through the same API (SQLite keeps
  its WAL consistent), after saving the database it replaces as
  ``<db>.before-restore-<time>``.
- PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists``. The
  password is handed to them in ``$PGPASSWORD``, never on their command line (``ps``
  shows a command line to every user of the machine).

Restore with the back office stopped (``systemctl stop kassa-backoffice``): its workers
would otherwise keep writing over what is restored.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.errors import InputError, StoreError
from agent.private import create_private, fsync_dir, fsync_file, online_copy


class BackupError(StoreError):
    """A backup or restore of the back office could not be made."""

    code = "backup_failed"
    title_ru = "Резервная копия не создана"
    title_en = "Backup failed"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _new_private_file(path: Path) -> None:
    """``path`` made anew, empty and 0600 (a partial file left by a killed run goes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    create_private(path, exclusive=True)


def _refuse_existing(dest: Path) -> None:
    if dest.exists():
        raise InputError(
            f"{dest} already exists; choose a new file",
            f"{dest} уже существует; укажите новый файл",
            field="dest",
        )


# ---------------------------------------------------------------------- SQLite
def backup_sqlite(source: Path, dest: Path) -> dict[str, Any]:
    """Online backup of the SQLite back office ``source`` into the new file ``dest``."""
    if not source.is_file():
        raise BackupError(f"no back office at {source}", f"база бэк-офиса {source} не найдена")
    _refuse_existing(dest)
    try:
        copy = online_copy(source, dest)
    except sqlite3.Error as e:
        raise BackupError(f"{source}: {e}", f"{source}: {e}") from None
    except ValueError as e:
        raise BackupError(f"the copy failed quick_check: {e}", f"копия повреждена: {e}") from None
    check = copy.quick_check
    return {"backup": str(dest), "bytes": dest.stat().st_size, "quick_check": check}


def restore_sqlite(backup: Path, target: Path) -> dict[str, Any]:
    """Restore the SQLite backup ``backup`` into the back office ``target`` (made if
    missing); the replaced database is saved first (see the module doc)."""
    if not backup.is_file():
        raise InputError(f"no backup at {backup}", f"копия {backup} не найдена", field="backup")
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    saved: Path | None = None
    try:
        try:
            check = src.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            check = str(e)
        if check != "ok":
            raise BackupError(
                f"{backup} is not a sound SQLite backup: {check}",
                f"{backup} не является исправной копией: {check}",
            )
        if target.exists():
            saved = target.with_name(f"{target.name}.before-restore-{_stamp()}")
            backup_sqlite(target, saved)
        else:
            _new_private_file(target)
        dst = sqlite3.connect(target, timeout=10.0)
        try:
            src.backup(dst)
        except sqlite3.Error as e:
            raise BackupError(
                f"restore into {target} failed: {e} (is the back office still running?)",
                f"восстановление в {target} не удалось: {e} (бэк-офис ещё работает?)",
            ) from None
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(target, 0o600)
    return {
        "restored": str(target),
        "from": str(backup),
        "previous_saved_as": str(saved) if saved else None,
    }


# ---------------------------------------------------------------------- PostgreSQL
def _pg_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment carrying it (``PGPASSWORD``)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    return urlunsplit(parts), env


def _pg_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client (apt install postgresql-client)",
            f"{name} не найден: установите клиент PostgreSQL (apt install postgresql-client)",
        )
    return tool


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
        raise BackupError(f"{what} failed: {reason}", f"{what}: ошибка: {reason}", reason=reason)


def backup_postgres(url: str, dest: Path) -> dict[str, Any]:
    """``pg_dump --format=custom`` of the database at ``url`` into the new file ``dest``
    (0600; written beside it and renamed into place when pg_dump succeeded)."""
    _refuse_existing(dest)
    tmp = dest.with_name(dest.name + ".partial")
    _new_private_file(tmp)
    plain, env = _pg_args(url)
    try:
        _run(
            [_pg_tool("pg_dump"), "--format=custom", f"--file={tmp}", f"--dbname={plain}"],
            env,
            "pg_dump",
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, 0o600)
    fsync_file(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return {"backup": str(dest), "bytes": dest.stat().st_size, "format": "pg_dump custom"}


def restore_postgres(backup: Path, url: str) -> dict[str, Any]:
    """``pg_restore --clean --if-exists --no-owner`` of ``backup`` into the (existing)
    database at ``url``, in one transaction: a failure leaves the database as it was."""
    if not backup.is_file():
        raise InputError(f"no backup at {backup}", f"копия {backup} не найдена", field="backup")
    plain, env = _pg_args(url)
    _run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={plain}",
            str(backup),
        ],
        env,
        "pg_restore",
    )
    return {"restored": plain, "from": str(backup)}
