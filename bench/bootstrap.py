"""Bootstrap benchmark: a new till loads a 1,000,000-member snapshot from the back office.

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- set-up, untimed: a SQLite back office (the embedded default) with ``--members`` demo
  members (``Backoffice.load_members``, one transaction), served by the real stack
  (``create_app`` under uvicorn on 127.0.0.1, in a child process as in production); a
  till enrolled over HTTP with a one-time code and ``bootstrap=False`` (token, keys and
  rules stored, member cache empty);
- timed, in a fresh child process that only opens the enrolled store (the parent's
  seeding memory is not counted): ``SyncClient.bootstrap()``, i.e. ``GET /v1/snapshot``
  streamed as NDJSON (the back office pages through its members 5,000 at a time), each
  line decoded into a ``MemberRecord`` and bulk-loaded into the till's cache in one
  transaction (indexes rebuilt after), the pull cursor stored. ``bootstrap_s`` is
  download + apply, end to end, as an installer waits for it;
- ``download_only_s``: the same stream read to the end and discarded (no JSON decoding,
  no SQLite), after the load, in the same process: the floor set by the back office's
  stream and HTTP on this machine; ``floor_ratio`` = ``download_only_s`` /
  ``bootstrap_s`` (the share of the load that is the server and the wire);
- memory: the till process's RSS just before ``bootstrap()`` (after imports and opening
  the store) and its peak during the load (Linux ``VmHWM``, the kernel's exact high-water
  mark, read before the download-only pass; a psutil sampler every 50 ms gives the
  sampled peak too). ``rss_growth_mb`` = peak - before;
- the proof: the till's cache holds exactly N members, the cursor is set, ``PRAGMA
  quick_check`` is ok.

Why: the first start of a till in a chain with a big member base must finish within an
installer's patience (target <= 30 s for 1,000,000 members), and it must not need more
memory as the base grows: the client streams the snapshot and the store inserts it in
chunks, so memory is bounded by one chunk of rows plus one HTTP page, not by the base.
Target: RSS growth <= 300 MB during the load (a small till PC has 2-4 GB shared with the
POS software; 300 MB is a generous bound that a load buffering the whole 1M-member base,
about 1 GB as Python objects, would break). ``--quick`` (100,000 members) checks that
the bench works; the growth should be about the same as at 1M if memory is bounded.

Usage: ``python bench/bootstrap.py [--quick] [--members N]``. The last line printed is
the JSON result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

TARGETS = {"bootstrap_s": 30.0, "rss_growth_mb": 300.0}
FULL = {"members": 1_000_000}
QUICK = {"members": 100_000}
SAMPLE_S = 0.05


# --------------------------------------------------------------------------- till child
def till_main(store_path: Path, base_url: str) -> int:
    """The till: open the enrolled store, load the snapshot, report time and memory."""
    import psutil

    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    proc = psutil.Process()
    peak_sampled = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_sampled
        while not stop.is_set():
            peak_sampled = max(peak_sampled, proc.memory_info().rss)
            stop.wait(SAMPLE_S)

    store = Store(store_path)
    try:
        agent = Agent(store)
        with lib.client(base_url) as http:
            sync = SyncClient(agent, http)
            rss_before = proc.memory_info().rss
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            loaded = sync.bootstrap()
            bootstrap_s = time.perf_counter() - t0
            stop.set()
            sampler.join()
            peak = lib.peak_rss()
            rss_after = proc.memory_info().rss

            # The floor: the same stream, read and discarded.
            t0 = time.perf_counter()
            size = 0
            with http.stream(
                "GET", "/v1/snapshot", headers={"authorization": f"Bearer {sync.token}"}
            ) as resp:
                for chunk in resp.iter_raw():
                    size += len(chunk)
            download_s = time.perf_counter() - t0
        cached = store.one("SELECT count(*) FROM members")
        cursor = store.sync_value("cursor")
        check = store.quick_check()
    finally:
        store.close()
    print(
        json.dumps(
            {
                "loaded": loaded,
                "cached": int(cached[0]) if cached else 0,
                "cursor": cursor,
                "quick_check": check,
                "bootstrap_s": bootstrap_s,
                "download_only_s": download_s,
                "stream_bytes": size,
                "rss_before": rss_before,
                "rss_peak": peak if peak is not None else peak_sampled,
                "rss_peak_sampled": peak_sampled,
                "rss_after": rss_after,
            }
        )
    )
    return 0


# --------------------------------------------------------------------------- parent
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"short run: {QUICK['members']:,} members"
    )
    parser.add_argument("--members", type=int, help="members in the back office snapshot")
    parser.add_argument("--till", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.till:
        return till_main(Path(args.till), args.url)
    members = args.members or (QUICK if args.quick else FULL)["members"]
    if members < 1:
        parser.error("--members must be positive")

    lib.sigterm_unwinds()
    tmp = Path(tempfile.mkdtemp(prefix="kassa-bench-bootstrap-", dir=tempfile.gettempdir()))
    try:
        with lib.backoffice_url("sqlite", tmp) as url:
            t0 = time.perf_counter()
            bo = lib.open_backoffice(url, members, datetime.now(UTC))
            seed_s = time.perf_counter() - t0
            backoffice_mb = sum(p.stat().st_size for p in tmp.glob("backoffice*")) / 2**20
            try:
                with lib.ServerProcess(url) as server:
                    store_path = tmp / "till.db"
                    lib.enroll(bo, server.base_url, store_path, "till-boot", bootstrap=False)
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--till",
                        str(store_path),
                        "--url",
                        server.base_url,
                    ]
                    child = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if child.returncode != 0:
                        sys.stderr.write(child.stdout + child.stderr)
                        raise SystemExit(f"till process failed (exit {child.returncode})")
                    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
            finally:
                bo.db.close()
        store_mb = sum(p.stat().st_size for p in tmp.glob("till.db*")) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mb = 2**20
    growth = (figures["rss_peak"] - figures["rss_before"]) / mb
    verified = (
        figures["loaded"] == members
        and figures["cached"] == members
        and figures["cursor"] is not None
        and figures["quick_check"] == "ok"
    )
    passed = {
        "bootstrap_s": figures["bootstrap_s"] <= TARGETS["bootstrap_s"],
        "rss_growth_mb": growth <= TARGETS["rss_growth_mb"],
        "verified": verified,
    }
    result = {
        "bench": "bootstrap",
        "quick": args.quick,
        "members": members,
        "bootstrap_s": round(figures["bootstrap_s"], 2),
        "members_per_s": round(members / figures["bootstrap_s"], 1),
        "download_only_s": round(figures["download_only_s"], 2),
        "floor_ratio": round(figures["download_only_s"] / figures["bootstrap_s"], 3),
        "stream_mb": round(figures["stream_bytes"] / mb, 1),
        "rss_before_mb": round(figures["rss_before"] / mb, 1),
        "rss_peak_mb": round(figures["rss_peak"] / mb, 1),
        "rss_peak_sampled_mb": round(figures["rss_peak_sampled"] / mb, 1),
        "rss_after_mb": round(figures["rss_after"] / mb, 1),
        "rss_growth_mb": round(growth, 1),
        "rss_measured_in": "fresh till process that opens the enrolled store and loads the "
        "snapshot (VmHWM peak minus RSS just before bootstrap())",
        "verified": verified,
        "till_store_mb": round(store_mb, 1),
        "backoffice_seed_s": round(seed_s, 2),
        "backoffice_mb": round(backoffice_mb, 1),
        "server": f"uvicorn ({lib.http_impl()}) + Starlette, child process on 127.0.0.1; "
        "SQLite back office",
        "sqlite": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "targets": {
            "bootstrap_s_max": TARGETS["bootstrap_s"],
            "rss_growth_mb_max": TARGETS["rss_growth_mb"],
            "at_members": FULL["members"],
            "passed": passed,
        },
        "ok": all(passed.values()),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
