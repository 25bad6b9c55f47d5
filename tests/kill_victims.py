"""The processes the kill tests SIGKILL, run from a preloaded fork server.

A cold interpreter per kill spends ~0.5 s importing the till (store, service, sync client,
httpx) before it sells anything. :func:`victim` instead starts each victim from
multiprocessing's fork server, which imported those packages once (``PRELOAD``);
a victim is then one ``fork()``: still a process of its own (own pid, its SQLite
connections and HTTP client opened after the fork) that the test kills with a real SIGKILL
while it writes.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import httpx
from conftest import make_cart

from agent.identify import make_member_code
from agent.results import CheckoutRequest
from agent.service import Agent
from agent.store import Store
from sync.client import SyncClient

READY_TIMEOUT_S = 60.0


# What the fork server imports once: the packages this module and ``conftest`` import (by
# their installed names: the server's ``sys.path`` is the interpreter's, without the test
# directory, and a module it cannot import is skipped silently). A victim then imports only
# this module and ``conftest`` themselves.
PRELOAD = (
    "httpx",
    "pytest",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "agent.identify",
    "agent.seed",
    "agent.service",
    "agent.store",
    "agent.tokens",
    "sync.client",
)


@functools.cache
def _forkserver() -> Any:
    """The fork server's context (POSIX only); the server starts once per process, with
    the preload list set when the first victim starts."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def sell(ready: Connection, path: str, start: int) -> None:
    """Sell (and refund every 7th) forever from receipt ``start`` on: the till's writes."""
    store = Store(path)
    agent = Agent(store)
    ready.send("ready")
    for n in itertools.count(start):
        card = agent.identify(make_member_code(100_000_000 + n % 50))
        cart = make_cart(f"K-{n}", ("DR-1001", 1), ("OW-4002", 1))
        agent.commit(CheckoutRequest(card.member_id, cart, "max" if n % 2 else 0))
        if n % 7 == 0:
            agent.refund(f"KR-{n}", f"K-{n}", {1: 1})


def sell_and_sync(ready: Connection, path: str, url: str, start: int) -> None:
    """Sell, refund every 5th and drain to the back office at ``url`` every 2nd, then pull
    one short page of the change feed (behind the push answers, as after an outage), forever."""
    store = Store(path)
    agent = Agent(store)
    client = SyncClient(agent, httpx.Client(base_url=url, timeout=5), max_events=7)
    ready.send("ready")
    for n in itertools.count(start):
        card = agent.identify(make_member_code(100_000_000 + n % 40))
        agent.commit(
            CheckoutRequest(
                card.member_id, make_cart(f"K-{n}", ("BG-7001", 1)), "max" if n % 3 == 0 else 0
            )
        )
        if n % 5 == 0:
            agent.refund(f"KR-{n}", f"K-{n}", {1: 1})
        if n % 2 == 0:
            client.drain()
            client.pull_once(limit=1)


@contextmanager
def victim(target: Callable[..., None], *args: Any) -> Iterator[Callable[[], None]]:
    """Fork ``target(ready, *args)`` and wait until it says it is ready; yields ``kill``,
    which SIGKILLs it and checks it died of that signal (not of an error of its own)."""
    ctx = _forkserver()
    here, there = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(there, *args), daemon=True)
    proc.start()
    there.close()
    killed = False

    def kill() -> None:
        nonlocal killed
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        killed = True
        assert proc.exitcode == -signal.SIGKILL, proc.exitcode

    try:
        started = here.poll(READY_TIMEOUT_S) and here.recv()
        assert started == "ready", f"the victim did not start (exit code {proc.exitcode})"
        yield kill
    finally:
        here.close()
        if not killed and proc.is_alive():
            proc.kill()
            proc.join()
