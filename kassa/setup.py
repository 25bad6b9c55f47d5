"""`kassa init`: create a till store, optionally with the demo programme and members.

A real till gets its keys from the back office at enrollment (issue 3). For the demo the
"back office" keys are made here and kept in ``backoffice-keys.json`` beside the store
(mode 0600): the private halves stand in for the back office (issuing app QR codes and
coupons, opening sealed phones); the till's store receives only the public halves and the
phone-hash key.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.rules import load_programme
from agent.seed import demo_programme, member_rows, seed_catalog
from agent.service import Agent
from agent.store import Store
from agent.tokens import generate_programme_keys


def keys_path(store_path: Path) -> Path:
    return store_path.with_name("backoffice-keys.json")


def make_demo_keys(path: Path) -> dict[str, str]:
    keys = generate_programme_keys()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(keys, f, indent=2)
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
    """Create and initialise a store; returns a summary for the command line."""
    if path.exists():
        from agent.errors import ConflictError

        raise ConflictError(f"{path} already exists", f"база {path} уже существует", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)  # first run: the data dir may not exist
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
            loaded = store.bulk_load_members(
                member_rows(members, programme, bytes.fromhex(keys["phone_hash_key"]), now)
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
