"""The console's people: users with a role, Argon2id password hashes, sign-in with a
lockout, and server-side sessions.

A login locks after ``LOCK_AFTER`` wrong passwords within ``LOCK_WINDOW``; while locked,
sign-in is refused without looking at the password, for ``LOCK_FOR`` from the failure that
locked it. Sessions are random tokens; only their SHA-256 is stored, with an absolute
expiry (``SESSION_TTL``). Every change (user added or changed, sign-in, failed sign-in,
lockout) writes its audit row in the same transaction (``audit.record``). Times come from
the back office's clock (``Context.clock``), so tests move them.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agent.errors import AgentError
from sync.backoffice.context import Context
from sync.backoffice.people import audit
from sync.backoffice.people.roles import ROLES, STORE_SCOPED

LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD = 8
LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")

_hasher = PasswordHasher()  # Argon2id, argon2-cffi's RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """A hash verified for unknown logins, so they cost the time a known one does (made
    on first use: importing the back office's app hashes nothing)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class UserError(AgentError):
    """A user cannot be added or changed as asked (the message says why)."""

    code = "console_user_refused"
    title_ru = "Пользователь не сохранён"
    title_en = "User not saved"

    def __init__(
        self, message_en: str, message_ru: str, *, code: str = code, **details: Any
    ) -> None:
        """``code``: what was wrong (``bad_login``, ``weak_password``, ...), the error's
        ``error`` field."""
        super().__init__(message_en, message_ru, **details)
        self.code = code


@dataclass(frozen=True, slots=True)
class User:
    """A console user: ``login`` (lower-case), display ``name``, ``role`` (``roles.ROLES``)
    and, for store-bound roles, the ``store_id`` they see."""

    login: str
    name: str
    role: str
    store_id: str | None
    active: bool = True
    locked_until: str | None = None
    """When sign-in is locked (``LOCK_AFTER`` wrong passwords), until when (ISO 8601 UTC);
    None when it is not locked now. Filled by ``list_users`` (the people page)."""

    @property
    def store_scope(self) -> str | None:
        """The one store this user may see (store-bound roles), or None for every store."""
        return self.store_id if self.role in STORE_SCOPED else None


@dataclass(frozen=True, slots=True)
class SignIn:
    """A sign-in's outcome: ``user`` when it succeeded; else ``locked_for`` (seconds left,
    when the login is locked) or neither (wrong login or password)."""

    user: User | None = None
    locked_for: int | None = None
    attempts_left: int | None = None


def _now(ctx: Context) -> datetime:
    return ctx.clock.now()


def _check(login: str, role: str, store_id: str | None) -> None:
    if not LOGIN_RE.match(login):
        raise UserError(
            "a login is 2-40 characters: lower-case latin letters, digits, '.', '_', '-'",
            "логин: 2-40 символов, строчные латинские буквы, цифры, '.', '_', '-'",
            login=login,
            code="bad_login",
        )
    if role not in ROLES:
        raise UserError(
            f"unknown role {role!r}; one of {', '.join(ROLES)}",
            f"неизвестная роль {role!r}; допустимы: {', '.join(ROLES)}",
            role=role,
            code="bad_role",
        )
    if (role in STORE_SCOPED) != bool(store_id):
        raise UserError(
            f"role {role} {'needs a' if role in STORE_SCOPED else 'takes no'} store (--store-id)",
            f"для роли {role} магазин {'нужен' if role in STORE_SCOPED else 'не указывается'}",
            role=role,
            code="store_scope",
        )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(
            f"a password has at least {MIN_PASSWORD} characters",
            f"в пароле не меньше {MIN_PASSWORD} символов",
            code="weak_password",
        )


def _user(row: Any) -> User:
    return User(str(row[0]), str(row[1]), str(row[2]), row[3], bool(row[4]))


_USER_COLUMNS = "login, name, role, store_id, active"


def add_user(
    ctx: Context,
    login: str,
    password: str,
    role: str,
    *,
    name: str | None = None,
    store_id: str | None = None,
    actor: str = "cli",
) -> User:
    """Create a user (``UserError`` if the login is taken or anything is invalid)."""
    login = login.strip().lower()
    _check(login, role, store_id)
    check_password(password)
    user = User(login, (name or login).strip(), role, store_id)
    hashed = _hasher.hash(password)
    now = _now(ctx)
    with ctx.db.transaction() as tx:
        if tx.one("SELECT 1 FROM console_users WHERE login = ?", (login,)):
            raise UserError(
                f"user {login} already exists", f"пользователь {login} уже есть", code="user_exists"
            )
        tx.execute(
            "INSERT INTO console_users(login, name, role, store_id, password_hash, active, "
            "failures, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, 0, ?, ?)",
            (login, user.name, role, store_id, hashed, now.isoformat(), now.isoformat()),
        )
        audit.record(tx, now, actor, "user_added", login, {"role": role, "store_id": store_id})
    return user


def change_user(
    ctx: Context,
    login: str,
    *,
    actor: str,
    role: str | None = None,
    password: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's role, password or active flag (audited; a new password also ends
    the lockout and every session of the user)."""
    current = get_user(ctx, login)
    if current is None:
        raise UserError(f"no user {login}", f"нет пользователя {login}", code="user_not_found")
    new_role = role or current.role
    _check(login, new_role, current.store_id)
    changed: dict[str, Any] = {}
    now = _now(ctx).isoformat()
    with ctx.db.transaction() as tx:
        if role is not None and role != current.role:
            tx.execute("UPDATE console_users SET role = ? WHERE login = ?", (role, login))
            changed["role"] = role
        if active is not None and active != current.active:
            tx.execute("UPDATE console_users SET active = ? WHERE login = ?", (int(active), login))
            changed["active"] = active
        if password is not None:
            check_password(password)
            tx.execute(
                "UPDATE console_users SET password_hash = ?, failures = 0, "
                "first_failure_at = NULL, locked_until = NULL WHERE login = ?",
                (_hasher.hash(password), login),
            )
            changed["password_set"] = True
        if changed:
            tx.execute("UPDATE console_users SET updated_at = ? WHERE login = ?", (now, login))
            if "active" in changed or "password_set" in changed:
                tx.execute("DELETE FROM console_sessions WHERE login = ?", (login,))
            audit.record(tx, _now(ctx), actor, "user_changed", login, changed)
    found = get_user(ctx, login)
    assert found is not None
    return found


def get_user(ctx: Context, login: str) -> User | None:
    with ctx.db.reading() as tx:
        row = tx.one(f"SELECT {_USER_COLUMNS} FROM console_users WHERE login = ?", (login,))
    return None if row is None else _user(row)


def list_users(ctx: Context) -> list[User]:
    """Every console user, by login, with their lockout if one runs now."""
    now = _now(ctx)
    with ctx.db.reading() as tx:
        rows = tx.all(f"SELECT {_USER_COLUMNS}, locked_until FROM console_users ORDER BY login")
    out = []
    for r in rows:
        until = datetime.fromisoformat(str(r[5])) if r[5] else None
        locked = until.isoformat() if until is not None and until > now else None
        out.append(User(str(r[0]), str(r[1]), str(r[2]), r[3], bool(r[4]), locked))
    return out


def sign_in(ctx: Context, login: str, password: str) -> SignIn:
    """Check a login and password (Argon2 verify, ~50 ms: call it off the event loop)."""
    login = login.strip().lower()
    now = _now(ctx)
    with ctx.db.reading() as tx:
        row = tx.one(
            f"SELECT {_USER_COLUMNS}, password_hash, failures, first_failure_at, locked_until "
            "FROM console_users WHERE login = ?",
            (login,),
        )
    if row is not None and row[8] is not None:
        until = datetime.fromisoformat(str(row[8]))
        if until > now:
            return SignIn(locked_for=int((until - now).total_seconds()) + 1)
    stored = str(row[5]) if row is not None else _dummy_hash()
    try:
        good: bool = _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        good = False
    subject = login[:40]
    if row is None or not good or not bool(row[4]):
        with ctx.db.transaction() as tx:
            audit.record(tx, now, subject, "sign_in_failed", subject, {})
            if row is None:
                return SignIn(attempts_left=None)
            # Counted by one statement on the row as it is now (not as it was read before
            # the password check): failures racing each other all count (PostgreSQL's row
            # lock makes them take turns), so parallel guesses cannot share one count.
            recent = (now - LOCK_WINDOW).isoformat()
            counted = tx.one(
                "UPDATE console_users SET "
                "failures = CASE WHEN first_failure_at > ? THEN failures + 1 ELSE 1 END, "
                "first_failure_at = CASE WHEN first_failure_at > ? THEN first_failure_at "
                "ELSE ? END WHERE login = ? RETURNING failures",
                (recent, recent, now.isoformat(), login),
            )
            failures = int(counted[0]) if counted is not None else 1
            if failures >= LOCK_AFTER:
                until = now + LOCK_FOR
                tx.execute(
                    "UPDATE console_users SET failures = 0, first_failure_at = NULL, "
                    "locked_until = ? WHERE login = ?",
                    (until.isoformat(), login),
                )
                audit.record(tx, now, subject, "locked_out", subject, {"until": until.isoformat()})
                return SignIn(locked_for=int(LOCK_FOR.total_seconds()))
        return SignIn(attempts_left=LOCK_AFTER - failures)
    user = _user(row)
    with ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE console_users SET failures = 0, first_failure_at = NULL, locked_until = NULL "
            "WHERE login = ?",
            (login,),
        )
        audit.record(tx, now, login, "sign_in", login, {})
    if _hasher.check_needs_rehash(stored):
        with ctx.db.transaction() as tx:
            tx.execute(
                "UPDATE console_users SET password_hash = ? WHERE login = ?",
                (_hasher.hash(password), login),
            )
    return SignIn(user=user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(ctx: Context, user: User) -> str:
    """A new session for ``user``: the random token for its cookie (stored hashed)."""
    token = secrets.token_urlsafe(32)
    now = _now(ctx)
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now.isoformat(),))
        tx.execute(
            "INSERT INTO console_sessions(token_hash, login, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_token_hash(token), user.login, now.isoformat(), (now + SESSION_TTL).isoformat()),
        )
    return token


def session_user(ctx: Context, token: str) -> User | None:
    """The active user of an unexpired session, or None."""
    with ctx.db.reading() as tx:
        row = tx.one(
            "SELECT u.login, u.name, u.role, u.store_id, u.active, s.expires_at "
            "FROM console_sessions s JOIN console_users u ON u.login = s.login "
            "WHERE s.token_hash = ?",
            (_token_hash(token),),
        )
    if row is None or not row[4] or datetime.fromisoformat(str(row[5])) <= _now(ctx):
        return None
    return _user(row)


def close_session(ctx: Context, token: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM console_sessions WHERE token_hash = ?", (_token_hash(token),))


SIGNING_SETTING = "console_secret"


def console_secret(ctx: Context) -> bytes:
    """The console's signing key (cookies, CSRF tokens), made once per back office and kept
    in ``settings``."""
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (SIGNING_SETTING, secrets.token_hex(32)),
        )
        (value,) = tx.one("SELECT value FROM settings WHERE key = ?", (SIGNING_SETTING,))
    return bytes.fromhex(str(value))
