"""`kassa backoffice ...`, `kassa enroll`, `kassa sync ...`: the sync commands.

Kept apart from ``kassa.cli`` so the till commands do not import the network stack.

Errors follow the CLI's contract (``kassa.cli``): ``{"error", "title", "message_ru",
"message_en", "details"}`` on stdout, a line on stderr, exit 2 (bad input, not found,
refused) or 3 (database). One exit code is particular to these commands: 4 when the back
office cannot be reached (connection refused, timeout, 5xx): nothing is lost, try again
later (`kassa sync now` keeps every event queued).

Only ``backoffice serve`` and ``backoffice seed`` create a SQLite back office; the other
``backoffice`` commands need an existing one, so a mistyped ``--db`` is an error instead
of a new empty back office.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.errors import AgentError, InputError, NotFoundError, StoreError
from kassa.cli.common import emit

UNREACHABLE_EXIT = 4
"""Exit code of an enroll or sync that could not reach the back office (try again)."""


class BackofficeNotFound(NotFoundError):
    """``--db`` names no SQLite back office: no such file, or a file that is not one."""

    code = "backoffice_not_found"
    title_ru = "Бэк-офис не найден"
    title_en = "Back office not found"


class BackofficeDbError(StoreError):
    """The back office database could not be opened (PostgreSQL down or refusing, a
    damaged SQLite file, no permission)."""

    code = "backoffice_db_error"
    title_ru = "Ошибка базы бэк-офиса"
    title_en = "Back office database error"


class BackofficeRefused(AgentError):
    """The back office answered and refused (enrollment code used, token revoked...);
    ``code`` is the back office's own error code when it gave one."""

    code = "backoffice_refused"
    title_ru = "Бэк-офис отказал"
    title_en = "Back office refused"

    def __init__(self, code: str | None, message_en: str, message_ru: str, **details: Any):
        super().__init__(message_en, message_ru, **details)
        if code:
            self.code = code


class PasswordsDiffer(InputError):
    """A new console user's password typed twice, differently: nothing is created."""

    code = "passwords_differ"


class NothingToChange(InputError):
    """``kassa backoffice user set`` given nothing to change."""

    code = "nothing_to_change"


class BackofficeUnreachable(AgentError):
    """No answer from the back office: printed like every error, exit ``UNREACHABLE_EXIT``."""

    code = "backoffice_unreachable"
    title_ru = "Нет связи с бэк-офисом"
    title_en = "Back office unreachable"


# What a refusal means for the operator, by the back office's error code.
REFUSALS_RU = {
    "bad_enroll_code": "код подключения не принят: проверьте его или получите новый "
    "(kassa backoffice enroll-code)",
    "enroll_code_used": "код подключения уже использован: получите новый "
    "(kassa backoffice enroll-code)",
    "enroll_code_expired": "срок кода подключения истёк: получите новый "
    "(kassa backoffice enroll-code)",
    "terminal_exists": "касса с таким идентификатором уже подключена к бэк-офису",
    "bad_token": "бэк-офис не принял токен кассы (касса отключена?): подключите её заново "
    "(kassa enroll)",
    "unauthenticated": "бэк-офис не принял токен кассы: подключите её заново (kassa enroll)",
}


def default_backoffice_db() -> str:
    """``$KASSA_BACKOFFICE_DB``, else backoffice.db in the user data dir."""
    if env := os.environ.get("KASSA_BACKOFFICE_DB"):
        return env
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return str(base / "kassa" / "backoffice.db")


class Progress:
    """A one-line text progress bar on stderr (only when stderr is a terminal or forced)."""

    def __init__(self, what: str, *, force: bool = False) -> None:
        self.what = what
        self.enabled = force or sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.1:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        if total:
            filled = int(30 * min(done, total) / total)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r{self.what} [{bar}] {done}/{total} ({rate:,.0f}/s)")
        else:
            sys.stderr.write(f"\r{self.what}: {done:,} ({rate:,.0f}/s)")
        sys.stderr.flush()

    def done(self) -> None:
        """End the bar's line (once, and only if a bar was drawn)."""
        if self.enabled and self.last:
            sys.stderr.write("\n")
            self.last = 0.0


def _counted(
    rows: Iterator[tuple[Any, ...]], bar: Progress, total: int
) -> Iterator[tuple[Any, ...]]:
    """``rows`` unchanged, telling ``bar`` how many went by (every 5,000 rows)."""
    for n, row in enumerate(rows, start=1):
        if n % 5_000 == 0:
            bar(n, total)
        yield row
    bar(total, total)


def _fail(error: AgentError, exit_code: int) -> int:
    """Print ``error`` as ``kassa.cli.main`` prints every error, for an exit code of its
    own (``main`` gives 2 or 3)."""
    from kassa.cli.common import emit as emit_error

    emit_error(error.to_dict())
    sys.stderr.write(f"kassa: {error.title}: {error.message_ru}\n")
    return exit_code


def _check_backoffice_file(path: Path) -> None:
    """Refuse a path that holds no back office, creating nothing: neither the file nor its
    -wal/-shm (a read-only probe)."""
    import sqlite3

    hint_en = "create one with `kassa backoffice serve` or `kassa backoffice seed`, or pass --db"
    hint_ru = "создайте её командой kassa backoffice serve или seed, или укажите --db"
    if not path.is_file():
        raise BackofficeNotFound(
            f"no back office database at {path}: {hint_en}",
            f"нет базы бэк-офиса {path}: {hint_ru}",
            path=str(path),
        )
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = probe.execute(
                "SELECT 1 FROM schema_migrations WHERE name = '0001_initial'"
            ).fetchone()
        finally:
            probe.close()
    except sqlite3.Error:
        found = None
    if found is None:
        raise BackofficeNotFound(
            f"{path} is not a back office database: {hint_en}",
            f"{path} не является базой бэк-офиса: {hint_ru}",
            path=str(path),
        )


def read_db_file(args: argparse.Namespace) -> None:
    """``--db-file``: the database URL read from a file (its first line), so a PostgreSQL
    password is neither on the command line (``ps`` shows it to every user) nor in the
    unit; e.g. systemd's ``LoadCredential=`` file. Sets ``args.db``."""
    name = getattr(args, "db_file", None)
    if not name:
        return
    try:
        url = Path(name).read_text(encoding="utf-8").strip().splitlines()
    except OSError as e:
        raise BackofficeDbError(
            f"cannot read the database URL from {name}: {e.strerror or e}",
            f"не удалось прочитать адрес базы из {name}: {e.strerror or e}",
            db=name,
            reason=str(e),
        ) from None
    if not url or not url[0].strip():
        raise BackofficeDbError(
            f"{name} holds no database URL (expected one line, e.g. postgresql://...)",
            f"в {name} нет адреса базы (нужна одна строка, например postgresql://...)",
            db=name,
            reason="empty",
        )
    args.db = url[0].strip()


@contextlib.contextmanager
def _backoffice(args: argparse.Namespace, *, create: bool = False) -> Iterator[Any]:
    """The back office of ``--db``, migrated, closed on leaving. ``create``: a missing
    SQLite file becomes a new back office (serve, seed); otherwise ``BackofficeNotFound``."""
    from kassa.config import mask_url_password
    from sync.backoffice.db import Database, open_errors, sqlite_path
    from sync.backoffice.service import Backoffice

    read_db_file(args)
    path = sqlite_path(args.db)
    if path is not None and not create:
        _check_backoffice_file(path)
    try:
        bo = Backoffice(Database.open(args.db))
        bo.initialise()
    except open_errors() as e:
        where = str(path) if path is not None else mask_url_password(args.db)
        raise BackofficeDbError(
            f"cannot open the back office database {where}: {e}",
            f"не удалось открыть базу бэк-офиса {where}: {e}",
            db=where,
            reason=str(e),
        ) from None
    try:
        yield bo
    finally:
        bo.db.close()


SERVE_GRACE_S = 10
"""On SIGTERM, how long requests in flight (a push batch being applied) may take to finish,
seconds; one still running then is abandoned: its transaction never commits, the till
resends the batch. Within systemd's TimeoutStopSec=30."""


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, then exit 0: uvicorn stops accepting, lets requests in
    flight finish (``SERVE_GRACE_S``), the workers stop and the database closes. A signal
    that comes earlier (the database still opening) or later (closing) ends it as cleanly
    instead of killing it: the handler installed first only notes it, and stops a server
    that has not taken the signals over yet. Under systemd (``Type=notify``) it says
    ``READY=1`` once the port is bound and pings the watchdog, as the agent does."""
    import signal
    import threading

    import uvicorn

    from kassa.runtime import _Server
    from sync.backoffice.app import create_app, settle_for_serving

    stop = threading.Event()
    servers: list[Any] = []

    def on_signal(sig: int, frame: object) -> None:
        stop.set()
        for server in servers:
            server.should_exit = True

    signals = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        with _backoffice(args, create=True) as bo:
            if stop.is_set():
                return 0
            sys.stderr.write(
                f"kassa back office on http://{args.host}:{args.port} ({bo.db.dialect})\n"
            )
            app = create_app(bo, metrics=args.metrics)
            settle_for_serving()
            config = uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level="warning",
                timeout_graceful_shutdown=SERVE_GRACE_S,
            )
            servers.append(_Server(config))
            if not stop.is_set():
                servers[0].run()
        sys.stderr.write("kassa back office stopped\n")
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """SQLite: online backup API; PostgreSQL: pg_dump (``kassa.backoffice_backup``)."""
    from datetime import UTC, datetime

    from kassa.backoffice_backup import backup_postgres, backup_sqlite
    from sync.backoffice.db import sqlite_path

    read_db_file(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = sqlite_path(args.db)
    if path is not None:
        dest = Path(args.dest) if args.dest else path.with_name(f"backoffice-backup-{stamp}.db")
        emit(backup_sqlite(path, dest))
    else:
        dest = Path(args.dest) if args.dest else Path(f"backoffice-backup-{stamp}.dump")
        emit(backup_postgres(args.db, dest))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from kassa.backoffice_backup import restore_postgres, restore_sqlite
    from sync.backoffice.db import sqlite_path

    read_db_file(args)
    path = sqlite_path(args.db)
    if path is not None:
        emit(restore_sqlite(Path(args.backup), path))
    else:
        emit(restore_postgres(Path(args.backup), args.db))
    return 0


def cmd_terminals(args: argparse.Namespace) -> int:
    with _backoffice(args) as bo:
        emit({"terminals": bo.terminals()})
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from kassa.config import mask_url_password

    stores = {f"s{i}": f"Магазин {i}" for i in range(1, args.stores + 1)}
    with _backoffice(args, create=True) as bo:
        bar = Progress("Участники")
        try:
            seeded = bo.seed_demo(
                stores, args.members, progress=lambda rows: _counted(rows, bar, args.members)
            )
        finally:
            bar.done()
        codes = {sid: bo.enroll_code(sid) for sid in stores}
        token = bo.new_admin_token()
        console = _demo_owner(bo)
    emit(
        {
            "db": mask_url_password(args.db),
            "members_loaded": seeded.members_loaded,
            "members_before": seeded.members_before,
            "enroll_codes": codes,
            "admin_token": token,
            "console": console,
        }
    )
    return 0


def _demo_owner(bo: Any) -> dict[str, Any]:
    """The console's demo owner (login ``owner``): made with a random password, printed
    once; a back office that has one already keeps it (its password is not shown)."""
    return {"path": "/console/", "login": "owner", "password": bo.ensure_demo_owner("owner")}


def _new_password(args: argparse.Namespace) -> str:
    """A new user's password: the first line of stdin (``--password-stdin``), else asked
    twice without echo."""
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Пароль / password: ")
    if getpass.getpass("Ещё раз / again: ") != first:
        raise PasswordsDiffer("the two passwords differ", "пароли не совпадают")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _new_password(args)
    with _backoffice(args) as bo:
        user = bo.add_user(args.login, password, args.role, name=args.name, store_id=args.store_id)
    emit({"login": user.login, "name": user.name, "role": user.role, "store_id": user.store_id})
    return 0


def cmd_user_set(args: argparse.Namespace) -> int:
    """Change a console user: role, password (asked twice, or ``--password-stdin``),
    active; at least one of them. The change is audited as ``cli``."""
    wants_password = args.password or args.password_stdin
    if args.role is None and not wants_password and args.active is None:
        raise NothingToChange(
            "give --role, --password or --active",
            "укажите --role, --password или --active",
        )
    password = _new_password(args) if wants_password else None
    active = None if args.active is None else args.active == "yes"
    with _backoffice(args) as bo:
        user = bo.change_user(
            args.login.strip().lower(),
            actor="cli",
            role=args.role,
            password=password,
            active=active,
        )
    emit(
        {
            "login": user.login,
            "name": user.name,
            "role": user.role,
            "store_id": user.store_id,
            "active": user.active,
            "password_set": password is not None,
        }
    )
    return 0


def cmd_enroll_code(args: argparse.Namespace) -> int:
    with _backoffice(args) as bo:
        code = bo.enroll_code(args.store_id, store_name=args.store_name or args.store_id)
    emit({"store_id": args.store_id, "code": code})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sync.backoffice import kpi

    days = kpi.period(args.date_from, args.date_to)  # a bad period opens nothing
    with _backoffice(args) as bo:
        data = bo.kpi(days)
    if args.json:
        emit(data)
    else:
        sys.stdout.write(kpi.table(data) + "\n")
    return 0


def cmd_publish_rules(args: argparse.Namespace) -> int:
    from agent.rules import load_programme

    programme = load_programme(Path(args.file))  # a bad file opens nothing
    with _backoffice(args) as bo:
        version = bo.publish_rules(programme)
    emit({"published": version})
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    with _backoffice(args) as bo:
        token = bo.new_admin_token(grace_seconds=args.grace_minutes * 60)
    emit({"admin_token": token, "old_token_valid_minutes": args.grace_minutes})
    return 0


def cmd_revoke_till(args: argparse.Namespace) -> int:
    with _backoffice(args) as bo:
        emit(bo.revoke_till(args.terminal))
    return 0


def _http(url: str) -> Any:
    """The HTTP client to the back office at ``url`` (``sync.client.backoffice_http``: the
    timeouts every caller of the back office shares)."""
    from sync.client import backoffice_http

    return backoffice_http(url)


def _refused(e: Exception, what_en: str, what_ru: str, **details: Any) -> BackofficeRefused:
    """A ``PermanentError`` as the CLI error: the back office's code when it answered with
    one (``PermanentError.code``), with a Russian reading of the known ones."""
    text = str(e)
    code = getattr(e, "code", None)
    detail = getattr(e, "detail", None)
    ru = REFUSALS_RU.get(code or "", f"{what_ru}: {detail or text}")
    return BackofficeRefused(code, f"{what_en}: {text}", ru, reason=text, **details)


def cmd_enroll(args: argparse.Namespace) -> int:
    import httpx

    from sync.client import PermanentError, TransientError
    from sync.enroll import enroll_till, enrolled_store

    store = Path(args.store)
    bar = Progress("Загрузка участников")
    try:
        with _http(args.url) as http:
            info = enroll_till(store, http, args.code, name=args.name or "", progress=bar)
    except (PermanentError, TransientError) as e:
        bar.done()
        if enrolled_store(store):
            # joined, but the confirmation or the member snapshot did not arrive: the same
            # command run again finishes it (enroll_till takes on from where it stopped)
            en = (
                f"the till is enrolled but not finished ({e}): run the same kassa enroll "
                "command again (or `kassa sync now`, which loads the members)"
            )
            ru = (
                "касса подключена, но подключение не завершено (участники не загружены): "
                "повторите ту же команду kassa enroll (или выполните kassa sync now)"
            )
            if isinstance(e, TransientError):
                return _fail(
                    BackofficeUnreachable(en, ru, store=str(store), reason=str(e)),
                    UNREACHABLE_EXIT,
                )
            raise BackofficeRefused(
                "members_not_loaded", en, ru, store=str(store), reason=str(e)
            ) from None
        if isinstance(e, TransientError) or isinstance(e.__cause__, httpx.HTTPError):
            return _fail(
                BackofficeUnreachable(
                    f"back office {args.url} not reachable: {e.__cause__ or e}",
                    f"бэк-офис {args.url} недоступен, касса не подключена: проверьте адрес и сеть",
                    url=args.url,
                    reason=str(e.__cause__ or e),
                ),
                UNREACHABLE_EXIT,
            )
        raise _refused(
            e, "enrollment refused", "бэк-офис отказал в подключении", url=args.url
        ) from None
    finally:
        bar.done()
    emit(info)
    return 0


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Any:
    from kassa.cli.common import open_agent

    return open_agent(args, "kassa enroll", read_only=read_only)


def cmd_sync_now(args: argparse.Namespace) -> int:
    """One exchange with the back office (``kassa.wiring.sync_now``: push every waiting
    event, then pull verdicts and changes), its figures and the journal's after it."""
    from kassa.wiring import sync_now, sync_url
    from sync.client import PermanentError, TransientError

    agent = _open(args)
    try:
        url = sync_url(agent, args.url)
        bar = Progress("Отправка событий")
        try:
            done = sync_now(agent, url, progress=bar)
        except (TransientError, PermanentError) as e:
            bar.done()
            if isinstance(e, PermanentError):
                raise _refused(
                    e, "sync refused", "бэк-офис отказал", url=url, **_status(agent)
                ) from None
            return _fail(
                BackofficeUnreachable(
                    f"back office {url} not reachable: {e}; the events stay queued",
                    f"бэк-офис {url} недоступен; события сохранены и будут отправлены позже",
                    url=url,
                    reason=str(e),
                    **_status(agent),
                ),
                UNREACHABLE_EXIT,
            )
        bar.done()
        emit({"ok": True, **done, **_status(agent)})
    finally:
        agent.store.close()
    return 0


def _status(agent: Any) -> dict[str, Any]:
    """The journal's figures after an exchange: events waiting, awaiting a verdict and
    quarantined."""
    st = agent.sync_status()
    return {
        "events_waiting": st.events_waiting,
        "awaiting_verdict": st.awaiting_verdict,
        "quarantined": st.quarantined,
    }


def add_commands(sub: Any, store_default: str) -> None:
    """The back-office, enroll and sync commands. Every one but ``backoffice serve`` prints
    JSON, so their argument errors print the error JSON too (``kassa.cli.json_errors``)."""
    from kassa.cli.common import int_arg, json_errors, with_agent

    bo = sub.add_parser("backoffice", help="the central back office")
    bsub = bo.add_subparsers(dest="backoffice_command", required=True)

    def add(name: str, help_: str, fn: Any, under: Any = bsub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = under.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--db",
            default=default_backoffice_db(),
            help="SQLite file or postgresql://user@host/db (default: $KASSA_BACKOFFICE_DB, "
            "else backoffice.db in the user data dir; never put a password here: use "
            "$KASSA_BACKOFFICE_DB or --db-file)",
        )
        p.add_argument(
            "--db-file",
            help="file whose first line is the database URL (overrides --db; for a "
            "password: mode 0600 or a systemd credential)",
        )
        p.set_defaults(func=fn)
        return p if fn is cmd_serve else json_errors(p)

    p = add("serve", "serve the back office API (uvicorn)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8780, help="TCP port")
    p.add_argument(
        "--metrics", action="store_true", help="serve Prometheus metrics at /metrics (counts only)"
    )
    p = add("seed", "demo data: stores, members, enrollment codes", cmd_seed)
    p.add_argument(
        "--members",
        type=int_arg("--members", 0, 10_000_000, "must be 0-10000000", "нужно 0-10000000"),
        default=10_000,
        help="demo members to load",
    )
    p.add_argument(
        "--stores",
        type=int_arg("--stores", 1, 100, "must be 1-100", "нужно 1-100"),
        default=2,
        help="demo stores (s1, s2, ...)",
    )
    p = add("enroll-code", "a one-time code to enroll a till of a store", cmd_enroll_code)
    p.add_argument("--store-id", required=True, help="store id (created if new)")
    p.add_argument("--store-name", help="store name (default: the id)")
    p = add("report", "programme KPIs (table, or --json)", cmd_report)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    p = add("publish-rules", "publish a programme version to every till", cmd_publish_rules)
    p.add_argument("file", help="rules file (.toml or .json)")
    p = add("admin-token", "issue a new admin token (KPI endpoint)", cmd_admin_token)
    p.add_argument(
        "--grace-minutes",
        type=int_arg(
            "--grace-minutes",
            0,
            10080,
            "must be 0-10080 minutes (a week)",
            "нужно 0-10080 минут (неделя)",
        ),
        default=0,
        help="minutes the old token keeps working (default 0: it stops at once)",
    )
    p = add("revoke-till", "revoke a till's sync token at once (every node)", cmd_revoke_till)
    p.add_argument("--terminal", required=True, help="the till's terminal id")
    add("terminals", "enrolled tills: last contact and the software each runs", cmd_terminals)
    usub = bsub.add_parser("user", help="console users").add_subparsers(
        dest="user_command", required=True
    )
    p = add("add", "add a console user (the password is asked twice)", cmd_user_add, usub)
    p.add_argument("--login", required=True, help="login: lower-case latin, digits, . _ -")
    p.add_argument(
        "--role", required=True, help="owner, analyst, marketing, support or store_manager"
    )
    p.add_argument("--name", help="display name (default: the login)")
    p.add_argument("--store-id", help="the store of a store_manager")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = add(
        "set",
        "change a console user: role, password (asked twice) or active; every change audited",
        cmd_user_set,
        usub,
    )
    p.add_argument("--login", required=True, help="the user's login")
    p.add_argument("--role", help="owner, analyst, marketing, support or store_manager")
    p.add_argument(
        "--password",
        action="store_true",
        help="set a new password (asked twice; ends a lockout and the user's sessions)",
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="set a new password read from stdin"
    )
    p.add_argument(
        "--active",
        choices=("yes", "no"),
        help="no: the user cannot sign in and their sessions end; yes: allowed again",
    )
    p = add("backup", "back up the database (SQLite online backup, or pg_dump)", cmd_backup)
    p.add_argument("dest", nargs="?", help="backup file to create (default: a dated name)")
    p = add("restore", "restore a backup (stop the back office first)", cmd_restore)
    p.add_argument("backup", help="file made by `kassa backoffice backup`")

    p = sub.add_parser(
        "enroll",
        help="join this till to the back office with a one-time code",
        description="join this till to the back office with a one-time code: creates the "
        "till store from the back office's snapshot (keys, rules, members)",
    )
    p.add_argument("--url", required=True, help="back office URL, e.g. http://bo:8780")
    p.add_argument("--code", required=True, help="one-time enrollment code")
    p.add_argument("--name", help="a name for this till")
    p.add_argument(
        "--store",
        default=store_default,
        help="till store file to create (default: $KASSA_STORE or the user data dir)",
    )
    p.set_defaults(func=cmd_enroll)
    json_errors(p)

    sp = sub.add_parser("sync", help="exchange with the back office")
    ssub = sp.add_subparsers(dest="sync_command", required=True)
    p = ssub.add_parser("status", help="online/offline, events waiting, quarantine")
    p.add_argument("--store", default=store_default, help="till store file")
    # read-only: works while `kassa agent serve` owns the store
    status = with_agent(
        lambda agent, _: agent.sync_status(),
        needs_json=False,
        read_only=True,
        create_with="kassa enroll",
    )
    p.set_defaults(func=status)
    json_errors(p)
    p = ssub.add_parser("now", help="push every waiting event, then pull changes")
    p.add_argument("--store", default=store_default, help="till store file")
    p.add_argument("--url", help="back office URL (default: the one enrolled with)")
    p.set_defaults(func=cmd_sync_now)
    json_errors(p)
