"""The `kassa` command line: the composition root (it may import every package, lazily).

JSON-in/JSON-out commands (identify, quote, commit, refund, register) read one JSON object
from stdin (or ``--json``) and print one JSON object, so a script or the host POS can drive
the core before the local API exists. Errors print ``{"error": code, ...}`` on stdout, a
cashier-readable line on stderr, and exit 2 (bad input, not found, conflict) or 3 (store).

Commands whose output is JSON (marked with :func:`json_errors`) report wrong arguments the
same way (``bad_arguments``, exit 2) instead of argparse's usage text; the human-facing
commands (``tui``, ``demo``, ``doctor``, ``cashier``, ...) keep argparse's usage text.
``--help`` is argparse's everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from agent.errors import AgentError, InputError, StoreError
from agent.version import version


class ArgumentsError(InputError):
    """A JSON command called with a missing, unknown or bad argument."""

    code = "bad_arguments"
    title_ru = "Неверные аргументы команды"
    title_en = "Bad command arguments"


# argparse's own messages (Python 3.11+) and their Russian; argparse's English text stays
# in message_en. Anything not listed gets a general Russian line.
_ARGPARSE_RU = (
    (r"the following arguments are required: (.+)", "не указаны обязательные аргументы: {0}"),
    (r"unrecognized arguments: (.+)", "неизвестные аргументы: {0}"),
    (r"argument (.+?): expected .*argument.*", "аргумент {0}: не указано значение"),
    (
        r"argument (.+?): invalid choice: (.+?) \(choose from (.+)\)",
        "аргумент {0}: недопустимое значение {1} (можно: {2})",
    ),
    (r"argument (.+?): invalid \w+ value: (.+)", "аргумент {0}: неверное значение {1}"),
    (r"ambiguous option: (\S+) could match (.+)", "параметр {0} неоднозначен (подходят: {1})"),
    (r"argument (.+?): ignored explicit argument (.+)", "аргумент {0}: значение {1} не нужно"),
)


def _arguments_error(prog: str, message: str, usage: str) -> ArgumentsError:
    ru = "неверные аргументы команды"
    for pattern, template in _ARGPARSE_RU:
        if m := re.fullmatch(pattern, message):
            ru = template.format(*m.groups())
            break
    details = {"reason": message, "usage": usage.strip()}
    if argument := re.match(r"argument (.+?): ", message):
        details["argument"] = argument.group(1)
    return ArgumentsError(
        f"{prog}: {message} (see {prog} --help)",
        f"{prog}: {ru} (справка: {prog} --help)",
        **details,
    )


class KassaArgumentParser(argparse.ArgumentParser):
    """argparse, except that a parser marked with :func:`json_errors` raises
    :class:`ArgumentsError` (printed as the documented error JSON, exit 2) where argparse
    would print its usage text and exit 2. Subparsers are of this class too."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            raise _arguments_error(self.prog, message, self.format_usage())
        super().error(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        # Remember the innermost parser that ran (the command), so `main` can report
        # unrecognized arguments in that command's manner.
        if "_kassa_parser" not in vars(ns):
            ns._kassa_parser = self
        return ns, extras


def json_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Mark a command whose output is JSON: its argument errors print the error JSON."""
    parser.json_errors = True  # type: ignore[attr-defined]
    return parser


def int_arg(
    name: str, lo: int, hi: int, en: str, ru: str, choices: Sequence[int] = ()
) -> Callable[[str], int]:
    """An argparse ``type``: a whole number ``lo..hi`` (and one of ``choices`` if given);
    anything else is an ``ArgumentsError`` naming the argument (``en``/``ru``: what it
    must be). argparse lets this exception through unchanged (it only catches
    ``ValueError``/``TypeError``), so the message is ours in both languages."""

    def parse(text: str) -> int:
        value = int(text) if re.fullmatch(r"[+-]?[0-9]{1,18}", text.strip()) else None
        if value is None or not lo <= value <= hi or (choices and value not in choices):
            raise ArgumentsError(
                f"{name}: {en}, got {text[:32]!r}",
                f"{name}: {ru}, получено «{text[:32]}»",
                argument=name,
                value=text[:32],
            )
        return value

    return parse


def default_store_path() -> Path:
    """``$KASSA_STORE``, else the platform's per-user data dir: .../kassa/till.db."""
    if env := os.environ.get("KASSA_STORE"):
        return Path(env)
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "kassa" / "till.db"


def _emit(obj: Any) -> None:
    from agent.codec import to_plain

    sys.stdout.write(json.dumps(to_plain(obj), ensure_ascii=False, indent=2) + "\n")


def _read_json(args: argparse.Namespace) -> Any:
    from agent.errors import InputError
    from agent.requests import check_request_json

    try:
        text = args.json if args.json is not None else sys.stdin.read()
    except UnicodeDecodeError as e:
        raise InputError(
            f"request is not UTF-8 text: byte {e.start + 1} is {e.object[e.start]:#04x}",
            f"запрос не в кодировке UTF-8: неверный байт {e.start + 1}",
            field="json",
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise InputError(
            "request is nested too deeply", "запрос слишком глубоко вложен", field="json"
        ) from None
    except json.JSONDecodeError as e:
        # Python's reason is English: it goes to message_en and details, message_ru says
        # where the error is.
        raise InputError(
            f"request is not valid JSON: {e}",
            f"запрос не является JSON: ошибка в строке {e.lineno}, столбце {e.colno}",
            field="json",
            line=e.lineno,
            column=e.colno,
            reason=e.msg,
        ) from None
    except ValueError as e:  # a number of over 4300 digits (Python's int limit)
        raise InputError(
            f"request has a number too long to read: {e}",
            "в запросе слишком длинное число",
            field="json",
        ) from None
    check_request_json(data)
    return data


def _open_agent(
    args: argparse.Namespace, create_with: str = "kassa init", *, read_only: bool = False
) -> Any:
    """Open the till store named by ``--store``; a missing one names the command to run.

    ``read_only``: for commands that only read (journal, slip, sync status): the store is
    opened without its ownership lock, so they work while `kassa agent serve` runs."""
    from agent.service import Agent
    from agent.store import Store

    path = Path(args.store)
    if not path.exists():
        raise StoreError(
            f"no till store at {path} (run `{create_with}`)",
            f"база кассы {path} не найдена (выполните {create_with})",
            path=str(path),
        )
    return Agent(Store(path, read_only=read_only))


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
    _emit(info)
    return 0


def _with_agent(
    fn: Callable[[Any, Any], Any], needs_json: bool = True, *, read_only: bool = False
) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        data = _read_json(args) if needs_json else None
        agent = _open_agent(args, read_only=read_only)
        try:
            _emit(fn(agent, data if needs_json else args))
        finally:
            agent.store.close()
        return 0

    return run


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
    _emit({"ok": True, "version": p.version, "name": p.name, "tiers": [t.code for t in p.tiers]})
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
    _emit({"ok": True, "file": str(dest), "next": f"kassa rules check {dest}"})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = KassaArgumentParser(prog="kassa", description="Kassa loyalty agent for checkouts")
    parser.add_argument("--version", action="version", version=f"kassa {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, help_: str, fn: Callable[[argparse.Namespace], int], json_in: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--store",
            default=str(default_store_path()),
            help="till store file (default: $KASSA_STORE or the user data dir)",
        )
        if json_in:
            p.add_argument("--json", help="request JSON (default: read stdin)")
        p.set_defaults(func=fn)
        return json_errors(p)

    p = add(
        "init", "create a till store (with --demo: demo programme, catalogue, members)", cmd_init
    )
    p.add_argument("--demo", action="store_true", help="seed the demo programme and members")
    p.add_argument("--members", type=int, default=1000, help="demo members to seed")
    p.add_argument("--rules", help="programme rules file (.toml or .json)")
    p.add_argument("--store-name", default="Kassa демо-магазин", help="name printed on slips")
    p.add_argument("--terminal-id", help="terminal id (default: a new UUID)")
    add("identify", 'find a member: {"input": scan or phone}', _with_agent(_identify), True)
    add(
        "quote",
        "score a cheque without committing",
        _with_agent(lambda a, d: a.quote(_checkout(a, d))),
        True,
    )
    add(
        "commit",
        "commit a cheque (idempotent by receipt_id)",
        _with_agent(lambda a, d: a.commit(_checkout(a, d))),
        True,
    )
    add(
        "refund",
        "refund lines of a committed cheque (idempotent by refund_id)",
        _with_agent(_refund),
        True,
    )
    add("register", "register a new member with consent", _with_agent(_register), True)
    p = add(
        "slip", "show a queued slip as text", _with_agent(_slip, needs_json=False, read_only=True)
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
        _with_agent(_journal, needs_json=False, read_only=True),
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
    from kassa.cli_sync import add_commands

    add_commands(sub, str(default_store_path()))
    from kassa.cli_scanner import add_commands as add_scanner

    add_scanner(sub, str(default_store_path()))
    from kassa.cli_drivers import add_commands as add_drivers

    add_drivers(sub, str(default_store_path()))
    from kassa.cli_agent import add_commands as add_agent

    add_agent(sub, str(default_store_path()))
    from kassa.cli_tui import add_commands as add_tui

    add_tui(sub, str(default_store_path()))
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without a description its one-line help as description, so
    `kassa X --help` says what X does (not only `kassa --help`'s list)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
                _describe(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            command = getattr(args, "_kassa_parser", parser)
            message = f"unrecognized arguments: {' '.join(extras)}"
            (command if getattr(command, "json_errors", False) else parser).error(message)
        code: int = args.func(args)
        return code
    except AgentError as e:
        _emit(e.to_dict())
        sys.stderr.write(f"kassa: {e.title}: {e.message_ru}\n")
        return 3 if isinstance(e, StoreError) else 2
    except KeyboardInterrupt:  # Ctrl-C: what was being written was rolled back
        sys.stderr.write("kassa: прервано / interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
