"""Owner-only files: the one place that creates the files Kassa keeps.

Every small file the till or the CLI writes (the API token, keys, an enrollment's
pending request, a printer calibration) goes through :func:`write_private`: a temporary
file in the same folder, fsync, rename, fsync of the folder, mode 0600, so a crash or a
power cut leaves the old file or the new one, never an empty or torn one. The SQLite
copies (backups, training copies) are written beside their name and renamed the same way.

A till store, its copies and backups and the back-office database hold member phones
(hashed with the till's key), the sync token and private keys, so they are mode 0600
whatever the process umask. SQLite gives the ``-wal``/``-shm`` files it creates the
database file's own mode, so creating the database file 0600 before SQLite first opens it
is what keeps all three private; :func:`prepare_sqlite_file` also tightens sidecars left
by an older version. POSIX only: elsewhere these are no-ops (the OS's ACLs apply).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from agent import crashpoint

OWNER_ONLY = 0o600
"""Mode of every file Kassa creates that holds member data, keys or tokens."""

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database, named by suffix on the database's name."""


def create_private(path: Path, *, exclusive: bool = False) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (``exclusive``: refuse
    with ``FileExistsError`` if it does). Returns whether it was created here. The mode
    is set by ``fchmod`` too, so a umask of 0o000 or 0o077 makes no difference."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, OWNER_ONLY)
    except FileExistsError:
        if exclusive:
            raise
        return False
    try:
        if os.name == "posix":
            os.fchmod(fd, OWNER_ONLY)
    finally:
        os.close(fd)
    return True


def make_owner_only(path: Path) -> None:
    """Drop group and other permissions from ``path`` if it exists and has any (a file
    this user does not own is left as it is: ``kassa doctor`` reports it)."""
    if os.name != "posix":
        return
    with contextlib.suppress(FileNotFoundError, PermissionError):
        mode = path.stat().st_mode
        if mode & 0o077:
            path.chmod(mode & 0o700 | OWNER_ONLY)


def prepare_sqlite_file(path: Path) -> None:
    """Make ``path`` ready for ``sqlite3.connect``: its folder exists, the database file
    exists with mode 0600 (created here if new), and it and its sidecars are owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not create_private(path):
        make_owner_only(path)
    for suffix in SQLITE_SIDECARS:
        make_owner_only(path.with_name(path.name + suffix))


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX: fsync the directory;
    elsewhere a no-op, the OS gives no handle to a directory)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600: into a temporary file in the same
    folder (0600 from its creation), fsync, rename over ``path``, fsync the folder. A crash
    at any moment leaves ``path`` as it was or complete, never empty or torn; a leftover
    temporary file (``.<name>.<pid>-<thread>.tmp``) is harmless.
    ``exclusive``: refuse with ``FileExistsError`` if ``path`` exists (the check and the
    rename are one step: ``os.link``). The folder is made if missing."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.unlink(missing_ok=True)
    create_private(tmp, exclusive=True)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            crashpoint.reached("atomic.written")
            os.fsync(f.fileno())
        crashpoint.reached("atomic.synced")
        if exclusive:
            os.link(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    crashpoint.reached("atomic.renamed")
    fsync_dir(folder)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk (a file written by another API, e.g. SQLite's
    backup, before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SqliteCopy:
    """What ``online_copy`` made: the verdict of ``PRAGMA quick_check`` on the copy
    (``"ok"`` when sound) and the copy's ``last_seq`` meta value, if it has one."""

    quick_check: str
    last_seq: int | None


def online_copy(source: Path, dest: Path) -> SqliteCopy:
    """Copy the live SQLite database ``source`` into the new file ``dest`` with SQLite's
    online backup API: a consistent snapshot even while another process writes (a file
    copy of a WAL database is not one). Written as ``dest.partial`` (0600: it holds keys
    and member data), checked, and renamed into place only when ``quick_check`` says ok;
    one self-contained file (journal mode DELETE). Raises ``FileExistsError`` if ``dest``
    exists, ``sqlite3.Error`` if the copy failed, ``ValueError`` (with the verdict) if
    the copy is not sound; nothing is left at ``dest`` or beside it then."""
    if dest.exists():
        raise FileExistsError(str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    create_private(tmp, exclusive=True)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10.0)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                check = str(dst.execute("PRAGMA quick_check").fetchone()[0])
                dst.execute("PRAGMA journal_mode=DELETE")
                has_meta = dst.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                ).fetchone()
                seq = (
                    dst.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
                    if has_meta
                    else None
                )
            finally:
                dst.close()
        finally:
            src.close()
        if check != "ok":
            raise ValueError(check)
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return SqliteCopy(check, int(seq[0]) if seq else None)
