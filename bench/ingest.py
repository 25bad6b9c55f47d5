"""Ingest benchmark: 8 tills pushing their backlogs to one back office at the same time.

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- set-up, untimed: a fresh back office (SQLite file and/or a fresh PostgreSQL database)
  with ``--members`` demo members, served by the real stack (``create_app`` under uvicorn
  on 127.0.0.1, in a child process as in production); ``--tills`` tills enrolled over
  HTTP (one-time code, token, keys, rules, member snapshot), each with its own store and
  an outbox of ``--events`` real purchase events (real sales through ``Agent.commit``,
  cloned with fresh ids and hashes over members drawn from the whole base: the tills
  share members, as tills of one chain do; ``_synclib.fill_outbox`` says exactly how);
- timed: every till runs in its own process (a till is its own machine; no shared GIL)
  and starts ``SyncClient.drain()`` on the same signal: batches of up to 500 events and
  1 MB, one in flight per till, so up to ``--tills`` batches wait at the back office.

Figures per database:

- ``events_per_s``: all events of all tills / the time from the first till's first push
  to the last till's last answer (the back office's overall ingest rate under load);
- ``batch_p50_ms`` / ``batch_p99_ms`` / ``batch_max_ms``: latency of each
  ``POST /v1/events`` as the till sees it (timed in its HTTP transport, request sent to
  last byte of the answer), queueing behind other tills' batches included;
- ``till_events_per_s_min``/``max``: the slowest and fastest till's own drain rate;
- ``project_backlog_after_drain`` / ``ledger_catchup_s``: events the back office had
  accepted but not yet applied to the ledger when the last till finished, and how long
  its projector then took to apply them;
- the proof: every answer was HTTP 200 and every per-event result ``accepted`` (or
  ``applied``), the projector applied them all, every till pulled a verdict for each
  accepted event, the back office holds exactly tills x events applied events and
  purchases, and every till's outbox is fully ``acked``. Any error, non-200 answer or
  other result makes ``ok`` false.

Why: a chain's tills come back together after a network outage; the back office must
take their backlogs at a steady rate, exactly once, without one till starving the
others. There is no hard target for this bench (``targets`` is empty): the figures are
for comparison between builds and between SQLite and PostgreSQL.

Usage: ``python bench/ingest.py [--quick] [--tills 8] [--events N] [--members M]
[--db sqlite|postgresql|both]``. Default: both databases, 5,000 events per till
(``--quick``: 1,000). The last line printed is the JSON result; exit status is 0 whether
or not the run was clean.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

FULL = {"events": 5_000, "members": 20_000}
QUICK = {"events": 1_000, "members": 5_000}
TILLS = 8
TEMPLATES = 96  # real sales per till (2 per seeded member state), then clones
SEED = 20260502


# --------------------------------------------------------------------------- till child
def till_main(store_path: Path, base_url: str) -> int:
    """One till: open the store, say READY, wait for GO on stdin, drain, report JSON."""
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    transport = lib.TimedTransport()
    store = Store(store_path)
    error = None
    acked = quarantined = 0
    try:
        with lib.client(base_url, transport) as http:
            sync = SyncClient(Agent(store), http)
            print("READY", flush=True)
            sys.stdin.readline()
            start = time.monotonic()
            try:
                report = sync.drain()
                acked, quarantined = report.acked, report.quarantined
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            end = time.monotonic()
    finally:
        store.close()
    ev = transport.paths.get("/v1/events", lib.PathStats())
    print(
        json.dumps(
            {
                "start": start,
                "end": end,
                "first_post": transport.started[0] if transport.started else start,
                "post_ns": ev.ns,
                "http": {str(k): v for k, v in ev.http.items()},
                "results": dict(transport.results),
                "acked": acked,
                "quarantined": quarantined,
                "error": error,
                "outbox": lib.outbox_counts(store_path),
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- parent
def run_backend(kind: str, tmp: Path, tills: int, events: int, members: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lib.backoffice_url(kind, tmp, f"-{kind}") as url:
        t0 = time.perf_counter()
        bo = lib.open_backoffice(url, members, datetime.now(UTC))
        out["seed_s"] = round(time.perf_counter() - t0, 2)
        try:
            with lib.ServerProcess(url) as server:
                t0 = time.perf_counter()
                paths = []
                fills = []
                for i in range(tills):
                    path = tmp / f"{kind}-till-{i}.db"
                    lib.enroll(bo, server.base_url, path, f"till-{i}", bootstrap=True)
                    fills.append(
                        lib.fill_outbox(
                            path,
                            events,
                            members,
                            templates=TEMPLATES,
                            seed=SEED + i,
                            receipt_prefix=f"T{i}-",
                        )
                    )
                    paths.append(path)
                out["tills_setup_s"] = round(time.perf_counter() - t0, 2)
                out["payload_bytes_mean"] = round(
                    sum(f["payload_bytes_mean"] for f in fills) / len(fills), 1
                )
                reports = drive(paths, server.base_url)
                with lib.client(server.base_url) as http:
                    # the projector applies what the pushes accepted; each till then pulls
                    # its verdicts (its outbox rows become acked)
                    out["project_backlog_after_drain"] = lib.project_backlog(http)
                    t0 = time.perf_counter()
                    lib.wait_projected(http)
                    out["ledger_catchup_s"] = round(time.perf_counter() - t0, 2)
                    confirmed = sum(confirm(path, http) for path in paths)
                    outboxes = [lib.outbox_counts(path) for path in paths]
                    # flags are counted once the background verifier has re-scored everything
                    out["verify_backlog_after_drain"] = lib.verify_backlog(http)
                    t0 = time.perf_counter()
                    lib.wait_verified(http)
                    out["verify_catchup_s"] = round(time.perf_counter() - t0, 2)
            counts = lib.server_counts(bo)
        finally:
            bo.db.close()

    total = tills * events
    posts = [ns for r in reports for ns in r.get("post_ns", [])]
    http: Counter[str] = Counter()
    results: Counter[str] = Counter()
    for r in reports:
        http.update(r.get("http", {}))
        results.update(r.get("results", {}))
    errors = [r["error"] for r in reports if r.get("error")]
    begin = min(r["first_post"] for r in reports)
    finish = max(r["end"] for r in reports)
    per_till = [events / (r["end"] - r["first_post"]) for r in reports]
    out.update(
        {
            "events_per_s": round(total / (finish - begin), 1),
            "wall_s": round(finish - begin, 2),
            "till_events_per_s_min": round(min(per_till), 1),
            "till_events_per_s_max": round(max(per_till), 1),
            "batches": len(posts),
            "batch_p50_ms": lib.pct_ms(posts, 50),
            "batch_p99_ms": lib.pct_ms(posts, 99),
            "batch_max_ms": round(max(posts) / 1e6, 3) if posts else None,
            "http_status": dict(http),
            "results": dict(results),
            "errors": errors,
            "server_applied": counts["applied"],
            "server_purchases": counts["purchases"],
            "server_events_by_status": counts["events_by_status"],
            "flags": counts["flags"],
        }
    )
    outboxes_acked = all(o == {"acked": events} for o in outboxes)
    out["confirmed"] = confirmed
    out["clean"] = (
        not errors
        and set(http) == {"200"}
        and results["applied"] + results["accepted"] == total
        and sum(results.values()) == total
        and confirmed == results["accepted"]
        and counts["applied"] == total
        and counts["purchases"] == total
        and outboxes_acked
    )
    return out


def confirm(path: Path, http: Any) -> int:
    """A till pulls its verdicts (``SyncClient.confirm_all``); returns how many."""
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    store = Store(path)
    try:
        return SyncClient(Agent(store), http).confirm_all()
    finally:
        store.close()


def drive(paths: list[Path], base_url: str) -> list[dict[str, Any]]:
    """Start one process per till, wait until all are ready, release them together."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--till", str(p), "--url", base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in paths
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError(f"till process did not start: {line!r}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            stdout, _ = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                raise RuntimeError(f"till process failed (exit {proc.returncode})")
            reports.append(json.loads(stdout.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short run: {QUICK['events']:,} events per till, {QUICK['members']:,} members",
    )
    parser.add_argument("--tills", type=int, default=TILLS, help="concurrent tills")
    parser.add_argument("--events", type=int, help="events queued per till")
    parser.add_argument("--members", type=int, help="members in the back office")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    parser.add_argument("--till", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.till:
        return till_main(Path(args.till), args.url)
    sizes = QUICK if args.quick else FULL
    events = args.events or sizes["events"]
    members = args.members or sizes["members"]
    if events < TEMPLATES or members < TEMPLATES or args.tills < 1:
        parser.error(f"--events and --members must be at least {TEMPLATES}, --tills >= 1")
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)

    lib.sigterm_unwinds()
    tmp = Path(tempfile.mkdtemp(prefix="kassa-bench-ingest-", dir=tempfile.gettempdir()))
    figures: dict[str, dict[str, Any]] = {}
    try:
        for kind in kinds:
            try:
                figures[kind] = run_backend(kind, tmp, args.tills, events, members)
            except Exception as e:
                traceback.print_exc()
                figures[kind] = {"error": f"{type(e).__name__}: {e}", "clean": False}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    headline: dict[str, Any] = {}
    for kind in kinds:
        f = figures[kind]
        headline[f"{kind}_events_per_s"] = f.get("events_per_s")
        headline[f"{kind}_batch_p50_ms"] = f.get("batch_p50_ms")
        headline[f"{kind}_batch_p99_ms"] = f.get("batch_p99_ms")
    result = {
        "bench": "ingest",
        "quick": args.quick,
        "tills": args.tills,
        "events_per_till": events,
        "members": members,
        **headline,
        **figures,
        **lib.machine(kinds, "each till a process of its own"),
        "targets": {},
        "ok": all(bool(figures[k].get("clean")) for k in kinds),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
