"""Shared plumbing of the sync benchmarks (``drain.py``, ``ingest.py``, ``bootstrap.py``).

Not a benchmark itself (a leading underscore: nothing to run). It holds:

- ``backoffice_url``: a fresh back-office database, SQLite (a file in the run's temporary
  directory) or PostgreSQL (``CREATE DATABASE kassa_bench_<hex>`` on the server named by
  ``KASSA_PG_ADMIN``, default ``postgresql://postgres@127.0.0.1:5432/postgres``; dropped
  ``WITH (FORCE)`` afterwards);
- ``ServerProcess``: the real back-office stack (``create_app(bo, bare_endpoint=True)``
  under a real uvicorn on 127.0.0.1, an OS-chosen port) in a child process of its own, as
  in production, so the server does not share a GIL or a core's time slices with the till
  code that drives it. Run ``python bench/_synclib.py --serve URL`` to get one by hand;
  it prints ``PORT <n>`` once it accepts connections;
- ``TimedTransport``: an httpx transport over the ordinary ``httpx.HTTPTransport`` that
  times every request from send to the last byte of the answer, keeps the request bodies
  sent to ``/v1/events`` (to replay them to ``/v1/bare``) and counts per-event results;
- ``fill_outbox``: a till outbox of N real purchase events, made fast (see its doc).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

PG_ADMIN_URL = os.environ.get("KASSA_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
STORE_ID = "s1"
HTTP_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- statistics
def pct_ms(samples_ns: list[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of nanosecond samples, in milliseconds."""
    if not samples_ns:
        return float("nan")
    s = sorted(samples_ns)
    rank = max(1, min(len(s), round(q / 100 * len(s) + 0.5)))
    return round(s[rank - 1] / 1e6, 3)


def peak_rss() -> int | None:
    """This process's peak RSS in bytes (Linux ``VmHWM``), or None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def sigterm_unwinds() -> None:
    """SIGTERM unwinds like Ctrl-C: temporary files, child servers and databases go."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# --------------------------------------------------------------------------- databases
@contextlib.contextmanager
def backoffice_url(kind: str, tmp: Path, tag: str = "") -> Iterator[str]:
    """A fresh, empty back-office database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield str(tmp / f"backoffice{tag}.db")
        return
    import psycopg

    name = f"kassa_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def open_backoffice(url: str, members: int, now: datetime) -> Any:
    """Migrate the back office, make the store, load ``members`` demo members (untimed
    set-up, one transaction). Returns the ``Backoffice``; its ``db`` is the caller's."""
    from agent.seed import demo_programme, member_rows
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    bo = Backoffice(Database.open(url))
    bo.initialise()
    bo.ensure_store(STORE_ID, "Bench store")
    if members:
        key = bytes.fromhex(bo.setting("phone_hash_key"))
        bo.load_members(member_rows(members, demo_programme(), key, now), store_id=STORE_ID)
    return bo


def pg_version() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except Exception:
        return None


# --------------------------------------------------------------------------- server
class ServerProcess:
    """The back office app under a real uvicorn, in a child process (see module doc)."""

    def __init__(self, url: str, *, startup_timeout_s: float = 60.0, workers: bool = True) -> None:
        """``workers``: False serves without the projector and verifier threads (pushes
        are only accepted; ``bench/ledger.py`` then times the projector on its own)."""
        args = ["--serve", url] if workers else ["--serve-accept-only", url]
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        port: list[int] = []

        started = threading.Event()

        def read() -> None:
            # Keeps reading after the port: anything else the server prints goes to our
            # stderr, and a full pipe can never stall the server.
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("PORT ") and not port:
                    port.append(int(line.split()[1]))
                    started.set()
                else:
                    sys.stderr.write(line)
            started.set()

        threading.Thread(target=read, daemon=True).start()
        started.wait(startup_timeout_s)
        if not port:
            self.stop()
            raise RuntimeError(f"back office server did not start (exit {self.proc.poll()})")
        self.port = port[0]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_main(url: str, *, workers: bool = True) -> int:
    """Child process: serve the back office at ``url`` with the bare endpoint (and without
    the projector and verifier threads unless ``workers``)."""
    import uvicorn

    from sync.backoffice.app import create_app, settle_for_serving
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    db = Database.open(url)
    bo = Backoffice(db)  # the parent has initialised it
    app = create_app(bo, bare_endpoint=True, verifier=workers)
    settle_for_serving()
    # As ``sync.backoffice.app.serve`` runs it (``kassa backoffice serve``), on port 0.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    # KASSA_BENCH_PROFILE=<file>: profile the event-loop thread (HTTP, parsing, answers).
    profile_to = os.environ.get("KASSA_BENCH_PROFILE")
    if profile_to:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        server.run()
    finally:
        if profile_to:
            prof.disable()
            prof.dump_stats(profile_to)
        db.close()
    return 0


def machine(kinds: tuple[str, ...], setup: str = "") -> dict[str, Any]:
    """Where a sync bench's figures were taken: the server stack (and ``setup``, how the
    run drives it), the database versions, Python and the CPU count."""
    import sqlite3

    server = f"uvicorn ({http_impl()}) + Starlette, child process on 127.0.0.1"
    return {
        "server": f"{server}; {setup}" if setup else server,
        "sqlite_version": sqlite3.sqlite_version,
        "postgresql_version": pg_version() if "postgresql" in kinds else None,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def http_impl() -> str:
    """Which HTTP/1.1 parser uvicorn's "auto" picks here."""
    try:
        import httptools  # noqa: F401

        return "httptools"
    except ImportError:
        return "h11"


# --------------------------------------------------------------------------- client
@dataclass
class PathStats:
    ns: list[int] = field(default_factory=list)
    bytes_out: int = 0
    bytes_in: int = 0
    http: Counter[int] = field(default_factory=Counter)


class TimedTransport(httpx.BaseTransport):
    """Times each request (send to last byte of the answer, on the wire) per URL path.

    For ``/v1/events`` it also keeps the request bodies (when ``capture``) and counts the
    per-event results by status with a byte count on the JSON answer (cheap; the answer
    is parsed again by the sync client as usual).
    """

    def __init__(self, *, capture: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.capture = capture
        self.paths: dict[str, PathStats] = {}
        self.bodies: list[bytes] = []
        self.results: Counter[str] = Counter()
        self.started: list[float] = []  # monotonic start of each /v1/events POST

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        started = time.monotonic()
        t0 = time.perf_counter_ns()
        resp = self.inner.handle_request(request)
        try:
            content = b"".join(resp.stream)  # the raw bytes, as sent
        finally:
            resp.close()
        dt = time.perf_counter_ns() - t0
        path = request.url.path
        st = self.paths.setdefault(path, PathStats())
        st.ns.append(dt)
        st.bytes_out += len(body)
        st.bytes_in += len(content)
        st.http[resp.status_code] += 1
        if path == "/v1/events":
            self.started.append(started)
            if self.capture:
                self.bodies.append(body)
            if resp.status_code == 200:
                total = content.count(b'"status":"')
                applied = content.count(b'"status":"applied"')
                self.results["applied"] += applied
                if total != applied:
                    for status in ("accepted", "duplicate", "conflict", "rejected"):
                        self.results[status] += content.count(f'"status":"{status}"'.encode())
        return httpx.Response(
            resp.status_code, headers=resp.headers, content=content, request=request
        )

    def close(self) -> None:
        self.inner.close()


def client(base_url: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url, transport=transport, timeout=HTTP_TIMEOUT_S)


def replay(http: httpx.Client, path: str, bodies: list[bytes], token: str) -> None:
    """POST each body to ``path`` once, in order, with the sync client's headers (the
    timing is taken by the client's ``TimedTransport``, as for the real requests)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    for body in bodies:
        resp = http.post(path, content=body, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"{path} answered {resp.status_code}")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def verify_backlog(http: httpx.Client) -> int:
    """Purchases the back office's background verifier has not re-scored yet."""
    return int(http.get("/v1/health").json()["verify_backlog"])


def project_backlog(http: httpx.Client) -> int:
    """Accepted events the back office's projector has not applied to the ledger yet."""
    return int(http.get("/v1/health").json()["project_backlog"])


def _wait(backlog: Any, what: str, timeout_s: float, poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while backlog() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} did not catch up in time")
        time.sleep(poll_s)


def wait_verified(http: httpx.Client, timeout_s: float = 1800.0, poll_s: float = 0.5) -> None:
    """Wait until the verifier's backlog is empty (set-up for the next measurement)."""
    _wait(lambda: verify_backlog(http), "verifier", timeout_s, poll_s)


def wait_projected(http: httpx.Client, timeout_s: float = 1800.0, poll_s: float = 0.1) -> None:
    """Wait until every accepted event is in the ledger."""
    _wait(lambda: project_backlog(http), "projector", timeout_s, poll_s)


# --------------------------------------------------------------------------- the till
def enroll(bo: Any, base_url: str, store_path: Path, name: str, *, bootstrap: bool) -> str:
    """Enroll a till over HTTP (one-time code, token, keys, rules, snapshot if asked)."""
    from sync.enroll import enroll_till

    code = bo.enroll_code(STORE_ID)
    with client(base_url) as http:
        out = enroll_till(store_path, http, code, name=name, terminal_id=name, bootstrap=bootstrap)
    return str(out["terminal_id"])


def make_cart(rng: random.Random, receipt_id: str) -> Any:
    """A cheque of 1-6 lines from the demo catalogue (a tenth of lines on sale at -30 %)."""
    from agent.model import Cart, CartLine
    from agent.seed import CATALOG

    lines = []
    for no in range(1, rng.randint(1, 6) + 1):
        sku, name, category, collection, price = rng.choice(CATALOG)
        qty = 1 if rng.random() < 0.85 else 2
        sale = rng.random() < 0.1
        amount = price * qty * (7 if sale else 10) // 10
        lines.append(CartLine(no, sku, name, category, price, qty, amount, sale, collection))
    return Cart(receipt_id, tuple(lines))


STATE_TEMPLATES = 48  # agent.seed makes member i's state from template i % 48


def time_ordered_id(rng: random.Random, at: datetime) -> str:
    """An id as ``agent.ids.time_ordered_id`` makes it at a real till, but from the event's
    own time ``at`` and the bench's seeded ``rng``: the clones' ids sort as their
    ``created_at`` does, like the ids of a till's real sales."""
    from agent.ids import time_ordered_id as made_at_till

    return made_at_till(int(at.timestamp() * 1000), rng.getrandbits(74))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class TillStates:
    """Member states as the till holds them (read on first use), changed in memory by the
    clones given to each member (``requote``)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._states: dict[str, Any] = {}

    def __getitem__(self, member_id: str) -> Any:
        from agent import codec
        from agent.model import MemberState

        state = self._states.get(member_id)
        if state is None:
            with self._store.read() as conn:
                row = conn.execute(
                    "SELECT state FROM members WHERE member_id = ?", (member_id,)
                ).fetchone()
            state = self._states[member_id] = codec.loads(MemberState, row[0])
        return state

    def __setitem__(self, member_id: str, state: Any) -> None:
        self._states[member_id] = state


def requote(
    p: dict[str, Any], states: TillStates, member_id: str, rules: Any, at: datetime, op_id: str
) -> None:
    """Score the clone payload ``p`` (its cart already renumbered) for ``member_id`` as the
    till would have at ``at``: the template's points to spend, or as many as the member may
    (``agent.engine.quote``); its quote, earned and spent points replaced, and the
    member's state moved on by the purchase (``agent.ledger.apply_purchase``)."""
    from agent import codec, engine
    from agent.ledger import apply_purchase
    from agent.model import Cart

    cart = codec.from_plain(Cart, p["cart"])
    state = states[member_id]
    redeem = int(p["redeem_points"])
    if redeem:
        free = engine.quote(cart, state, rules, at, redeem_points=0).max_redeem_points
        redeem = min(redeem, free)
    q = engine.quote(cart, state, rules, at, redeem_points=redeem)
    states[member_id], _ = apply_purchase(state, cart, q, rules, at, op_id)
    p["quote"] = codec.to_plain(q)
    p["redeem_points"] = q.redeem_points
    p["earn_points"] = q.earn_points
    p["rules_version"] = q.rules_version


def fill_outbox(
    store_path: Path,
    events: int,
    members: int,
    *,
    templates: int = 192,
    seed: int = 20260501,
    receipt_prefix: str = "B",
) -> dict[str, Any]:
    """Fill an enrolled till's outbox with ``events`` real purchase events, fast.

    ``templates`` real sales go through ``Agent.commit`` (the real engine, journal and
    member state), one per member ``m0..m{templates-1}``, so every one of the 48 member
    state templates of ``agent.seed`` is covered; a fifth of them redeem up to 100 points
    (members holding at least 1,000 available). The rest are clones: a template sale of a
    member with the same seeded state (same ``i % 48``) moved to a member drawn uniformly
    from all ``members``, with a fresh ``event_id`` (time-ordered from its ``created_at``,
    as a till makes them: ``time_ordered_id``), a new receipt id (in the payload, its cart
    and its quote), that member's id and code, ``occurred_at`` = ``created_at``
    ascending 100 us apart after the templates, and ``payload_hash`` = SHA-256 of the
    re-encoded canonical payload (sorted keys, compact, UTF-8). They are inserted into the
    outbox in one transaction with ``last_seq`` and each member's ``unsynced`` count, as
    the commits would have left them. Each clone is quoted again for the member it is
    given to (``requote``): the template's cart and points to spend (as many as that
    member may), scored by ``agent.engine`` against that member's state after its earlier
    events of this outbox (the till's own state after the template sales, else the
    seeded one), so the back office's re-score agrees with every clone of a till whose
    members no other till served in between (``rescore_mismatch`` then counts only real
    differences). Returns sizes and counts (untimed set-up).
    """
    from agent.identify import make_member_code
    from agent.results import CheckoutRequest
    from agent.service import Agent
    from agent.store import Store

    templates = max(STATE_TEMPLATES, min(templates, members, events))
    rng = random.Random(seed)
    t0 = time.perf_counter()
    with Store(store_path) as store:
        agent = Agent(store)
        agent.record_contact()  # online: the till has just heard from the back office
        for t in range(templates):
            mid = f"m{t:08d}"
            cart = make_cart(rng, f"{receipt_prefix}T{t:06d}")
            redeem = 0
            if t % 5 == 0:
                q = agent.quote(CheckoutRequest(mid, cart, redeem_points="max"))
                if q.available_before >= 1000:
                    redeem = min(100, q.max_redeem_points)
            agent.commit(CheckoutRequest(mid, cart, redeem, cashier_id="c1"))
        template_s = time.perf_counter() - t0
        with store.read() as conn:
            rows = conn.execute(
                "SELECT seq, terminal_id, terminal_epoch, type, schema_version, created_at, "
                "payload, member_id FROM outbox ORDER BY seq"
            ).fetchall()
        assert len(rows) == templates, (len(rows), templates)
        by_class: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            if _canonical(json.loads(r[6])) != r[6]:
                raise AssertionError("the till's payload is not canonical JSON as assumed")
            by_class.setdefault(int(r[7][1:]) % STATE_TEMPLATES, []).append(r)
        last = datetime.fromisoformat(rows[-1][5])
        rules = agent.programme()
        states = TillStates(store)
        unsynced: Counter[str] = Counter()
        out: list[tuple[Any, ...]] = []
        for k in range(templates, events):
            seq = k + 1
            j = rng.randrange(members)
            src = rng.choice(by_class[j % STATE_TEMPLATES])
            p = json.loads(src[6])
            mid = f"m{j:08d}"
            receipt = f"{receipt_prefix}{seq:09d}"
            moment = last + timedelta(microseconds=100 * (k - templates + 1))
            at = moment.isoformat()
            p["receipt_id"] = p["cart"]["receipt_id"] = receipt
            p["member_id"] = mid
            p["member_code"] = make_member_code(100_000_000 + j)
            p["occurred_at"] = at
            event_id = time_ordered_id(rng, moment)
            requote(p, states, mid, rules, moment, event_id)
            text = _canonical(p)
            out.append(
                (
                    seq,
                    event_id,
                    src[1],
                    src[2],
                    src[3],
                    src[4],
                    at,
                    text,
                    hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    mid,
                )
            )
            unsynced[mid] += 1
        with store.write() as conn:
            conn.executemany(
                "INSERT INTO outbox(seq, event_id, terminal_id, terminal_epoch, type, "
                "schema_version, created_at, payload, payload_hash, member_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                out,
            )
            conn.executemany(
                "UPDATE members SET unsynced = unsynced + ? WHERE member_id = ?",
                [(n, mid) for mid, n in unsynced.items()],
            )
            Store.set_meta(conn, "last_seq", str(events))
        with store.read() as conn:
            size = conn.execute(
                "SELECT avg(length(CAST(payload AS BLOB))), count(*), "
                "count(DISTINCT member_id) FROM outbox"
            ).fetchone()
    return {
        "template_sales": templates,
        "template_sales_s": round(template_s, 2),
        "outbox_fill_s": round(time.perf_counter() - t0, 2),
        "outbox_events": int(size[1]),
        "members_with_events": int(size[2]),
        "payload_bytes_mean": round(float(size[0]), 1),
    }


def server_counts(bo: Any) -> dict[str, Any]:
    """What the back office holds after the run (the proof, not the timing)."""
    with bo.db.reading() as tx:
        applied = int(tx.one("SELECT count(*) FROM events WHERE status = 'applied'")[0])
        other = dict(tx.all("SELECT status, count(*) FROM events GROUP BY status"))
        purchases = int(tx.one("SELECT count(*) FROM purchases")[0])
        flags = dict(tx.all("SELECT kind, count(*) FROM flags GROUP BY kind"))
    return {
        "applied": applied,
        "events_by_status": {str(k): int(v) for k, v in other.items()},
        "purchases": purchases,
        "flags": {str(k): int(v) for k, v in flags.items()},
    }


def outbox_counts(store_path: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(str(store_path))
    try:
        return {
            str(k): int(v)
            for k, v in conn.execute("SELECT status, count(*) FROM outbox GROUP BY status")
        }
    finally:
        conn.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--serve", "--serve-accept-only"):
        sys.exit(serve_main(sys.argv[2], workers=sys.argv[1] == "--serve"))
    print(__doc__)
    sys.exit(2)
