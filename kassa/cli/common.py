"""What every ``kassa`` command module shares: the parser class whose JSON commands report
argument errors as the error JSON, whole-number arguments, reading a JSON request, printing
a JSON answer, and opening the till service over the store named by ``--store``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

from agent.errors import AgentError, InputError, StoreError

if TYPE_CHECKING:  # pragma: no cover - types only
    from agent.service import Agent


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


_N = TypeVar("_N")


class KassaArgumentParser(argparse.ArgumentParser):
    """argparse, except that a parser marked with :func:`json_errors` raises
    :class:`ArgumentsError` (printed as the documented error JSON, exit 2) where argparse
    would print its usage text and exit 2. Subparsers are of this class too."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            raise _arguments_error(self.prog, message, self.format_usage())
        super().error(message)

    @overload
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> tuple[argparse.Namespace, list[str]]: ...
    @overload
    def parse_known_args(
        self, args: Iterable[str] | None, namespace: _N
    ) -> tuple[_N, list[str]]: ...
    @overload
    def parse_known_args(self, *, namespace: _N) -> tuple[_N, list[str]]: ...

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        # Remember the innermost parser that ran (the command), so `main` can report
        # unrecognized arguments in that command's manner.
        if "_kassa_parser" not in vars(ns):
            ns._kassa_parser = self
        return ns, extras


def json_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Mark a command whose output is JSON: its argument errors print the error JSON."""
    # every parser of `kassa` is one: add_subparsers makes its subparsers of its own class
    assert isinstance(parser, KassaArgumentParser), type(parser)
    parser.json_errors = True
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


_T = TypeVar("_T")


def arg_of(
    name: str, parse: Callable[[str], _T], hint_en: str = "", hint_ru: str = ""
) -> Callable[[str], _T]:
    """An argparse ``type`` from a parser the POS API uses too (``agent.requests``): its
    refusal (an ``AgentError`` naming the field) becomes an ``ArgumentsError`` naming the
    argument ``name``, its message the parser's (``hint_en``/``hint_ru`` appended)."""

    def run(text: str) -> _T:
        try:
            return parse(text)
        except AgentError as e:
            prefix = f"{e.details.get('field')}: "
            en, ru = (m.removeprefix(prefix) for m in (e.message_en, e.message_ru))
            raise ArgumentsError(
                f"{name}: {en}{hint_en}", f"{name}: {ru}{hint_ru}", argument=name, value=text[:32]
            ) from None

    return run


def emit(obj: Any) -> None:
    from agent.codec import to_plain

    sys.stdout.write(json.dumps(to_plain(obj), ensure_ascii=False, indent=2) + "\n")


def read_json(args: argparse.Namespace) -> Any:
    """The request of a JSON command (``--json``, else stdin), read by the POS API's
    reader (``agent.requests.read_request_json``); a document that is not JSON is a
    ``bad_input`` error here (``InputError``, exit 2), and a number written with a point
    is refused by its field (``"price_kop": 10.5`` is ``bad_cart``)."""
    from agent.requests import read_request_json

    try:
        text = args.json if args.json is not None else sys.stdin.read()
    except UnicodeDecodeError as e:
        raise InputError(
            f"request is not UTF-8 text: byte {e.start + 1} is {e.object[e.start]:#04x}",
            f"запрос не в кодировке UTF-8: неверный байт {e.start + 1}",
            field="json",
        ) from None
    return read_request_json(text, not_json=InputError, floats_to_fields=True)


def open_agent(
    args: argparse.Namespace, create_with: str = "kassa init", *, read_only: bool = False
) -> Agent:
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
    store = Store(path, read_only=read_only)
    try:
        return Agent(store)
    except BaseException:
        store.close()  # the ownership lock too: a caller in the same process may retry
        raise


def with_agent(
    fn: Callable[[Agent, Any], object],
    needs_json: bool = True,
    *,
    read_only: bool = False,
    create_with: str = "kassa init",
) -> Callable[..., int]:
    """A command: ``fn(agent, request)`` (the JSON read, or the parsed arguments when not
    ``needs_json``) on the till named by ``--store``, its answer printed as JSON."""

    def run(args: argparse.Namespace) -> int:
        data = read_json(args) if needs_json else None
        agent = open_agent(args, create_with, read_only=read_only)
        try:
            emit(fn(agent, data if needs_json else args))
        finally:
            agent.store.close()
        return 0

    return run


def add_command(
    sub: Any,
    name: str,
    help_: str,
    fn: Callable[[argparse.Namespace], int],
    store_default: str,
    json_in: bool = False,
) -> argparse.ArgumentParser:
    """A JSON command on the till store: ``--store`` (and ``--json`` for a request)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    p.add_argument(
        "--store",
        default=store_default,
        help="till store file (default: $KASSA_STORE or the user data dir)",
    )
    if json_in:
        p.add_argument("--json", help="request JSON (default: read stdin)")
    p.set_defaults(func=fn)
    return json_errors(p)
