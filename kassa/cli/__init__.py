"""The `kassa` command line: the composition root (it may import every package, lazily).

The package: ``common`` holds what every command module shares (the argument parser class,
JSON in and out, opening the till); ``till`` the till's JSON commands; ``agent`` serving
the POS API, config, doctor, store backup; ``sync`` the back office, enrolment and sync;
``drivers`` and ``scanner`` the devices; ``tui`` the cashier app, the demo and cashiers.
Nothing else imports this package: it only parses, calls the till service (or the back
office) once and prints.

JSON-in/JSON-out commands (identify, quote, hold place, commit, refund, register) read one
JSON object from stdin (or ``--json``), parsed by ``agent.requests`` as the POS API parses
it, and print one JSON object, so a script or the host POS can drive the core before the
local API exists. Errors print ``{"error": code, ...}`` on stdout, a
cashier-readable line on stderr, and exit 2 (bad input, not found, conflict) or 3 (store).

Commands whose output is JSON (marked with :func:`json_errors`) report wrong arguments the
same way (``bad_arguments``, exit 2) instead of argparse's usage text; the human-facing
commands (``tui``, ``demo``, ``doctor``, ``cashier``, ...) keep argparse's usage text.
``--help`` is argparse's everywhere.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent.errors import AgentError, StoreError
from agent.version import version
from kassa.cli.common import KassaArgumentParser, emit
from kassa.paths import default_store_path


def build_parser() -> argparse.ArgumentParser:
    parser = KassaArgumentParser(prog="kassa", description="Kassa loyalty agent for checkouts")
    parser.add_argument("--version", action="version", version=f"kassa {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    from kassa.cli.till import add_commands as add_till

    add_till(sub, str(default_store_path()))
    from kassa.cli.sync import add_commands

    add_commands(sub, str(default_store_path()))
    from kassa.cli.scanner import add_commands as add_scanner

    add_scanner(sub, str(default_store_path()))
    from kassa.cli.drivers import add_commands as add_drivers

    add_drivers(sub, str(default_store_path()))
    from kassa.cli.agent import add_commands as add_agent

    add_agent(sub, str(default_store_path()))
    from kassa.cli.tui import add_commands as add_tui

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
        emit(e.to_dict())
        sys.stderr.write(f"kassa: {e.title}: {e.message_ru}\n")
        return 3 if isinstance(e, StoreError) else 2
    except KeyboardInterrupt:  # Ctrl-C: what was being written was rolled back
        sys.stderr.write("kassa: прервано / interrupted\n")
        return 130
