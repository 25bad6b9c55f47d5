"""Enrollment: a one-time code exchanged for a terminal and its bearer token, exactly once.

The code is claimed by one conditional statement (``UPDATE enroll_codes ... WHERE
used_by IS NULL ... RETURNING``): of any number of requests racing on it, on SQLite or
PostgreSQL, exactly one claims it and makes a terminal; every other is refused
``enroll_code_used`` (PostgreSQL's READ COMMITTED re-checks the condition after the
winner commits, so a loser's ``UPDATE`` matches no row).

An enrollment that carries the till's ``request_id`` and X25519 ``public_key`` (both made
durable on the till before it asks) is idempotent until the till confirms it:

1. The first request claims the code, makes the terminal and its token, and keeps only the
   token's SHA-256 (as every token) and the token *sealed to the till's public key*
   (``agent.tokens.seal_for_backoffice``): the back office never keeps a token it could
   read, and the answer carries the sealed token only the till can open.
2. A repeat of that request (the same code, request id and public key) while it is not
   confirmed gets the same terminal and the same sealed token: a till killed after the
   answer left the back office and before its store held the token finishes with the same
   code. Any other request for the code is ``enroll_code_used``.
3. ``confirm`` (``POST /v1/enroll/confirm``, authenticated with the new token: the till
   has stored it) retires the code: the sealed token is dropped and a repeat is
   ``enroll_code_used`` from then on. Confirming twice is a no-op.

A request without ``request_id``/``public_key`` (a till of an older version) is answered
as before: the token in clear, the code retired at once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from agent.tokens import load_x25519_public_key, seal_for_backoffice
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.protocol import TERMINAL_ID_RE, ProtocolError, clean_text

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""A till's enrollment request id: 16-64 URL-safe characters (the till makes 32 hex)."""


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What an enrollment gave the till: its terminal and store, and its bearer token in
    clear (``token``, an older till's request) or sealed to the till's key
    (``sealed_token``); one of the two is empty."""

    terminal_id: str
    store_id: str
    store_name: str
    token: str
    sealed_token: str


def _check(
    code: str, name: str, terminal_id: str | None, request_id: str | None, public_key: str | None
) -> None:
    if not code.isascii() or not code.isprintable() or len(code) > 64:
        raise ProtocolError(403, "bad_enroll_code", "enrollment code is not valid")
    clean_text(name, "name", 80)
    if terminal_id is not None and not TERMINAL_ID_RE.match(terminal_id):
        raise ProtocolError(
            400, "bad_field", "terminal_id: 1-64 letters, digits, _ . : -", field="terminal_id"
        )
    if (request_id is None) != (public_key is None):
        raise ProtocolError(
            400,
            "bad_field",
            "request_id and public_key come together (or neither)",
            field="request_id" if request_id is None else "public_key",
        )
    if request_id is not None and not REQUEST_ID_RE.match(request_id):
        raise ProtocolError(
            400, "bad_field", "request_id: 16-64 letters, digits, _ -", field="request_id"
        )
    if public_key is not None:
        try:
            load_x25519_public_key(public_key)
        except ValueError:
            raise ProtocolError(
                400, "bad_field", "public_key: an X25519 key, 32 bytes base64", field="public_key"
            ) from None


def enroll(
    ctx: Context,
    hashed_code: str,
    token_hash: str,
    token: str,
    *,
    code: str,
    name: str,
    terminal_id: str | None,
    request_id: str | None,
    public_key: str | None,
) -> Enrollment:
    """Claim the code (``hashed_code``: its SHA-256) for a new terminal with bearer
    ``token`` (``token_hash``: its SHA-256), or answer a repeat of the same unconfirmed
    request; see the module docstring. Raises ``ProtocolError``: 403 ``bad_enroll_code``,
    ``enroll_code_used``, ``enroll_code_expired``; 400 ``bad_field``; 409
    ``terminal_exists`` (nothing claimed then)."""
    _check(code, name, terminal_id, request_id, public_key)
    now = ctx.clock.now()
    with ctx.db.transaction() as tx:
        row = tx.one(
            "SELECT store_id, expires_at, used_by FROM enroll_codes WHERE code_hash = ?",
            (hashed_code,),
        )
        if row is None:
            raise ProtocolError(403, "bad_enroll_code", "enrollment code is not valid")
        if row[2] is None and datetime.fromisoformat(row[1]) < now:
            raise ProtocolError(403, "enroll_code_expired", "enrollment code has expired")
        tid = terminal_id or f"t-{secrets.token_hex(6)}"
        sealed = (
            seal_for_backoffice(token.encode("ascii"), load_x25519_public_key(public_key))
            if public_key is not None
            else None
        )
        claimed = tx.one(
            "UPDATE enroll_codes SET used_by = ?, used_at = ?, request_id = ?, "
            "public_key = ?, sealed_token = ?, confirmed_at = ? "
            "WHERE code_hash = ? AND used_by IS NULL RETURNING store_id",
            (
                tid,
                now.isoformat(),
                request_id,
                public_key,
                sealed,
                None if sealed is not None else now.isoformat(),
                hashed_code,
            ),
        )
        if claimed is None:  # spent, or just claimed by a request racing this one
            return _repeat(tx, hashed_code, request_id, public_key)
        if tx.one("SELECT 1 FROM terminals WHERE terminal_id = ?", (tid,)):
            raise ProtocolError(409, "terminal_exists", f"terminal {tid} already enrolled")
        tx.execute(
            "INSERT INTO terminals(terminal_id, store_id, name, token_hash, enrolled_at) "
            "VALUES (?,?,?,?,?)",
            (tid, row[0], name[:80] or tid, token_hash, now.isoformat()),
        )
        store_name = str(tx.one("SELECT name FROM stores WHERE store_id = ?", (row[0],))[0])
    return Enrollment(tid, str(row[0]), store_name, "" if sealed else token, sealed or "")


def _repeat(tx: Tx, hashed_code: str, request_id: str | None, public_key: str | None) -> Enrollment:
    """The answer to a request for a code already claimed: the same terminal and sealed
    token when it is the claiming request again and not yet confirmed, else 403
    ``enroll_code_used``."""
    row = tx.one(
        "SELECT c.used_by, c.request_id, c.public_key, c.sealed_token, c.confirmed_at, "
        "t.store_id, s.name FROM enroll_codes c "
        "JOIN terminals t ON t.terminal_id = c.used_by "
        "JOIN stores s ON s.store_id = t.store_id WHERE c.code_hash = ?",
        (hashed_code,),
    )
    same = (
        row is not None
        and request_id is not None
        and row[1] is not None
        and secrets.compare_digest(str(row[1]), request_id)
        and row[2] == public_key
        and row[3] is not None
        and row[4] is None
    )
    if not same or row is None:
        raise ProtocolError(403, "enroll_code_used", "enrollment code was already used")
    return Enrollment(str(row[0]), str(row[5]), str(row[6]), "", str(row[3]))


def confirm(ctx: Context, terminal_id: str, request_id: str) -> bool:
    """The till ``terminal_id`` (authenticated by its new token) has stored its token:
    retire the code of its enrollment ``request_id`` (drop the sealed token). Returns
    whether this call retired it (False: confirmed before, or an older till's enrollment
    that needed none). Another request id is 400 ``bad_field``."""
    if not REQUEST_ID_RE.match(request_id):
        raise ProtocolError(
            400, "bad_field", "request_id: 16-64 letters, digits, _ -", field="request_id"
        )
    with ctx.db.transaction() as tx:
        row = tx.one(
            "SELECT request_id, confirmed_at FROM enroll_codes WHERE used_by = ?",
            (terminal_id,),
        )
        if row is None or row[0] is None or row[0] != request_id:
            raise ProtocolError(
                400,
                "bad_field",
                "request_id is not the one this till enrolled with",
                field="request_id",
            )
        done = tx.one(
            "UPDATE enroll_codes SET confirmed_at = ?, sealed_token = NULL "
            "WHERE used_by = ? AND confirmed_at IS NULL RETURNING 1",
            (ctx.clock.now().isoformat(), terminal_id),
        )
    return done is not None
