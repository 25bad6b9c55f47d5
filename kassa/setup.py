"""`kassa init`: create a till store, optionally with the demo programme and members.

A real till gets its keys from the back office at enrollment (``kassa enroll``). For the demo the
"back office" keys are made here and kept in ``backoffice-keys.json`` beside the store
(mode 0600): the private halves stand in for the back office (issuing app QR codes and
coupons, opening sealed phones); the till's store receives only the public halves and the
phone-hash key.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.private import write_private
from agent.rules import Programme, load_programme
from agent.seed import demo_programme, member_rows, seed_catalog, write_member_rows
from agent.service import Agent
from agent.store import Store
from agent.tokens import generate_programme_keys

log = logging.getLogger("kassa.setup")


def keys_path(store_path: Path) -> Path:
    return store_path.with_name("backoffice-keys.json")


def make_demo_keys(path: Path) -> dict[str, str]:
    keys = generate_programme_keys()
    write_private(path, json.dumps(keys, indent=2).encode())  # atomic, 0600
    return keys


def init_store(
    path: Path,
    *,
    demo: bool,
    members: int,
    rules_path: Path | None = None,
    store_name: str = "Kassa",
    terminal_id: str | None = None,
) -> dict[str, Any]:
    """Create and initialise a store; returns a summary for the command line.

    All or nothing: if anything fails or the run is interrupted (Ctrl-C), the files this
    call created are removed, so the same command can simply be run again (a half-made
    store would otherwise stand in the way: "already exists").
    """
    if path.exists():
        from agent.errors import ConflictError

        raise ConflictError(f"{path} already exists", f"база {path} уже существует", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)  # first run: the data dir may not exist
    made_keys = demo and not keys_path(path).exists()
    try:
        return _init_store(path, demo, members, rules_path, store_name, terminal_id)
    except BaseException:
        for leftover in _store_files(path) + ([keys_path(path)] if made_keys else []):
            leftover.unlink(missing_ok=True)
        raise


def _store_files(path: Path) -> list[Path]:
    """The store and the files SQLite and the ownership lock keep beside it."""
    return [path.with_name(path.name + s) for s in ("", "-wal", "-shm", "-journal", ".lock")]


def _init_store(
    path: Path,
    demo: bool,
    members: int,
    rules_path: Path | None,
    store_name: str,
    terminal_id: str | None,
) -> dict[str, Any]:
    keys = make_demo_keys(keys_path(path)) if demo else None
    started = time.perf_counter()
    with Store(path) as store:
        Agent.initialise(
            store,
            terminal_id=terminal_id,
            store_name=store_name,
            phone_hash_key=bytes.fromhex(keys["phone_hash_key"]) if keys else None,
            token_public_key=keys["token_public_key"] if keys else None,
            seal_public_key=keys["seal_public_key"] if keys else None,
        )
        agent = Agent(store)
        programme = load_programme(rules_path) if rules_path else demo_programme()
        agent.install_rules(programme)
        loaded = 0
        if demo:
            assert keys is not None
            seed_catalog(store)
            now = datetime.now(UTC)
            loaded = _load_demo_members(
                store, members, programme, bytes.fromhex(keys["phone_hash_key"]), now
            )
            # No contact is recorded: this till was never enrolled and never heard from a
            # back office, so it is offline (offline spending bounds apply) until
            # `kassa enroll` and a sync say otherwise. The seeded members count as a fresh
            # cache (their synced_at is now).
        return {
            "store": str(path),
            "terminal_id": agent.terminal_id,
            "rules_version": programme.version,
            "members": loaded,
            "keys": str(keys_path(path)) if demo else None,
            "seconds": round(time.perf_counter() - started, 2),
        }


PARALLEL_FROM = 100_000
"""Demo bases from this size are built on two processes (``_load_demo_members``)."""
SIDE_SHARE = 0.55
"""The second process's share of the rows: it writes a scratch file without an index, a
little cheaper per row than the store's own insert, and the store then copies them in."""


def _load_demo_members(
    store: Store, n: int, programme: Programme, hash_key: bytes, now: datetime
) -> int:
    """The demo member base, in one transaction (``Store.bulk_load_members``).

    From ``PARALLEL_FROM`` members on a machine with two or more cores (and not in a frozen
    Windows build, where a second interpreter is not at hand), a second process makes the
    last ``SIDE_SHARE`` of the rows into a scratch SQLite file while this one loads the
    first part; the store copies the file in before building the indexes. Row i is the
    same either way (``agent.seed`` derives it from i). If the second process fails, this
    one makes its rows instead, so the result never depends on it. 1,000,000 members:
    see bench/README.md (checkout.py ``build_s``).
    """
    parallel = (
        n >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 and not getattr(sys, "frozen", False)
    )
    if not parallel:
        return store.bulk_load_members(member_rows(n, programme, hash_key, now))
    split = n - int(n * SIDE_SHARE)
    fd, name = tempfile.mkstemp(
        prefix=f".{store.path.name}.seed-", suffix=".tmp", dir=store.path.parent
    )
    os.close(fd)
    side = Path(name)
    side.unlink()  # the worker creates it as a database
    # A pool of one spawned process (no fork: the store's connection and lock must not be
    # shared); leaving the ``with`` terminates it, so an error or Ctrl-C here does not wait
    # for the worker to finish its rows.
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            job = pool.apply_async(write_member_rows, (side, split, n, programme, hash_key, now))

            def side_files() -> list[Path]:
                try:
                    job.get()
                except Exception:
                    log.warning(
                        "demo seed: the second process failed; making its rows here",
                        exc_info=True,
                    )
                    side.unlink(missing_ok=True)
                    write_member_rows(side, split, n, programme, hash_key, now)
                return [side]

            return store.bulk_load_members(
                member_rows(split, programme, hash_key, now), side_files=side_files
            )
    finally:
        side.unlink(missing_ok=True)
