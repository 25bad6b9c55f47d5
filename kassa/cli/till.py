"""The till's JSON commands: ``init``, ``identify``, ``quote``, ``commit``, ``refund``,
``register``, ``hold place|show|cancel``, ``slip``, ``reprint``, ``journal`` and the
programme files' ``rules check|template``. Each parses its request (one JSON object from
stdin or ``--json``, turned into the service's request by ``agent.requests``, the same
parsers as the POS API's) or its arguments, calls one method of the till service
(``agent.service.Agent``) and prints the answer as JSON (``kassa.cli.common``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import InputError
from agent.requests import hold_id_of, job_id_of, slip_width_of
from kassa.cli.common import add_command, arg_of, emit, int_arg, json_errors, with_agent

if TYPE_CHECKING:  # pragma: no cover - types only
    from agent.model import Quote
    from agent.results import (
        CommitResult,
        Hold,
        JournalPage,
        MemberCard,
        RefundOutcome,
        Registration,
        Reprint,
        SlipView,
    )
    from agent.service import Agent


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


def _quote(agent: Agent, data: object) -> Quote:
    from agent.requests import checkout_request

    return agent.quote(checkout_request(agent, data))


def _commit(agent: Agent, data: object) -> CommitResult:
    """A commit; with ``"hold_id"`` the hold's points are spent (as ``POST /v1/commit``)."""
    from agent.requests import commit_request

    req, hold_id = commit_request(agent, data)
    return agent.commit(req, hold_id)


def _identify(agent: Agent, data: object) -> MemberCard:
    from agent.requests import identify_input

    return agent.identify(identify_input(data))


def _register(agent: Agent, data: object) -> Registration:
    from agent.requests import register_args

    return agent.register(**register_args(data))


def _refund(agent: Agent, data: object) -> RefundOutcome:
    from agent.requests import refund_args

    return agent.refund(**refund_args(data))


def _hold_place(agent: Agent, data: object) -> Hold:
    """Reserve the cheque's points for ``ttl_s`` seconds (default ``DEFAULT_TTL_S``)."""
    from agent.requests import hold_request
    from agent.results import DEFAULT_TTL_S

    req, ttl_s = hold_request(agent, data, DEFAULT_TTL_S)
    return agent.place_hold(req, ttl_s)


def _hold_show(agent: Agent, args: argparse.Namespace) -> Hold:
    return agent.get_hold(args.hold_id)


def _hold_cancel(agent: Agent, args: argparse.Namespace) -> Hold:
    return agent.cancel_hold(args.hold_id)


def _slip(agent: Agent, args: argparse.Namespace) -> SlipView:
    return agent.slip(args.job_id, args.width)


def _reprint(agent: Agent, args: argparse.Namespace) -> Reprint:
    return agent.reprint(args.job_id)


JOURNAL_LIMIT = 50
"""`kassa journal` shows at most this many events unless ``--limit`` says otherwise."""


def _journal(agent: Agent, args: argparse.Namespace) -> JournalPage:
    """The oldest ``--limit`` events waiting, and whether more wait: ``shown``, ``total``
    (events waiting when counted) and ``truncated`` (true when more wait than shown)."""
    return agent.journal(args.limit)


def cmd_rules_check(args: argparse.Namespace) -> int:
    from agent.rules import load_programme

    p = load_programme(Path(args.file))
    emit({"ok": True, "version": p.version, "name": p.name, "tiers": [t.code for t in p.tiers]})
    return 0


def cmd_rules_template(args: argparse.Namespace) -> int:
    """Write the commented demo programme as a starting point for a chain's own rules: to
    stdout, or to a new file (an existing one is never overwritten)."""
    from importlib import resources

    from agent.private import write_private

    text = resources.files("agent").joinpath("data/demo_programme.toml").read_text("utf-8")
    if args.file is None:
        sys.stdout.write(text)
        return 0
    dest = Path(args.file)
    try:
        write_private(dest, text.encode("utf-8"), exclusive=True)  # atomic, 0600
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


JOB_ID = arg_of("job_id", job_id_of)
"""A print job's number on the command line (``slip``, ``reprint``), read as the POS API
reads ``/v1/slips/{job_id}``."""

HOLD_ID = arg_of(
    "hold_id", hold_id_of, " (the hold_id of `kassa hold place`)", " (hold_id из kassa hold place)"
)
"""A hold's id on the command line (``hold show|cancel``), read as the POS API reads
``/v1/holds/{hold_id}``."""


def _add_holds(sub: argparse._SubParsersAction[Any], store_default: str) -> None:
    """``kassa hold place|show|cancel``: points reserved while the customer pays."""
    from agent.results import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S

    p = sub.add_parser(
        "hold",
        help="points holds: reserve a cheque's points while the customer pays",
        description="points holds: reserve a cheque's points while the customer pays, then "
        'commit the cheque with its "hold_id" (or cancel the hold)',
    )
    json_errors(p)
    hsub = p.add_subparsers(dest="hold_command", required=True)
    add_command(
        hsub,
        "place",
        f'hold the points of a cheque (a quote\'s request; "ttl_s": seconds {MIN_TTL_S}-'
        f"{MAX_TTL_S}, default {DEFAULT_TTL_S})",
        with_agent(_hold_place),
        store_default,
        json_in=True,
    )
    for name, help_, fn, read_only in (
        ("show", "a hold and its status now", _hold_show, True),
        ("cancel", "release a hold (the cheque was voided)", _hold_cancel, False),
    ):
        c = add_command(
            hsub, name, help_, with_agent(fn, needs_json=False, read_only=read_only), store_default
        )
        c.add_argument("hold_id", type=HOLD_ID, help="hold id (hold_id of `kassa hold place`)")


def add_commands(sub: argparse._SubParsersAction[Any], store_default: str) -> None:
    """The till's commands on ``sub`` (argparse subparsers), ``--store`` defaulting to
    ``store_default``."""

    def add(
        name: str, help_: str, fn: Callable[[argparse.Namespace], int], json_in: bool = False
    ) -> argparse.ArgumentParser:
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
    add("quote", "score a cheque without committing", with_agent(_quote), True)
    add(
        "commit",
        'commit a cheque (idempotent by receipt_id; "hold_id": spend a hold\'s points)',
        with_agent(_commit),
        True,
    )
    add(
        "refund",
        "refund lines of a committed cheque (idempotent by refund_id)",
        with_agent(_refund),
        True,
    )
    add("register", "register a new member with consent", with_agent(_register), True)
    _add_holds(sub, store_default)
    p = add(
        "slip", "show a queued slip as text", with_agent(_slip, needs_json=False, read_only=True)
    )
    p.add_argument("job_id", type=JOB_ID, help="print job id (print_job_id of a commit or refund)")
    p.add_argument(
        "--width",
        type=arg_of("--width", slip_width_of),
        default=slip_width_of(None),
        metavar="{32,42,48}",
        help="characters per line: 32, 42 or 48 (default: 42)",
    )
    p = add(
        "reprint",
        "queue a copy of a slip (printed «КОПИЯ»)",
        with_agent(_reprint, needs_json=False),
    )
    p.add_argument("job_id", type=JOB_ID, help="print job id of the slip to copy")
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
