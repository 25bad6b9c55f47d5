"""`kassa backoffice ...`, `kassa enroll`, `kassa sync ...`: the sync commands.

Kept apart from ``kassa.cli`` so the till commands do not import the network stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agent.errors import InputError


def default_backoffice_db() -> str:
    """``$KASSA_BACKOFFICE_DB``, else backoffice.db in the user data dir."""
    if env := os.environ.get("KASSA_BACKOFFICE_DB"):
        return env
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return str(base / "kassa" / "backoffice.db")


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


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
        if self.enabled:
            sys.stderr.write("\n")


def _backoffice(args: argparse.Namespace) -> Any:
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    bo = Backoffice(Database.open(args.db))
    bo.initialise()
    return bo


def cmd_serve(args: argparse.Namespace) -> int:
    from sync.backoffice.app import serve

    bo = _backoffice(args)
    sys.stderr.write(f"kassa back office on http://{args.host}:{args.port} ({bo.db.dialect})\n")
    serve(bo, args.host, args.port)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from agent.seed import demo_programme, member_rows

    bo = _backoffice(args)
    codes = {}
    for i in range(1, args.stores + 1):
        sid = f"s{i}"
        bo.ensure_store(sid, f"Магазин {i}")
        codes[sid] = bo.enroll_code(sid)
    loaded = 0
    with bo.db.reading() as tx:
        have = int(tx.one("SELECT count(*) FROM members")[0])
    if have == 0 and args.members:
        key = bytes.fromhex(bo.setting("phone_hash_key"))
        loaded = bo.load_members(
            member_rows(args.members, demo_programme(), key, datetime.now(UTC)), store_id="s1"
        )
    _emit(
        {
            "db": args.db,
            "members_loaded": loaded,
            "members_before": have,
            "enroll_codes": codes,
            "admin_token": bo.new_admin_token(),
        }
    )
    return 0


def cmd_enroll_code(args: argparse.Namespace) -> int:
    bo = _backoffice(args)
    bo.ensure_store(args.store_id, args.store_name or args.store_id)
    _emit({"store_id": args.store_id, "code": bo.enroll_code(args.store_id)})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sync.backoffice import kpi

    bo = _backoffice(args)
    data = kpi.report(bo, kpi.period(args.date_from, args.date_to))
    if args.json:
        _emit(data)
    else:
        sys.stdout.write(kpi.table(data) + "\n")
    return 0


def cmd_publish_rules(args: argparse.Namespace) -> int:
    from agent.rules import load_programme

    bo = _backoffice(args)
    version = bo.publish_rules(load_programme(Path(args.file)))
    _emit({"published": version})
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    _emit({"admin_token": _backoffice(args).new_admin_token()})
    return 0


def _http(url: str) -> Any:
    import httpx

    return httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, connect=3.0))


def cmd_enroll(args: argparse.Namespace) -> int:
    from sync.client import PermanentError, TransientError
    from sync.enroll import enroll_till

    try:
        with _http(args.url) as http:
            info = enroll_till(Path(args.store), http, args.code, name=args.name or "")
    except (PermanentError, TransientError) as e:
        _emit({"ok": False, "error": str(e)})
        sys.stderr.write(f"kassa: касса не подключена: {e}\n")
        return 4
    _emit(info)
    return 0


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Any:
    from kassa.cli import _open_agent

    return _open_agent(args, "kassa enroll", read_only=read_only)


def cmd_sync_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from agent import journal

    agent = _open(args, read_only=True)  # works while `kassa agent serve` owns the store
    try:
        st = asdict(journal.status(agent.store))
        st["online"] = agent.offline_status().online
        st["enrolled"] = agent.store.meta("sync_token") is not None
        st["backoffice_url"] = agent.store.meta("backoffice_url")
        st["terminal_id"] = agent.terminal_id
        st["quarantine"] = journal.quarantine_rows(agent.store)[-10:]
    finally:
        agent.store.close()
    _emit(st)
    return 0


def cmd_sync_now(args: argparse.Namespace) -> int:
    from agent import journal
    from sync.client import PermanentError, SyncClient, TransientError

    agent = _open(args)
    try:
        url = args.url or agent.store.meta("backoffice_url")
        if not url:
            raise InputError(
                "no back office URL (enroll the till or pass --url)",
                "не задан адрес бэк-офиса (kassa enroll или --url)",
                field="url",
            )
        with _http(url) as http:
            client = SyncClient(agent, http)
            bar = Progress("Отправка событий")
            try:
                pushed = client.drain(progress=bar)
                bar.done()
                confirmed = client.confirm_all()
                pulled = client.pull_all()
            except (TransientError, PermanentError) as e:
                journal.record_error(agent.store, str(e), agent.clock.now().isoformat())
                _emit({"ok": False, "error": str(e), **_status(agent)})
                sys.stderr.write(f"kassa: нет связи с бэк-офисом: {e}\n")
                return 4
        _emit(
            {
                "ok": True,
                "pushed": pushed.sent,
                "acked": pushed.acked,
                "quarantined": pushed.quarantined,
                "confirmed": confirmed,
                "pulled": pulled,
                **_status(agent),
            }
        )
    finally:
        agent.store.close()
    return 0


def _status(agent: Any) -> dict[str, Any]:
    from agent import journal

    st = journal.status(agent.store)
    return {
        "events_waiting": st.events_waiting,
        "awaiting_verdict": st.awaiting_verdict,
        "quarantined": st.quarantined,
    }


def add_commands(sub: Any, store_default: str) -> None:
    bo = sub.add_parser("backoffice", help="the central back office")
    bsub = bo.add_subparsers(dest="backoffice_command", required=True)

    def add(name: str, help_: str, fn: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = bsub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--db",
            default=default_backoffice_db(),
            help="SQLite file (default) or postgresql://user@host/db",
        )
        p.set_defaults(func=fn)
        return p

    p = add("serve", "serve the back office API (uvicorn)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8780, help="TCP port")
    p = add("seed", "demo data: stores, members, enrollment codes", cmd_seed)
    p.add_argument("--members", type=int, default=10_000, help="demo members to load")
    p.add_argument("--stores", type=int, default=2, help="demo stores (s1, s2, ...)")
    p = add("enroll-code", "a one-time code to enroll a till of a store", cmd_enroll_code)
    p.add_argument("--store-id", required=True, help="store id (created if new)")
    p.add_argument("--store-name", help="store name (default: the id)")
    p = add("report", "programme KPIs (table, or --json)", cmd_report)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    p = add("publish-rules", "publish a programme version to every till", cmd_publish_rules)
    p.add_argument("file", help="rules file (.toml or .json)")
    add("admin-token", "issue a new admin token (KPI endpoint)", cmd_admin_token)

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

    sp = sub.add_parser("sync", help="exchange with the back office")
    ssub = sp.add_subparsers(dest="sync_command", required=True)
    p = ssub.add_parser("status", help="online/offline, events waiting, quarantine")
    p.add_argument("--store", default=store_default, help="till store file")
    p.set_defaults(func=cmd_sync_status)
    p = ssub.add_parser("now", help="push every waiting event, then pull changes")
    p.add_argument("--store", default=store_default, help="till store file")
    p.add_argument("--url", help="back office URL (default: the one enrolled with)")
    p.set_defaults(func=cmd_sync_now)
