"""Ledger benchmark: how fast the back office applies accepted events, on one and on two
nodes, and how long a till waits for a verdict under a steady stream.

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- ``projection``: per database, a fresh back office with ``--members`` demo members and a
  till (enrolled over HTTP, outbox of N real purchase events filled as ``drain.py`` fills
  it: ``_synclib.fill_outbox``) drains into the real stack served without its projector
  (``ServerProcess(workers=False)``: the pushes only accept), so N events wait. Untimed
  so far. Then ``nodes`` projector processes start on one signal, each the projector
  thread ``kassa backoffice serve`` runs (``project.Projector``, idle: full-size passes)
  over the same database (``--node``); timed: from the signal until no event waits.
  ``applied_events_per_s`` = N / that time; ``node_cpu_us_per_event``: the projector
  processes' CPU per event (with ``load_avg_1m_at_start``, for a shared machine). The
  storage floor is ``drain.py``'s: the captured push bodies stored again by the least any
  acceptance must do (parse, hash, one durable ``events`` row each;
  ``drain.storage_floor``); ``floor_ratio`` =
  applied / floor events/s. ``verified``: N events ``applied``, N purchases. SQLite is
  single-node (one writer, an embedded file), so its two-node run is not made; on
  PostgreSQL the run is made with 1 and with 2 nodes (a fresh database each) and
  ``two_node_speedup`` = 2-node / 1-node applied events/s;
- ``latency``: per database, a back office served with its workers (as in production)
  and ``STEADY_TILLS`` tills (a thread each) whose outboxes hold ``rate`` x ``seconds``
  events between them, each pushing ``BATCH`` events at a time on a fixed schedule
  (``SyncClient.push_once``), together a steady ``rate`` events/s. An
  event's acceptance is the moment the till has the push's answer; its verdict is that
  same moment when the answer already carries it (a small push to an idle back office is
  projected before the answer), else the first moment a poll of ``GET /v1/verdicts``
  (every ``POLL_S``, another connection with the till's token) returns it.
  ``verdict_p50_ms`` / ``verdict_p99_ms`` / ``verdict_max_ms`` over all events;
  ``inline_share``: the share decided in the push's answer. ``latency_bulk``: the same
  stream in pushes of ``BULK_BATCH`` events, over ``ingest.INLINE_MAX_EVENTS``, so every
  verdict comes from the projector thread (not a target; it shows the projector's
  pace while pushes keep arriving).

Targets (this 2-core VM): applied >= 5,000 events/s on PostgreSQL (one node)
and on SQLite; acceptance to verdict p99 <= 2 s at 200 events/s; two nodes never slower
than one (``two_node_speedup`` >= 1).

Usage: ``python bench/ledger.py [--quick] [--events N] [--members M]
[--db sqlite|postgresql|both] [--rate R] [--seconds S]``. Default 100,000 events, 20,000
members, 200 events/s for 30 s (``--quick``: 10,000 events, 5,000 members, 10 s). The last
line printed is the JSON result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib
import drain

FULL = {"events": 100_000, "members": 20_000, "seconds": 30.0}
QUICK = {"events": 10_000, "members": 5_000, "seconds": 10.0}
RATE = 200.0  # events/s of the steady stream
BATCH = 10  # events per push of the steady stream (tills at the counter)
BULK_BATCH = 100  # ... of its bulk variant (over the inline limit: all via the projector)
POLL_S = 0.02  # verdict polls of the steady stream
STEADY_TILLS = 4  # tills sharing the steady stream, a thread each
VERDICT_WAIT_S = 120.0  # the longest a till of the stream waits for its last verdict
TARGETS = {"applied_events_per_s": 5_000.0, "verdict_p99_ms": 2_000.0, "two_node_speedup": 1.0}
SEED = 20260516


# --------------------------------------------------------------------------- node child
def node_main(url: str) -> int:
    """One node's projector: open the database, say READY, start the projector thread on
    GO (stdin), stop it on the next line, report JSON (events it applied, CPU seconds)."""
    from sync.backoffice import project
    from sync.backoffice.db import Database
    from sync.backoffice.lease import projector_lease
    from sync.backoffice.service import Backoffice

    db = Database.open(url)
    try:  # as the app's lifespan starts it (``sync.backoffice.app``)
        worker = project.Projector(Backoffice(db).context, projector_lease(db))
        print("READY", flush=True)
        sys.stdin.readline()
        cpu0 = time.process_time()
        worker.start()
        sys.stdin.readline()
        worker.stop()
        print(json.dumps({"done": worker.done, "cpu_s": round(time.process_time() - cpu0, 2)}))
    finally:
        db.close()
    return 0


class Nodes:
    """``n`` projector processes over ``url`` (``node_main``), released together."""

    def __init__(self, url: str, n: int) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--node", url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "READY":
                self.kill()
                raise RuntimeError(f"projector node did not start: {line!r}")

    def say(self) -> None:
        """A line to every node: the first starts its projector, the second stops it."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()

    def reports(self) -> list[dict[str, Any]]:
        self.say()
        out = []
        for proc in self.procs:
            stdout, _ = proc.communicate(timeout=120)
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_projection(kind: str, tmp: Path, events: int, members: int, nodes: int) -> dict[str, Any]:
    """One ``projection`` figure set (module doc) for ``nodes`` projector processes."""
    from agent.service import Agent
    from agent.store import Store
    from sync.backoffice import project
    from sync.client import SyncClient

    out: dict[str, Any] = {"nodes": nodes}
    tag = f"-{kind}-{nodes}n"
    with lib.backoffice_url(kind, tmp, tag) as url:
        bo = lib.open_backoffice(url, members, datetime.now(UTC))
        try:
            store_path = tmp / f"till{tag}.db"
            with lib.ServerProcess(url, workers=False) as server:
                lib.enroll(bo, server.base_url, store_path, f"bench{tag}", bootstrap=True)
                out.update(lib.fill_outbox(store_path, events, members, seed=SEED))
                transport = lib.TimedTransport(capture=True)
                with Store(store_path) as store, lib.client(server.base_url, transport) as http:
                    t0 = time.perf_counter()
                    SyncClient(Agent(store), http).drain()
                    out["accept_s"] = round(time.perf_counter() - t0, 2)
            out["backlog_before"] = project.backlog(bo.context)
            group = Nodes(url, nodes)
            try:
                load_at_start = round(os.getloadavg()[0], 2)
                t0 = time.perf_counter()
                group.say()
                while project.backlog(bo.context) > 0:
                    time.sleep(0.05)
                apply_s = time.perf_counter() - t0
                reports = group.reports()
            finally:
                group.kill()
            counts = lib.server_counts(bo)
        finally:
            bo.db.close()
    floor_s = drain.storage_floor(kind, tmp, transport.bodies)
    applied = events / apply_s
    floor = events / floor_s
    out.update(
        {
            "apply_s": round(apply_s, 2),
            "applied_events_per_s": round(applied, 1),
            "store_floor_events_per_s": round(floor, 1),
            "floor_ratio": round(applied / floor, 4),
            "applied_by_node": [r["done"] for r in reports],
            "node_cpu_s": [r["cpu_s"] for r in reports],
            # CPU of the projector processes per event: steadier than wall time on a
            # shared machine (the database server's own CPU is not in it)
            "node_cpu_us_per_event": round(sum(r["cpu_s"] for r in reports) / events * 1e6, 1),
            "load_avg_1m_at_start": load_at_start,
            "server_events_by_status": counts["events_by_status"],
            "server_purchases": counts["purchases"],
            "verified": counts["events_by_status"] == {"applied": events}
            and counts["purchases"] == events
            and sum(r["done"] for r in reports) == events,
        }
    )
    return out


def run_latency(
    kind: str, tmp: Path, members: int, rate: float, seconds: float, batch: int
) -> dict[str, Any]:
    """The ``latency`` figure set (module doc): a steady ``rate`` for ``seconds`` from
    ``STEADY_TILLS`` tills in pushes of ``batch`` events."""
    per_till = max(batch, int(rate * seconds / STEADY_TILLS) // batch * batch)
    events = per_till * STEADY_TILLS
    out: dict[str, Any] = {"rate": rate, "tills": STEADY_TILLS, "batch": batch, "events": events}
    tag = f"-{kind}-latency-{batch}"
    accepted: dict[str, float] = {}
    decided: dict[str, float] = {}
    inline: list[int] = []
    with lib.backoffice_url(kind, tmp, tag) as url:
        bo = lib.open_backoffice(url, members, datetime.now(UTC))
        try:
            with lib.ServerProcess(url) as server:
                paths = []
                for i in range(STEADY_TILLS):
                    path = tmp / f"till{tag}-{i}.db"
                    lib.enroll(bo, server.base_url, path, f"bench{tag}-{i}", bootstrap=True)
                    lib.fill_outbox(
                        path, per_till, members, seed=SEED + 1 + i, receipt_prefix=f"L{i}-"
                    )
                    paths.append(path)
                start = time.monotonic() + 0.5
                tills = [
                    threading.Thread(
                        target=_steady_till,
                        args=(server.base_url, path, start, rate / STEADY_TILLS, batch),
                        kwargs={"accepted": accepted, "decided": decided, "inline": inline},
                    )
                    for path in paths
                ]
                for t in tills:
                    t.start()
                for t in tills:
                    t.join()
                push_s = time.monotonic() - start
                out["push_s"] = round(push_s, 2)
                # the stream's real pace (a push slower than its slot delays the next)
                out["achieved_events_per_s"] = round(events / push_s, 1)
        finally:
            bo.db.close()
    waits = [max(0, int((decided[e] - accepted[e]) * 1e9)) for e in accepted if e in decided]
    out.update(
        {
            "decided": len(waits),
            "inline_share": round(sum(inline) / events, 4),
            "verdict_p50_ms": lib.pct_ms(waits, 50),
            "verdict_p99_ms": lib.pct_ms(waits, 99),
            "verdict_max_ms": round(max(waits) / 1e6, 1) if waits else None,
            "verified": len(waits) == events,
        }
    )
    return out


def _steady_till(
    base_url: str,
    store_path: Path,
    start: float,
    rate: float,
    batch: int,
    *,
    accepted: dict[str, float],
    decided: dict[str, float],
    inline: list[int],
) -> None:
    """One till of the steady stream: its outbox pushed ``batch`` events at a time at
    ``rate`` events/s from ``start`` (monotonic), each event's acceptance and verdict
    noted (module doc); then until its last verdict (at most ``VERDICT_WAIT_S``)."""
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    stop = threading.Event()
    with Store(store_path) as store, lib.client(base_url) as http:
        with store.read() as conn:
            ids = [r[0] for r in conn.execute("SELECT event_id FROM outbox ORDER BY seq")]
        token = store.meta("sync_token") or ""
        poller = threading.Thread(
            target=_poll_verdicts, args=(base_url, token, decided, stop), daemon=True
        )
        poller.start()
        sync = SyncClient(Agent(store), http, max_events=batch)
        sent = 0
        while sent < len(ids):
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            report = sync.push_once()
            now = time.monotonic()
            pushed = ids[sent : sent + report.sent]
            for event_id in pushed:
                accepted[event_id] = now
            with store.read() as conn:  # acked: the answer had the verdict
                for (event_id,) in conn.execute(
                    "SELECT event_id FROM outbox WHERE status = 'acked' "
                    f"AND event_id IN ({','.join('?' * len(pushed))})",
                    pushed,
                ):
                    decided[event_id] = now
                    inline.append(1)
            sent += report.sent
    deadline = time.monotonic() + VERDICT_WAIT_S
    while any(e not in decided for e in ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join(5)


def _poll_verdicts(
    base_url: str, token: str, decided: dict[str, float], stop: threading.Event
) -> None:
    """Poll the till's verdicts (module doc) and note when each was first seen."""
    headers = {"authorization": f"Bearer {token}"}
    after = 0
    with lib.client(base_url) as http:
        while not stop.is_set():
            resp = http.get("/v1/verdicts", params={"after": after, "limit": 1000}, headers=headers)
            now = time.monotonic()
            data = resp.json()
            for v in data["verdicts"]:
                decided.setdefault(v["event_id"], now)
            after = int(data["next"])
            if not data["more"]:
                stop.wait(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (not a proof)")
    parser.add_argument("--events", type=int, help="accepted events to apply")
    parser.add_argument("--members", type=int, help="members in the back office")
    parser.add_argument("--rate", type=float, default=RATE, help="steady events/s")
    parser.add_argument("--seconds", type=float, help="length of the steady stream")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    parser.add_argument("--node", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.node:
        return node_main(args.node)
    sizes = QUICK if args.quick else FULL
    events = args.events or int(sizes["events"])
    members = args.members or int(sizes["members"])
    seconds = args.seconds or float(sizes["seconds"])
    if events < lib.STATE_TEMPLATES or members < lib.STATE_TEMPLATES:
        parser.error(f"--events and --members must be at least {lib.STATE_TEMPLATES}")
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)

    lib.sigterm_unwinds()
    tmp = Path(tempfile.mkdtemp(prefix="kassa-bench-ledger-", dir=tempfile.gettempdir()))
    figures: dict[str, dict[str, Any]] = {}
    try:
        for kind in kinds:
            f: dict[str, Any] = {}
            for nodes in (1,) if kind == "sqlite" else (1, 2):
                try:
                    f[f"nodes_{nodes}"] = run_projection(kind, tmp, events, members, nodes)
                except Exception as e:
                    traceback.print_exc()
                    f[f"nodes_{nodes}"] = {"error": f"{type(e).__name__}: {e}"}
            for name, batch in (("latency", BATCH), ("latency_bulk", BULK_BATCH)):
                try:
                    f[name] = run_latency(kind, tmp, members, args.rate, seconds, batch)
                except Exception as e:
                    traceback.print_exc()
                    f[name] = {"error": f"{type(e).__name__}: {e}"}
            figures[kind] = f
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed: dict[str, bool] = {}
    headline: dict[str, Any] = {}
    for kind in kinds:
        f = figures[kind]
        one = f["nodes_1"]
        headline[f"{kind}_applied_events_per_s"] = one.get("applied_events_per_s")
        headline[f"{kind}_floor_ratio"] = one.get("floor_ratio")
        headline[f"{kind}_verdict_p99_ms"] = f["latency"].get("verdict_p99_ms")
        passed[f"{kind}_applied_events_per_s"] = (
            one.get("applied_events_per_s", 0) >= TARGETS["applied_events_per_s"]
        )
        passed[f"{kind}_verdict_p99_ms"] = (
            f["latency"].get("verdict_p99_ms", float("inf")) <= TARGETS["verdict_p99_ms"]
        )
        passed[f"{kind}_verified"] = bool(one.get("verified")) and bool(
            f["latency"].get("verified")
        )
        if "nodes_2" in f:
            two = f["nodes_2"]
            speedup = (
                round(two["applied_events_per_s"] / one["applied_events_per_s"], 4)
                if "applied_events_per_s" in two and "applied_events_per_s" in one
                else None
            )
            f["two_node_speedup"] = speedup
            headline[f"{kind}_two_node_speedup"] = speedup
            passed[f"{kind}_two_node_speedup"] = (
                speedup is not None and speedup >= TARGETS["two_node_speedup"]
            )
            passed[f"{kind}_verified"] = passed[f"{kind}_verified"] and bool(two.get("verified"))
    result = {
        "bench": "ledger",
        "quick": args.quick,
        "events": events,
        "members": members,
        **headline,
        **figures,
        **lib.machine(kinds, "projector nodes a process each"),
        "targets": {
            "applied_events_per_s_min": TARGETS["applied_events_per_s"],
            "verdict_p99_ms_max": TARGETS["verdict_p99_ms"],
            "verdict_at_events_per_s": args.rate,
            "two_node_speedup_min": TARGETS["two_node_speedup"],
            "sqlite_nodes": "one (an embedded file has one writer)",
            "passed": passed,
        },
        "ok": all(passed.values()),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
