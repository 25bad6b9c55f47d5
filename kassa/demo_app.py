"""`kassa demo`: the cashier app on embedded defaults, in one command.

On a fresh machine: a back office on embedded SQLite in a temp dir, served on a loopback
port by uvicorn in this process; a demo programme, store and members; a till enrolled
with a one-time code (its member cache loaded from the back office's snapshot) with the
demo catalogue and two cashiers; then the Textual app with the on-screen preview printer
and the sync loop running. The back office's console is served by the same loopback
server: the sign-in screen's hints give its URL and a demo owner's login and password (made
afresh each run), so a browser on this machine shows the other side of each sale (the
dashboard, the member's history) while the app runs. When the app exits everything stops
and the temp dir goes.

``prepare_demo`` is shared with the tmux end-to-end test and bench/tui.py.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kassa.config import Config

DEMO_CASHIERS = (("anna", "Анна Петрова", "1111"), ("oleg", "Олег Смирнов", "2222"))


@dataclass
class DemoSite:
    root: Path
    till: Path
    url: str
    http: Any
    hints: list[str]
    console_url: str = ""
    """The console's address on the loopback server (``url`` + ``/console/``)."""
    console_login: tuple[str, str] = ("", "")
    """The demo owner's login and password for the console."""


def _hints(bo: Any, phone_example: str, code_example: str) -> list[str]:
    from agent.tokens import Coupon, TokenSigner, issue_coupon, load_ed25519_private_key

    signer = TokenSigner(1, load_ed25519_private_key(bo.setting("token_private_key")))
    now = datetime.now(UTC)
    coupon = issue_coupon(
        signer,
        Coupon(
            secrets.token_hex(16),
            "percent",
            1000,
            now - timedelta(hours=1),
            now + timedelta(days=7),
        ),
    )
    pins = ", ".join(f"{name.split()[0]} {pin}" for _, name, pin in DEMO_CASHIERS)
    return [
        f"PIN: {pins}",
        f"Телефон / phone: {phone_example}",
        f"Карта / card: {code_example}",
        "Товары / SKUs: DR-1001 SH-2001 OW-4001 AC-6001 GC-9001; =4999 (сумма)",
        f"Купон / coupon -10%: {coupon}",
    ]


def demo_console_login(bo: Any, login: str = "owner") -> tuple[str, str]:
    """The console's demo owner and a password to show: made with the owner on a new back
    office (``ensure_demo_owner``), else set afresh (a demo directory used again: the old
    password was shown once and is gone)."""
    password = bo.ensure_demo_owner(login)
    if password is None:
        password = secrets.token_urlsafe(9)
        bo.change_user(login, actor="demo", password=password, active=True)
    return login, str(password)


@contextlib.contextmanager
def demo_site(directory: Path | None = None, *, members: int = 2000) -> Iterator[DemoSite]:
    """Back office + enrolled till, running until the block ends (then all stopped)."""
    from agent import shifts
    from agent.identify import make_member_code
    from agent.seed import demo_phone, seed_catalog
    from agent.store import Store
    from kassa.demo_sync import LoopbackServer
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice
    from sync.client import backoffice_http
    from sync.enroll import enroll_till

    temp = directory is None
    root = Path(tempfile.mkdtemp(prefix="kassa-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    try:
        bo = Backoffice(Database.open(str(root / "backoffice.db")))
        try:
            bo.seed_demo({"s1": "Магазин «Демо»"}, members)
            with (
                LoopbackServer(bo) as server,
                backoffice_http(server.url) as http,
            ):
                till = root / "till.db"
                enroll_till(till, http, bo.enroll_code("s1"), name="Касса 1")
                with Store(till) as store:
                    seed_catalog(store)
                    for cid, name, pin in DEMO_CASHIERS:
                        shifts.add_cashier(store, cid, name, pin)
                phone = demo_phone(1)
                typed = f"8 {phone[2:5]} {phone[5:8]}-{phone[8:10]}-{phone[10:]}"
                hints = _hints(bo, typed, make_member_code(100_000_002))
                login = demo_console_login(bo)
                console = f"{server.url}/console/"
                hints.append(f"Консоль / console: {console}  {login[0]} / {login[1]}")
                yield DemoSite(root, till, server.url, http, hints, console, login)
        finally:
            bo.db.close()
    finally:
        if temp:
            shutil.rmtree(root, ignore_errors=True)


def demo_config(site: DemoSite) -> Config:
    """The configuration the demo's cashier app runs on: the demo till, its back office,
    the on-screen preview printer, a sync round every 2 s (a demo shows sync quickly)."""
    from kassa.config import PrinterConfig, StoreConfig, SyncConfig
    from kassa.wiring import PREVIEW, PREVIEW_PROFILE

    return Config(
        store=StoreConfig(str(site.till)),
        sync=SyncConfig(url=site.url, interval_s=2.0),
        printer=PrinterConfig(url=PREVIEW, profile=PREVIEW_PROFILE),
        source="demo",
    )


def run_app_demo(directory: Path | None = None, *, members: int = 2000, lang: str = "ru") -> int:
    """Prepare the demo site and run the cashier app on it until the cashier quits."""
    from kassa.apprun import run_cashier_app
    from kassa.wiring import app_services
    from tui.app import KassaApp

    with demo_site(directory, members=members) as site:
        services = app_services(demo_config(site), http=site.http, lang=lang)
        services.hints = site.hints
        try:
            return run_cashier_app(KassaApp(services))
        finally:
            services.stop()
