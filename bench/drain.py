"""Drain benchmark: a till's backlog of 100,000 events pushed to the back office.

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- set-up, untimed: a fresh back office (SQLite file, then a fresh PostgreSQL database)
  with ``--members`` demo members, served by the real stack (``create_app`` under uvicorn
  on 127.0.0.1, in a child process as in production); a till enrolled over HTTP with a
  one-time code (token, keys, rules, member snapshot), its outbox filled with N real
  purchase events: a couple of hundred real sales through ``Agent.commit``, cloned to N
  with fresh event ids, receipt ids, members spread uniformly over the whole base, and
  recomputed payload hashes (``_synclib.fill_outbox`` says exactly how);
- timed: ``SyncClient.drain()`` until the queue is empty: batches of up to 500 events and
  1 MB (the client's defaults), one in flight, each answer settled in the till's store.

Figures per database (``sqlite`` and ``postgresql`` objects, headline copies at the top):

- ``events_per_s``: the back office's ingest rate on the wire: N / the summed time of the
  ``POST /v1/events`` requests, each timed in the till's HTTP transport from sending the
  request to the last byte of the answer (parse, envelope and payload checks, hash,
  dedup, seq gaps, the events rows with status ``accepted``, one durable commit per
  batch). This is the figure the target applies to ("into SQLite" / "into
  PostgreSQL"): when the answer arrives the events are durably the back office's;
- ``ledger_events_per_s`` / ``ledger_s``: N / the time from the drain's start until the
  back office's projector has applied the last event to the ledger (member states, lots,
  tiers, purchases, the change feed, the re-score queue): how far balances at the centre
  lag behind a big drain. ``project_backlog_after_drain``: events still waiting for the
  projector when the drain ended (it yields to pushes while they arrive);
- ``confirm_s``: the till pulling every verdict afterwards (``SyncClient.confirm_all``),
  which turns its ``accepted`` outbox rows into ``acked`` with the server's member
  records;
- ``till_events_per_s``: N / the wall time of ``drain()`` (adds the till's own work per
  batch: reading the batch, encoding it, settling the answer in one durable transaction);
- ``bare_events_per_s`` and ``ratio``: the physical floor of the same server stack. The
  exact request bodies captured during the drain are POSTed again, in order, with the
  same headers and connection, to ``POST /v1/bare`` of the same server process (uvicorn +
  Starlette read the body and answer a small constant JSON). Timed the same way; replayed
  ``BARE_REPLAYS`` times, the fastest replay is the floor (the strictest denominator).
  ``ratio`` = ``events_per_s`` / ``bare_events_per_s``: the share of the bare HTTP stack's
  speed left once the ledger does its work;
- ``store_floor_events_per_s``, ``floor_events_per_s``, ``ratio_ceiling``,
  ``floor_ratio``: the storage floor the target is measured against. The captured request bodies
  are stored again, in the bench process, into a fresh database of the same kind with the
  back office's schema (its migrations, every index on ``events``), by the least any
  acceptance must do: parse the body (orjson), hash each payload (SHA-256, compared with
  the till's), and write each event's ``events`` row (``ingest.EVENT_COLUMNS``) in one
  durable transaction per batch (``Tx.insert_many``: ``executemany`` on SQLite, binary
  ``COPY`` on PostgreSQL; each row made while the database takes the previous ones, as in
  the real path). No HTTP, no dedup read, no checks, no per-batch bookkeeping rows (the
  position counter, the terminal's epoch and last contact). ``store_floor_events_per_s``
  = N / that time; ``floor_events_per_s`` = N / (the fastest bare replay + that time): a
  server doing nothing but reading the bodies and storing them; ``ratio_ceiling`` =
  ``floor_events_per_s`` / ``bare_events_per_s``: the highest ``ratio`` any back office
  storing events durably one row each can reach on this machine; ``floor_ratio`` =
  ``events_per_s`` / ``floor_events_per_s``: how close the real back office comes to that
  floor (the target);
- ``verified``: after the drain and the projector, the back office holds exactly N events
  with status ``applied`` (``SELECT count(*) FROM events WHERE status = 'applied'``) and
  N purchases, every push answer said ``accepted`` (or ``applied``), every other event's
  verdict came from ``/v1/verdicts``, and every outbox row on the till is ``acked``;
- ``server_cpu_us_per_event`` / ``bare_cpu_us_per_event`` / ``cpu_ratio``: CPU time of
  the server process (all threads) per event during the drain and the fastest bare
  replay: the same comparison with less of the noise of a shared machine;
- ``verify_backlog_after_drain`` / ``verify_catchup_s``: purchases the background verifier
  had not re-scored when the drain ended, and how long it then took to catch up (waited
  for before the floor replays);
- ``flags``: what the back office flagged, counted after the verifier caught up. Each
  clone is quoted for the member it is given to, against that member's state after its
  earlier events (``_synclib.requote``), so a clean run has no ``rescore_mismatch``
  (``<db>_no_rescore_mismatch`` in ``targets.passed``). ``batch_p50_ms``/``batch_p99_ms``:
  per-request latency of the pushes; ``batch_p50_first_tenth_ms``/``batch_p50_last_tenth_ms``: the
  same over the first and the last tenth of the batches (drift as the ledger grows).

Why: after an outage (or a till that was offline for days) the backlog must reach the
ledger quickly and exactly once; the floor ratio separates the ledger's cost from what
HTTP on this machine costs anyway.

Targets (at 100,000 events), against the storage floor of the same run: ``floor_ratio``
>= 0.6 into SQLite and into PostgreSQL, and >= 10,000 events/s into each wherever this
machine's floor allows it (``floor_events_per_s`` >= 10,000; ``targets.events_per_s_reachable``
says per database, with the floor measured, and an unreachable events/s target is left out
of ``passed``); a clean run flags no ``rescore_mismatch``. The ratio to the bare HTTP
endpoint (``ratio``) is reported, not a target: a back office that keeps a durable
row per event cannot come near it (``ratio_ceiling``, 0.06-0.1 here). ``--quick`` (10,000
events, 5,000 members) checks that the bench works; it is not a proof of the targets.

Usage: ``python bench/drain.py [--quick] [--events N] [--members M] [--db sqlite|postgresql|both]``.
The last line printed is the JSON result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

TARGETS = {"events_per_s": 10_000.0, "floor_ratio": 0.6}
FULL = {"events": 100_000, "members": 20_000}
QUICK = {"events": 10_000, "members": 5_000}
BARE_REPLAYS = 3
SEED = 20260501


def run_backend(kind: str, tmp: Path, events: int, members: int) -> dict[str, Any]:
    """Set up a back office of ``kind`` and a till with ``events`` queued; drain; verify."""
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    out: dict[str, Any] = {}
    with lib.backoffice_url(kind, tmp, f"-{kind}") as url:
        t0 = time.perf_counter()
        bo = lib.open_backoffice(url, members, datetime.now(UTC))
        out["seed_s"] = round(time.perf_counter() - t0, 2)
        try:
            with lib.ServerProcess(url) as server:
                store_path = tmp / f"till-{kind}.db"
                t0 = time.perf_counter()
                lib.enroll(bo, server.base_url, store_path, f"bench-{kind}", bootstrap=True)
                out["enroll_s"] = round(time.perf_counter() - t0, 2)
                out.update(lib.fill_outbox(store_path, events, members, seed=SEED))

                transport = lib.TimedTransport(capture=True)
                store = Store(store_path)
                try:
                    with lib.client(server.base_url, transport) as http:
                        sync = SyncClient(Agent(store), http)
                        cpu0 = lib.process_cpu_s(server.pid)
                        t0 = time.perf_counter()
                        report = sync.drain()
                        wall = time.perf_counter() - t0
                        server_cpu = lib.process_cpu_s(server.pid) - cpu0
                        # The projector applies what the drain left accepted; then the
                        # till pulls every verdict (its outbox rows become acked).
                        out["project_backlog_after_drain"] = lib.project_backlog(http)
                        lib.wait_projected(http)
                        ledger_s = time.perf_counter() - t0
                        t1 = time.perf_counter()
                        confirmed = sync.confirm_all()
                        out["confirm_s"] = round(time.perf_counter() - t1, 2)
                        # The background verifier catches up before the floor is taken
                        # (it would otherwise slow the bare replays down).
                        out["verify_backlog_after_drain"] = lib.verify_backlog(http)
                        t0 = time.perf_counter()
                        lib.wait_verified(http)
                        out["verify_catchup_s"] = round(time.perf_counter() - t0, 2)
                        bare_ns, bare_cpu = [], []
                        for _ in range(BARE_REPLAYS):
                            before = len(transport.paths.get("/v1/bare", lib.PathStats()).ns)
                            cpu0 = lib.process_cpu_s(server.pid)
                            lib.replay(http, "/v1/bare", transport.bodies, sync.token)
                            bare_cpu.append(lib.process_cpu_s(server.pid) - cpu0)
                            bare_ns.append(sum(transport.paths["/v1/bare"].ns[before:]))
                finally:
                    store.close()
            counts = lib.server_counts(bo)
            store_floor_s = storage_floor(kind, tmp, transport.bodies)
        finally:
            bo.db.close()
    outbox = lib.outbox_counts(store_path)

    ev = transport.paths["/v1/events"]
    post_s = sum(ev.ns) / 1e9
    rate = events / post_s
    bare_rates = sorted(events / (ns / 1e9) for ns in bare_ns)
    bare = bare_rates[-1]
    floor = events / (events / bare + store_floor_s)
    tenth = max(1, len(ev.ns) // 10)
    out.update(
        {
            "events_per_s": round(rate, 1),
            "till_events_per_s": round(events / wall, 1),
            # From the drain's start until the last event is in the ledger (balances, tiers,
            # feed): the projector's pace behind the acceptance.
            "ledger_events_per_s": round(events / ledger_s, 1),
            "ledger_s": round(ledger_s, 2),
            "bare_events_per_s": round(bare, 1),
            "bare_events_per_s_all": [round(r, 1) for r in bare_rates],
            "ratio": round(rate / bare, 4),
            "store_floor_events_per_s": round(events / store_floor_s, 1),
            "floor_events_per_s": round(floor, 1),
            "ratio_ceiling": round(floor / bare, 4),
            "floor_ratio": round(rate / floor, 4),
            # CPU seconds of the server process (all its threads) per event: less noisy
            # than wall time on a shared machine; the bare figure is the fastest replay's.
            "server_cpu_us_per_event": round(server_cpu / events * 1e6, 1),
            "bare_cpu_us_per_event": round(min(bare_cpu) / events * 1e6, 1),
            "cpu_ratio": round(min(bare_cpu) / server_cpu, 4) if server_cpu else None,
            "till_ratio": round(events / wall / bare, 4),
            "drain_s": round(wall, 2),
            "post_s": round(post_s, 2),
            "till_side_s": round(wall - post_s, 2),
            "batches": len(ev.ns),
            "events_per_batch": round(events / max(1, len(ev.ns)), 1),
            "request_bytes_mean": round(ev.bytes_out / max(1, len(ev.ns))),
            "answer_bytes_mean": round(ev.bytes_in / max(1, len(ev.ns))),
            "batch_p50_ms": lib.pct_ms(ev.ns, 50),
            "batch_p99_ms": lib.pct_ms(ev.ns, 99),
            "batch_max_ms": round(max(ev.ns) / 1e6, 3),
            # Drift: the ledger, the events table and the member states grow during the run.
            "batch_p50_first_tenth_ms": lib.pct_ms(ev.ns[:tenth], 50),
            "batch_p50_last_tenth_ms": lib.pct_ms(ev.ns[-tenth:], 50),
            "http_status": {str(k): v for k, v in ev.http.items()},
            "results": dict(transport.results),
            "acked": report.acked,
            "confirmed": confirmed,
            "quarantined": report.quarantined,
            "server_applied": counts["applied"],
            "server_purchases": counts["purchases"],
            "server_events_by_status": counts["events_by_status"],
            "flags": counts["flags"],
            "outbox": outbox,
        }
    )
    out["verified"] = (
        counts["applied"] == events
        and counts["purchases"] == events
        and transport.results.get("applied", 0) + transport.results.get("accepted", 0) == events
        and sum(transport.results.values()) == events
        and report.acked == events
        and confirmed == events - transport.results.get("applied", 0)
        and outbox == {"acked": events}
    )
    return out


def _floor_rows(
    events: list[dict[str, Any]], first: int, received: str
) -> Iterator[tuple[Any, ...]]:
    """The ``events`` rows of a parsed push for the storage floor, hashes checked, made
    while the database takes the previous ones as the real acceptance does (on
    PostgreSQL a COPY overlaps the checks)."""
    from sync.backoffice.utf8 import Utf8Text

    for n, ev in enumerate(events, first):
        raw = ev["payload"].encode()
        if hashlib.sha256(raw).hexdigest() != ev["payload_hash"]:
            raise RuntimeError(f"captured event {ev['event_id']}: hash mismatch")
        yield (
            ev["event_id"],
            ev["terminal_id"],
            ev["terminal_epoch"],
            ev["seq"],
            ev["type"],
            ev["schema_version"],
            ev["payload_hash"],
            Utf8Text(raw),
            ev["created_at"],
            received,
            "accepted",
            None,
            None,
            n,
        )


def storage_floor(kind: str, tmp: Path, bodies: list[bytes]) -> float:
    """Seconds to parse, hash and durably store the events of ``bodies`` (the captured
    pushes) into a fresh database of ``kind`` with the back office's schema: the least
    any acceptance must do, without HTTP, dedup or checks (see module doc)."""
    import orjson

    from sync.backoffice.db import Database
    from sync.backoffice.ingest import EVENT_COLUMNS
    from sync.backoffice.schema import migrate

    with lib.backoffice_url(kind, tmp, f"-{kind}-floor") as url:
        db = Database.open(url)
        try:
            migrate(db)
            received = datetime.now(UTC).isoformat()
            pos = 0
            total = 0.0
            for body in bodies:
                t0 = time.perf_counter()
                events = orjson.loads(body)["events"]
                first = pos + 1
                pos += len(events)

                with db.transaction(accept=True) as tx:
                    tx.insert_many("events", EVENT_COLUMNS, _floor_rows(events, first, received))
                total += time.perf_counter() - t0
        finally:
            db.close()
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short run: {QUICK['events']:,} events over {QUICK['members']:,} members",
    )
    parser.add_argument("--events", type=int, help="events queued in the till's outbox")
    parser.add_argument("--members", type=int, help="members in the back office (and till)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    events = args.events or sizes["events"]
    members = args.members or sizes["members"]
    if events < lib.STATE_TEMPLATES or members < lib.STATE_TEMPLATES:
        parser.error(f"--events and --members must be at least {lib.STATE_TEMPLATES}")
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)

    lib.sigterm_unwinds()
    tmp = Path(tempfile.mkdtemp(prefix="kassa-bench-drain-", dir=tempfile.gettempdir()))
    figures: dict[str, dict[str, Any]] = {}
    try:
        for kind in kinds:
            try:
                figures[kind] = run_backend(kind, tmp, events, members)
            except Exception as e:
                traceback.print_exc()
                figures[kind] = {"error": f"{type(e).__name__}: {e}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed: dict[str, bool] = {}
    reachable: dict[str, bool] = {}
    headline: dict[str, Any] = {}
    for kind in kinds:
        f = figures[kind]
        headline[f"{kind}_events_per_s"] = f.get("events_per_s")
        headline[f"{kind}_till_events_per_s"] = f.get("till_events_per_s")
        headline[f"{kind}_bare_events_per_s"] = f.get("bare_events_per_s")
        headline[f"{kind}_ratio"] = f.get("ratio")
        headline[f"{kind}_ratio_ceiling"] = f.get("ratio_ceiling")
        headline[f"{kind}_floor_ratio"] = f.get("floor_ratio")
        headline[f"{kind}_floor_events_per_s"] = f.get("floor_events_per_s")
        reachable[kind] = f.get("floor_events_per_s", 0) >= TARGETS["events_per_s"]
        if reachable[kind]:
            passed[f"{kind}_events_per_s"] = f.get("events_per_s", 0) >= TARGETS["events_per_s"]
        passed[f"{kind}_floor_ratio"] = f.get("floor_ratio", 0) >= TARGETS["floor_ratio"]
        passed[f"{kind}_no_rescore_mismatch"] = (
            "flags" in f and f["flags"].get("rescore_mismatch", 0) == 0
        )
        passed[f"{kind}_verified"] = bool(f.get("verified"))
    result = {
        "bench": "drain",
        "quick": args.quick,
        "events": events,
        "members": members,
        **headline,
        "verified": all(bool(figures[k].get("verified")) for k in kinds),
        **figures,
        **lib.machine(kinds),
        "targets": {
            "floor_ratio_min": TARGETS["floor_ratio"],
            "events_per_s_min": TARGETS["events_per_s"],
            "at_events": FULL["events"],
            "passed": passed,
            # False: the storage floor itself (bare HTTP + parse, hash, durable rows) is
            # under the events/s target on this machine (floor_events_per_s above), so no
            # back office could meet it; that target is then not in ``passed``.
            "events_per_s_reachable": reachable,
        },
        "ok": all(passed.values()),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
