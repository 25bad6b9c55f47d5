"""The export bench (bench/export.py) at a tiny size on SQLite and PostgreSQL, so its
code path cannot rot: the console bench's cached build, the exports' rows equal to the
counts, the floor measured, and the §8 JSON line last; the cache keeps no bench segment."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchlib import synclib  # noqa: F401  (puts _synclib in sys.modules first)

from sync.backoffice.db import Database

MEMBERS, EVENTS = 300, 600


def _load() -> Any:
    if "bench_export" in sys.modules:
        return sys.modules["bench_export"]
    path = Path(__file__).resolve().parent.parent / "bench" / "export.py"
    spec = importlib.util.spec_from_file_location("bench_export", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_export"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[Path]:
    """The bench's cache in the test's directory; its PostgreSQL database dropped after."""
    monkeypatch.setenv("KASSA_BENCH_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    if kind == "postgresql":
        console = bench.console_bench()
        console.pg_exec(
            f"DROP DATABASE IF EXISTS {console.cache_name(MEMBERS, EVENTS)} WITH (FORCE)"
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_export_bench_measures_and_reports(
    kind: str, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--members", str(MEMBERS), "--events", str(EVENTS), "--db", kind]
    assert bench.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bench"] == "export" and "targets" in result and "ok" in result
    run = result[kind]
    assert "error" not in run, run
    assert run["rows"] == MEMBERS and run["csv_rows_match"] and run["ndjson_rows_match"]
    assert run["rules_rows_match"] and 0 < run["rules_rows"] < MEMBERS
    assert run["csv_s"] > 0 and run["floor_s"] > 0 and run["csv_bytes"] > 0
    assert set(result["targets"]["passed"]) == {f"{kind}_csv", f"{kind}_rows"}
    console = bench.console_bench()
    name = console.cache_name(MEMBERS, EVENTS)
    url = str(cache / f"{name}.db") if kind == "sqlite" else console.pg_url(name)
    db = Database.open(url)
    try:
        with db.reading() as tx:
            assert tx.one("SELECT count(*) FROM segments")[0] == 0
    finally:
        db.close()
