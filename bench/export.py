"""Export benchmark: a segment of 1,000,000 members written as CSV (and NDJSON) by the
back office's own export (``Backoffice.segment_export``), against the target of <= 60 s
for the CSV of a million members.

What is built (untimed, cached): the ledger of ``bench/console.py`` (its bulk builder and
cache, ``prepare``): ``--members`` members with their codes, masked phones, names, tiers
and points, and ``--events`` events (registrations + purchases + refunds; the default,
twice the members, gives about one cheque a member). ``--events 10000000`` with 1,000,000
members is bench/console.py's full size and shares its cache.

What is measured, per database, in this process (no HTTP: the console streams these
same chunks), each export written to a file in a temporary directory:

- ``count_s``: the segment's count (the console's live preview), every member;
- ``csv_s``: the CSV (``;``, BOM) of the segment "every member" (no rule but the base
  filter: not merged, erased or blocked), in the export's keyset pages; its rows must
  equal the count; ``csv_bytes``, ``csv_mb``, ``csv_rows_per_s``;
- ``csv_rules_s``: the CSV of a segment with rules (a cheque in the last 365 days and
  the last one within 180 days), its rows equal to its count;
- ``ndjson_s``: the NDJSON of every member;
- ``rss_growth_mb``: the most the process's resident memory grew above its level at the
  start of the CSV export, sampled at each chunk (bounded memory: the export holds one
  page);
- ``floor_s``: the physical floor on this machine: the same columns of every member
  read in one plain ``SELECT`` (no rules, no pages, no control flag) and written with
  the same ``csv`` writer to a file; ``csv_vs_floor`` = ``csv_s / floor_s``.

Target: ``csv_s`` <= 60 s for 1,000,000 members (scaled by the members asked for).
Usage: ``python bench/export.py [--quick] [--members M --events E] [--db
sqlite|postgresql|both] [--rebuild]``; ``--quick``: 100,000 members. The last line
printed is the JSON result; exit status is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if "_synclib" not in sys.modules:  # a test loads it first (tests/benchlib.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

FULL_MEMBERS = 1_000_000
QUICK_MEMBERS = 100_000
TARGET_S = 60.0  # the CSV of 1,000,000 members
ACTOR = "bench-export"
EVERYONE: dict[str, Any] = {"marketing_consent": False}
RULED: dict[str, Any] = {
    "marketing_consent": False,
    "frequency": {"window_days": 365, "min": 1},
    "recency_days": {"max": 180},
}
_PAGE = os.sysconf("SC_PAGE_SIZE")


def console_bench() -> Any:
    """bench/console.py as a module (its builder and cache)."""
    if "bench_console" in sys.modules:
        return sys.modules["bench_console"]
    path = Path(__file__).resolve().parent / "console.py"
    spec = importlib.util.spec_from_file_location("bench_console", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_console"] = module
    spec.loader.exec_module(module)
    return module


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def timed_export(chunks: Iterator[bytes], path: Path) -> dict[str, Any]:
    """Write ``chunks`` to ``path``: seconds, bytes, and the resident memory's growth."""
    start_rss = rss_bytes()
    peak = start_rss
    size = 0
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            size += len(chunk)
            peak = max(peak, rss_bytes())
    took = time.perf_counter() - t0
    return {"s": took, "bytes": size, "rss_growth": peak - start_rss}


def lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def floor(url: str, path: Path) -> float:
    """The same columns of every live member in one plain SELECT, written by ``csv``."""
    from sync.backoffice.db import Database

    db = Database.open(url)
    try:
        t0 = time.perf_counter()
        with db.reading() as tx, open(path, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f, delimiter=";", lineterminator="\r\n")
            cur = tx.execute(
                "SELECT m.member_id, m.code, m.first_name, m.phone_masked, m.tier, m.balance, "
                "m.expiring_points, m.expiring_on, m.store_id, s.r, s.f, s.m, s.abc "
                "FROM members m LEFT JOIN member_scores s ON s.member_id = m.member_id "
                "WHERE m.merged_into IS NULL AND m.erased_at IS NULL AND m.blocked = 0"
            )
            fetch = getattr(cur, "fetchmany")  # noqa: B009 - both drivers' cursors have it
            while rows := fetch(10_000):
                writer.writerows(rows)
        return time.perf_counter() - t0
    finally:
        db.close()


def run(kind: str, members: int, events: int, rebuild: bool) -> dict[str, Any]:
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    url, data = console_bench().prepare(kind, members, events, rebuild)
    db = Database.open(url)
    out: dict[str, Any] = {"data": data}
    try:
        bo = Backoffice(db)
        bo.initialise()
        everyone = bo.segment_save("bench: every member", EVERYONE, 10, actor=ACTOR)
        ruled = bo.segment_save("bench: bought lately", RULED, 10, actor=ACTOR)
        with tempfile.TemporaryDirectory(prefix="kassa-export-") as tmp:
            t0 = time.perf_counter()
            count = bo.segment_preview(EVERYONE)
            out["count_s"] = round(time.perf_counter() - t0, 3)
            out["rows"] = count
            got = timed_export(bo.segment_export(everyone.segment_id), Path(tmp) / "all.csv")
            out["csv_s"] = round(got["s"], 4)
            out["csv_bytes"] = got["bytes"]
            out["csv_mb"] = round(got["bytes"] / 1e6, 1)
            out["csv_rows_per_s"] = round(count / got["s"]) if got["s"] else None
            out["rss_growth_mb"] = round(got["rss_growth"] / 1e6, 1)
            out["csv_rows_match"] = lines(Path(tmp) / "all.csv") - 1 == count
            ruled_count = bo.segment_preview(RULED)
            got = timed_export(bo.segment_export(ruled.segment_id), Path(tmp) / "ruled.csv")
            out["csv_rules_s"] = round(got["s"], 2)
            out["rules_rows"] = ruled_count
            out["rules_rows_match"] = lines(Path(tmp) / "ruled.csv") - 1 == ruled_count
            got = timed_export(
                bo.segment_export(everyone.segment_id, "ndjson"), Path(tmp) / "all.ndjson"
            )
            out["ndjson_s"] = round(got["s"], 2)
            out["ndjson_rows_match"] = lines(Path(tmp) / "all.ndjson") == count
            took = floor(url, Path(tmp) / "floor.csv")
            out["floor_s"] = round(took, 4)
            out["csv_vs_floor"] = round(out["csv_s"] / took, 2) if took else None
        with db.transaction() as tx:  # the cache keeps no bench segments (their audit rows stay)
            tx.execute("DELETE FROM segments WHERE created_by = ?", (ACTOR,))
    finally:
        db.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MEMBERS:,} members")
    parser.add_argument("--members", type=int, help="members in the back office")
    parser.add_argument("--events", type=int, help="events (default: twice the members)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached database")
    args = parser.parse_args(argv)
    members = args.members or (QUICK_MEMBERS if args.quick else FULL_MEMBERS)
    events = args.events or 2 * members
    if members < 10 or events < members:
        parser.error("--members must be >= 10 and --events >= --members")
    target = TARGET_S * members / FULL_MEMBERS
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    lib.sigterm_unwinds()
    figures: dict[str, Any] = {}
    passed: dict[str, bool] = {}
    for kind in kinds:
        try:
            figures[kind] = f = run(kind, members, events, args.rebuild)
            passed[f"{kind}_csv"] = f["csv_s"] <= target
            passed[f"{kind}_rows"] = (
                f["csv_rows_match"] and f["rules_rows_match"] and f["ndjson_rows_match"]
            )
        except Exception as e:
            traceback.print_exc()
            figures[kind] = {"error": f"{type(e).__name__}: {e}"}
            passed[f"{kind}_ran"] = False
    result = {
        "bench": "export",
        "quick": args.quick,
        "members": members,
        "events": events,
        **figures,
        "targets": {"csv_s": round(target, 2), "passed": passed},
        "ok": all(passed.values()),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
