"""`kassa tui`, `kassa demo` and `kassa cashier`: the cashier app and its set-up.

``kassa demo`` opens the app on a fresh demo site (back office + enrolled till, see
``kassa.demo_app``); ``kassa demo --script`` is the non-interactive walk-through that
prints every step (CI, terminals without a TTY).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from kassa.apprun import end_cleanly_on_signals, run_cashier_app
from kassa.cli.common import open_agent


def tui_config(args: argparse.Namespace) -> Any:
    """The configuration ``kassa tui`` runs on: the file (``--config``, else
    ``$KASSA_CONFIG`` or the user's kassa.toml), with the flags given overriding it as
    ``kassa agent serve``'s do."""
    from dataclasses import replace

    from kassa.config import load_config, with_store

    cfg = with_store(load_config(Path(args.config) if args.config else None), args.store)
    if args.printer is not None:
        url = "" if args.printer == "none" else args.printer
        cfg = replace(cfg, printer=replace(cfg.printer, url=url))
    if args.profile is not None:
        cfg = replace(cfg, printer=replace(cfg.printer, profile=args.profile))
    if args.scanner is not None:
        cfg = replace(cfg, scanner=replace(cfg.scanner, ports=[args.scanner]))
    if args.backoffice is not None:
        cfg = replace(cfg, sync=replace(cfg.sync, url=args.backoffice))
    return cfg


def cmd_tui(args: argparse.Namespace) -> int:
    from kassa.wiring import app_services
    from tui.app import KassaApp

    cfg = tui_config(args)
    # ``--printer none``: no printer, not even the on-screen preview.
    services = app_services(cfg, printer_url="" if args.printer == "none" else None, lang=args.lang)
    try:
        return run_cashier_app(KassaApp(services))
    finally:
        services.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else None
    if args.script:
        from kassa.demo import run_demo

        return run_demo(directory, members=args.members or 10_000)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        sys.stderr.write(
            "kassa demo: the cashier app needs a terminal; use `kassa demo --script` "
            "for the printed walk-through\n"
        )
        return 2
    from kassa.demo_app import run_app_demo

    end_cleanly_on_signals()  # the set-up takes seconds: a kill then leaves nothing behind
    return run_app_demo(directory, members=args.members or 2000, lang=args.lang)


def ask_new_pin(first: str = "PIN: ") -> str:
    """A new PIN asked without echo and then again: a typo in a PIN nobody saw would lock
    the cashier out at the till. Two different answers: ``InputError``, nothing is made."""
    from agent.errors import InputError

    pin = getpass.getpass(first)
    again = getpass.getpass("PIN ещё раз / again: ")
    if pin != again:
        raise InputError(
            "the two PINs typed differ; nothing was changed, run the command again",
            "введённые PIN-коды не совпадают; ничего не изменено, повторите команду",
            field="pin",
        )
    return pin


def cmd_cashier_add(args: argparse.Namespace) -> int:
    pin = args.pin if args.pin is not None else ask_new_pin()
    agent = open_agent(args)
    try:
        agent.add_cashier(args.id, args.name, pin, args.role)
    finally:
        agent.store.close()
    print(json.dumps({"ok": True, "cashier_id": args.id}, ensure_ascii=False))
    return 0


def cmd_cashier_set_pin(args: argparse.Namespace) -> int:
    """A new PIN for a cashier; it also unlocks one locked after wrong PINs."""
    pin = args.pin if args.pin is not None else ask_new_pin("New PIN: ")
    agent = open_agent(args)
    try:
        agent.set_pin(args.id, pin)
    finally:
        agent.store.close()
    print(json.dumps({"ok": True, "cashier_id": args.id, "unlocked": True}, ensure_ascii=False))
    return 0


def cmd_cashier_list(args: argparse.Namespace) -> int:
    agent = open_agent(args, read_only=True)
    try:
        rows = [
            {"cashier_id": c.cashier_id, "name": c.name, "role": c.role} for c in agent.cashiers()
        ]
    finally:
        agent.store.close()
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 0


def add_commands(sub: Any, store_default: str) -> None:
    p = sub.add_parser(
        "tui",
        help="the cashier app for the configured till",
        description="the cashier app (full-screen, 80x24 is enough) on the till store: "
        "identify, cheque, points, refunds, registration, shifts",
    )
    p.add_argument("--config", help="config file (default: $KASSA_CONFIG or the user dir)")
    p.add_argument("--store", help="till store file (overrides store.path)")
    p.add_argument(
        "--printer",
        help="printer URL (tcp://host:9100, serial:///dev/ttyUSB0, usb://..., file:///dev/usb/lp0),"
        " capture:// for the on-screen preview (the default without printer.url), or none",
    )
    p.add_argument("--profile", help="printer profile preset or .toml (overrides printer.profile)")
    p.add_argument(
        "--scanner", help="serial scanner port (overrides scanner.ports; default: keyboard wedge)"
    )
    p.add_argument(
        "--backoffice", help="back office URL (overrides sync.url; default: the enrolment's)"
    )
    p.add_argument("--lang", choices=("ru", "en"), default="ru", help="cashier language")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser(
        "demo",
        help="try everything in one command: back office + till + the cashier app, demo data",
        description="try everything in one command: starts a demo back office, enrolls a "
        "till with demo members and opens the cashier app on it (--script: a printed "
        "walk-through instead, no terminal needed)",
    )
    p.add_argument(
        "--script", action="store_true", help="print the scripted walk-through instead of the app"
    )
    p.add_argument("--dir", help="where to keep the demo data (default: a temp dir, removed)")
    p.add_argument("--members", type=int, help="demo members (app 2000, script 10000)")
    p.add_argument("--lang", choices=("ru", "en"), default="ru", help="cashier language")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cashier", help="cashiers who sign in to the app")
    csub = p.add_subparsers(dest="cashier_command", required=True)
    c = csub.add_parser("add", help="add a cashier with a 4-8 digit PIN")
    c.add_argument("--store", default=store_default, help="till store file")
    c.add_argument("--id", required=True, help="cashier id (login, short)")
    c.add_argument("--name", required=True, help="name shown in the sign-in list")
    c.add_argument("--pin", help="PIN (default: asked without echo)")
    c.add_argument(
        "--role", default="cashier", choices=("cashier", "supervisor"), help="what they may do"
    )
    c.set_defaults(func=cmd_cashier_add)
    c = csub.add_parser(
        "set-pin",
        help="a new 4-8 digit PIN; unlocks a cashier locked after wrong PINs (app closed)",
    )
    c.add_argument("--store", default=store_default, help="till store file")
    c.add_argument("--id", required=True, help="cashier id")
    c.add_argument("--pin", help="new PIN (default: asked without echo)")
    c.set_defaults(func=cmd_cashier_set_pin)
    c = csub.add_parser("list", help="active cashiers")
    c.add_argument("--store", default=store_default, help="till store file")
    c.set_defaults(func=cmd_cashier_list)
