"""`kassa agent serve`, `kassa config show|check`, `kassa doctor`, `kassa store backup|restore`:
the installer's and the service manager's commands.

Kept apart from ``kassa.cli`` so the till's JSON commands do not import the web stack.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from kassa.cli.common import emit


class PortInUseError(AgentError):
    """The POS API's address cannot be bound (another agent or program listens there)."""

    code = "port_in_use"
    title_ru = "Порт занят"
    title_en = "Port in use"


class ListenError(AgentError):
    """The POS API's address cannot be used for another reason than a listener already
    there: a host name that does not resolve, a port below 1024 without the privilege,
    an address this machine does not have."""

    code = "cannot_listen"
    title_ru = "Нельзя открыть адрес POS API"
    title_en = "Cannot listen"


def _config(args: argparse.Namespace) -> Any:
    from kassa.config import load_config, with_store

    cfg = load_config(Path(args.config) if args.config else None)
    return with_store(cfg, getattr(args, "store", None))


_ADDRESS_IN_USE = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}


def check_port(host: str, port: int) -> None:
    """Bind (and release) every address uvicorn will listen on, as asyncio binds them
    (``SO_REUSEADDR`` except on Windows), so a port another program holds is reported
    as ``PortInUseError`` before anything says the API is up; any other failure (an
    address this machine does not have, a name that does not resolve, a port below 1024
    without the privilege) is a ``ListenError`` saying what the system said."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                if os.name != "nt":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as e:
        if e.errno not in _ADDRESS_IN_USE:
            raise ListenError(
                f"the POS API cannot listen on {host}:{port}: {e.strerror or e} (check api.host "
                "and api.port: a port below 1024 needs privileges)",
                f"POS API не может открыть {host}:{port}: {e.strerror or e} (проверьте api.host "
                "и api.port; порт ниже 1024 требует прав администратора)",
                host=host,
                port=port,
                reason=str(e),
            ) from None
        raise PortInUseError(
            f"the POS API cannot listen on {host}:{port}: {e.strerror or e} (another agent "
            "or program uses the port? set api.port or --port)",
            f"POS API не может занять {host}:{port}: порт занят или недоступен "
            "(api.port или --port)",
            host=host,
            port=port,
        ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the agent. The banner (address, store, token file, log) is printed only once
    the store is open (ownership taken), the token file exists and the port was bound
    (by ``check_port``, released again just before uvicorn binds it): a second agent on a
    locked store or a taken port prints only its error JSON. (Should another program take
    the port in that instant, uvicorn logs the error and exits with code 1.)"""
    from dataclasses import replace

    from kassa.runtime import Runtime, setup_logging

    cfg = _config(args)
    if args.port is not None:
        cfg = replace(cfg, api=replace(cfg.api, port=args.port))
    log_path = setup_logging(cfg, stderr=not args.quiet)

    class Serving(Runtime):
        def app(self) -> Any:
            # Runtime.serve calls this after open() took the store, inside its
            # try/finally (an error here closes the store and the workers).
            app = super().app()
            check_port(cfg.api.host, cfg.api.port)
            sys.stderr.write(
                f"kassa agent: POS API on http://{cfg.api.host}:{cfg.api.port}/v1, "
                f"store {cfg.store.path}, token file {cfg.token_path()}, log {log_path}\n"
            )
            return app

    try:
        Serving(cfg).serve()
    except PortInUseError as e:
        # Exit 1, not 2/3: the port may free itself (an agent still shutting down), so
        # systemd's Restart=on-failure may try again.
        emit(e.to_dict())
        sys.stderr.write(f"kassa: {e.title}: {e.message_ru}\n")
        return 1
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from kassa.config import redacted

    emit(redacted(_config(args)))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    emit({"ok": True, "source": cfg.source})
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from kassa.config import ConfigError
    from kassa.doctor import Finding, exit_code, render, run_checks

    try:
        findings = run_checks(_config(args))
    except ConfigError as e:
        findings = [Finding("config", "error", e.message_ru, e.message_en)]
    if args.json:
        emit({"findings": findings, "exit_code": exit_code(findings)})
    else:
        sys.stdout.write(render(findings, args.lang) + "\n")
    return exit_code(findings)


def cmd_backup(args: argparse.Namespace) -> int:
    cfg = _config(args)
    dest = Path(args.dest) if args.dest else None
    if dest is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = Path(cfg.store.path).with_name(f"till-backup-{stamp}.db")
    from kassa.till_backup import backup_store

    emit(backup_store(Path(cfg.store.path), dest))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from kassa.till_backup import restore_store

    emit(restore_store(Path(args.backup), Path(cfg.store.path)))
    return 0


def add_commands(sub: Any, store_default: str) -> None:
    """``agent serve``, ``config show|check`` and ``store backup|restore`` print JSON (their
    argument errors too, see ``kassa.cli.json_errors``); ``doctor`` is for people (text
    by default) and keeps argparse's usage text."""
    from kassa.cli.common import int_arg, json_errors

    def common(p: argparse.ArgumentParser, *, json_out: bool = True) -> None:
        p.add_argument("--config", help="config file (default: $KASSA_CONFIG or the user dir)")
        p.add_argument("--store", help="till store file (overrides store.path)")
        if json_out:
            json_errors(p)

    ap = sub.add_parser("agent", help="the headless agent (POS API, sync, printing, scanners)")
    asub = ap.add_subparsers(dest="agent_command", required=True)
    p = asub.add_parser("serve", help="run the agent until SIGTERM/Ctrl+C")
    common(p)
    p.add_argument(
        "--port",
        type=int_arg("--port", 1, 65535, "must be a TCP port 1-65535", "нужен порт TCP 1-65535"),
        help="POS API port (overrides api.port)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="log to the file only, not stderr (under systemd's journal stderr is the log, "
        "so it is written there anyway)",
    )
    p.set_defaults(func=cmd_serve)

    cp = sub.add_parser("config", help="the till's configuration file (agent and cashier app)")
    csub = cp.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser("show", help="the effective configuration, secrets masked")
    common(p)
    p.set_defaults(func=cmd_config_show)
    p = csub.add_parser("check", help="validate the configuration file")
    common(p)
    p.set_defaults(func=cmd_config_check)

    p = sub.add_parser(
        "doctor",
        help="check the installation and explain what is wrong",
        description="check the installation and explain what is wrong: store, agent, "
        "enrollment, back office, queue, printer and code page, scanners, disk, token file. "
        "Exit code 0 fine, 1 warnings, 2 errors.",
    )
    common(p, json_out=False)
    p.add_argument("--json", action="store_true", help="findings as JSON")
    p.add_argument("--lang", choices=("ru", "en"), default="ru", help="language of the findings")
    p.set_defaults(func=cmd_doctor)

    sp = sub.add_parser("store", help="backup and restore of the till store")
    ssub = sp.add_subparsers(dest="store_command", required=True)
    p = ssub.add_parser("backup", help="online backup (SQLite backup API)")
    common(p)
    p.add_argument("dest", nargs="?", help="backup file (default: beside the store)")
    p.set_defaults(func=cmd_backup)
    p = ssub.add_parser("restore", help="restore a backup; the till gets a new terminal epoch")
    common(p)
    p.add_argument("backup", help="backup file made by `kassa store backup`")
    p.set_defaults(func=cmd_restore)
