"""The console bench (bench/console.py) at a tiny size, so its code path cannot rot: the
bulk build on SQLite and PostgreSQL (counts add up to the events asked for; the bulk
roll-ups equal ``rollups.rebuild``'s over the same rows), the cache (a second run only
measures), and the browser-like fetches (sign-in, dashboard with its fragments, search
that finds members, profile) ending in the §8 JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchlib import synclib  # noqa: F401  (puts _synclib in sys.modules first)
from test_dashboard_rollups import MORE

from sync.backoffice import rollups
from sync.backoffice.db import Database

MEMBERS, EVENTS = 300, 3_000


def _load() -> Any:
    if "bench_console" in sys.modules:
        return sys.modules["bench_console"]
    path = Path(__file__).resolve().parent.parent / "bench" / "console.py"
    spec = importlib.util.spec_from_file_location("bench_console", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_console"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[Path]:
    """The bench's cache in the test's directory; its PostgreSQL database dropped after."""
    monkeypatch.setenv("KASSA_BENCH_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if kind == "postgresql":
        name = bench.cache_name(MEMBERS, EVENTS)
        bench.pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = capsys.readouterr().out.strip().splitlines()
    result: dict[str, Any] = json.loads(out[-1])
    return result


_ADDITIVE = (
    "SELECT day, store_id, cashier_id, cheques + refunded_cheques, revenue_kop, "
    "points_issued, points_spent FROM rollup_days "
    "WHERE cheques + refunded_cheques <> 0 OR revenue_kop <> 0 ORDER BY day, store_id, cashier_id"
)
"""The roll-ups' figures that do not depend on which refund completed a return (``rebuild``
orders refunds by their ``events`` row, which the bench does not build)."""


class _Undo(Exception):
    pass


def _rebuilt_matches(url: str) -> tuple[list[Any], list[Any]]:
    """(the bulk roll-ups, ``rollups.rebuild``'s over the same rows, rolled back)."""
    db = Database.open(url)
    try:
        with db.reading() as tx:
            built = [tuple(r) for r in tx.all(_ADDITIVE)]
        rebuilt: list[Any] = []
        try:
            with db.transaction() as tx:
                rollups.rebuild(tx)
                rebuilt = [tuple(r) for r in tx.all(_ADDITIVE)]
                raise _Undo
        except _Undo:
            pass
        return built, rebuilt
    finally:
        db.close()


def _more_matches(url: str) -> tuple[list[Any], list[Any]]:
    """(the cohort, points-held and distinct-buyer roll-ups, ``rollups.rebuild_more``'s
    over the same rows, rolled back)."""
    db = Database.open(url)
    try:
        with db.reading() as tx:
            kept = [[tuple(r) for r in tx.all(sql)] for sql in MORE]
        again: list[Any] = []
        try:
            with db.transaction() as tx:
                rollups.rebuild_more(tx)
                again = [[tuple(r) for r in tx.all(sql)] for sql in MORE]
                raise _Undo
        except _Undo:
            pass
        return kept, again
    finally:
        db.close()


# _synclib.ServerProcess leaves its child's stdout pipe to the collector (not this test's)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_console_bench_builds_caches_and_measures(
    kind: str, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--members", str(MEMBERS), "--events", str(EVENTS), "--samples", "3", "--db", kind]
    assert bench.main(argv) == 0
    first = _last_json(capsys)
    assert first["bench"] == "console" and "targets" in first and "ok" in first
    run = first[kind]
    assert "error" not in run, run
    data = run["data"]
    assert data["cached"] is False and data["rollups_built"] is True
    assert data["registrations"] + data["purchases"] + data["refunds"] == EVENTS
    pages = run["pages"]
    assert set(pages) == {
        "dashboard",
        "dashboard_week",
        "dashboard_month",
        "dashboard_90d",
        "dashboard_store",
        "dashboard_store_90d",
        "dashboard_cashier_90d",
        "search",
        "profile",
    }
    assert first["period_90d"] == {kind: pages["dashboard_90d"]["p95_ms"]}
    assert all(p["n"] == 3 and p["p95_ms"] >= p["p50_ms"] > 0 for p in pages.values())
    assert pages["search"]["found_share"] > 0
    assert set(first["targets"]["passed"]) == {f"{kind}_{p}" for p in pages}

    # the bulk roll-ups are the owner's definition over the same rows
    url = (
        str(cache / f"{bench.cache_name(MEMBERS, EVENTS)}.db")
        if kind == "sqlite"
        else bench.pg_url(bench.cache_name(MEMBERS, EVENTS))
    )
    built, rebuilt = _rebuilt_matches(url)
    assert built and built == rebuilt
    # and the roll-ups the app's start back-filled are those of the rows loaded
    kept, again = _more_matches(url)
    assert kept == again and all(kept[:8])  # none empty but the early returns

    # a second run finds the database complete and only measures
    assert bench.main(argv) == 0
    again = _last_json(capsys)
    assert again[kind]["data"]["cached"] is True
    assert "error" not in again[kind]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["sqlite"])
def test_console_bench_upgrades_a_cache_made_under_older_migrations(
    kind: str, cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete cache whose schema lacks the latest roll-ups is migrated, back-filled
    and renamed to the current schema's name, not rebuilt (a full-size build takes long)."""
    argv = ["--members", str(MEMBERS), "--events", str(EVENTS), "--samples", "1", "--db", kind]
    monkeypatch.setattr(bench, "schema_tag", lambda: "0123456789")  # "the older schema"
    assert bench.main(argv) == 0
    old = bench.cache_name(MEMBERS, EVENTS)
    db = Database.open(str(cache / f"{old}.db"))
    try:
        with db.transaction() as tx:  # as the cache was before the cohort roll-ups
            for table in (*bench.UPGRADED, "rollup_stores"):
                tx.execute(f"DROP TABLE {table}")
            tx.execute(
                "DELETE FROM schema_migrations WHERE name IN "
                "('0021_dashboard_cohorts', '0023_dashboard_reach')"
            )
            tx.execute(
                "DELETE FROM settings WHERE key IN (?, ?)", (rollups.HELD_KEY, rollups.REACH_KEY)
            )
    finally:
        db.close()
    _last_json(capsys)
    monkeypatch.undo()
    monkeypatch.setenv("KASSA_BENCH_CACHE", str(cache))
    assert bench.main(argv) == 0
    data = _last_json(capsys)[kind]["data"]
    assert data["cached"] is True and data["upgraded_from"] == old
    new = cache / f"{bench.cache_name(MEMBERS, EVENTS)}.db"
    assert new.exists() and not (cache / f"{old}.db").exists()
    db = Database.open(str(new))
    try:
        with db.reading() as tx:
            (joined,) = tx.one("SELECT sum(registered) FROM rollup_cohorts")
            (members,) = tx.one("SELECT sum(members) FROM rollup_stores")
            (chains,) = tx.one("SELECT count(*) FROM rollup_chain")
            (buyers,) = tx.one("SELECT count(DISTINCT member_id) FROM purchases")
    finally:
        db.close()
    assert joined == MEMBERS and members == MEMBERS and chains == buyers > 0
