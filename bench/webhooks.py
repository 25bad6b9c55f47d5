"""Webhook delivery benchmark: how soon a ledger change reaches a receiver, and that no
event is lost, invented or reordered through a 72-hour outage, a SIGKILLed deliverer and a
large backlog (``sync.backoffice.webhooks``), SQLite and PostgreSQL.

The receiver is real (``Receiver``: an HTTP server thread on 127.0.0.1 in this process,
answering 204, checking every signature with ``webhooks.verify``; stopped, its port
refuses connections: an outage). It keeps each request's ``webhook-id``, arrival time
(unix seconds), status, subject and ``member_seq``. ``tally`` compares what it accepted
(2xx) with the outbox: ``lost`` (an outbox event of the subscription never accepted),
``invented`` (an id that is no outbox event), ``duplicates`` (accepted deliveries minus
distinct ids: only the same ``webhook-id`` again, which the receiver deduplicates),
``wrong_content`` (an id whose subject or ``member_seq`` is not its event's) and
``out_of_order`` (a member's event accepted for the first time after a later one of the
same member). Phases, per database, each on a fresh database:

- ``latency``: the back office served as in production (``_synclib.ServerProcess``:
  uvicorn with the projector, verifier and the webhook ``Deliverer`` threads of
  ``kassa backoffice serve``), ``TILLS`` tills (a thread each) pushing real purchase
  events ``BATCH`` at a time at a steady ``--rate`` (200 events/s) for ``--seconds``; the
  projector applies them and writes their member events to the outbox in the ledger's
  transaction, all delivered to one subscription of every type. An event's latency runs
  from its outbox row's ``created_at`` (the projector pass's time, taken before its
  transaction commits: so the figure is at least the commit-to-attempt time) to its first
  request at the receiver. ``p50_ms``, ``p99_ms``, ``max_ms``; ``outbox_events_per_s``:
  member events per second the stream made (several per purchase).
- ``outage``: a ``Deliverer`` in this process with a controllable clock (``ShiftClock``)
  and the receiver failing from the first attempt: ``--outage-events`` events of
  ``--outage-members`` members are written to the outbox, then the clock advances in
  ``OUTAGE_STEP`` steps (rounds after each) through 72 hours (``webhooks.RETRY_FOR``):
  the first step's attempts answered 503, the rest refused connections (the receiver is
  stopped); then the receiver is back and the clock goes on until nothing is pending (an
  event failing once more after its 72 hours would be a dead letter: the outage is as
  long as the retries, no longer). ``attempts_during_outage``, ``recovered_h``
  (simulated hours from the receiver's return to the last delivery), ``dead``.
- ``kill``: ``--kill-events`` events queued, a child process (``--deliver``) runs the
  ``Deliverer`` thread over the same database and is SIGKILLed ``KILLS`` times while it
  sends (after 1/3 and 2/3 of the events reached the receiver), restarted each time with
  its clock ``CLAIM_S + 1`` s further ahead (a node restarted after its dead predecessor's
  claims expired: those deliveries are sent again, with the same ids).
- ``backlog``: ``--backlog`` events queued while the receiver is down (a ``Deliverer``
  round after round takes them all and fails each member's first, its clock an hour
  behind: the outage began an hour ago, so every retry is due now; ``queue_s``), then the
  back office is served as in production and its own ``Deliverer`` drains them to the
  recovered receiver. ``drain_s``: from starting the server to the last backlog event
  accepted; ``events_per_s``, ``full_size_s`` (the same rate over 1,000,000 events);
  ``delivered_per_s``: every event first delivered in that time (the backlog and the
  member events of the till pushing meanwhile) per second.
  Acceptance while it drains: a till (``bench/ingest.py``'s till process) pushes
  ``--till-events`` real purchases before the outage (server idle), during the drain and
  after it; ``accept_slowdown`` = 1 - during / max(before, after) (the faster run
  without a drain: on a shared machine the slower one is the noise). ``floor_per_s``: the
  same kind of signed request posted ``PARALLEL`` at a time to the receiver with no
  database (the HTTP floor of this machine); ``drain_vs_floor``.

Targets: latency p50 <= 1 s, p99 <= 5 s at 200 events/s; lost 0, invented 0,
wrong_content 0, out_of_order 0 in every phase (duplicates allowed, same id only); no
dead letter; the backlog of 1,000,000 drained in <= 30 min (``full_size_s``); acceptance
slowed by <= 10 % while it drains.

Usage: ``python bench/webhooks.py [--quick] [--db sqlite|postgresql|both] [--backlog N]
[--rate R --seconds S] [--members M] [--till-events K] [--outage-events E
--outage-members M] [--kill-events E]``. Full: backlog 1,000,000 (~30 min or more per
database at this machine's pace); ``--quick``: backlog 20,000. The last line printed is the
JSON result; exit status is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if "_synclib" not in sys.modules:  # a test loads it first (tests/benchlib.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

FULL = {
    "backlog": 1_000_000,
    "members": 20_000,
    "seconds": 30.0,
    "till_events": 20_000,
    "outage_events": 10_000,
    "outage_members": 1_000,
    "kill_events": 20_000,
}
QUICK = {
    "backlog": 20_000,
    "members": 5_000,
    "seconds": 10.0,
    "till_events": 5_000,
    "outage_events": 2_000,
    "outage_members": 200,
    "kill_events": 3_000,
}
FULL_BACKLOG = 1_000_000  # the size the drain target is set for
RATE = 200.0  # purchases per second of the latency stream
TILLS = 4  # tills of the latency stream, a thread each
BATCH = 10  # events per push of the latency stream
BACKLOG_MEMBERS_SHARE = 10  # a backlog of N events is of N / 10 members
OUTAGE_STEP = timedelta(minutes=15)
KILLS = 2
WAIT_S = 1800.0  # the longest any phase waits for its deliveries
ACTOR = "bench-webhooks"
SEED = 20261207
TARGETS = {
    "latency_p50_ms": 1_000.0,
    "latency_p99_ms": 5_000.0,
    "backlog_full_size_s": 1_800.0,
    "accept_slowdown": 0.10,
}
BENCH = Path(__file__).resolve()


class ShiftClock:
    """The wall clock (UTC) moved by ``offset``: the bench advances it to simulate hours
    of outage, or sets it behind or ahead of the wall clock."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


# --------------------------------------------------------------------------- receiver
@dataclass(frozen=True, slots=True)
class Arrival:
    webhook_id: str
    at: float  # unix seconds
    status: int
    subject: str
    seq: int


class Receiver:
    """A real receiver on 127.0.0.1 (module doc); ``stop`` and ``start`` again keep the
    port. ``fail_next``: that many requests are answered 503 first."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.secret = ""
        self.fail_next = 0
        self.bad_signatures = 0
        self.broken = 0
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                receiver.broken += 1  # a connection cut mid-request (a SIGKILLed sender)

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, got: dict[str, str], body: bytes) -> int:
        from sync.backoffice import webhooks

        at = time.time()
        try:
            event = json.loads(body)
        except ValueError:  # a body cut short: its sender died (the kill phase)
            with self._lock:
                self.broken += 1
            return 400
        status = 204
        try:
            stamp = datetime.fromtimestamp(int(got.get("webhook-timestamp", "0")), UTC)
            webhooks.verify(self.secret, got, body, stamp)
        except (webhooks.SignatureError, ValueError):
            status = 401
        with self._lock:
            if status == 401:
                self.bad_signatures += 1
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = 503
            self.arrivals.append(
                Arrival(
                    got.get("webhook-id", ""),
                    at,
                    status,
                    str(event.get("subject", "")),
                    int(event.get("data", {}).get("member_seq", 0)),
                )
            )
        return status

    def accepted_ids(self) -> int:
        with self._lock:
            return len({a.webhook_id for a in self.arrivals if 200 <= a.status < 300})

    def first_accepted(self) -> dict[str, float]:
        """Each accepted id's first arrival time (unix seconds)."""
        out: dict[str, float] = {}
        with self._lock:
            for a in self.arrivals:
                if 200 <= a.status < 300:
                    out.setdefault(a.webhook_id, a.at)
        return out

    def first_seen(self) -> dict[str, float]:
        """Each id's first request, whatever was answered (unix seconds)."""
        out: dict[str, float] = {}
        with self._lock:
            for a in self.arrivals:
                out.setdefault(a.webhook_id, a.at)
        return out


def floor_main(url: str, secret: str, n: int) -> int:
    """Child process: ``n`` signed posts of a member event's size to ``url``,
    ``webhooks.PARALLEL`` at a time over httpx (as the Deliverer sends, without its
    database); prints the requests per second."""
    import httpx

    from sync.backoffice import webhooks

    body = webhooks.encode_body(
        {
            "specversion": "1.0",
            "id": "f0000001:1",
            "source": "kassa",
            "type": "ru.kassa.purchase",
            "subject": "f0000001",
            "data": {"amount_kop": 123_400, "member_seq": 1},
        }
    )
    with httpx.Client(timeout=30.0) as http:

        def post(i: int) -> None:
            stamp = int(time.time())
            http.post(
                url, content=body, headers=webhooks.headers([secret], f"floor_{i}", stamp, body)
            )

        t0 = time.perf_counter()
        with ThreadPoolExecutor(webhooks.PARALLEL) as pool:
            list(pool.map(post, range(n)))
        took = time.perf_counter() - t0
    print(json.dumps({"per_s": n / took if took else None}))
    return 0


def http_floor(receiver: Receiver, n: int) -> float:
    """The delivery's floor on this machine (``floor_main`` in a child process, as the
    back office sends from its own), requests per second; its arrivals are not kept."""
    got = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--floor",
            receiver.url,
            "--secret",
            receiver.secret,
            "--n",
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    with receiver._lock:
        receiver.arrivals = [a for a in receiver.arrivals if not a.webhook_id.startswith("floor_")]
    return float(json.loads(got.stdout.strip().splitlines()[-1])["per_s"])


def tally(receiver: Receiver, db: Any, sid: int, after: int) -> dict[str, Any]:
    """What the receiver accepted against the outbox ids above ``after`` (module doc)."""
    from sync.backoffice import webhooks

    with db.reading() as tx:
        want = {
            webhooks.webhook_id(sid, int(oid)): (str(member), int(seq))
            for oid, member, seq in tx.all(
                "SELECT id, member_id, member_seq FROM outbox WHERE id > ?", (after,)
            )
        }
        dead = int(
            tx.one(
                "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ? "
                "AND state = 'dead'",
                (sid,),
            )[0]
        )
    with receiver._lock:
        accepted = [a for a in receiver.arrivals if 200 <= a.status < 300]
        requests = len(receiver.arrivals)
        bad = receiver.bad_signatures
    seen: set[str] = set()
    last: dict[str, int] = {}
    out_of_order = stale = wrong = 0
    for a in accepted:
        if a.webhook_id in seen:
            stale += a.seq < last.get(a.subject, 0)
            continue
        seen.add(a.webhook_id)
        if want.get(a.webhook_id) != (a.subject, a.seq):
            wrong += a.webhook_id in want
            continue
        if a.seq < last.get(a.subject, 0):
            out_of_order += 1
        last[a.subject] = max(last.get(a.subject, 0), a.seq)
    return {
        "events": len(want),
        "requests": requests,
        "accepted": len(accepted),
        "lost": len(want.keys() - seen),
        "invented": len(seen - want.keys()),
        "cut_requests": receiver.broken,
        "duplicates": len(accepted) - len(seen),
        "stale_redeliveries": stale,
        "wrong_content": wrong,
        "out_of_order": out_of_order,
        "dead": dead,
        "bad_signatures": bad,
    }


def clean(t: dict[str, Any]) -> bool:
    """Nothing lost, invented, changed, reordered or dead; every signature good."""
    keys = ("lost", "invented", "wrong_content", "out_of_order", "dead", "bad_signatures")
    return all(t.get(k) == 0 for k in keys) and t.get("events", 0) > 0


# --------------------------------------------------------------------------- helpers
def emit_events(bo: Any, n: int, members: int, prefix: str, rng: random.Random) -> None:
    """``n`` purchase events in the outbox, of ``members`` members drawn at random, in
    transactions of 10,000 under the feed lock (as the projector writes them)."""
    from sync.backoffice import outbox

    for i in range(0, n, 10_000):
        now = bo.clock.now()
        rows = [
            outbox.Pending(
                f"{prefix}{rng.randrange(members):07d}",
                outbox.PURCHASE,
                {"amount_kop": rng.randrange(1_000, 500_000), "n": i + j},
                now,
            )
            for j in range(min(10_000, n - i))
        ]
        with bo.db.transaction(feed=True) as tx:
            outbox.emit_many(tx, rows, now=now)


def settle(d: Any) -> int:
    """Deliverer rounds until one does nothing; returns the attempts made."""
    total = 0
    while n := d.round():
        total += n
    return total


def pending(db: Any, sid: int) -> tuple[int, int]:
    """(deliveries pending, outbox events the subscription has not taken yet)."""
    with db.reading() as tx:
        row = tx.one(
            "SELECT (SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ? "
            "AND state = 'pending'), (SELECT COALESCE(max(id), 0) FROM outbox) - "
            "(SELECT taken_to FROM webhook_subscriptions WHERE id = ?)",
            (sid, sid),
        )
    return int(row[0]), int(row[1])


def wait_for(done: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def cursor(db: Any, sid: int) -> int:
    with db.reading() as tx:
        return int(tx.one("SELECT taken_to FROM webhook_subscriptions WHERE id = ?", (sid,))[0])


@contextlib.contextmanager
def fresh(
    kind: str, tmp: Path, tag: str, members: int, clock: Any = None
) -> Iterator[tuple[Any, Receiver, int, str]]:
    """A fresh back office (``members`` demo members, a store) and a started receiver
    subscribed to every event type; yields (bo, receiver, subscription id, url)."""
    with lib.backoffice_url(kind, tmp, tag) as url:
        bo = lib.open_backoffice(url, members, datetime.now(UTC))
        if clock is not None:
            from sync.backoffice.service import Backoffice

            bo = Backoffice(bo.db, clock)
        receiver = Receiver().start()
        try:
            made = bo.webhook_add(receiver.url, "", actor=ACTOR)
            receiver.secret = made.secret
            yield bo, receiver, made.subscription.id, url
        finally:
            receiver.stop()
            bo.db.close()


# --------------------------------------------------------------------------- deliverer child
def deliver_main(url: str, ahead_s: float) -> int:
    """Child process: the ``Deliverer`` thread over ``url`` with its clock ``ahead_s``
    ahead of the wall clock; READY, then runs until a line or the end of stdin."""
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    db = Database.open(url)
    try:
        d = Backoffice(db, ShiftClock(timedelta(seconds=ahead_s))).webhook_deliverer()
        d.start()
        print("READY", flush=True)
        sys.stdin.readline()
        d.stop()
    finally:
        db.close()
    return 0


def start_deliverer(url: str, ahead_s: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--deliver", url, "--ahead", str(ahead_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the deliverer process did not start (exit {proc.poll()})")
    return proc


def stop_deliverer(proc: subprocess.Popen[str]) -> None:
    """End of stdin (the child stops its thread and exits), its pipes closed; a child
    already SIGKILLed is only reaped."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def push_till(path: Path, base_url: str) -> dict[str, Any]:
    """One till drains its outbox into ``base_url`` as fast as it can (``bench/ingest.py``'s
    till process); returns events acknowledged, seconds, events/s."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH.parent / "ingest.py"), "--till", str(path), "--url", base_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("till process did not start")
        proc.stdin.write("GO\n")
        proc.stdin.flush()
        stdout, _ = proc.communicate(timeout=3600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = json.loads(stdout.strip().splitlines()[-1])
    took = float(report["end"]) - float(report["first_post"])
    acked = int(report["acked"])
    return {
        "acked": acked,
        "s": round(took, 3),
        "events_per_s": round(acked / took, 1) if took > 0 else None,
        "error": report["error"],
        "ended_at": time.time(),
    }


# --------------------------------------------------------------------------- phases
def run_latency(kind: str, tmp: Path, members: int, rate: float, seconds: float) -> dict[str, Any]:
    """The ``latency`` phase (module doc)."""
    per_till = max(BATCH, int(rate * seconds / TILLS) // BATCH * BATCH)
    out: dict[str, Any] = {"rate": rate, "tills": TILLS, "batch": BATCH, "purchases": 0}
    with fresh(kind, tmp, f"-{kind}-latency", members) as (bo, receiver, sid, url):
        after = cursor(bo.db, sid)
        with lib.ServerProcess(url) as server:
            paths = []
            for i in range(TILLS):
                path = tmp / f"till-{kind}-latency-{i}.db"
                lib.enroll(bo, server.base_url, path, f"wh-{kind}-{i}", bootstrap=True)
                lib.fill_outbox(path, per_till, members, seed=SEED + i, receipt_prefix=f"W{i}-")
                paths.append(path)
            out["purchases"] = per_till * TILLS
            start = time.monotonic() + 0.5
            threads = [
                threading.Thread(
                    target=_steady_till, args=(server.base_url, p, start, rate / TILLS)
                )
                for p in paths
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            push_s = time.monotonic() - start
            out["push_s"] = round(push_s, 2)
            out["achieved_rate"] = round(out["purchases"] / push_s, 1)
            with lib.client(server.base_url) as http:
                lib.wait_projected(http, timeout_s=WAIT_S)
            delivered = wait_for(lambda: pending(bo.db, sid) == (0, 0), WAIT_S, poll_s=0.2)
        out["all_delivered"] = delivered
        with bo.db.reading() as tx:
            made = {
                f"msg_{sid}_{oid}": datetime.fromisoformat(str(at)).timestamp()
                for oid, at in tx.all("SELECT id, created_at FROM outbox WHERE id > ?", (after,))
            }
        seen = receiver.first_seen()
        waits = [max(0, int((seen[w] - t) * 1e9)) for w, t in made.items() if w in seen]
        out["outbox_events"] = len(made)
        out["outbox_events_per_s"] = round(len(made) / push_s, 1)
        out["p50_ms"] = lib.pct_ms(waits, 50)
        out["p99_ms"] = lib.pct_ms(waits, 99)
        out["max_ms"] = round(max(waits) / 1e6, 1) if waits else None
        out["tally"] = tally(receiver, bo.db, sid, after)
    return out


def _steady_till(base_url: str, store_path: Path, start: float, rate: float) -> None:
    """One till of the latency stream: its outbox pushed ``BATCH`` events at a time at
    ``rate`` events/s from ``start`` (monotonic), a push's slot missed is not made up."""
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    with Store(store_path) as store, lib.client(base_url) as http:
        sync = SyncClient(Agent(store), http, max_events=BATCH)
        sent = 0
        while True:
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            report = sync.push_once()
            if not report.sent:
                return
            sent += report.sent


def run_outage(kind: str, tmp: Path, events: int, members: int) -> dict[str, Any]:
    """The ``outage`` phase (module doc)."""
    from sync.backoffice import webhooks

    clock = ShiftClock()
    out: dict[str, Any] = {"events": events, "members": members}
    with fresh(kind, tmp, f"-{kind}-outage", 0, clock) as (bo, receiver, sid, _url):
        after = cursor(bo.db, sid)
        receiver.fail_next = events * 1000  # answers 503, then down
        emit_events(bo, events, members, "o", random.Random(SEED))
        d = bo.webhook_deliverer(rng=random.Random(SEED))
        try:
            began = clock.now()
            attempts = 0
            t0 = time.perf_counter()
            while clock.now() - began < webhooks.RETRY_FOR:
                attempts += settle(d)
                clock.advance(OUTAGE_STEP)
                receiver.stop()
            out["attempts_during_outage"] = attempts
            out["accepted_during_outage"] = receiver.accepted_ids()
            out["simulated_outage_h"] = round((clock.now() - began).total_seconds() / 3600, 2)
            out["answered_503"] = len(receiver.arrivals)
            receiver.fail_next = 0
            receiver.start()
            back = clock.now()
            while pending(bo.db, sid) != (0, 0) and clock.now() - back < timedelta(days=2):
                settle(d)
                if pending(bo.db, sid) != (0, 0):
                    clock.advance(OUTAGE_STEP)
            out["recovered_h"] = round((clock.now() - back).total_seconds() / 3600, 2)
            out["wall_s"] = round(time.perf_counter() - t0, 1)
        finally:
            d.stop()
        out["tally"] = tally(receiver, bo.db, sid, after)
    return out


def run_kill(kind: str, tmp: Path, events: int, kills: int = KILLS) -> dict[str, Any]:
    """The ``kill`` phase (module doc)."""
    from sync.backoffice import webhooks

    members = max(1, events // 10)
    out: dict[str, Any] = {"events": events, "members": members, "kills": kills}
    with fresh(kind, tmp, f"-{kind}-kill", 0) as (bo, receiver, sid, url):
        after = cursor(bo.db, sid)
        emit_events(bo, events, members, "k", random.Random(SEED + 1))
        ahead = 0.0
        at_kill = []
        for k in range(1, kills + 1):
            proc = start_deliverer(url, ahead)
            goal = events * k // (kills + 1)

            def sent(goal: int = goal, proc: subprocess.Popen[str] = proc) -> bool:
                return receiver.accepted_ids() >= goal or proc.poll() is not None

            wait_for(sent, WAIT_S)
            proc.send_signal(signal.SIGKILL)
            stop_deliverer(proc)
            at_kill.append(receiver.accepted_ids())
            ahead += webhooks.CLAIM_S + 1  # restarted once its claims have expired
        out["accepted_at_kills"] = at_kill
        proc = start_deliverer(url, ahead)
        try:
            out["all_delivered"] = wait_for(lambda: pending(bo.db, sid) == (0, 0), WAIT_S, 0.1)
        finally:
            stop_deliverer(proc)
        out["tally"] = tally(receiver, bo.db, sid, after)
    return out


def run_backlog(
    kind: str, tmp: Path, backlog: int, members: int, till_events: int
) -> dict[str, Any]:
    """The ``backlog`` phase (module doc)."""
    from sync.backoffice import webhooks

    out: dict[str, Any] = {"events": backlog, "till_events": till_events}
    with fresh(kind, tmp, f"-{kind}-backlog", members) as (bo, receiver, sid, url):
        after = cursor(bo.db, sid)
        out["floor_per_s"] = round(http_floor(receiver, 2_000), 1)
        paths = [tmp / f"till-{kind}-backlog-{i}.db" for i in range(3)]
        with lib.ServerProcess(url) as server:
            for i, path in enumerate(paths):
                lib.enroll(bo, server.base_url, path, f"wb-{kind}-{i}", bootstrap=True)
                lib.fill_outbox(
                    path, till_events, members, seed=SEED + 10 + i, receipt_prefix=f"K{i}-"
                )
            before = push_till(paths[0], server.base_url)
            with lib.client(server.base_url) as http:
                lib.wait_projected(http, timeout_s=WAIT_S)
            wait_for(lambda: pending(bo.db, sid) == (0, 0), WAIT_S, 0.2)
        receiver.stop()  # the outage
        with bo.db.reading() as tx:
            first = int(tx.one("SELECT COALESCE(max(id), 0) FROM outbox")[0]) + 1
        t0 = time.perf_counter()
        emit_events(bo, backlog, max(1, backlog // BACKLOG_MEMBERS_SHARE), "b", random.Random(7))
        out["emit_s"] = round(time.perf_counter() - t0, 2)
        from sync.backoffice.service import Backoffice

        behind = Backoffice(bo.db, ShiftClock(-timedelta(hours=1)))
        d = behind.webhook_deliverer(rng=random.Random(SEED))
        t0 = time.perf_counter()
        try:
            while pending(bo.db, sid)[1] > 0:
                d.round()
        finally:
            d.stop()
        out["queue_s"] = round(time.perf_counter() - t0, 2)
        out["failed_attempts"] = len(behind.webhook_log(sid, limit=10_000_000))
        last = first + backlog - 1
        backlog_ids = {webhooks.webhook_id(sid, i) for i in range(first, last + 1)}
        receiver.start()  # back
        began = time.time()
        with lib.ServerProcess(url) as server:

            def drained() -> bool:
                got = receiver.first_accepted()
                return all(w in got for w in backlog_ids)

            # the push starts once the drain flows (the server past its first requests)
            wait_for(lambda: receiver.accepted_ids() > 0, WAIT_S)
            time.sleep(0.5)
            during = push_till(paths[1], server.base_url)

            out["drained"] = wait_for(drained, WAIT_S, 0.2)
            got = receiver.first_accepted()
            ends = [got[w] for w in backlog_ids if w in got]
            ended = max(ends) if ends else time.time()
            after_push = push_till(paths[2], server.base_url)
            with lib.client(server.base_url) as http:
                lib.wait_projected(http, timeout_s=WAIT_S)
            out["all_delivered"] = wait_for(lambda: pending(bo.db, sid) == (0, 0), WAIT_S, 0.2)
        drain_s = ended - began
        out["drain_s"] = round(drain_s, 2)
        out["drain_from_first_s"] = round(ended - min(ends), 2) if ends else None
        out["events_per_s"] = round(backlog / drain_s, 1) if drain_s > 0 else None
        # the tills' own member events interleave with the backlog: all first deliveries
        window = [t for t in got.values() if began <= t <= ended]
        out["delivered_in_drain"] = len(window)
        out["delivered_per_s"] = round(len(window) / drain_s, 1) if drain_s > 0 else None
        out["full_size_s"] = round(drain_s * FULL_BACKLOG / backlog, 1)
        out["drain_vs_floor"] = (
            round(out["events_per_s"] / out["floor_per_s"], 3) if out["events_per_s"] else None
        )
        out["push_during_overlapped"] = during["ended_at"] <= ended
        out["accept_before"] = before
        out["accept_during"] = during
        out["accept_after"] = after_push
        base = [r["events_per_s"] for r in (before, after_push) if r["events_per_s"]]
        if base and during["events_per_s"]:  # against the faster run without a drain
            out["accept_slowdown"] = round(1 - during["events_per_s"] / max(base), 3)
        out["tally"] = tally(receiver, bo.db, sid, after)
    return out


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"backlog {QUICK['backlog']:,}")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    parser.add_argument("--rate", type=float, default=RATE, help="purchases/s of the stream")
    for name in FULL:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float if name == "seconds" else int)
    parser.add_argument("--deliver", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--ahead", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--floor", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--secret", default="", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=2_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.deliver:
        return deliver_main(args.deliver, args.ahead)
    if args.floor:
        return floor_main(args.floor, args.secret, args.n)
    size: dict[str, float] = dict(QUICK if args.quick else FULL)
    for name in FULL:
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    lib.sigterm_unwinds()
    figures: dict[str, Any] = {}
    passed: dict[str, bool] = {}
    headline: dict[str, Any] = {"lost": 0, "duplicates": 0, "out_of_order": 0}
    import tempfile

    for kind in kinds:
        f: dict[str, Any] = {}
        figures[kind] = f
        with tempfile.TemporaryDirectory(prefix="kassa-webhooks-") as name:
            tmp = Path(name)
            members, seconds = int(size["members"]), float(size["seconds"])
            phases: list[tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
                ("latency", run_latency, (members, args.rate, seconds)),
                ("outage", run_outage, (int(size["outage_events"]), int(size["outage_members"]))),
                ("kill", run_kill, (int(size["kill_events"]),)),
                ("backlog", run_backlog, (int(size["backlog"]), members, int(size["till_events"]))),
            ]
            for phase, run, given in phases:
                try:
                    f[phase] = r = run(kind, tmp, *given)
                except Exception as e:
                    traceback.print_exc()
                    f[phase] = {"error": f"{type(e).__name__}: {e}"}
                    passed[f"{kind}_{phase}_ran"] = False
                    continue
                t = r["tally"]
                passed[f"{kind}_{phase}_clean"] = clean(t)
                for key in headline:
                    headline[key] += t[key]
                headline["lost"] += t["invented"] + t["wrong_content"]
            lat = f["latency"]
            if "error" not in lat:
                passed[f"{kind}_latency_p50"] = lat["p50_ms"] <= TARGETS["latency_p50_ms"]
                passed[f"{kind}_latency_p99"] = lat["p99_ms"] <= TARGETS["latency_p99_ms"]
            back = f["backlog"]
            if "error" not in back:
                passed[f"{kind}_backlog_time"] = (
                    back["drained"] and back["full_size_s"] <= TARGETS["backlog_full_size_s"]
                )
                passed[f"{kind}_accept_slowdown"] = (
                    back.get("accept_slowdown", 1.0) <= TARGETS["accept_slowdown"]
                )
    result = {
        "bench": "webhooks",
        "quick": args.quick,
        "size": size,
        "machine": {**lib.machine(kinds), "load_avg_1m": round(os.getloadavg()[0], 2)},
        **headline,
        **figures,
        "targets": {**TARGETS, "lost": 0, "out_of_order": 0, "passed": passed},
        "ok": all(passed.values()),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
