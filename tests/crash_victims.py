"""``kassa`` commands run as real processes that a crash point kills (``agent.crashpoint``).

A cold interpreter per run spends seconds importing the CLI on a loaded machine; each run
here is instead one ``fork()`` of multiprocessing's fork server, which imported the CLI
and its commands once (``PRELOAD``). The child is a process of its own (own pid, own
SQLite connections and HTTP client, opened after the fork), runs ``kassa.cli.main`` with
``KASSA_CRASH_AT`` set, and dies by a real SIGKILL at that point.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from pathlib import Path
from typing import Any

from agent.crashpoint import CRASH_ENV

PRELOAD = (
    "httpx",
    "cryptography.hazmat.primitives.asymmetric.x25519",
    "agent.service",
    "agent.store",
    "kassa.cli",
    "kassa.cli.sync",
    "kassa.cli.agent",
    "kassa.runtime",
    "kassa.wiring",
    "sync.client",
    "sync.enroll",
    "uvicorn",
)
RUN_TIMEOUT_S = 120.0


@functools.cache
def _forkserver() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _main(argv: list[str], crash_at: str | None, out: str, env: dict[str, str]) -> None:
    """The child: stdout and stderr to ``out``, then ``kassa <argv>``; exits with its code."""
    os.environ.update(env)
    if crash_at:
        os.environ[CRASH_ENV] = crash_at
    else:
        os.environ.pop(CRASH_ENV, None)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from kassa.cli import main

    code = main(argv)
    os._exit(code)


def run_kassa(
    argv: list[str], out: Path, *, crash_at: str | None = None, env: dict[str, str] | None = None
) -> int:
    """Run ``kassa <argv>`` in a forked process (``crash_at``: the crash point it dies at)
    to its end; its exit code (``-9``: killed by SIGKILL). Its output is in ``out``."""
    proc = _forkserver().Process(target=_main, args=(argv, crash_at, str(out), env or {}))
    proc.start()
    proc.join(RUN_TIMEOUT_S)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise AssertionError(f"kassa {' '.join(argv)} did not finish: {out.read_text()}")
    assert proc.exitcode is not None
    return proc.exitcode
