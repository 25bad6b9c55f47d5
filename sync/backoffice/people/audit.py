"""The append-only audit log of every change a person makes in the console (or through
the ``kassa backoffice user`` commands): who, when, what, on what.

Rows are numbered 1, 2, 3... and hash-chained: ``hash = sha256(prev_hash || canonical
bytes of the row)`` where the canonical bytes are the compact, key-sorted JSON of
``[n, at, actor, action, subject, detail]`` and the first row's ``prev_hash`` is
``GENESIS``. The newest hash is also kept in ``settings`` (``console_audit_head``), so a
changed row breaks its hash, a deleted or reordered row breaks the numbering or a link, and
deleting the newest rows leaves the head pointing at a hash no row has. ``record`` is the
only writer; it runs inside the caller's transaction, so a change and its audit row commit
together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.backoffice.db import Database, Tx

GENESIS = "0" * 64
HEAD_KEY = "console_audit_head"


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row: ``n`` its place in the chain, ``at`` ISO 8601 UTC, ``actor`` the login
    (or ``cli``), ``action`` e.g. ``sign_in``, ``subject`` what it acted on (a login...),
    ``detail`` the canonical JSON text of the particulars."""

    n: int
    at: str
    actor: str
    action: str
    subject: str | None
    detail: str
    prev_hash: str
    hash: str

    def particulars(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.detail)
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify`` found: ``ok``, the rows checked, and the first bad row's ``n`` with
    the reason (``hash``: its content changed; ``link``: it does not follow the row before
    (one deleted or moved); ``sequence``: a number missing; ``head``: the newest rows gone)."""

    ok: bool
    rows: int
    broken_at: int | None = None
    reason: str | None = None


def canonical(n: int, at: str, actor: str, action: str, subject: str | None, detail: str) -> bytes:
    """The bytes a row's hash covers (UTF-8 JSON, no spaces)."""
    return json.dumps(
        [n, at, actor, action, subject, detail], ensure_ascii=False, separators=(",", ":")
    ).encode()


def link(prev_hash: str, row: bytes) -> str:
    """The row's hash: sha256 over the previous row's hash (hex ASCII) and its bytes."""
    return hashlib.sha256(prev_hash.encode("ascii") + row).hexdigest()


def record(
    tx: Tx,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Entry:
    """Append one row inside ``tx``. The head's row in ``settings`` is updated first, which
    on PostgreSQL locks it: two transactions recording at once take turns, so the chain
    never forks."""
    tx.execute("UPDATE settings SET value = value WHERE key = ?", (HEAD_KEY,))
    last = tx.one("SELECT n, hash FROM console_audit ORDER BY n DESC LIMIT 1")
    n, prev = (1, GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))
    text = json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    stamp = at.isoformat()
    digest = link(prev, canonical(n, stamp, actor, action, subject, text))
    tx.execute(
        "INSERT INTO console_audit(n, at, actor, action, subject, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (n, stamp, actor, action, subject, text, prev, digest),
    )
    tx.execute("UPDATE settings SET value = ? WHERE key = ?", (digest, HEAD_KEY))
    return Entry(n, stamp, actor, action, subject, text, prev, digest)


_COLUMNS = "n, at, actor, action, subject, detail, prev_hash, hash"


def _entry(row: Any) -> Entry:
    return Entry(int(row[0]), *(str(v) if v is not None else None for v in row[1:]))  # type: ignore[arg-type]


def entries(db: Database, *, limit: int = 100, before: int | None = None) -> list[Entry]:
    """The newest ``limit`` rows (older than ``before`` when given), newest first."""
    with db.reading() as tx:
        rows = tx.all(
            f"SELECT {_COLUMNS} FROM console_audit WHERE n < ? ORDER BY n DESC LIMIT ?",
            (before if before is not None else 2**62, limit),
        )
    return [_entry(r) for r in rows]


def verify(db: Database) -> Verdict:
    """Walk the whole chain from the first row; the first fault found is reported."""
    with db.reading() as tx:
        rows = [_entry(r) for r in tx.all(f"SELECT {_COLUMNS} FROM console_audit ORDER BY n")]
        head_row = tx.one("SELECT value FROM settings WHERE key = ?", (HEAD_KEY,))
    prev = GENESIS
    for i, e in enumerate(rows, start=1):
        if e.n != i:
            return Verdict(False, len(rows), e.n, "sequence")
        if e.prev_hash != prev:
            return Verdict(False, len(rows), e.n, "link")
        if link(prev, canonical(e.n, e.at, e.actor, e.action, e.subject, e.detail)) != e.hash:
            return Verdict(False, len(rows), e.n, "hash")
        prev = e.hash
    head = str(head_row[0]) if head_row is not None else GENESIS
    if head != prev:
        return Verdict(False, len(rows), len(rows) + 1, "head")
    return Verdict(True, len(rows))
