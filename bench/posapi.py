"""POS API benchmark: quote and commit over the local HTTP API, as a host POS calls them.

What is measured (all figures from this run, on this machine):

- ``build_s``: the members cache (``kassa.setup.init_store(demo=True, members=N)``, the same
  fast build ``bench/checkout.py`` uses), untimed for the targets.
- the agent runs as a real process (``kassa agent serve``, uvicorn, loopback, token auth,
  rate limit raised out of the way); the bench is the POS: one keep-alive HTTP/1.1
  connection (``http.client``, see ``pos_loop``). Per cheque: ``POST /v1/quote`` then
  ``POST /v1/commit`` of a 5-line cheque for a member drawn at random over the whole base
  (identified by member code in the request), alternately spending ``"max"`` points and
  none. ``quote_*``/``commit_*`` are the client-side request latencies (request out to
  JSON parsed), warm-up excluded.
- for reading the figures: ``core_*`` are the same cheques through ``Agent.quote`` /
  ``Agent.commit`` in-process (no HTTP) before the agent starts; ``http_floor_*`` is the
  cheapest authenticated call (no store work); ``load_avg_1m`` says how busy the machine
  was. A commit is bounded below by its fsync (``synchronous=FULL``).
- ``fsync_floor_*``: the physical floor of a commit on this disk, measured in the same run:
  ``bench/checkout.py``'s bare floor, i.e. one bare sqlite3 transaction with the same
  durability (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``) writing the rows a sale
  writes (member update, purchase, outbox row, print job, meta counter, with the payload
  sizes the agent's own rows have) into a copy of the till's tables and indexes, with the
  same background checkpoint policy. Its commits run in this process in blocks
  alternating with the single-POS cheques (never inside their timing), so that disk noise
  falls on both alike. When ``fsync_floor_p99_ms`` is over the commit target, the target is
  out of reach on this disk whatever the agent does (``commit_target_below_floor``);
  ``commit_p99_over_floor_ms`` is then what the agent adds.
- ``agent_cpu_per_cheque_ms``: CPU time (user+system, all threads) the agent process spent
  per cheque (quote + commit) in the single-POS phase: steadier than wall-clock latencies
  on a busy machine, for comparing builds. ``http_impl``/``loop_impl``: the HTTP parser and
  event loop the agent runs with (uvicorn picks httptools/uvloop when installed).
- concurrency: ``--clients`` POS processes (4 by default) each run the same loop at once
  on distinct receipt ids; ``concurrent_errors`` counts answers other than 200 and
  transport errors (target: none); their latencies and overall requests/s are reported.

Why: the POS waits on these calls inside the cashier's flow; the agent must answer in a few
milliseconds with a million members cached, also with several tills' POS software (or
several terminals of one POS) calling one agent.

Usage: ``python bench/posapi.py [--quick] [--members N] [--cheques M] [--clients K]``.
The last line printed is the JSON result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TARGETS = {"quote_p99_ms": 5.0, "commit_p99_ms": 5.0, "concurrent_errors": 0}
FULL = {"members": 1_000_000, "cheques": 3_000}
QUICK = {"members": 20_000, "cheques": 500}
WARMUP = 100
SEED = 20261130
BLOCKS = 10
"""Single-POS cheques and bare floor commits alternate in this many blocks."""


def pct(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    rank = max(1, min(len(sorted_ns), round(q * len(sorted_ns) + 0.5)))
    return round(sorted_ns[rank - 1] / 1e6, 3)


def cheque(rng: random.Random, members: int, receipt_id: str, spend: bool) -> dict[str, Any]:
    from agent.identify import make_member_code
    from agent.seed import CATALOG

    lines = []
    for _ in range(5):
        sku, _name, _category, _collection, _price = rng.choice(CATALOG)
        lines.append({"sku": sku, "qty": 1 if rng.random() < 0.8 else 2})
    code = make_member_code(100_000_000 + rng.randrange(1, members + 1))
    body: dict[str, Any] = {"identify": code, "receipt_id": receipt_id, "lines": lines}
    if spend:
        body["redeem_points"] = "max"
    return body


def pos_loop(
    url: str,
    token: str,
    members: int,
    cheques: int,
    prefix: str,
    seed: int,
    pause_every: int = 0,
    pause: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One POS: quote then commit ``cheques`` times; latencies in ns, errors counted.
    ``pause`` (if given) runs after every ``pause_every`` cheques, outside the timing.

    The client is ``http.client`` with one keep-alive connection: POS software is native
    code with a thin HTTP client, so the figures should be the agent's time, not a heavy
    Python client's (httpx adds 1-2 ms per call on this machine)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    rng = random.Random(seed)
    quote_ns: list[int] = []
    commit_ns: list[int] = []
    errors: list[str] = []
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    started = time.perf_counter()
    try:
        for i in range(cheques):
            body = json.dumps(cheque(rng, members, f"{prefix}-{i}", spend=i % 2 == 0))
            for path, sink in (("/v1/quote", quote_ns), ("/v1/commit", commit_ns)):
                t0 = time.perf_counter_ns()
                try:
                    conn.request("POST", path, body=body.encode(), headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    json.loads(data)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    errors.append(f"{path}: {type(e).__name__}")
                    conn.close()
                    conn = http.client.HTTPConnection(
                        parts.hostname or "127.0.0.1", parts.port, timeout=10
                    )
                    continue
                sink.append(time.perf_counter_ns() - t0)
                if resp.status != 200:
                    errors.append(f"{path}: {resp.status} {data[:120]!r}")
            if pause is not None and pause_every and (i + 1) % pause_every == 0:
                pause()
    finally:
        conn.close()
    return {
        "quote_ns": quote_ns,
        "commit_ns": commit_ns,
        "errors": errors,
        "wall_s": time.perf_counter() - started,
    }


def core_loop(store: Path, members: int, cheques: int, seed: int) -> tuple[list[int], list[int]]:
    """The same cheques through ``Agent.quote``/``Agent.commit`` in this process, no HTTP:
    what the API adds is the difference (ns per call)."""
    from agent.requests import checkout_request
    from agent.service import Agent
    from agent.store import Store

    rng = random.Random(seed)
    quote_ns: list[int] = []
    commit_ns: list[int] = []
    with Store(store) as st:
        agent = Agent(st)
        for i in range(cheques):
            body = cheque(rng, members, f"K-{i}", spend=i % 2 == 0)
            t0 = time.perf_counter_ns()
            agent.quote(checkout_request(agent, body))
            quote_ns.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            agent.commit(checkout_request(agent, body))
            commit_ns.append(time.perf_counter_ns() - t0)
    return quote_ns[WARMUP:], commit_ns[WARMUP:]


def http_floor(url: str, token: str, n: int) -> list[int]:
    """Latency of the cheapest authenticated call (``GET /v1/scans/next``): the HTTP
    server, token check and rate limiter with no store work (ns)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    out = []
    try:
        for _ in range(n + WARMUP):
            t0 = time.perf_counter_ns()
            conn.request("GET", "/v1/scans/next", headers={"authorization": f"Bearer {token}"})
            conn.getresponse().read()
            out.append(time.perf_counter_ns() - t0)
    finally:
        conn.close()
    return out[WARMUP:]


def sale_row_sizes(store: Path) -> dict[str, int]:
    """Average sizes of the documents a sale writes, read from the store after the core
    loop's commits (what ``bench/checkout.py``'s bare floor needs to write the same bytes)."""
    import sqlite3

    from checkout import sale_row_sizes as measure

    conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return measure(lambda sql: conn.execute(sql).fetchone())
    finally:
        conn.close()


def agent_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the agent process so far (all its threads)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _child(args: tuple[str, str, int, int, str, int], out: Any) -> None:
    out.put(pos_loop(*args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_agent(tmp: Path, store: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    import httpx

    port = free_port()
    cfg = tmp / "kassa.toml"
    cfg.write_text(
        f'[store]\npath = "{store}"\n[api]\nport = {port}\nrate_per_s = 1000000.0\n'
        f'rate_burst = 1000000\n[sync]\nenabled = false\n[log]\ndir = "{tmp / "log"}"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kassa.cli", "agent", "serve", "--config", str(cfg), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    token_file = tmp / "api-token"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}")
        if token_file.exists():
            token = token_file.read_text(encoding="utf-8").strip()
            try:
                if httpx.get(
                    url + "/v1/status", headers={"authorization": f"Bearer {token}"}, timeout=2
                ).is_success:
                    return proc, url, token
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError("agent did not start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--members", type=int)
    ap.add_argument("--cheques", type=int, help="cheques of the single-POS latency phase")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    members = args.members or base["members"]
    cheques = args.cheques or base["cheques"]

    from kassa.setup import init_store

    tmp = Path(tempfile.mkdtemp(prefix="kassa-posapi-"))
    proc = None
    try:
        store = tmp / "till.db"
        t0 = time.perf_counter()
        init_store(store, demo=True, members=members, store_name="Bench")
        build_s = time.perf_counter() - t0
        print(f"cache: {members} members in {build_s:.1f} s", file=sys.stderr)
        core_quote, core_commit = core_loop(store, members, min(cheques, 1000) + WARMUP, SEED)

        # The fsync floor: bench/checkout.py's bare durable commit of a sale's rows.
        from checkout import BareFloor, build_bare

        from agent.checkpoint import EVERY_COMMITS

        sizes = sale_row_sizes(store)
        build_bare(tmp / "bare.db", store)
        bare = BareFloor(tmp / "bare.db", sizes, EVERY_COMMITS)
        bare_rng = random.Random(SEED + 2)
        for _ in range(WARMUP):
            bare.commit(bare_rng.randrange(bare.count))
        bare_ns: list[int] = []
        per_block = max(1, cheques // BLOCKS)

        def bare_block() -> None:
            bare_ns.extend(bare.commit(bare_rng.randrange(bare.count)) for _ in range(per_block))

        proc, url, token = start_agent(tmp, store)
        floor = sorted(http_floor(url, token, 1000))

        pos_loop(url, token, members, WARMUP, "W", SEED - 1)
        cpu0 = agent_cpu_s(proc.pid)
        single = pos_loop(url, token, members, cheques, "S", SEED, per_block, bare_block)
        cpu_per_cheque_ms = (agent_cpu_s(proc.pid) - cpu0) / cheques * 1e3
        bare.close()
        quote = sorted(single["quote_ns"])
        commit = sorted(single["commit_ns"])
        fsync_floor = sorted(bare_ns)
        print(f"single POS: {cheques} cheques", file=sys.stderr)

        per_client = max(100, cheques // args.clients)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        started = time.perf_counter()
        kids = [
            ctx.Process(
                target=_child,
                args=((url, token, members, per_client, f"C{k}", SEED + k + 1), out),
            )
            for k in range(args.clients)
        ]
        for kid in kids:
            kid.start()
        results = [out.get(timeout=900) for _ in kids]
        for kid in kids:
            kid.join(60)
        conc_wall = time.perf_counter() - started
        conc_quote = sorted(ns for r in results for ns in r["quote_ns"])
        conc_commit = sorted(ns for r in results for ns in r["commit_ns"])
        errors = [e for r in results for e in r["errors"]] + single["errors"]

        proc.send_signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_C_EVENT)
        clean_exit = proc.wait(timeout=60)
        result: dict[str, Any] = {
            "bench": "posapi",
            "members": members,
            "cheques": cheques,
            "build_s": round(build_s, 2),
            "quote_p50_ms": pct(quote, 0.5),
            "quote_p99_ms": pct(quote, 0.99),
            "commit_p50_ms": pct(commit, 0.5),
            "commit_p99_ms": pct(commit, 0.99),
            "cheque_p99_ms": pct(
                sorted(
                    q + c for q, c in zip(single["quote_ns"], single["commit_ns"], strict=False)
                ),
                0.99,
            ),
            "core_quote_p50_ms": pct(sorted(core_quote), 0.5),
            "core_quote_p99_ms": pct(sorted(core_quote), 0.99),
            "core_commit_p50_ms": pct(sorted(core_commit), 0.5),
            "core_commit_p99_ms": pct(sorted(core_commit), 0.99),
            "http_floor_p50_ms": pct(floor, 0.5),
            "http_floor_p99_ms": pct(floor, 0.99),
            "fsync_floor_p50_ms": pct(fsync_floor, 0.5),
            "fsync_floor_p99_ms": pct(fsync_floor, 0.99),
            "commit_p99_over_floor_ms": round(pct(commit, 0.99) - pct(fsync_floor, 0.99), 3),
            "commit_target_below_floor": pct(fsync_floor, 0.99) > TARGETS["commit_p99_ms"],
            "agent_cpu_per_cheque_ms": round(cpu_per_cheque_ms, 3),
            "http_impl": "httptools" if importlib.util.find_spec("httptools") else "h11",
            "loop_impl": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "concurrent_clients": args.clients,
            "concurrent_cheques": per_client * args.clients,
            "concurrent_errors": len(errors),
            "concurrent_error_sample": errors[:3],
            "concurrent_quote_p99_ms": pct(conc_quote, 0.99),
            "concurrent_commit_p99_ms": pct(conc_commit, 0.99),
            "concurrent_requests_per_s": round((len(conc_quote) + len(conc_commit)) / conc_wall, 1),
            "agent_exit_code": clean_exit,
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    result["targets"] = TARGETS
    result["ok"] = (
        result["quote_p99_ms"] <= TARGETS["quote_p99_ms"]
        and result["commit_p99_ms"] <= TARGETS["commit_p99_ms"]
        and result["concurrent_errors"] == TARGETS["concurrent_errors"]
        and result["agent_exit_code"] == 0
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
