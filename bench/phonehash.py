"""Phone lookup at the till with the memory-hard fingerprint (``agent.phonehash``).

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- ``lookup_*``: one lookup by phone as the till does it: ``Agent.identify`` of a typed
  number on a real till store (``agent.store.Store``) holding ``members`` rows, under a
  production programme (``phone_hash`` = ``TILL_COST``): parse, the v2 fingerprint
  (:func:`agent.phonehash.lookup_fingerprints`), the indexed ``SELECT``, the member's card.
  p50/p99 wall time and p99 of this thread's CPU time.
- ``hmac_lookup_p99_ms``: parse and SELECT with the v1 HMAC (``agent.identify.phone_hash``;
  an index miss, as the rows hold v2 fingerprints), the floor of everything but the hash.
- ``attack_*``: the attacker's bound for one member of such a store, from the parameters
  (:func:`agent.phonehash.attack_bound` of the stored mask) and, for scale, extrapolated
  from this run's CPU time per hash.

Target: ``lookup_p99_ms`` <= 100 and the expected attack cost >= 10^6 CPU-seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import codec
from agent.identify import parse_identifier, phone_hash
from agent.model import MemberState
from agent.phonehash import (
    ATTACK_GOAL_CPU_S,
    TILL_COST,
    attack_bound,
    hard_phone_hash,
    store_mask,
)
from agent.seed import demo_programme
from agent.service import Agent
from agent.service.context import initialise
from agent.store import MEMBER_LOAD_COLUMNS, Store

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""Any aware time: a typed phone does not depend on it."""

TARGETS = {"lookup_p99_ms": 100.0, "attack_expected_cpu_s": float(ATTACK_GOAL_CPU_S)}


def _phone(i: int) -> str:
    return f"+7916{i:07d}"


def _load(store: Store, key: bytes, n: int, real: int) -> None:
    """``n`` members; the first ``real`` with real fingerprints (the ones looked up), the
    rest with random 32-hex values of the same shape (the index cost is the same, and
    ``n`` real scrypt hashes would take n x 20-50 ms to make)."""
    rows = []
    for i in range(n):
        fp = hard_phone_hash(_phone(i), key) if i < real else secrets.token_hex(16)
        row = dict.fromkeys(MEMBER_LOAD_COLUMNS)
        row.update(
            member_id=f"m{i}",
            code=f"{i:013d}",
            phone_hash=fp,
            phone_masked=store_mask(_phone(i)),
            first_name="Анна",
            state=codec.dumps(MemberState(f"m{i}")),
            balance=0,
            available=0,
            pending=0,
            expiring_points=0,
            provisional=0,
            consent_programme=1,
            consent_marketing=0,
            updated_at="2026-01-01T00:00:00+00:00",
        )
        rows.append(tuple(row.values()))
    cols = ", ".join(MEMBER_LOAD_COLUMNS)
    with store.write() as conn:
        conn.executemany(
            f"INSERT INTO members({cols}) VALUES ({', '.join('?' * len(MEMBER_LOAD_COLUMNS))})",
            rows,
        )


def _hmac_lookup(store: Store, key: bytes, typed: str) -> None:
    """The same lookup with the v1 HMAC (the floor of everything but the hash); it finds
    nobody: the rows hold v2 fingerprints."""
    ident = parse_identifier(typed, None, now=_NOW)
    assert ident.phone_e164 is not None
    store.one(
        "SELECT member_id FROM members WHERE phone_hash = ?", (phone_hash(ident.phone_e164, key),)
    )


class _Clock:
    def now(self) -> datetime:
        return _NOW


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    members, real, runs = (2_000, 20, 40) if args.quick else (50_000, 100, 200)
    load_before = os.getloadavg()[0]
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "till.db")
        try:
            initialise(store, terminal_id="bench", phone_hash_key=key)
            agent = Agent(store, _Clock())
            agent.install_rules(dataclasses.replace(demo_programme(), phone_hash=TILL_COST))
            _load(store, key, members, real)
            walls: list[float] = []
            cpus: list[float] = []
            hmac_walls: list[float] = []
            for k in range(runs):
                digits = f"{k % real:07d}"
                typed = f"8 (916) {digits[:3]}-{digits[3:5]}-{digits[5:]}"
                w, c = time.perf_counter(), time.thread_time()
                found = agent.identify(typed)
                walls.append((time.perf_counter() - w) * 1e3)
                cpus.append((time.thread_time() - c) * 1e3)
                assert found.member_id == f"m{k % real}"
                w = time.perf_counter()
                _hmac_lookup(store, key, typed)
                hmac_walls.append((time.perf_counter() - w) * 1e3)
        finally:
            store.close()
    bound = attack_bound(store_mask(_phone(0)))
    cpu_per_hash_s = statistics.median(cpus) / 1e3
    result: dict[str, object] = {
        "bench": "phonehash",
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        "members": members,
        "lookups": runs,
        "scrypt": {"n": TILL_COST.n, "r": TILL_COST.r, "p": TILL_COST.p},
        "scrypt_memory_mib": TILL_COST.memory_bytes / 2**20,
        "lookup_p50_ms": round(statistics.median(walls), 2),
        "lookup_p99_ms": round(_p(walls, 0.99), 2),
        "lookup_cpu_p99_ms": round(_p(cpus, 0.99), 2),
        "hmac_lookup_p99_ms": round(_p(hmac_walls, 0.99), 3),
        "attack_candidates": bound.candidates,
        "attack_floor_per_hash_ms": round(bound.floor_s * 1e3, 2),
        "attack_expected_cpu_s": bound.expected_cpu_s,
        "attack_extrapolated_expected_cpu_s": bound.candidates * cpu_per_hash_s / 2,
    }
    ok = (
        float(str(result["lookup_p99_ms"])) <= TARGETS["lookup_p99_ms"]
        and bound.expected_cpu_s >= TARGETS["attack_expected_cpu_s"]
    )
    result["targets"] = TARGETS
    result["ok"] = bool(ok)
    for name, value in result.items():
        if name not in {"bench", "targets", "ok"}:
            print(f"{name:36} {value}", file=sys.stderr)
    sys.stderr.flush()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
