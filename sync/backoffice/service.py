"""The back office: enrollment, the exactly-once ledger, the change feed, rules, tokens.

Exactly once: an event's row in ``events`` (keyed by ``event_id``) and its effect on the
member commit in one transaction, so a resend after a lost response finds the row and is
answered ``duplicate`` with nothing applied twice; the same id with another payload hash
is a ``conflict`` and changes nothing. The server never rejects a spend after the fact
(the goods have left the store): a spend the member's server balance cannot cover
becomes debt, flagged as an ``overdraft`` and repaid from later accruals.

Every purchase is re-scored with the same rules engine the till ran (``agent.engine``)
before it is applied (``effects.rescore``): a claim beyond the programme's tolerance is held
for review in the console (``review``), not applied; within it the slip the customer holds
is what the ledger honours, and the background verifier (``verify``) flags a difference
(``rescore_mismatch``), never silently "corrected". How a batch is applied is in ``ingest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from agent.clock import Clock
from agent.errors import AgentError, InputError
from agent.identify import check_member_code
from agent.model import Quote
from agent.rules import Programme
from agent.seed import demo_programme, member_rows
from agent.tokens import (
    TokenSigner,
    generate_programme_keys,
    issue_member_token,
    load_ed25519_private_key,
)
from sync.backoffice import (
    audiences,
    coupons,
    couponsheet,
    dashboard,
    enrollment,
    event_feed,
    feed,
    ingest,
    member_admin,
    member_ops,
    member_otp,
    member_signup,
    member_web,
    phones,
    poster,
    programme,
    project,
    review,
    rollups,
    tills,
    triggers,
    verify,
    webhooks,
)
from sync.backoffice.context import Context
from sync.backoffice.db import Database, Tx
from sync.backoffice.kpi import Period
from sync.backoffice.kpi import report as kpi_report
from sync.backoffice.member_admin import Profile, SearchResult
from sync.backoffice.member_ops import Act, Adjusted
from sync.backoffice.people import audit, users
from sync.backoffice.people.users import SignIn, User
from sync.backoffice.schema import migrate
from sync.backoffice.sms import SmsGateway
from sync.backoffice.terminal import Terminal
from sync.protocol import (
    ProtocolError,
    PushRequest,
    QueueReport,
)

ENROLL_CODE_TTL_HOURS = 24
MAX_ADMIN_GRACE_SECONDS = 7 * 86400
"""The longest an old admin token may keep working after a rotation (one week)."""


class UnknownTerminal(InputError):
    """No enrolled till has the terminal id given (CLI exit 2)."""

    code = "unknown_terminal"
    title_ru = "Касса не найдена"
    title_en = "Till not found"


def token_hash(token: str) -> str:
    """Bearer tokens and enrollment codes are stored as SHA-256 hex, never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


MemberRows = Iterator[tuple[Any, ...]]
"""Member rows in the till's ``MEMBER_LOAD_COLUMNS`` order (``agent.seed.member_rows``)."""


class DemoSeed(NamedTuple):
    """What ``Backoffice.seed_demo`` found and did: the members there before, the members
    it loaded (0 when there were some)."""

    members_before: int
    members_loaded: int


class Backlogs(NamedTuple):
    """What the health check and the metrics report: the active rules version, the
    accepted events not yet applied to the ledger, the applied purchases not yet
    re-scored (counts of events)."""

    rules_version: int | None
    project_backlog: int
    verify_backlog: int


class ActiveRules(NamedTuple):
    """The programme tills run: its version and its canonical JSON document."""

    version: int
    document: str


SOFTWARE_MAX = 100
"""The most characters of a till's User-Agent the back office keeps."""


class Backoffice:
    """The back office's use cases (enrollment, authentication, rules, pushes, the feed,
    members) over one ``Context``, which it hands down to the modules doing the work."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.context = Context.over(db, clock)
        self.db = db
        self.clock: Clock = self.context.clock
        self._software: dict[str, str] = {}
        self._settings: dict[str, str] = {}
        self._contacts = tills.Contacts()

    @property
    def last_push(self) -> float:
        """``time.monotonic()`` of the last push answered (the workers yield to it)."""
        return self.context.pushes.last

    @last_push.setter
    def last_push(self, value: float) -> None:
        self.context.pushes.last = value

    # ------------------------------------------------------------------ set-up
    def initialise(self) -> None:
        """Migrate, make the programme keys once, publish the demo programme if none."""
        migrate(self.db)
        rollups.ensure(self.db)  # the dashboard's roll-ups of a ledger made before them
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM settings WHERE key = 'token_private_key'") is None:
                values = {**generate_programme_keys(), "admin_token_hash": ""}
                tx.executemany(
                    "INSERT INTO settings(key, value) VALUES (?, ?)", list(values.items())
                )
        if self.active_rules_version() is None:
            self.publish_rules(demo_programme())

    def setting(self, key: str) -> str:
        if key not in self._settings:
            with self.db.reading() as tx:
                row = tx.one("SELECT value FROM settings WHERE key = ?", (key,))
            if row is None:
                raise KeyError(key)
            self._settings[key] = str(row[0])
        return self._settings[key]

    def new_admin_token(self, grace_seconds: int = 0) -> str:
        """A fresh admin token (for the KPI endpoint); only its hash is kept. The old one
        stops working at once on every node, or after ``grace_seconds`` (a rotation with
        time to update the scripts that hold it)."""
        if not 0 <= grace_seconds <= MAX_ADMIN_GRACE_SECONDS:
            raise InputError(
                f"the old token's grace period must be 0-{MAX_ADMIN_GRACE_SECONDS} s",
                f"срок действия старого токена: 0-{MAX_ADMIN_GRACE_SECONDS} с",
                field="grace_seconds",
            )
        token = secrets.token_urlsafe(32)
        until = (self.clock.now() + timedelta(seconds=grace_seconds)).isoformat()
        with self.db.transaction() as tx:
            # FOR UPDATE: two rotations at once on PostgreSQL queue here, so the second
            # keeps the first's token as the previous one (SQLite's writes are serial).
            lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
            old = tx.one(f"SELECT value FROM settings WHERE key = 'admin_token_hash'{lock}")
            values = {
                "admin_token_hash": token_hash(token),
                "admin_token_prev_hash": str(old[0]) if old and grace_seconds else "",
                "admin_token_prev_until": until if grace_seconds else "",
            }
            for key, value in values.items():
                tx.execute(
                    "INSERT INTO settings(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        return token

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is the admin token now (or the previous one within its grace
        period). Read from the database on every call, not cached: a rotation on one node
        is in force on all of them at once."""
        offered = token_hash(token)
        with self.db.reading() as tx:
            rows = dict(
                tx.all(
                    "SELECT key, value FROM settings WHERE key IN "
                    "('admin_token_hash', 'admin_token_prev_hash', 'admin_token_prev_until')"
                )
            )
        current = str(rows.get("admin_token_hash") or "")
        if current and secrets.compare_digest(current, offered):
            return True
        prev, until = (
            str(rows.get("admin_token_prev_hash") or ""),
            rows.get("admin_token_prev_until"),
        )
        return bool(
            prev
            and until
            and self.clock.now() < datetime.fromisoformat(str(until))
            and secrets.compare_digest(prev, offered)
        )

    def revoke_till(self, terminal_id: str) -> dict[str, Any]:
        """Revoke a till's sync token: from the next request on, on every node, it is
        refused (401 ``bad_token``). The till's events already accepted stay in the
        ledger; a new enrollment gives the till a new token."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT store_id, name, revoked FROM terminals WHERE terminal_id = ?",
                (terminal_id,),
            )
            if row is None:
                raise UnknownTerminal(
                    f"no till {terminal_id!r} is enrolled",
                    f"касса {terminal_id!r} не зарегистрирована",
                    terminal_id=terminal_id,
                )
            tx.execute("UPDATE terminals SET revoked = 1 WHERE terminal_id = ?", (terminal_id,))
        return {
            "terminal_id": terminal_id,
            "store_id": row[0],
            "name": row[1],
            "revoked": True,
            "already_revoked": bool(row[2]),
        }

    def ensure_store(self, store_id: str, name: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO stores(store_id, name, created_at) VALUES (?,?,?) "
                "ON CONFLICT(store_id) DO NOTHING",
                (store_id, name, self.clock.now().isoformat()),
            )

    def seed_demo(
        self,
        stores: Mapping[str, str],
        members: int,
        *,
        progress: Callable[[MemberRows], MemberRows] | None = None,
    ) -> DemoSeed:
        """Demo data: the back office initialised, ``stores`` (id -> name) added, and
        ``members`` demo members (``agent.seed``, scored by the demo programme) loaded into
        the first store when the back office has no member yet, so seeding twice loads no
        member twice. ``progress`` wraps the rows on their way in (a counter)."""
        self.initialise()
        for store_id, name in stores.items():
            self.ensure_store(store_id, name)
        before = self.member_count()
        if before or not members:
            return DemoSeed(before, 0)
        key = bytes.fromhex(self.setting("phone_hash_key"))
        # fingerprints at the active programme's cost: the one lookups use
        scored = dataclasses.replace(demo_programme(), phone_hash=phones.cost(self.context))
        rows = member_rows(members, scored, key, self.clock.now())
        loaded = self.load_members(
            progress(rows) if progress else rows, store_id=next(iter(stores))
        )
        return DemoSeed(before, loaded)

    def upgrade_phone_fingerprints(self, limit: int = phones.CHUNK) -> int:
        """Members' v1 phone fingerprints upgraded to v2, up to ``limit``
        (``phones.upgrade_more``, which the app also runs in the background): how many
        rows it settled, 0 when none is left."""
        return phones.upgrade_more(self.context, limit)

    def member_count(self) -> int:
        """How many members the back office has (all stores)."""
        with self.db.reading() as tx:
            return int(tx.one("SELECT count(*) FROM members")[0])

    def enroll_code(
        self,
        store_id: str,
        *,
        store_name: str | None = None,
        ttl_hours: int = ENROLL_CODE_TTL_HOURS,
        actor: str | None = None,
    ) -> str:
        """A one-time code an installer types at a new till (kept hashed, expires).
        ``store_name``: the store is added by that name first if it is new (else an
        unknown store is refused, 404 ``unknown_store``). ``actor``: a person made it (the
        console): audited in the code's transaction (the code itself never)."""
        if store_name is not None:
            self.ensure_store(store_id, store_name)
        raw = secrets.token_hex(6).upper()
        code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
        now = self.clock.now()
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM stores WHERE store_id = ?", (store_id,)) is None:
                raise ProtocolError(404, "unknown_store", f"store {store_id} does not exist")
            tx.execute(
                "INSERT INTO enroll_codes(code_hash, store_id, created_at, expires_at) "
                "VALUES (?,?,?,?)",
                (
                    token_hash(code),
                    store_id,
                    now.isoformat(),
                    (now + timedelta(hours=ttl_hours)).isoformat(),
                ),
            )
            if actor is not None:
                audit.record(tx, now, actor, "enroll_code_made", store_id, {"hours": ttl_hours})
        return code

    def enroll(
        self,
        code: str,
        name: str,
        terminal_id: str | None = None,
        *,
        request_id: str | None = None,
        public_key: str | None = None,
    ) -> dict[str, Any]:
        """Exchange a one-time code for a terminal id and bearer token, exactly once under
        any concurrency (``enrollment.enroll``). With the till's ``request_id`` and X25519
        ``public_key`` the token comes sealed to that key (``sealed_token``) and a repeat
        of the same request gets the same answer until ``confirm_enrollment``; without
        them (an older till) it comes in clear (``token``) and the code is spent."""
        token = secrets.token_urlsafe(32)
        got = enrollment.enroll(
            self.context,
            token_hash(code.strip().upper()),
            token_hash(token),
            token,
            code=code,
            name=name,
            terminal_id=terminal_id,
            request_id=request_id,
            public_key=public_key,
        )
        active = self.active_rules()
        return {
            "terminal_id": got.terminal_id,
            **({"token": got.token} if got.token else {"sealed_token": got.sealed_token}),
            "store_id": got.store_id,
            "store_name": got.store_name,
            "phone_hash_key": self.setting("phone_hash_key"),
            "token_public_key": self.setting("token_public_key"),
            "seal_public_key": self.setting("seal_public_key"),
            "rules": active._asdict(),
        }

    def confirm_enrollment(self, terminal: Terminal, request_id: str) -> bool:
        """The till has stored the token it enrolled with (it authenticated with it):
        retire its code (``enrollment.confirm``; whether this call retired it)."""
        return enrollment.confirm(self.context, terminal.terminal_id, request_id)

    def authenticate(
        self, token: str, user_agent: str | None = None, queue: QueueReport | None = None
    ) -> Terminal:
        """The till a bearer token belongs to (401 ``bad_token`` when it is unknown or
        revoked); what the till runs (``user_agent``) is noted when it changed, its contact
        and send queue (``queue``, its ``X-Kassa-Queue``) when due (``tills.Contacts``)."""
        term = self._terminal(token)
        if term is None:
            raise ProtocolError(401, "bad_token", "token is not valid or was revoked")
        self.note_software(term.terminal_id, user_agent)
        self._contacts.note(self.context, term.terminal_id, queue)
        return term

    def _terminal(self, token: str) -> Terminal | None:
        """The till of ``token``, read on every request (one primary-key lookup, no
        cache): a revocation on any node is in force at once on all of them."""
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT terminal_id, store_id, name FROM terminals "
                "WHERE token_hash = ? AND revoked = 0",
                (token_hash(token),),
            )
        return None if row is None else Terminal(*row)

    @staticmethod
    def _software_text(user_agent: str | None) -> str:
        """What is kept of a till's User-Agent: its printable ASCII, at most
        ``SOFTWARE_MAX`` characters (the console shows it as sent)."""
        return "".join(c for c in (user_agent or "") if " " <= c <= "~")[:SOFTWARE_MAX]

    def knows_software(self, terminal_id: str, user_agent: str | None) -> bool:
        """Whether ``note_software`` would write nothing (no thread hop, no transaction:
        the calls between a till's upgrades and restarts)."""
        text = self._software_text(user_agent)
        return not text or self._software.get(terminal_id) == text

    def note_software(self, terminal_id: str, user_agent: str | None) -> None:
        """Record what a till runs (its User-Agent) when it changed: one small write after
        an upgrade or restart, none on the calls in between."""
        if self.knows_software(terminal_id, user_agent):
            return
        text = self._software_text(user_agent)
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE terminals SET software = ? WHERE terminal_id = ?", (text, terminal_id)
            )
        self._software[terminal_id] = text

    def terminals(self) -> list[dict[str, Any]]:
        """Every enrolled till: store, name, enrolment, last contact, software, revoked,
        and its send queue as it last told (``queue``: events ``waiting``, the ``oldest``
        unsent one's time, ``quarantined``, ``at`` when told; None: never told)."""
        with self.db.reading() as tx:
            rows = tx.all(
                "SELECT terminal_id, store_id, name, enrolled_at, last_seen, software, revoked, "
                "queue_waiting, queue_oldest, queue_quarantined, queue_at "
                "FROM terminals ORDER BY store_id, terminal_id"
            )
        keys = ("terminal_id", "store_id", "name", "enrolled_at", "last_seen", "software")
        queue = ("waiting", "oldest", "quarantined", "at")
        return [
            {
                **dict(zip(keys, r[:6], strict=True)),
                "revoked": bool(r[6]),
                "queue": None if r[10] is None else dict(zip(queue, r[7:], strict=True)),
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ rules
    def publish_rules(self, rules: Programme) -> int:
        """Make ``rules`` the active one now and announce it to tills in the change feed
        (``programme.publish``; the console may give it an effective time)."""
        return programme.publish(self.context, rules).version

    def active_rules_version(self, tx: Tx | None = None) -> int | None:
        return self.context.programmes.active_version(tx)

    def rules_document(self, version: int, tx: Tx | None = None) -> str:
        return self.context.programmes.document(version, tx)

    def rules(self, version: int | None = None, tx: Tx | None = None) -> Programme | None:
        return self.context.programmes.get(version, tx)

    def active_rules(self) -> ActiveRules:
        """The programme every till is to run (``initialise`` publishes one, so there is
        always one)."""
        programme.announce_due(self.context)
        version = self.active_rules_version()
        assert version is not None, "the back office is initialised with a programme"
        return ActiveRules(version, self.rules_document(version))

    # ------------------------------------------------------------------ monitoring
    def health(self) -> Backlogs:
        """The active rules version and the two workers' backlogs (events)."""
        return Backlogs(
            self.active_rules_version(), project.backlog(self.context), verify.backlog(self.context)
        )

    def kpi(self, period: Period) -> dict[str, Any]:
        """The programme's KPI report over ``period`` (``kpi.report``)."""
        return kpi_report(self.context, period)

    # ------------------------------------------------------------------ console users
    def add_user(
        self,
        login: str,
        password: str,
        role: str,
        *,
        name: str | None = None,
        store_id: str | None = None,
        actor: str = "cli",
    ) -> User:
        """A new console user (``UserError`` when the login is taken or a field is
        invalid); audited as ``actor``."""
        return users.add_user(
            self.context, login, password, role, name=name, store_id=store_id, actor=actor
        )

    def change_user(
        self,
        login: str,
        *,
        actor: str,
        role: str | None = None,
        password: str | None = None,
        active: bool | None = None,
    ) -> User:
        """A console user's role, password or active flag changed (audited)."""
        return users.change_user(
            self.context, login, actor=actor, role=role, password=password, active=active
        )

    def list_users(self) -> list[User]:
        return users.list_users(self.context)

    def ensure_demo_owner(self, login: str = "owner") -> str | None:
        """The console's demo owner ``login``, made with a random password, which is
        returned (to be shown once); ``None`` when the user exists (its password stays)."""
        if users.get_user(self.context, login) is not None:
            return None
        password = secrets.token_urlsafe(9)
        self.add_user(login, password, "owner", name="Владелец программы", actor="seed")
        return password

    def console_secret(self) -> bytes:
        return users.console_secret(self.context)

    def sign_in(self, login: str, password: str) -> SignIn:
        """A console sign-in: the user, or why not (wrong password, locked out)."""
        return users.sign_in(self.context, login, password)

    def open_session(self, user: User) -> str:
        return users.open_session(self.context, user)

    def session_user(self, token: str) -> User | None:
        return users.session_user(self.context, token)

    def close_session(self, token: str) -> None:
        users.close_session(self.context, token)

    def audit_entries(self, *, limit: int = 100, before: int | None = None) -> list[audit.Entry]:
        """The audit log's rows, newest first (``before``: older than that row number)."""
        return audit.entries(self.db, limit=limit, before=before)

    def verify_audit(self) -> audit.Verdict:
        """The audit log's hash chain checked row by row."""
        return audit.verify(self.db)

    # ------------------------------------------------------------------ ingest
    def push(
        self, terminal: Terminal, req: PushRequest, sent_at: datetime | None = None
    ) -> dict[str, Any]:
        """Apply a batch in one transaction; one result per event (``ingest``).
        ``sent_at``: when the till sent it (its clock), for the skew it is told."""
        if req.terminal_id != terminal.terminal_id:
            raise ProtocolError(403, "wrong_terminal", "this token belongs to another terminal")
        for i, ev in enumerate(req.events):
            if ev.terminal_id != terminal.terminal_id:
                raise ProtocolError(
                    403,
                    "wrong_terminal",
                    f"events[{i}] belongs to terminal {ev.terminal_id}, not this token's",
                    index=i,
                )
        now = self.clock.now()
        skew = (sent_at - now).total_seconds() if sent_at else None
        out = ingest.push(self.context, terminal, req.events, now, skew)
        self.context.pushes.note()
        out["server_time"] = now.isoformat()
        out["clock_skew_seconds"] = None if skew is None else round(skew, 1)
        return out

    def verdicts(self, terminal: Terminal, after: int, limit: int) -> dict[str, Any]:
        """The till's decided verdicts after position ``after``, at most ``limit``
        (``project.verdicts``)."""
        return project.verdicts(self.context, terminal.terminal_id, after, limit)

    # ------------------------------------------------------------------ feed (``feed``)
    def changes(
        self, cursor: str | None, limit: int = 500, store_id: str | None = None
    ) -> dict[str, Any]:
        """A page of changes after ``cursor``; 410 ``cursor_expired`` when pruned past it.
        A programme version whose effective time has come enters the feed first.
        ``store_id``: the reading till's store (``feed``'s scope; None: all in full)."""
        programme.announce_due(self.context)
        return feed.changes(self.db, cursor, limit, store_id)

    def prune_changes(self, keep_after: int) -> int:
        """Drop changes up to ``keep_after``; cursors before it are then expired."""
        return feed.prune_changes(self.db, keep_after)

    def feed_head(self) -> int:
        return feed.feed_head(self.db)

    def snapshot_lines(
        self, page: int = feed.SNAPSHOT_PAGE, store_id: str | None = None
    ) -> Iterator[bytes]:
        """The member snapshot as NDJSON chunks (``feed.snapshot_lines``); ``store_id``:
        the reading till's store (``feed``'s scope; None: all in full)."""
        return feed.snapshot_lines(
            self.db,
            self.active_rules_version(),
            page,
            coupons.revoked_in_force(self.context),
            member_admin.blocked_ids(self.context),
            store_id,
        )

    # ------------------------------------------------------------------ members
    def lookup(self, *, phone_hash: str | None = None, code: str | None = None) -> dict[str, Any]:
        if bool(phone_hash) == bool(code):
            raise ProtocolError(400, "bad_query", "give exactly one of phone_hash or code")
        where, value = ("phone_hash", phone_hash) if phone_hash else ("code", code)
        if not value or not value.isascii() or not value.isalnum() or len(value) > 64:
            raise ProtocolError(404, "member_not_found", "no such member")
        with self.db.reading() as tx:
            row = tx.one(
                f"SELECT {feed.RECORD_COLS} FROM members WHERE {where} = ? AND merged_into IS NULL",
                (value,),
            )
        if row is None:
            raise ProtocolError(404, "member_not_found", "no such member")
        return feed.record_from_row(row)

    def member_token(self, code: str, ttl_seconds: int = 300) -> dict[str, Any]:
        try:
            code = check_member_code(code)
        except AgentError as e:
            raise ProtocolError(400, "bad_member_code", e.message_en) from None
        self.lookup(code=code)
        now = self.clock.now()
        return {
            "token": issue_member_token(self._token_signer(), code, now, ttl_seconds),
            "expires_at": (now + timedelta(seconds=ttl_seconds)).isoformat(),
        }

    def load_members(self, rows: Iterator[tuple[Any, ...]], store_id: str | None = None) -> int:
        """Bulk insert members (demo seed): rows in the till's ``MEMBER_LOAD_COLUMNS`` order."""
        sql = (
            "INSERT INTO members(member_id, code, phone_hash, phone_masked, first_name, state, "
            "balance, available, pending, expiring_points, expiring_on, tier, "
            "consent_programme, consent_marketing, registered_at, store_id, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        )
        count = 0
        chunk: list[tuple[Any, ...]] = []
        with self.db.transaction() as tx:
            for r in rows:
                chunk.append((*r[:12], int(r[14]), int(r[15]), r[12], store_id, r[16]))
                if len(chunk) >= 10_000:
                    rollups.loaded(tx, [(store_id, c[5]) for c in chunk])  # points held
                    tx.executemany(sql, chunk)
                    count += len(chunk)
                    chunk.clear()
            rollups.loaded(tx, [(store_id, c[5]) for c in chunk])
            tx.executemany(sql, chunk)
            count += len(chunk)
        return count

    # ------------------------------------------------------------------ console: stores
    def stores_overview(self, store_scope: str | None = None) -> tills.Overview:
        """Stores and tills with the silent-till alarm (``store_scope``: one store's)."""
        return tills.overview(self.context, store_scope)

    def add_store(self, store_id: str, name: str, *, actor: str) -> tills.StoreRow:
        """A new store from the console (``tills.StoreError`` if refused), audited."""
        return tills.add_store(self.context, store_id, name, actor=actor)

    def console_enroll_code(self, store_id: str, *, actor: str) -> tills.EnrollCode:
        """A one-time enrollment code for a store, made by a person (audited), with its
        expiry (``enroll_code``; 404 ``unknown_store`` for a store that is not there)."""
        code = self.enroll_code(store_id, actor=actor)
        return tills.EnrollCode(code, store_id, tills.code_expiry(self.context, token_hash(code)))

    def set_silent_threshold(self, minutes: str | int, *, actor: str) -> int:
        """The silent-till alarm's threshold, minutes (audited)."""
        return tills.set_silent_threshold(self.context, minutes, actor=actor)

    def closed_launch(self, period: Period, store_scope: str | None = None) -> list[dict[str, Any]]:
        """The KPI report's per-cashier rows over ``period`` (``tills.closed_launch``)."""
        return tills.closed_launch(self.context, period, store_scope)

    # ------------------------------------------------------------------ console: members
    def find_members(self, query: str, store_scope: str | None = None) -> SearchResult:
        """Members by phone, card code or name prefix (``member_admin.search``)."""
        return member_admin.search(self.context, query, store_scope=store_scope)

    def member_profile(self, member_id: str, store_scope: str | None = None) -> Profile:
        """One member's profile for the hotline (``member_admin.profile``)."""
        return member_admin.profile(self.context, member_id, store_scope=store_scope)

    def adjust_points(
        self,
        member_id: str,
        points: str,
        reason: str,
        *,
        actor: str,
        store_scope: str | None = None,
    ) -> Adjusted:
        """A manual adjustment of points as a ledger entry, audited (``member_ops.adjust``)."""
        return member_ops.adjust(
            self.context, member_id, points, reason, actor=actor, store_scope=store_scope
        )

    def block_member(
        self,
        member_id: str,
        blocked: bool,
        reason: str,
        *,
        actor: str,
        store_scope: str | None = None,
    ) -> None:
        """Block or unblock a member's card, audited (``member_ops.set_blocked``)."""
        member_ops.set_blocked(
            self.context, member_id, blocked, reason, actor=actor, store_scope=store_scope
        )

    def merge_members(
        self,
        member_id: str,
        other_code: str,
        reason: str,
        *,
        actor: str,
        store_scope: str | None = None,
    ) -> str:
        """Merge the member with card ``other_code`` into ``member_id`` (``member_ops.merge``)."""
        return member_ops.merge(
            self.context, member_id, other_code, reason, actor=actor, store_scope=store_scope
        )

    def erase_member(
        self, member_id: str, reason: str, *, actor: str, store_scope: str | None = None
    ) -> Act:
        """Destroy a member's personal data (152-FZ) with its act (``member_ops.erase``)."""
        return member_ops.erase(
            self.context, member_id, reason, actor=actor, store_scope=store_scope
        )

    def erasure_act(self, member_id: str, store_scope: str | None = None) -> Act:
        """A member's destruction act (``member_ops.erasure_act``)."""
        return member_ops.erasure_act(self.context, member_id, store_scope=store_scope)

    def held_purchases(self, store_scope: str | None = None) -> list[review.Held]:
        """Purchases held for review, with claim and re-score (``review.held``)."""
        return review.held(self.context, store_scope=store_scope)

    def release_purchase(
        self, event_id: str, reason: str, *, actor: str, store_scope: str | None = None
    ) -> str:
        """Apply a held purchase as claimed, audited (``review.release``)."""
        return review.release(self.context, event_id, reason, actor=actor, store_scope=store_scope)

    def refuse_purchase(
        self, event_id: str, reason: str, *, actor: str, store_scope: str | None = None
    ) -> None:
        """Keep a held purchase refused, audited (``review.refuse``)."""
        review.refuse(self.context, event_id, reason, actor=actor, store_scope=store_scope)

    # ------------------------------------------------------------------ console: dashboard
    def dashboard_view(
        self,
        kind: str | None,
        start: str | None = None,
        end: str | None = None,
        *,
        store_id: str | None = None,
        cashier_id: str | None = None,
        store_scope: str | None = None,
    ) -> dashboard.Dashboard:
        """The dashboard of a period, store, cashier (``dashboard.show``; scope forced)."""
        return dashboard.show(self.context, kind, start, end, store_id, cashier_id, store_scope)

    def dashboard_set_plan(
        self, month: str, figure: str, value: str, store_id: str | None, *, actor: str
    ) -> int:
        """Set a month's plan for a figure, audited (``dashboard.set_plan``)."""
        return dashboard.set_plan(self.context, month, figure, value, store_id, actor)

    # ------------------------------------------------------------------ console: coupons
    def coupon_issue(
        self,
        mode: str,
        kind: str,
        value: str,
        valid_from: str,
        valid_until: str,
        min_cheque: str,
        *,
        count: str = "",
        members: str = "",
        note: str = "",
        actor: str,
    ) -> coupons.Batch:
        """Sign and register coupons from the console's form, audited (``coupons.issue_form``)."""
        return coupons.issue_form(
            self.context,
            mode,
            kind,
            value,
            valid_from,
            valid_until,
            min_cheque,
            count=count,
            members=members,
            note=note,
            actor=actor,
        )

    def coupon_batches(self, limit: int = 100) -> list[coupons.Batch]:
        return coupons.batches(self.context, limit)

    def coupon_batch(
        self, batch_id: str
    ) -> tuple[coupons.Batch, list[coupons.Issued], list[coupons.Redemption]] | None:
        """One issue with its coupons and redemptions (``coupons.batch``)."""
        return coupons.batch(self.context, batch_id)

    def coupon_revoke(
        self, batch_id: str, coupon_id: str | None, reason: str, *, actor: str
    ) -> int:
        """Revoke a coupon or a whole issue, to tills through the feed (``coupons.revoke``)."""
        return coupons.revoke(self.context, batch_id, coupon_id, reason, actor=actor)

    def coupon_sheet(self, batch_id: str, fmt: str, lang: str = "ru") -> bytes | None:
        """An issue's printable PDF sheet (``fmt`` "pdf", its words in ``lang``) or CSV
        (UTF-8); None if unknown."""
        found = coupons.batch(self.context, batch_id)
        if found is None:
            return None
        b, items, _ = found
        if fmt == "pdf":
            return couponsheet.pdf(b, items, lang)
        return couponsheet.csv_text(b, items).encode("utf-8")

    # ------------------------------------------------------------------ console: rules
    def rules_overview(
        self,
    ) -> tuple[tuple[int, dict[str, Any]] | None, list[programme.Activation]]:
        """The active version with its document, and the publications (``programme``)."""
        return programme.active_document(self.context), programme.schedule(self.context)

    def rules_version_document(self, version: int) -> dict[str, Any] | None:
        return programme.version_document(self.context, version)

    def rules_check(self, text: str, fmt: str) -> programme.Draft:
        """A draft checked as ``kassa rules check`` does, with its difference from the
        active version (``programme.read_draft``)."""
        return programme.read_draft(self.context, text, fmt)

    def rules_preview(
        self,
        text: str,
        fmt: str,
        lines: str,
        at: str,
        points: str,
        spend: str,
        redeem: str,
    ) -> tuple[programme.Draft, Quote, datetime]:
        """A cheque scored under a draft by the tills' engine (``programme.preview_form``)."""
        return programme.preview_form(self.context, text, fmt, lines, at, points, spend, redeem)

    def rules_publish(
        self, text: str, fmt: str, effective_at: str, *, actor: str
    ) -> programme.Activation:
        """A draft published with its effective time, audited (``programme.publish_form``)."""
        return programme.publish_form(self.context, text, fmt, effective_at, actor)

    # ------------------------------------------------------------------ console: segments
    def segments(self) -> list[audiences.Segment]:
        """Every saved segment (``audiences.segments``)."""
        return audiences.segments(self.context)

    def segment(self, segment_id: str) -> audiences.Segment | None:
        return audiences.get(self.context, segment_id)

    def segment_rules(self, doc: Any) -> audiences.Rules:
        """A rule set checked against the active programme (``audiences.parse_rules``)."""
        return audiences.parse_rules(doc, self.rules())

    def segment_preview(self, doc: Any) -> int:
        """How many members the rule set ``doc`` selects now; ``SegmentError`` naming the
        field when it is refused."""
        return audiences.count(self.context, self.segment_rules(doc))

    def segment_save(
        self,
        name: str,
        doc: Any,
        control_pct: str | int = 0,
        *,
        actor: str,
        segment_id: str | None = None,
        salt: str | None = None,
    ) -> audiences.Segment:
        """Create (``segment_id`` None) or change a segment, audited in its transaction;
        every field is checked before anything is written (``SegmentError``)."""
        title = audiences.parse_name(name)
        rules = self.segment_rules(doc)
        pct = audiences.parse_pct(control_pct)
        now = self.clock.now()
        with self.db.transaction() as tx:
            seg = audiences.save(
                tx, now, actor, title, rules, pct, segment_id=segment_id, salt=salt
            )
            audit.record(
                tx,
                now,
                actor,
                "segment_saved" if segment_id else "segment_created",
                seg.segment_id,
                {"name": title, "rules": audiences.rules_json(rules), "control_pct": pct},
            )
        return seg

    def segment_evaluate(self, segment_id: str) -> audiences.Evaluation:
        """Materialise a segment's members now, with their entered/left events."""
        return audiences.evaluate(self.context, segment_id)

    def segment_export(
        self,
        segment_id: str,
        fmt: str = "csv",
        delimiter: str = ";",
        *,
        bom: bool = True,
        actor: str | None = None,
    ) -> Iterator[bytes]:
        """A segment's members now as CSV or NDJSON chunks (``audiences.export_chunks``);
        the format and the segment are checked before the first chunk. A person's
        download (``actor``) is audited: it takes members' data out of the back office."""
        audiences.parse_export(fmt, delimiter)
        seg = audiences.get(self.context, segment_id)
        if seg is None:
            raise audiences.not_found(segment_id)
        if actor is not None:
            with self.db.transaction() as tx:
                audit.record(
                    tx,
                    self.clock.now(),
                    actor,
                    "segment_exported",
                    segment_id,
                    {"format": fmt, "delimiter": delimiter},
                )
        return audiences.export_chunks(self.context, seg, fmt, delimiter, bom=bom)

    def segment_schedule_export(
        self, segment_id: str, fmt: str, delimiter: str, every_hours: str | int, *, actor: str
    ) -> audiences.ScheduledExport:
        """A segment's export written every ``every_hours`` (``run_segment_exports``), audited."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            ex = audiences.schedule(tx, now, actor, segment_id, fmt, delimiter, every_hours)
            audit.record(
                tx,
                now,
                actor,
                "segment_export_scheduled",
                segment_id,
                {"format": ex.format, "delimiter": ex.delimiter, "every_hours": ex.every_hours},
            )
        return ex

    def segment_exports(self, segment_id: str | None = None) -> list[audiences.ScheduledExport]:
        return audiences.scheduled(self.context, segment_id)

    def run_segment_exports(self, directory: Path) -> list[Path]:
        """The scheduled exports due now, written into ``directory``."""
        return audiences.run_due_exports(self.context, directory)

    def audience_scores(self) -> int:
        """Recompute the members' RFM and ABC scores now (``audiences.score``)."""
        return audiences.score(self.context)

    def member_scores(self, member_ids: list[str]) -> dict[str, audiences.Score]:
        return audiences.scores_of(self.context, member_ids)

    def audiences_nightly(self, export_dir: Path | None = None) -> audiences.Nightly:
        """The nightly job: scores, every segment evaluated, due exports (``audiences.nightly``;
        ``audiences.AudienceWorker`` runs it once a local day)."""
        return audiences.nightly(self.context, export_dir)

    # ---- members' pages
    def member_send_code(self, gateway: SmsGateway, phone: str, client: str) -> member_otp.Sent:
        """A one-time code sent to ``phone`` (limits per phone and per ``client`` address)."""
        return member_otp.send_code(
            self.db, self._phone_key(), gateway, phone, client, self.clock.now()
        )

    def member_check_code(self, phone: str, code: str) -> str:
        """The phone's hash when ``code`` is its live code (``member_otp.check_code``)."""
        return member_otp.check_code(self.db, self._phone_key(), phone, code, self.clock.now())

    def member_card(self, member_id: str) -> member_web.Card:
        """What the member sees on their card (``member_web.card``)."""
        return member_web.card(self.context, member_id, self.clock.now())

    def member_sign_in(
        self, phone: str, code: str, store_id: str | None = None, poster_id: str | None = None
    ) -> str:
        """The session token of a phone whose ``code`` checks (``member_otp.check_code``),
        signed in to its card when it has one (``member_signup.open_session``)."""
        self.member_check_code(phone, code)
        return member_signup.open_session(
            self.context, self._phone_key(), phone, store_id, poster_id, self.clock.now()
        )

    def member_session(self, token: str) -> member_signup.Session | None:
        """The live member session of ``token`` (None when unknown or ended)."""
        return member_signup.session(self.context, token, self.clock.now())

    def member_sign_out(self, token: str) -> None:
        member_signup.close_session(self.context, token)

    def member_join(
        self,
        token: str,
        first_name: str,
        birthday: str,
        consent_programme: bool,
        consent_marketing: bool,
    ) -> str:
        """The session's phone joins the programme (``member_signup.join``): the card's id."""
        return member_signup.join(
            self.context,
            token,
            first_name,
            birthday,
            consent_programme,
            consent_marketing,
            self.clock.now(),
        )

    def member_consents(self, member_id: str) -> tuple[member_signup.Consent, ...]:
        return member_signup.consents(self.context, member_id)

    def member_withdraw_marketing(self, member_id: str) -> bool:
        """The marketing consent withdrawn, recorded and fed to the tills."""
        return member_signup.withdraw_marketing(self.context, member_id, self.clock.now())

    def member_request_erase(self, member_id: str) -> str:
        """The member's request to erase, for the console's erase flow (its time)."""
        return member_signup.request_erase(self.context, member_id, self.clock.now())

    def member_erase_requested(self, member_id: str) -> str | None:
        return member_signup.erase_requested(self.context, member_id)

    def member_tokens(
        self, member_id: str, count: int = 3
    ) -> list[member_signup.WindowToken] | None:
        """The member's QR tokens for the current window and the next ones (None for a
        card merged away, erased or unknown), signed here: the key never leaves."""
        code = member_signup.card_code(self.context, member_id)
        if code is None:
            return None
        signer = self._token_signer()
        return member_signup.token_windows(
            lambda c, start, ttl: issue_member_token(signer, c, start, ttl),
            code,
            self.clock.now(),
            count,
        )

    def member_signups(self, store_scope: str | None = None) -> list[dict[str, Any]]:
        """Members who joined on the members' pages, per store and poster."""
        return member_signup.signups(self.context, store_scope)

    def member_consent_version(self, kind: str) -> str:
        """The version of the consent text ``kind`` (programme, marketing) shown now."""
        if kind == "marketing":
            return member_signup.MARKETING_TEXT_VERSION
        rules = self.rules()
        assert rules is not None
        return rules.consent_text_version

    def member_poster(
        self, store_id: str, poster_id: str, base_url: str, lang: str = "ru"
    ) -> bytes:
        """A store's sign-up poster (PDF, ``poster.pdf``) for ``poster_id`` with the store's
        name, its words in ``lang`` (``ru`` unless ``en``); an unknown store or a poster id
        other than 1-40 letters, digits, ``-``, ``_`` is refused."""
        poster_id = poster_id.strip()
        if member_signup.source_id(poster_id) is None:
            raise member_signup.SignupError(
                "poster: 1 to 40 Latin letters, digits, '-' or '_'",
                "плакат: от 1 до 40 латинских букв, цифр, '-' или '_'",
                field="poster",
            )
        with self.db.reading() as tx:
            known = tx.one("SELECT name FROM stores WHERE store_id = ?", (store_id,))
        if known is None or member_signup.source_id(store_id) is None:
            raise member_signup.SignupError(
                f"there is no store {store_id[:40]!r}",
                f"магазина {store_id[:40]!r} нет",
                field="store",
            )
        url = poster.join_url(base_url, store_id, poster_id)
        return poster.pdf(url, store_id, str(known[0]), poster_id, lang)

    # ------------------------------------------------------------------ member events
    def events_page(
        self, after: str | None, limit: str | None, types: str | None
    ) -> dict[str, Any]:
        """A page of the member events' pull feed (``event_feed.page``) from the request's
        parameters as text (None: not given); ``FeedQueryError`` names a bad one."""
        return event_feed.page(self.db, after, limit, types)

    def run_triggers(self, settings: triggers.Settings | None = None) -> int:
        """Today's scheduled member events, once (``triggers.run``: a re-run the same day
        emits nothing); returns how many it emitted."""
        return triggers.run(self.context, settings)

    def _token_signer(self) -> TokenSigner:
        return TokenSigner(1, load_ed25519_private_key(self.setting("token_private_key")))

    def _phone_key(self) -> bytes:
        return bytes.fromhex(self.setting("phone_hash_key"))

    # ------------------------------------------------------------------ console: webhooks
    def webhook_deliverer(self, **kwargs: Any) -> webhooks.Deliverer:
        """The delivery worker of this back office's subscriptions, its bodies CloudEvents
        (``event_feed.cloud_event``); ``kwargs`` go to ``webhooks.Deliverer`` (clock,
        transport, rng)."""
        return webhooks.Deliverer(self.context, event_feed.cloud_event, **kwargs)

    def webhook_subscriptions(self) -> list[webhooks.Subscription]:
        return webhooks.subscriptions(self.db, self.clock.now())

    def webhook_subscription(self, subscription_id: int) -> webhooks.Subscription:
        """One subscription (``WebhookError`` ``unknown_subscription`` if there is none)."""
        return webhooks.subscription(self.db, subscription_id, self.clock.now())

    def webhook_add(self, url: str, types: str | Sequence[str], *, actor: str) -> webhooks.Created:
        """A new subscription with its secret (shown once), audited."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            made = webhooks.add(tx, url, types, now)
            self._webhook_audit(tx, now, actor, "webhook_added", made.subscription)
        return made

    def webhook_set_types(
        self, subscription_id: int, types: str | Sequence[str], *, actor: str
    ) -> webhooks.Subscription:
        """The event types a subscription gets from now on (empty: all), audited."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            sub = webhooks.set_types(tx, subscription_id, types, now)
            self._webhook_audit(tx, now, actor, "webhook_types_set", sub)
        return sub

    def webhook_rotate(self, subscription_id: int, *, actor: str) -> webhooks.Created:
        """A new secret (shown once); the old one also signs for a day, audited."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            made = webhooks.rotate(tx, subscription_id, now)
            self._webhook_audit(tx, now, actor, "webhook_secret_rotated", made.subscription)
        return made

    def webhook_set_active(
        self, subscription_id: int, active: bool, *, actor: str
    ) -> webhooks.Subscription:
        """Enable or disable a subscription, audited."""
        now = self.clock.now()
        action = "webhook_enabled" if active else "webhook_disabled"
        with self.db.transaction() as tx:
            sub = webhooks.set_active(tx, subscription_id, active, now)
            self._webhook_audit(tx, now, actor, action, sub)
        return sub

    def webhook_replay(
        self, subscription_id: int, first: int | str, last: int | str | None = None, *, actor: str
    ) -> int:
        """Send again one event (outbox id ``first``) or the range ``first``..``last`` to
        a subscription, audited; returns how many deliveries were made due."""
        a = webhooks.whole("first", first)
        b = None if last is None or last == "" else webhooks.whole("last", last)
        now = self.clock.now()
        with self.db.transaction() as tx:
            n = webhooks.replay(tx, subscription_id, a, b, now)
            sub = webhooks.subscription_in(tx, subscription_id, now)
            self._webhook_audit(tx, now, actor, "webhook_replayed", sub, first=a, last=b, n=n)
        return n

    def webhook_log(
        self, subscription_id: int | None = None, *, limit: int = 100, before: int | None = None
    ) -> list[webhooks.Attempt]:
        """The delivery log, newest first (``webhooks.attempts``)."""
        return webhooks.attempts(self.db, subscription_id, limit=limit, before=before)

    def webhook_dead(
        self, subscription_id: int | None = None, limit: int = 100
    ) -> list[webhooks.Delivery]:
        """The dead letters (failing for 72 hours), oldest first, to replay."""
        return webhooks.deliveries(self.db, subscription_id, "dead", limit)

    def webhook_replay_between(
        self,
        subscription_id: int,
        since: str | datetime,
        until: str | datetime,
        *,
        actor: str,
    ) -> int:
        """Send again a subscription's events written from ``since`` up to ``until``
        (typed times are UTC), audited; returns how many deliveries were made due."""
        a, b = webhooks.moment("since", since), webhooks.moment("until", until)
        if b <= a:
            raise webhooks.WebhookError(
                "until: a time after since",
                "until: время позже since",
                code="bad_replay",
                field="until",
            )
        now = self.clock.now()
        with self.db.transaction() as tx:
            ids = webhooks.span(tx, a, b)
            if ids is None:
                raise webhooks.WebhookError(
                    "no event was written in that time",
                    "за это время событий не было",
                    code="nothing_to_replay",
                    field="since",
                )
            n = webhooks.replay(tx, subscription_id, ids[0], ids[1], now)
            sub = webhooks.subscription_in(tx, subscription_id, now)
            self._webhook_audit(
                tx,
                now,
                actor,
                "webhook_replayed",
                sub,
                first=ids[0],
                last=ids[1],
                since=a.isoformat(),
                until=b.isoformat(),
                n=n,
            )
        return n

    def webhook_delete(self, subscription_id: int, *, actor: str) -> webhooks.Subscription:
        """Drop a subscription with its queue and log, audited; returns it as it was."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            sub = webhooks.delete(tx, subscription_id, now)
            self._webhook_audit(tx, now, actor, "webhook_deleted", sub)
        return sub

    def webhook_health(self, subscription_ids: Sequence[int]) -> dict[int, webhooks.Health]:
        """Each subscription's last attempt and its deliveries being retried."""
        return webhooks.health(self.db, subscription_ids)

    def webhook_delivery_log(
        self, subscription_id: int, *, limit: int = 50, before: int | None = None
    ) -> list[webhooks.LogRow]:
        """A subscription's delivery log with each attempt's event, newest first."""
        return webhooks.delivery_log(self.db, subscription_id, limit=limit, before=before)

    @staticmethod
    def _webhook_audit(
        tx: Tx, now: datetime, actor: str, action: str, sub: webhooks.Subscription, **extra: Any
    ) -> None:
        """The audit row of a change to ``sub``: its URL, types and state, never its secret."""
        detail = {"url": sub.url, "types": list(sub.types), "state": sub.state, **extra}
        audit.record(tx, now, actor, action, str(sub.id), detail)
