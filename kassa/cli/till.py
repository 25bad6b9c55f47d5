"""The till's JSON commands: ``init``, ``identify``, ``quote``, ``commit``, ``refund``,
``register``, ``slip``, ``journal`` and the programme files' ``rules check|template``.
Each reads one JSON request (stdin or ``--json``), calls the till service once and prints
its answer as JSON (``kassa.cli.common``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.errors import InputError
from kassa.cli.common import add_command, emit, int_arg, json_errors, with_agent


def cmd_init(args: argparse.Namespace) -> int:
    from kassa.setup import init_store

    info = init_store(
        Path(args.store),
        demo=args.demo,
        members=args.members,
        rules_path=Path(args.rules) if args.rules else None,
        store_name=args.store_name,
        terminal_id=args.terminal_id,
    )
    emit(info)
    return 0


def _checkout(agent: Any, data: Any, extra: frozenset[str] = frozenset()) -> Any:
    """A ``CheckoutRequest`` from a request object; unknown fields are refused (400 naming
    the field), ``extra``: the fields the caller handles itself (``ttl_s``, ``hold_id``)."""
    from agent.errors import InputError
    from agent.requests import (
        CHECKOUT_FIELDS,
        cart_from_json,
        check_fields,
        optional_text,
        redeem_from_json,
        request_object,
    )
    from agent.service import CheckoutRequest

    check_fields(request_object(data), CHECKOUT_FIELDS | extra)
    member_id = optional_text(data, "member_id", max_len=64)
    identified_by = optional_text(data, "identified_by", max_len=32) or "api"
    identify = optional_text(data, "identify", max_len=4096)
    if member_id is None and identify is not None:
        card = agent.identify(identify)
        member_id, identified_by = card.member_id, card.identified_by
    if member_id is None:
        raise InputError(
            "member_id (or identify) is required", "не указан участник", field="member_id"
        )
    cart = cart_from_json(data, agent.catalog_lookup)
    return CheckoutRequest(
        member_id,
        cart,
        redeem_from_json(data),
        optional_text(data, "coupon", max_len=4096),
        optional_text(data, "cashier_id", max_len=64),
        optional_text(data, "shift_id", max_len=64),
        identified_by,
    )


def _identify(agent: Any, data: Any) -> Any:
    from agent.requests import IDENTIFY_FIELDS, check_fields, request_object, required_text

    check_fields(request_object(data), IDENTIFY_FIELDS)
    return agent.identify(required_text(data, "input", max_len=4096))


def _register(agent: Any, data: Any) -> Any:
    from agent.requests import (
        REGISTER_FIELDS,
        birthday_from_json,
        check_fields,
        flag_from_json,
        optional_text,
        request_object,
    )

    check_fields(request_object(data), REGISTER_FIELDS)
    return agent.register(
        phone=optional_text(data, "phone", max_len=64) or "",
        first_name=optional_text(data, "first_name", max_len=128) or "",
        birthday=birthday_from_json(data.get("birthday")),
        consent_programme=flag_from_json(data, "consent_programme"),
        consent_marketing=flag_from_json(data, "consent_marketing"),
        cashier_id=optional_text(data, "cashier_id", max_len=64),
    )


def _refund(agent: Any, data: Any) -> Any:
    from agent.requests import (
        REFUND_FIELDS,
        check_fields,
        optional_text,
        refund_lines_from_json,
        request_object,
    )

    check_fields(request_object(data), REFUND_FIELDS)
    return agent.refund(
        optional_text(data, "refund_id", max_len=64) or "",
        optional_text(data, "receipt_id", max_len=64) or "",
        refund_lines_from_json(data.get("lines")),
        cashier_id=optional_text(data, "cashier_id", max_len=64),
        shift_id=optional_text(data, "shift_id", max_len=64),
    )


def _slip(agent: Any, args: Any) -> Any:
    from agent.slip import slip_text

    text = slip_text(agent.print_job(args.job_id), args.width)
    return {"job_id": args.job_id, "text": text}


JOURNAL_LIMIT = 50
"""`kassa journal` shows at most this many events unless ``--limit`` says otherwise."""


def _journal(agent: Any, args: Any) -> Any:
    """The oldest ``--limit`` events waiting, and whether more wait: ``shown``, ``total``
    (events waiting when counted) and ``truncated`` (true when more wait than shown)."""
    shown, total = agent.pending_page(args.limit)
    return {
        "pending": shown,
        "shown": len(shown),
        "total": total,
        "truncated": total > len(shown),
        "limit": args.limit,
        "status": agent.offline_status(),
    }


def cmd_rules_check(args: argparse.Namespace) -> int:
    from agent.rules import load_programme

    p = load_programme(Path(args.file))
    emit({"ok": True, "version": p.version, "name": p.name, "tiers": [t.code for t in p.tiers]})
    return 0


def cmd_rules_template(args: argparse.Namespace) -> int:
    """Write the commented demo programme as a starting point for a chain's own rules: to
    stdout, or to a new file (an existing one is never overwritten)."""
    from importlib import resources

    text = resources.files("agent").joinpath("data/demo_programme.toml").read_text("utf-8")
    if args.file is None:
        sys.stdout.write(text)
        return 0
    dest = Path(args.file)
    try:
        with dest.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise InputError(
            f"{dest} already exists; choose another name or remove it",
            f"файл {dest} уже существует: выберите другое имя или удалите его",
            field="file",
            path=str(dest),
        ) from None
    except OSError as e:
        raise InputError(
            f"cannot write {dest}: {e.strerror}",
            f"не удалось записать {dest}: {e.strerror}",
            field="file",
            path=str(dest),
        ) from None
    emit({"ok": True, "file": str(dest), "next": f"kassa rules check {dest}"})
    return 0


def add_commands(sub: Any, store_default: str) -> None:
    """The till's commands on ``sub`` (argparse subparsers), ``--store`` defaulting to
    ``store_default``."""

    def add(name: str, help_: str, fn: Any, json_in: bool = False) -> argparse.ArgumentParser:
        return add_command(sub, name, help_, fn, store_default, json_in)

    p = add(
        "init", "create a till store (with --demo: demo programme, catalogue, members)", cmd_init
    )
    p.add_argument("--demo", action="store_true", help="seed the demo programme and members")
    p.add_argument("--members", type=int, default=1000, help="demo members to seed")
    p.add_argument("--rules", help="programme rules file (.toml or .json)")
    p.add_argument("--store-name", default="Kassa демо-магазин", help="name printed on slips")
    p.add_argument("--terminal-id", help="terminal id (default: a new UUID)")
    add("identify", 'find a member: {"input": scan or phone}', with_agent(_identify), True)
    add(
        "quote",
        "score a cheque without committing",
        with_agent(lambda a, d: a.quote(_checkout(a, d))),
        True,
    )
    add(
        "commit",
        "commit a cheque (idempotent by receipt_id)",
        with_agent(lambda a, d: a.commit(_checkout(a, d))),
        True,
    )
    add(
        "refund",
        "refund lines of a committed cheque (idempotent by refund_id)",
        with_agent(_refund),
        True,
    )
    add("register", "register a new member with consent", with_agent(_register), True)
    p = add(
        "slip", "show a queued slip as text", with_agent(_slip, needs_json=False, read_only=True)
    )
    p.add_argument(
        "job_id",
        type=int_arg(
            "job_id",
            1,
            10**12,
            "must be a positive print job number (print_job_id of a commit or refund)",
            "нужен номер задания печати: целое число больше нуля (print_job_id продажи или "
            "возврата)",
        ),
        help="print job id (print_job_id of a commit or refund)",
    )
    p.add_argument(
        "--width",
        type=int_arg(
            "--width", 32, 48, "must be 32, 42 or 48", "ширина 32, 42 или 48", (32, 42, 48)
        ),
        default=42,
        metavar="{32,42,48}",
        help="characters per line: 32, 42 or 48 (default: 42)",
    )
    p = add(
        "journal",
        "journal events waiting for the back office",
        with_agent(_journal, needs_json=False, read_only=True),
    )
    p.description = (
        "journal events waiting for the back office, oldest first: at most --limit of them. "
        'The output says "shown" (events listed), "total" (events waiting) and "truncated" '
        "(true when more wait than are listed)."
    )
    p.add_argument(
        "--limit",
        type=int_arg(
            "--limit",
            1,
            1_000_000,
            "must be a whole number 1-1000000",
            "нужно целое число 1-1000000",
        ),
        default=JOURNAL_LIMIT,
        help=f"show at most this many events, 1-1000000 (default: {JOURNAL_LIMIT})",
    )
    p = sub.add_parser("rules", help="programme rules files", description="programme rules files")
    rsub = p.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="validate a rules file", description="validate a rules file")
    rc.add_argument("file", help="rules file (.toml or .json)")
    rc.set_defaults(func=cmd_rules_check)
    json_errors(rc)
    rt = rsub.add_parser(
        "template",
        help="the commented demo programme, to start a programme of your own",
        description="write the commented demo programme to FILE (never overwritten) or stdout",
    )
    rt.add_argument("file", nargs="?", help="new rules file to write (default: stdout)")
    rt.set_defaults(func=cmd_rules_template)
    json_errors(rt)
