"""`kassa enroll`: join a till to the back office with a one-time code.

The answer carries the till's terminal id and bearer token, the programme's public keys
(QR tokens, coupons, sealing phones), the phone-hash key and the active rules; they go
into a new store in one transaction. The store file is made private (mode 0600): it holds
the token. Then the member snapshot is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agent import journal
from agent.clock import Clock
from agent.errors import ConflictError
from agent.service import Agent
from agent.store import Store
from sync.client import AGENT_USER_AGENT, PermanentError, SyncClient, TransientError


def enroll_till(
    store_path: Path,
    http: httpx.Client,
    code: str,
    *,
    name: str = "",
    terminal_id: str | None = None,
    bootstrap: bool = True,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Join a till to the back office with a one-time ``code`` and make its store at
    ``store_path`` (keys, rules, token; with ``bootstrap`` the member snapshot too).
    ``http``: the client to the back office (``sync.client.backoffice_http``, whose base
    URL is saved as the till's back office).
    Raises ``ConflictError`` when the store exists, ``TransientError`` when the back office
    cannot answer now (5xx, 429: the code is still good), ``PermanentError`` when it
    refuses (its code and message as fields) or cannot be reached (``__cause__``: the
    ``httpx`` error). ``progress`` is told the members loaded so far (every 10,000)."""
    if store_path.exists():
        raise ConflictError(
            f"{store_path} already exists",
            f"база {store_path} уже существует",
            path=str(store_path),
        )
    try:
        resp = http.post(
            "/v1/enroll",
            json={"code": code, "name": name, "terminal_id": terminal_id},
            headers={"user-agent": AGENT_USER_AGENT},
        )
    except httpx.HTTPError as e:
        raise PermanentError(f"back office not reachable: {e}") from e
    if resp.status_code >= 500 or resp.status_code == 429:
        # The back office is there but cannot answer now (its database, a restart, too
        # many requests): the code is still good, try again later.
        raise TransientError(f"HTTP {resp.status_code} from the back office; try again")
    if resp.status_code != 200:
        data = (
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        raise PermanentError.answer(f"HTTP {resp.status_code}", data)
    data = resp.json()
    with Store(store_path) as store:
        os.chmod(store_path, 0o600)
        Agent.initialise(
            store,
            terminal_id=data["terminal_id"],
            store_name=data["store_name"],
            phone_hash_key=bytes.fromhex(data["phone_hash_key"]),
            token_public_key=data["token_public_key"],
            seal_public_key=data["seal_public_key"],
        )
        agent = Agent(store, clock)
        now = agent.clock.now().isoformat()
        with store.write() as conn:
            Store.set_meta(conn, "sync_token", data["token"])
            Store.set_meta(conn, "store_id", data["store_id"])
            Store.set_meta(conn, "backoffice_url", str(http.base_url))
            journal.install_rules_document(
                conn, int(data["rules"]["version"]), data["rules"]["document"], now
            )
        members = SyncClient(agent, http).bootstrap(progress) if bootstrap else 0
    return {
        "store": str(store_path),
        "terminal_id": data["terminal_id"],
        "store_id": data["store_id"],
        "rules_version": data["rules"]["version"],
        "members": members,
    }
