"""Cheque numbers of a till without POS integration, and finding a cheque by what a
cashier types: the full number, the short number printed after the till's id, or the
last characters.

A number is ``<TILL>-<n>``: the till's terminal id (upper case, at most
``PREFIX_MAX`` characters) and a counter of at least six digits (``T-2A9F1C3B4D5E-000007``).
The counter is taken when the cheque is committed, in the commit's own transaction
(``claim``), not when a cheque is started: a cheque cancelled before its commit leaves no
hole, so the numbers of a till are gapless. The number a cheque in progress shows is the
one it will get (``upcoming``): one checkout screen per till, and a commit under the
store's write lock is the only thing that moves the counter.

A training copy of the till has its own terminal id (``TRN-<till>``) and a counter of its
own that starts again at 1 (``agent.training``), so a training number never equals a real
one, in full or in the counter.

Finding (``matches``): exact number (any case) first; then a number of digits only as the
counter of this till (``7`` and ``000007`` are ``<TILL>-000007``); then the most recent
``RECENT_WINDOW`` cheques of this till whose number ends with what was typed (the last
digits of a POS's own number). Several cheques ending the same way are all returned, for
the cashier to pick; the core's refund refuses such a number as ambiguous
(``AmbiguousReceiptError``).
"""

from __future__ import annotations

import re
import sqlite3

from agent.errors import AmbiguousReceiptError, ConflictError, NotFoundError
from agent.store import Store

PREFIX_MAX = 48
"""Characters of the terminal id kept in a cheque number (a receipt id is 64 at most)."""

COUNTER_META = "receipt_counter"
"""``meta`` key of the last counter committed on this till."""

RECENT_WINDOW = 500
"""How many of this till's latest cheques a search by the last characters looks at."""

AMBIGUOUS_LIST = 20
"""The most cheques a search by the last characters returns (newest first)."""


def prefix(terminal_id: str | None) -> str:
    """The number's prefix for a terminal id (``t-2a9f…`` -> ``T-2A9F…``)."""
    return str(terminal_id)[:PREFIX_MAX].upper() if terminal_id else "T"


def number(terminal_id: str | None, n: int) -> str:
    """Cheque number ``n`` of the till ``terminal_id``."""
    return f"{prefix(terminal_id)}-{n:06d}"


def _counter(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (COUNTER_META,)).fetchone()
    return int(row[0]) if row else 0


def _terminal(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'terminal_id'").fetchone()
    return str(row[0]) if row else None


def upcoming(store: Store) -> str:
    """The number the next committed cheque of this till gets (nothing is taken)."""
    with store.read() as conn:
        return number(_terminal(conn), _counter(conn) + 1)


def _own_counter(conn: sqlite3.Connection, receipt_id: str) -> int | None:
    """The counter in ``receipt_id`` if it is a number of this till's form, else None."""
    own = prefix(_terminal(conn)) + "-"
    tail = receipt_id[len(own) :]
    if receipt_id.startswith(own) and tail.isascii() and tail.isdigit():
        return int(tail)
    return None


def claim(conn: sqlite3.Connection, receipt_id: str) -> None:
    """Take ``receipt_id``'s counter, inside the commit's transaction (``conn`` holds the
    write lock). A receipt id that is not of this till's form (a POS's own) takes nothing.
    One of this till's form must be the next number: any other would leave a hole or
    repeat a number (``ConflictError``; nothing is written)."""
    n = _own_counter(conn, receipt_id)
    if n is None:
        return
    last = _counter(conn)
    if n != last + 1:
        expected = number(_terminal(conn), last + 1)
        raise ConflictError(
            f"cheque number {receipt_id} is not the next number of this till ({expected})",
            f"номер чека {receipt_id} — не следующий номер этой кассы ({expected})",
            receipt_id=receipt_id,
            expected=expected,
        )
    Store.set_meta(conn, COUNTER_META, str(n))


def matches(conn: sqlite3.Connection, text: str) -> list[str]:
    """The cheques of this till that ``text`` names (see module docstring), newest first;
    [] when none. One element: found; more: the cashier picks one."""
    typed = text.strip()
    if not typed:
        return []
    for candidate in dict.fromkeys((typed, typed.upper())):
        if conn.execute("SELECT 1 FROM purchases WHERE receipt_id = ?", (candidate,)).fetchone():
            return [candidate]
    own = prefix(_terminal(conn)) + "-"
    digits = typed.isascii() and typed.isdigit()
    if digits and len(typed) <= 12:
        short = number(_terminal(conn), int(typed))
        if conn.execute("SELECT 1 FROM purchases WHERE receipt_id = ?", (short,)).fetchone():
            return [short]
    # Digits alone are this till's counter (above): among its own numbers they would
    # name other cheques (``7`` is not ``000017``), so they match other numbers only.
    rows = conn.execute(
        "SELECT receipt_id FROM (SELECT receipt_id, rowid AS r FROM purchases "
        "ORDER BY rowid DESC LIMIT ?) WHERE upper(receipt_id) LIKE ? ESCAPE '\\' "
        "AND NOT (? AND upper(receipt_id) LIKE ? ESCAPE '\\') ORDER BY r DESC LIMIT ?",
        (RECENT_WINDOW, "%" + _like(typed.upper()), digits, _like(own) + "%", AMBIGUOUS_LIST),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern escaped with a backslash."""
    return re.sub(r"([%_\\])", r"\\\1", text)


def resolve(conn: sqlite3.Connection, text: str) -> str:
    """The one cheque of this till ``text`` names: ``NotFoundError`` when none,
    ``AmbiguousReceiptError`` (naming them) when several end the same way."""
    found = matches(conn, text)
    typed = text.strip()
    if not found:
        raise NotFoundError(
            f"no cheque {typed} on this till",
            f"чека {typed} нет на этой кассе",
            receipt_id=typed,
        )
    if len(found) > 1:
        listed = ", ".join(found)
        raise AmbiguousReceiptError(
            f"several cheques of this till end with {typed}: {listed}; type more of the number",
            f"на «{typed}» оканчиваются несколько чеков этой кассы: {listed}; введите номер полнее",
            receipt_id=typed,
            candidates=found,
        )
    return found[0]
