"""The members' pages bench (bench/member.py) at a tiny size, so its code path cannot rot:
the console bench's base reused, member sessions opened, the card page and the token
endpoint fetched with a member's cookie and whole sign-ups through the file SMS provider,
on SQLite and PostgreSQL, ending in the §8 JSON line with the sign-up's steps counted."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchlib import synclib  # noqa: F401  (puts _synclib in sys.modules first)

MEMBERS, EVENTS = 200, 1_000
OLDER_TAG = "older"
"""The tag of a console cache made under older migrations (in the test's namespace)."""


def _load() -> Any:
    if "bench_member" in sys.modules:
        return sys.modules["bench_member"]
    path = Path(__file__).resolve().parent.parent / "bench" / "member.py"
    spec = importlib.util.spec_from_file_location("bench_member", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_member"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("KASSA_BENCH_CACHE", str(tmp_path / "cache"))
    if request.param == "postgresql":
        _drop_caches()  # an earlier run's, left in this namespace (the server is shared)
    yield request.param
    if request.param == "postgresql":
        _drop_caches()


def _drop_caches() -> None:
    """Drop the PostgreSQL caches of this size in this test's namespace (console and
    member caches of any schema tag) and the renamed older one."""
    cb = bench._console()
    prefix = cb.cache_prefix(MEMBERS, EVENTS)
    like = (prefix, prefix.replace("console_", "member_", 1))
    names = [
        str(r[0])
        for r in cb.pg_exec("SELECT datname FROM pg_database")
        if str(r[0]).startswith(like)
    ]
    for db in names:
        cb.pg_exec(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_tiny_run(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--members", str(MEMBERS), "--events", str(EVENTS), "--db", kind, "--samples", "4"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bench"] == "member" and result["targets"]["passed"][f"{kind}_card"] in (
        True,
        False,
    )
    pages = result[kind]["pages"]
    assert {p: pages[p]["n"] for p in pages} == {"card": 4, "tokens": 4, "signup": 4}
    assert result["signup_steps"]["screens"] == 3 and result["signup_steps"]["sms"] == 1
    assert result["signup_person_s_model"] == bench.person_seconds()


def test_an_older_console_cache_is_copied_and_migrated(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console bench's cache under older migrations is left as it is: a copy is."""
    cb = bench._console()
    url, _ = cb.prepare(kind, MEMBERS, EVENTS, False)
    name = cb.cache_name(MEMBERS, EVENTS)
    older = cb.cache_prefix(MEMBERS, EVENTS) + OLDER_TAG
    if kind == "sqlite":
        Path(url).rename(cb.cache_dir() / f"{older}.db")
    else:
        cb.pg_exec(f"ALTER DATABASE {name} RENAME TO {older}")
    args = ["--members", str(MEMBERS), "--events", str(EVENTS), "--db", kind, "--samples", "2"]
    bench.main(args)
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[kind]
    assert "data" in first, first
    assert first["data"]["copied_from"].startswith(older) and first["pages"]["card"]["n"] == 2
    bench.main(args)
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[kind]
    assert "data" in again, again
    assert again["data"] == {"cache": name.replace("console_", "member_", 1), "cached": True}
    assert cb.is_built(
        str(cb.cache_dir() / f"{older}.db") if kind == "sqlite" else cb.pg_url(older)
    )
