"""`kassa enroll`: join a till to the back office with a one-time code, crash-safely.

The answer carries the till's terminal id and bearer token, the programme's public keys
(QR tokens, coupons, sealing phones), the phone-hash key and the active rules; they go
into the store (mode 0600: it holds the token). Then the member snapshot is loaded.

An enrollment killed at any moment is finished by running the same command again:

1. Before anything is sent, the till makes an X25519 key pair and a request id and keeps
   them in ``.<store>.enroll`` (``PendingEnrollment``, written atomically, 0600), with the
   code's SHA-256: the request is durable before the back office hears of it.
2. ``POST /v1/enroll`` with the request id and the public key. The back office answers
   the token sealed to that key, and answers a repeat of the same request the same way
   until the till confirms (``sync.backoffice.enrollment``).
3. The store: made if absent (or used as it is if it holds only an empty schema), given
   the terminal's identity and keys (``Agent.initialise``), then the token, the store id,
   the back office's URL and the rules in one transaction. Each step checks what is there
   already, so a store left at any step is taken on from there.
4. ``POST /v1/enroll/confirm`` with the new token retires the code (the store notes it:
   ``enroll_confirmed``); then the member snapshot (done when the store has a feed
   cursor); then ``.<store>.enroll`` is removed.

A store this cannot finish (an older version's half-made store: keys without a token and
no pending request; another terminal's; a file that is not a till store) is refused with
a ``HalfMadeStore`` error saying exactly what to do.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent import crashpoint, journal
from agent.clock import Clock
from agent.errors import ConflictError, StoreError
from agent.private import write_private
from agent.service import Agent
from agent.store import Store
from agent.tokens import dump_key, load_x25519_private_key, open_sealed
from sync.client import AGENT_USER_AGENT, PermanentError, SyncClient, TransientError, error_of

CONFIRMED_META = "enroll_confirmed"
"""Store meta: the back office confirmed this till's enrollment (its code is retired)."""


class HalfMadeStore(StoreError):
    """A store an interrupted enrollment (or something else) left that ``kassa enroll``
    cannot finish; the message says what to do."""

    code = "half_made_store"
    title_ru = "База кассы создана не до конца"
    title_en = "Till store only partly made"


def pending_path(store_path: Path) -> Path:
    """Where the till keeps its enrollment request until the enrollment is finished:
    ``.<store>.enroll`` beside the store, a name ``rm till.db*`` (an installer clearing a
    half-made store) does not match, so the same code still finishes the enrollment."""
    return store_path.with_name(f".{store_path.name}.enroll")


def code_digest(code: str) -> str:
    """The code as the back office reads it (trimmed, upper case), SHA-256 hex."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


@dataclass(frozen=True)
class PendingEnrollment:
    """An enrollment request made durable before it is sent: the code's SHA-256, the
    request id, the till's X25519 private key (base64; the token comes sealed to it)."""

    code_sha256: str
    request_id: str
    private_key: str

    @classmethod
    def new(cls, code: str) -> PendingEnrollment:
        return cls(code_digest(code), secrets.token_hex(16), dump_key(X25519PrivateKey.generate()))

    @classmethod
    def load(cls, path: Path) -> PendingEnrollment | None:
        """The request kept at ``path``; None when there is none or it cannot be read (a
        file this version did not write: the enrollment starts afresh)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pending = cls(
                str(data["code_sha256"]), str(data["request_id"]), str(data["private_key"])
            )
            load_x25519_private_key(pending.private_key)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pending

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self)).encode())

    def public_key(self) -> str:
        return dump_key(load_x25519_private_key(self.private_key).public_key())

    def open_token(self, sealed: str) -> str:
        return open_sealed(sealed, load_x25519_private_key(self.private_key)).decode("ascii")


def _store_state(path: Path) -> dict[str, str | None] | None:
    """The store's enrollment metas (None: no store, or a file with no table yet: an empty
    SQLite file is what a kill at the store's first open leaves). A file that is not a
    SQLite database is ``HalfMadeStore``."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                return None
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            cursor = (
                conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sync_state'").fetchone()
                and conn.execute("SELECT value FROM sync_state WHERE name = 'cursor'").fetchone()
            )
            events = (
                conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'outbox'").fetchone()[
                    0
                ]
                and conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise HalfMadeStore(
            f"{path} is not a till store ({e}): move it away and run kassa enroll again",
            f"{path} не является базой кассы ({e}): переместите файл и повторите kassa enroll",
            path=str(path),
        ) from None
    keys = ("terminal_id", "sync_token", CONFIRMED_META)
    state: dict[str, str | None] = {k: rows.get(k) for k in keys}
    state["cursor"] = "1" if cursor else None
    state["events"] = str(events or 0)
    return state


def _keys_without_token(path: Path, events: str) -> HalfMadeStore:
    files = " ".join(str(path.with_name(path.name + s)) for s in ("", "-wal", "-shm"))
    if events != "0":
        return HalfMadeStore(
            f"{path} is a till store made without the back office (kassa init) and holds "
            f"{events} journal events; it cannot be enrolled: give kassa enroll a new "
            "--store path",
            f"{path} создана без бэк-офиса (kassa init) и содержит {events} событий; её "
            "нельзя подключить: укажите kassa enroll новый путь --store",
            path=str(path),
        )
    return HalfMadeStore(
        f"{path} holds a till's keys but no sync token and no pending request (an "
        "enrollment by an older version was interrupted, or kassa init made it) and "
        f"nothing was sold in it: remove it (rm {files}) and run kassa enroll again; if "
        "the back office answers enroll_code_used, ask for a new code (kassa backoffice "
        "enroll-code)",
        f"в {path} есть ключи кассы, но нет токена и незавершённого запроса (прерванное "
        "подключение старой версии или kassa init), продаж в ней нет: удалите её "
        f"(rm {files}) и повторите kassa enroll; если бэк-офис ответит enroll_code_used, "
        "получите новый код (kassa backoffice enroll-code)",
        path=str(path),
    )


def _post(http: httpx.Client, url: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"user-agent": AGENT_USER_AGENT}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    try:
        resp = http.post(url, json=body, headers=headers)
    except httpx.HTTPError as e:
        raise PermanentError(f"back office not reachable: {e}") from e
    if resp.status_code >= 500 or resp.status_code == 429:
        # The back office is there but cannot answer now (its database, a restart, too
        # many requests): the code is still good, try again later.
        raise TransientError(f"HTTP {resp.status_code} from the back office; try again")
    if resp.status_code != 200:
        raise PermanentError.answer(f"HTTP {resp.status_code}", error_of(resp))
    return resp.json()


def enroll_till(
    store_path: Path,
    http: httpx.Client,
    code: str,
    *,
    name: str = "",
    terminal_id: str | None = None,
    bootstrap: bool = True,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Join a till to the back office with a one-time ``code`` and make its store at
    ``store_path`` (keys, rules, token; with ``bootstrap`` the member snapshot too), or
    finish an enrollment an earlier run began (see the module docstring).
    ``http``: the client to the back office (``sync.client.backoffice_http``, whose base
    URL is saved as the till's back office).
    Raises ``ConflictError`` when the store is enrolled already and nothing is left to do,
    ``HalfMadeStore`` when it cannot be finished (what to do in the message),
    ``TransientError`` when the back office cannot answer now (5xx, 429: run it again),
    ``PermanentError`` when it refuses (its code and message as fields) or cannot be
    reached (``__cause__``: the ``httpx`` error). ``progress`` is told the members loaded
    so far (every 10,000)."""
    side = pending_path(store_path)
    pending = PendingEnrollment.load(side)
    state = _store_state(store_path)
    done = state is not None and state["sync_token"] and (state[CONFIRMED_META] or state["cursor"])
    if done and pending is None:
        raise ConflictError(
            f"{store_path} already exists",
            f"база {store_path} уже существует",
            path=str(store_path),
        )
    if state is not None and state["terminal_id"] and not state["sync_token"] and pending is None:
        raise _keys_without_token(store_path, state["events"] or "0")
    data: dict[str, Any] | None = None
    if state is None or not state["sync_token"]:
        if pending is None or pending.code_sha256 != code_digest(code):
            pending = PendingEnrollment.new(code)
            pending.save(side)
        crashpoint.reached("enroll.request_saved")
        data = _post(
            http,
            "/v1/enroll",
            {
                "code": code,
                "name": name,
                "terminal_id": terminal_id,
                "request_id": pending.request_id,
                "public_key": pending.public_key(),
            },
        )
        crashpoint.reached("enroll.answered")
        sealed = data.get("sealed_token")  # an older back office answers in clear
        token = pending.open_token(sealed) if sealed else str(data["token"])
        _write_store(store_path, data, token, http, state)
    with Store(store_path) as store:
        agent = Agent(store, clock)
        token = store.meta("sync_token") or ""
        if pending is not None and not store.meta(CONFIRMED_META):
            _post(http, "/v1/enroll/confirm", {"request_id": pending.request_id}, token)
            crashpoint.reached("enroll.confirmed")
            with store.write() as conn:
                Store.set_meta(conn, CONFIRMED_META, "1")
        members = 0
        if bootstrap and store.sync_value("cursor") is None:
            members = SyncClient(agent, http).bootstrap(progress)
        crashpoint.reached("enroll.loaded")
        side.unlink(missing_ok=True)
        rules = store.one("SELECT max(version) FROM rules")
        return {
            "store": str(store_path),
            "terminal_id": store.meta("terminal_id"),
            "store_id": store.meta("store_id"),
            "rules_version": int(rules[0]) if rules and rules[0] is not None else None,
            "members": members,
        }


def _write_store(
    path: Path,
    data: dict[str, Any],
    token: str,
    http: httpx.Client,
    state: dict[str, str | None] | None,
) -> None:
    """Give the store (made here if absent) the back office's answer, taking on from the
    step a killed run reached: the identity and keys, then the token with the rest."""
    if state is not None and state["terminal_id"] not in (None, data["terminal_id"]):
        raise HalfMadeStore(
            f"{path} belongs to terminal {state['terminal_id']}, the back office enrolled "
            f"{data['terminal_id']}: remove {path} and run kassa enroll again",
            f"{path} принадлежит кассе {state['terminal_id']}, а бэк-офис подключил "
            f"{data['terminal_id']}: удалите {path} и повторите kassa enroll",
            path=str(path),
        )
    with Store(path) as store:
        crashpoint.reached("enroll.store_opened")
        if not store.meta("terminal_id"):
            Agent.initialise(
                store,
                terminal_id=data["terminal_id"],
                store_name=data["store_name"],
                phone_hash_key=bytes.fromhex(data["phone_hash_key"]),
                token_public_key=data["token_public_key"],
                seal_public_key=data["seal_public_key"],
            )
        crashpoint.reached("enroll.initialised")
        now = Agent(store).clock.now().isoformat()
        with store.write() as conn:
            Store.set_meta(conn, "sync_token", token)
            Store.set_meta(conn, "store_id", data["store_id"])
            Store.set_meta(conn, "backoffice_url", str(http.base_url))
            journal.install_rules_document(
                conn, int(data["rules"]["version"]), data["rules"]["document"], now
            )
        crashpoint.reached("enroll.stored")


def enrolled_store(path: Path) -> bool:
    """Whether the store at ``path`` holds its sync token (enrolled, maybe not finished)."""
    try:
        state = _store_state(path)
    except HalfMadeStore:
        return False
    return state is not None and bool(state["sync_token"])
