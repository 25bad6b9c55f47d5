"""Console benchmark: the programme owners' pages over a big back office, fetched as a
browser fetches them, against the console's targets (dashboard p95 <= 2 s, search
<= 100 ms, profile <= 300 ms).

What is built (untimed, cached): a back office of ``--members`` members and ``--events``
events over ``STORES`` stores, written straight into the ledger's tables (pushing 10
million events through HTTP and the projector would take hours; ``drain.py`` and
``ledger.py`` time that path): ``members`` (the demo base's codes, phone hashes, names and
member states with their lots, ``agent.seed.member_rows``; each registered at a till of
a store, by a cashier, on a day of the last ``DAYS`` days, more of them lately),
``purchases`` (members' activity log-normal, 15 % never buy; 85 % of a member's cheques
at their home store; stores' sizes Zipf; amounts log-normal around 1,200 roubles; 12 %
spend points, 5 % get a bonus; time-ordered event ids, inserted in time order),
``refunds`` (3 % of cheques returned in full within 14 days) and, when the dashboard's
tables exist (``rollup_days``, ``rollup_returns``), its daily roll-ups, summed in SQL from
those rows as ``rollups.rebuild`` defines them. Events = registrations + purchases +
refunds. The ``events`` table itself (the raw payloads) is not built: the profile's "why
these points" explanation reads a cheque's payload and shows nothing without it (said in
the output as ``data.not_built``). Secondary indexes are dropped for the load and made
again with the schema's own DDL; PostgreSQL then gets ``ANALYZE`` (autovacuum is off on
this server). The database is cached (``KASSA_BENCH_CACHE``, default
``~/.cache/kassa-bench``): a SQLite file / a PostgreSQL database named by the size, the
schema's migrations and ``GEN_VERSION``, marked complete only at the end, so a re-run
only measures.

What is measured: the real back-office app under uvicorn (``_synclib.ServerProcess``), a
console user made by ``Backoffice.add_user`` signed in through ``/console/signin`` (CSRF
token and cookies as a browser keeps them), then per database, over loopback HTTP:

- ``dashboard``: "complete" = the page (``/console/dashboard``, today) and the static
  files it loads (stylesheet, htmx), as a first visit; ``dashboard_week`` /
  ``dashboard_month`` / ``dashboard_90d``: the htmx fragment (``HX-Request``) a filter
  change swaps in (this week, this month, a chosen 90-day period, also ``period_90d``
  in the result), ``dashboard_store``: this month for one store, and
  ``dashboard_store_90d`` / ``dashboard_cashier_90d``: the chosen 90 days for that store
  and for one of its cashiers;
- ``search``: the htmx fragment ``/console/members?q=`` for a phone, a card code and a
  name prefix (a third each) of random members;
- ``profile``: ``/console/members/<id>`` of random members with a purchase.

p50 / p95 per page (ms, nearest rank). Targets: dashboard complete p95 <= 2 s (every
dashboard figure set above), search p95 <= 100 ms, profile p95 <= 300 ms.

Usage: ``python bench/console.py [--quick | --full] [--members M --events E]
[--db sqlite|postgresql|both] [--samples N] [--rebuild]``. Default (``--full``):
1,000,000 members, 10,000,000 events; ``--quick``: 100,000 / 1,000,000. The last line
printed is the JSON result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

if "_synclib" not in sys.modules:  # a test loads it first (tests/benchlib.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

FULL = {"members": 1_000_000, "events": 10_000_000}
QUICK = {"members": 100_000, "events": 1_000_000}
STORES = 100
DAYS = 730  # the history's length, days up to today
CASHIERS = 8  # per store
TILLS = 3  # per store
REFUND_SHARE = 0.03  # of cheques, returned in full
NEVER_BUY = 0.15  # members without a cheque
HOME_SHARE = 0.85  # of a member's cheques at their home store
SAMPLES = 60  # fetches per page
WARMUP = 3
TARGETS_MS = {"dashboard": 2_000.0, "search": 100.0, "profile": 300.0}
GEN_VERSION = "1"  # bump when the generator changes: a new cache key
PASSWORD = "bench console 1"
LOGIN = "bench-owner"
SEED = 20261207
CHUNK = 200_000
PURCHASE_COLS = (
    "event_id, receipt_id, terminal_id, store_id, member_id, occurred_at, day, cashier_id, "
    "identified_by, offline, amount_kop, paid_kop, earned, bonus, spent, effects, refunded"
)
REFUND_COLS = (
    "event_id, refund_id, purchase_event_id, terminal_id, store_id, member_id, occurred_at, "
    "day, cashier_id, amount_kop, earn_reversed, bonus_reversed, returned"
)
MEMBER_COLS = (
    "member_id, code, phone_hash, phone_masked, first_name, state, balance, available, "
    "pending, expiring_points, expiring_on, tier, consent_programme, consent_marketing, "
    "registered_at, store_id, terminal_id, cashier_id, updated_at"
)
LOADED = ("members", "purchases", "refunds", "rollup_days", "rollup_returns")
UPGRADED = (
    "rollup_members",
    "rollup_cohorts",
    "rollup_buyers",
    "rollup_held",
    "rollup_expiry",
    "rollup_chain",
    "rollup_reach",
    "rollup_early",
)
"""The roll-ups the app's start back-fills (analysed after an upgrade or a build)."""
BUILT_KEY = "bench_console_built"
GEN_KEY = "bench_console_generator"  # the GEN_VERSION whose rows the cache holds
EFFECTS = '{"lines":[{"line_no":1,"qty":1}]}'
REFUNDED = '{"1":1}'


# --------------------------------------------------------------------------- cache
def schema_tag() -> str:
    """The migrations' names and text and the generator's version, hashed: a schema
    change or a generator change makes a new cache entry."""
    from sync.backoffice.schema import MIGRATIONS

    h = hashlib.sha256(GEN_VERSION.encode())
    for name, script in MIGRATIONS:
        h.update(name.encode() + b"\0" + script.encode() + b"\0")
    return h.hexdigest()[:10]


def cache_dir() -> Path:
    d = Path(os.environ.get("KASSA_BENCH_CACHE", Path.home() / ".cache" / "kassa-bench"))
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def cache_name(members: int, events: int) -> str:
    return f"{cache_prefix(members, events)}{schema_tag()}"


def cache_prefix(members: int, events: int) -> str:
    """The cache names of this size before the schema tag. A cache put elsewhere than
    the default (``KASSA_BENCH_CACHE``, as the tests do) gets its own namespace, so its
    PostgreSQL databases (server-wide, not in that directory) are never taken for
    another run's older cache (``older``)."""
    where = os.environ.get("KASSA_BENCH_CACHE")
    space = "" if where is None else "t" + hashlib.sha256(where.encode()).hexdigest()[:6] + "_"
    return f"console_{members}m_{events}e_{space}"


def pg_url(name: str) -> str:
    return f"{lib.PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def pg_exec(sql: str) -> list[Any]:
    import psycopg

    with psycopg.connect(lib.PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def is_built(url: str, *, same_generator: bool = False) -> bool:
    """Whether ``url`` holds a complete cache (``same_generator``: one whose rows this
    generator made, ``GEN_KEY``; a cache from before that key is generator "1")."""
    from sync.backoffice.db import Database

    if not url.startswith("postgresql") and not Path(url).exists():
        return False
    try:
        db = Database.open(url)
    except Exception:
        return False
    try:
        with db.reading() as tx:
            if tx.one("SELECT value FROM settings WHERE key = ?", (BUILT_KEY,)) is None:
                return False
            gen = tx.one("SELECT value FROM settings WHERE key = ?", (GEN_KEY,))
            return not same_generator or (gen[0] if gen else "1") == GEN_VERSION
    except Exception:
        return False
    finally:
        db.close()


def upgrade(url: str) -> float:
    """Bring a cached database made under older migrations up to the schema: the
    migrations it lacks and the back-fill of the roll-ups they add (``initialise``, as a
    back office started on it would). Returns the seconds it took."""
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    t0 = time.perf_counter()
    db = Database.open(url)
    try:
        with db.transaction() as tx:
            # a cache built before the build cleared these marks holds the roll-ups of
            # an empty ledger (points held by no store): made again from its rows
            have = {str(r[0]) for r in tx.all("SELECT name FROM schema_migrations")}
            if (
                "0021_dashboard_cohorts" in have
                and tx.one("SELECT 1 FROM rollup_stores LIMIT 1") is None
            ):
                tx.execute("DELETE FROM settings WHERE key = 'rollups_held_built'")
        Backoffice(db).initialise()
        with db.transaction() as tx:  # their statistics (autovacuum is off on this server)
            for table in UPGRADED:
                tx.execute(f"ANALYZE {table}")
    finally:
        db.close()
    return round(time.perf_counter() - t0, 1)


def older(kind: str, members: int, events: int) -> str | None:
    """A complete cache of this size made by this generator under other migrations (its
    name), or None."""
    prefix = cache_prefix(members, events)
    if kind == "sqlite":
        names = [
            p.name.removesuffix(".db")
            for p in sorted(cache_dir().glob(f"{prefix}*.db"), key=lambda p: -p.stat().st_mtime)
            if not p.name.endswith(".partial.db")
        ]
        urls = {n: str(cache_dir() / f"{n}.db") for n in names}
    else:
        names = [
            str(r[0])
            for r in pg_exec(
                f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY datname"
            )
        ]
        urls = {n: pg_url(n) for n in names}
    for name in names:
        tag = name.removeprefix(prefix)
        current = name == cache_name(members, events)
        if _TAG.fullmatch(tag) and not current and is_built(urls[name], same_generator=True):
            return name
    return None


_TAG = re.compile(r"[0-9a-f]{10}")


def prepare(kind: str, members: int, events: int, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """The cached database's URL (built now unless it is there complete; a complete one
    of the same size made under older migrations is upgraded and renamed instead) and how
    it was got (``built_s``, ``cached``, or ``upgraded_from`` with ``upgrade_s``)."""
    name = cache_name(members, events)
    info: dict[str, Any] = {"cache": name}
    old = None if rebuild else older(kind, members, events)
    if kind == "sqlite":
        final = cache_dir() / f"{name}.db"
        if not rebuild and is_built(str(final)):
            return str(final), {**info, "cached": True}
        if old is not None:
            took = upgrade(str(cache_dir() / f"{old}.db"))
            for suffix in ("-wal", "-shm", ""):
                src = cache_dir() / f"{old}.db{suffix}"
                if src.exists():
                    os.replace(src, f"{final}{suffix}")
            return str(final), {**info, "cached": True, "upgraded_from": old, "upgrade_s": took}
        partial = final.with_suffix(".partial.db")
        for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm"), final):
            p.unlink(missing_ok=True)
        t0 = time.perf_counter()
        info.update(build(str(partial), kind, members, events))
        os.replace(partial, final)
        return str(final), {**info, "cached": False, "built_s": round(time.perf_counter() - t0, 1)}
    url = pg_url(name)
    exists = pg_exec(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if exists and not rebuild and is_built(url):
        return url, {**info, "cached": True}
    if old is not None:
        took = upgrade(pg_url(old))
        pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        pg_exec(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{old}'")
        pg_exec(f"ALTER DATABASE {old} RENAME TO {name}")
        return url, {**info, "cached": True, "upgraded_from": old, "upgrade_s": took}
    pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_exec(f"CREATE DATABASE {name}")
    t0 = time.perf_counter()
    info.update(build(url, kind, members, events))
    return url, {**info, "cached": False, "built_s": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- build
def build(url: str, kind: str, members: int, events: int) -> dict[str, Any]:
    """Migrate, then bulk-load the ledger's tables (module doc); the completion mark
    last. Returns the counts and the build's phases (seconds)."""
    import numpy as np

    from agent import engine
    from agent.seed import member_rows
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    db = Database.open(url)
    try:
        bo = Backoffice(db)
        bo.initialise()
        for s in range(STORES):
            bo.ensure_store(store_id(s), f"Магазин {s + 1}")
        rules = bo.context.programmes.get()
        assert rules is not None
        key = bytes.fromhex(bo.setting("phone_hash_key"))
        with db.reading() as tx:
            have = {
                r[0]
                for r in tx.all(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if kind == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
    finally:
        db.close()
    rollups = {"rollup_days", "rollup_returns"} <= have
    phases["migrate_s"] = time.perf_counter() - t0
    now = datetime.now(UTC)
    today = engine.local_date(rules, now)
    plan = Plan(members, events, today, rules.tz, SEED)
    writer: Writer = SqliteWriter(url) if kind == "sqlite" else PgWriter(url)
    try:
        t0 = time.perf_counter()
        dropped = writer.drop_indexes([t for t in LOADED if t in have])
        phases["drop_indexes_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        writer.copy("members", MEMBER_COLS, plan.members(member_rows(members, rules, key, now)))
        phases["members_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        refunds: list[tuple[Any, ...]] = []
        writer.copy("purchases", PURCHASE_COLS, plan.purchases(refunds))
        phases["purchases_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        refunds.sort(key=lambda r: r[6])
        writer.copy("refunds", REFUND_COLS, iter(refunds))
        if rollups:
            writer.copy(
                "rollup_returns",
                "purchase_event_id, refund_event_id, day, store_id, cashier_id",
                ((r[2], r[0], r[7], r[4], r[8]) for r in refunds),
            )
        phases["refunds_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        writer.make_indexes(dropped)
        phases["indexes_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if rollups:
            writer.execute(rollup_sql(rules.welcome_points))
            writer.execute(
                "INSERT INTO settings(key, value) VALUES ('rollups_built', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            )
        # the app's first start above built the other roll-ups of an empty ledger: made
        # again from the rows loaded by ``upgrade`` below
        writer.execute(
            "DELETE FROM settings WHERE key IN ('rollups_held_built', 'rollups_reach_built')"
        )
        phases["rollups_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        writer.finish()
        phases["finish_s"] = time.perf_counter() - t0
    finally:
        writer.close()
    # the cohort, buyer and points-held roll-ups back-filled from the rows loaded (what
    # the app's start does for them), then the completion mark
    phases["more_rollups_s"] = upgrade(url)
    db = Database.open(url)
    try:
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?), (?, ?)",
                (BUILT_KEY, now.isoformat(), GEN_KEY, GEN_VERSION),
            )
    finally:
        db.close()
    del np
    return {
        "rollups_built": rollups,
        "purchases": plan.n_purchases,
        "refunds": len(refunds),
        "registrations": members,
        "build_phases_s": {k: round(v, 1) for k, v in phases.items()},
    }


def rollup_sql(welcome: int) -> str:
    """``rollup_days`` summed from the loaded rows, as ``rollups.rebuild`` defines them
    (a registration's welcome bonus is the programme's)."""
    return (
        "INSERT INTO rollup_days(day, store_id, cashier_id, new_members, welcome_points, "
        "cheques, refunded_cheques, revenue_kop, points_issued, points_spent) "
        "SELECT day, store_id, cashier_id, sum(nm), sum(wp), sum(ch), sum(rc), sum(rev), "
        "sum(pi), sum(ps) FROM ("
        "SELECT day, store_id, COALESCE(cashier_id, '-') AS cashier_id, 0 AS nm, 0 AS wp, "
        "count(*) AS ch, 0 AS rc, sum(paid_kop) AS rev, sum(earned + bonus) AS pi, "
        "sum(spent) AS ps FROM purchases GROUP BY day, store_id, COALESCE(cashier_id, '-') "
        "UNION ALL SELECT day, store_id, COALESCE(cashier_id, '-'), 0, 0, 0, 0, "
        "-sum(amount_kop), -sum(earn_reversed + bonus_reversed), -sum(returned) FROM refunds "
        "GROUP BY day, store_id, COALESCE(cashier_id, '-') "
        "UNION ALL SELECT day, store_id, cashier_id, 0, 0, -count(*), count(*), 0, 0, 0 "
        "FROM rollup_returns GROUP BY day, store_id, cashier_id "
        "UNION ALL SELECT substr(registered_at, 1, 10), store_id, COALESCE(cashier_id, '-'), "
        f"count(*), count(*) * {int(welcome)}, 0, 0, 0, 0, 0 FROM members "
        "WHERE terminal_id IS NOT NULL "
        "GROUP BY substr(registered_at, 1, 10), store_id, COALESCE(cashier_id, '-')"
        ") AS x GROUP BY day, store_id, cashier_id"
    )


def store_id(s: int) -> str:
    return f"s{s + 1:03d}"


class Plan:
    """The generated back office (module doc): every random draw from one seed."""

    def __init__(self, members: int, events: int, today: date, tz: Any, seed: int) -> None:
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.today = today
        self.tz = tz
        self.first_day = today - timedelta(days=DAYS - 1)
        rest = max(events - members, 0)
        self.n_purchases = int(rest / (1 + REFUND_SHARE))
        rng = self.rng
        zipf = 1.0 / np.arange(1, STORES + 1)
        self.store_p = zipf / zipf.sum()
        self.home = rng.choice(STORES, size=members, p=self.store_p).astype(np.int32)
        # more members registered lately: day index ~ DAYS * sqrt(u)
        self.reg_day = np.minimum((DAYS * np.sqrt(rng.random(members))).astype(np.int32), DAYS - 1)
        self.reg_sec = rng.integers(9 * 3600, 22 * 3600, size=members).astype(np.int32)
        self.reg_cashier = rng.integers(0, CASHIERS, size=members).astype(np.int8)
        self.reg_till = rng.integers(0, TILLS, size=members).astype(np.int8)
        weight = rng.lognormal(0.0, 1.2, size=members)
        weight[rng.random(members) < NEVER_BUY] = 0.0
        self.weight = weight / weight.sum() if weight.sum() else weight

    def stamp(self, day_index: int, sec: int) -> str:
        """Local wall time of day ``day_index`` (0 = the history's first day) at ``sec``
        seconds after midnight, ISO 8601 with the programme zone's offset."""
        d = self.first_day + timedelta(days=int(day_index))
        t = datetime(d.year, d.month, d.day, tzinfo=self.tz) + timedelta(seconds=int(sec))
        return t.isoformat()

    def members(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """The demo rows (``MEMBER_LOAD_COLUMNS``) with a registration at a store's till."""
        for i, r in enumerate(rows):
            s = int(self.home[i])
            at = self.stamp(self.reg_day[i], self.reg_sec[i])
            yield (
                *r[:12],
                int(r[14]),
                int(r[15]),
                at,
                store_id(s),
                f"t{s + 1:03d}-{int(self.reg_till[i]) + 1}",
                f"c{s + 1:03d}-{int(self.reg_cashier[i]) + 1}",
                r[16],
            )

    def purchases(self, refunds: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """The cheques in time order; the refunds of those returned go into ``refunds``."""
        np = self.np
        rng = self.rng
        n = self.n_purchases
        if n == 0 or not self.weight.any():
            return
        who = rng.choice(len(self.weight), size=n, p=self.weight).astype(np.int32)
        start = self.reg_day[who]
        day = (start + rng.random(n) * (DAYS - start)).astype(np.int32)
        sec = rng.integers(9 * 3600, 22 * 3600, size=n).astype(np.int32)
        order = np.lexsort((sec, day))
        who, day, sec = who[order], day[order], sec[order]
        away = rng.random(n) >= HOME_SHARE
        store = np.where(away, rng.choice(STORES, size=n, p=self.store_p), self.home[who])
        till = rng.integers(0, TILLS, size=n)
        cashier = rng.integers(0, CASHIERS, size=n)
        amount = np.maximum(rng.lognormal(np.log(120_000), 0.7, size=n), 1_000).astype(np.int64)
        spend = np.where(rng.random(n) < 0.12, rng.integers(100, 2_000, size=n), 0)
        spend = np.minimum(spend, amount // 200)  # at most half the cheque, 1 point = 1 rub
        paid = amount - spend * 100
        earned = paid // 2_000  # 5 points per 100 roubles paid
        bonus = np.where(rng.random(n) < 0.05, rng.integers(50, 500, size=n), 0)
        scan = rng.random(n) < 0.7
        offline = rng.random(n) < 0.02
        returned = rng.random(n) < REFUND_SHARE
        back = rng.integers(0, 15, size=n)
        noise = rng.integers(0, 1 << 62, size=n, dtype=np.int64)
        first = self.first_day
        epoch_day = (first - date(1970, 1, 1)).days
        for i in range(n):
            s = int(store[i])
            d = int(day[i])
            ms = ((epoch_day + d) * 86400 + int(sec[i])) * 1000
            event_id = f"{ms:012x}{int(noise[i]):016x}{i:08x}"
            occurred = self.stamp(d, sec[i])
            term = f"t{s + 1:03d}-{int(till[i]) + 1}"
            cash = f"c{s + 1:03d}-{int(cashier[i]) + 1}"
            sid = store_id(s)
            mid = f"m{int(who[i]):08d}"
            ret = bool(returned[i])
            yield (
                event_id,
                f"R{i:09d}",
                term,
                sid,
                mid,
                occurred,
                (first + timedelta(days=d)).isoformat(),
                cash,
                "scan" if scan[i] else "phone",
                int(offline[i]),
                int(amount[i]),
                int(paid[i]),
                int(earned[i]),
                int(bonus[i]),
                int(spend[i]),
                EFFECTS,
                REFUNDED if ret else "{}",
            )
            if ret:
                rd = min(d + int(back[i]), DAYS - 1)
                rsec = int(sec[i]) if rd == d else 10 * 3600
                rms = ((epoch_day + rd) * 86400 + rsec + 1) * 1000
                refunds.append(
                    (
                        f"{rms:012x}{int(noise[i]) ^ 1:016x}{i:08x}",
                        f"F{i:09d}",
                        event_id,
                        term,
                        sid,
                        mid,
                        self.stamp(rd, rsec + 1),
                        (first + timedelta(days=rd)).isoformat(),
                        cash,
                        int(paid[i]),
                        int(earned[i]),
                        int(bonus[i]),
                        int(spend[i]),
                    )
                )


class Writer:
    """Bulk writes into one database, outside the app (the build only)."""

    def drop_indexes(self, tables: list[str]) -> list[str]:
        raise NotImplementedError

    def make_indexes(self, ddl: list[str]) -> None:
        for sql in ddl:
            self.execute(sql)

    def copy(self, table: str, cols: str, rows: Iterator[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteWriter(Writer):
    """One connection, no journal and no fsync while loading (a crash leaves a
    ``.partial`` file that is thrown away); WAL again and a checkpoint at the end."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=DELETE")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-400000")
        self.conn.execute("PRAGMA temp_store=MEMORY")

    def drop_indexes(self, tables: list[str]) -> list[str]:
        marks = ",".join("?" * len(tables))
        rows = self.conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})",
            tables,
        ).fetchall()
        for name, _ in rows:
            self.conn.execute(f"DROP INDEX {name}")
        return [sql for _, sql in rows]

    def copy(self, table: str, cols: str, rows: Iterator[tuple[Any, ...]]) -> None:
        marks = ",".join("?" * len(cols.split(",")))
        sql = f"INSERT INTO {table}({cols}) VALUES ({marks})"
        self.conn.execute("BEGIN")
        chunk: list[tuple[Any, ...]] = []
        for r in rows:
            chunk.append(r)
            if len(chunk) >= CHUNK:
                self.conn.executemany(sql, chunk)
                chunk.clear()
        self.conn.executemany(sql, chunk)
        self.conn.execute("COMMIT")

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def finish(self) -> None:
        self.conn.execute("ANALYZE")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        self.conn.close()


class PgWriter(Writer):
    """COPY into PostgreSQL, indexes made after; ``ANALYZE`` at the end."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET maintenance_work_mem = '512MB'")

    def drop_indexes(self, tables: list[str]) -> list[str]:
        rows = self.conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
            "AND i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conname = i.indexname)",
            (tables,),
        ).fetchall()
        for name, _ in rows:
            self.conn.execute(f"DROP INDEX {name}")
        return [str(sql) for _, sql in rows]

    def copy(self, table: str, cols: str, rows: Iterator[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table}({cols}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)

    def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    def finish(self) -> None:
        self.conn.execute("ANALYZE")

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- measure
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ASSET = re.compile(r'(?:href|src)="(/console/static/[^"]+)"')


def sign_in(http: Any) -> None:
    """Through the sign-in form, as a browser: the form's CSRF token, then the POST."""
    page = http.get("/console/signin")
    found = _CSRF.search(page.text)
    if found is None:
        raise RuntimeError(f"no CSRF token on the sign-in page ({page.status_code})")
    r = http.post("/console/signin", data={"csrf": found[1], "login": LOGIN, "password": PASSWORD})
    if r.status_code != 303:
        raise RuntimeError(f"sign-in answered {r.status_code}: {r.text[:200]}")


def timed(http: Any, path: str, *, fragment: bool = False, assets: bool = False) -> tuple[int, str]:
    """One fetch (ns) and its text, the answer read to its last byte; ``assets``: also
    the static files the page names, as a first visit loads them."""
    headers = {"HX-Request": "true"} if fragment else {}
    t0 = time.perf_counter_ns()
    r = http.get(path, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
    if assets:
        for asset in dict.fromkeys(_ASSET.findall(r.text)):
            a = http.get(asset)
            if a.status_code != 200:
                raise RuntimeError(f"GET {asset} answered {a.status_code}")
    return time.perf_counter_ns() - t0, r.text


def probes(url: str, samples: int, today: date) -> dict[str, list[str]]:
    """The pages' paths: random members with a purchase (profile), phones / codes / name
    prefixes of random members (search), the dashboard's periods and a store."""
    import random

    from agent.seed import FIRST_NAMES, demo_phone
    from sync.backoffice.db import Database

    rng = random.Random(SEED)
    db = Database.open(url)
    try:
        with db.reading() as tx:
            n = int(tx.one("SELECT count(*) FROM members")[0])
            buyers: list[str] = []
            while len(buyers) < samples:
                mid = f"m{rng.randrange(n):08d}"
                if tx.one("SELECT 1 FROM purchases WHERE member_id = ? LIMIT 1", (mid,)):
                    buyers.append(mid)
            codes = [
                str(tx.one("SELECT code FROM members WHERE member_id = ?", (f"m{i:08d}",))[0])
                for i in (rng.randrange(n) for _ in range(samples))
            ]
            top_store = tx.one(
                "SELECT store_id FROM members GROUP BY store_id ORDER BY count(*) DESC LIMIT 1"
            )[0]
    finally:
        db.close()
    search = []
    for k in range(samples):
        which = k % 3
        if which == 0:
            search.append(demo_phone(rng.randrange(n)))
        elif which == 1:
            search.append(codes[k])
        else:
            search.append(rng.choice(FIRST_NAMES)[:3])
    d90 = (today - timedelta(days=89)).isoformat()
    chosen = f"period=custom&from={d90}&to={today}"
    return {
        "profile": [f"/console/members/{m}" for m in buyers],
        "search": [f"/console/members?{_q(q)}" for q in search],
        "dashboard": ["/console/dashboard"],
        "dashboard_week": ["/console/dashboard?period=week"],
        "dashboard_month": ["/console/dashboard?period=month"],
        "dashboard_90d": [f"/console/dashboard?{chosen}"],
        "dashboard_store": [f"/console/dashboard?period=month&store={top_store}"],
        "dashboard_store_90d": [f"/console/dashboard?{chosen}&store={top_store}"],
        "dashboard_cashier_90d": [f"/console/dashboard?{chosen}&cashier=c{top_store[1:]}-1"],
    }


def _q(text: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"q": text})


def measure(url: str, samples: int) -> dict[str, Any]:
    """Serve ``url``, sign in, fetch every page ``samples`` times (after ``WARMUP``)."""
    from agent import engine
    from sync.backoffice.db import Database
    from sync.backoffice.people.users import UserError
    from sync.backoffice.service import Backoffice

    db = Database.open(url)
    try:
        bo = Backoffice(db)
        with contextlib.suppress(UserError):  # made by an earlier run of this database
            bo.add_user(LOGIN, PASSWORD, "owner", name="Бенч")
        rules = bo.context.programmes.get()
        assert rules is not None
        today = engine.local_date(rules, datetime.now(UTC))
    finally:
        db.close()
    paths = probes(url, samples, today)
    out: dict[str, Any] = {}
    with lib.ServerProcess(url) as server, lib.client(server.base_url) as http:
        sign_in(http)
        for page, wanted in paths.items():
            fragment = page not in ("dashboard", "profile")
            for k in range(WARMUP):
                timed(http, wanted[k % len(wanted)], fragment=fragment)
            ns: list[int] = []
            found = 0
            for k in range(samples):
                took, text = timed(
                    http, wanted[k % len(wanted)], fragment=fragment, assets=page == "dashboard"
                )
                ns.append(took)
                found += 'data-member="' in text
            out[page] = {
                "p50_ms": lib.pct_ms(ns, 50),
                "p95_ms": lib.pct_ms(ns, 95),
                "max_ms": round(max(ns) / 1e6, 1),
                "n": len(ns),
            }
            if page == "search":  # the share of searches that found someone
                out[page]["found_share"] = round(found / samples, 3)
    return out


def run(kind: str, members: int, events: int, samples: int, rebuild: bool) -> dict[str, Any]:
    url, data = prepare(kind, members, events, rebuild)
    t0 = time.perf_counter()
    pages = measure(url, samples)
    return {"data": data, "pages": pages, "measure_s": round(time.perf_counter() - t0, 1)}


def verdicts(pages: dict[str, Any]) -> dict[str, bool]:
    """Each page's p95 against its target (every dashboard view against the dashboard's)."""
    out = {}
    for page, f in pages.items():
        target = TARGETS_MS["dashboard" if page.startswith("dashboard") else page]
        out[page] = f["p95_ms"] <= target
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 members, 1,000,000 events")
    size.add_argument("--full", action="store_true", help="1,000,000 members, 10,000,000 events")
    parser.add_argument("--members", type=int, help="members in the back office")
    parser.add_argument("--events", type=int, help="events (registrations included)")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="fetches per page")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="back office"
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached database")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    members = args.members or sizes["members"]
    events = args.events or sizes["events"]
    if members < 10 or events < members:
        parser.error("--members must be >= 10 and --events >= --members")
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    lib.sigterm_unwinds()
    figures: dict[str, Any] = {}
    passed: dict[str, bool] = {}
    for kind in kinds:
        try:
            figures[kind] = run(kind, members, events, args.samples, args.rebuild)
            for page, ok in verdicts(figures[kind]["pages"]).items():
                passed[f"{kind}_{page}"] = ok
        except Exception as e:
            traceback.print_exc()
            figures[kind] = {"error": f"{type(e).__name__}: {e}"}
            passed[f"{kind}_ran"] = False
    result = {
        "bench": "console",
        "quick": args.quick,
        "members": members,
        "events": events,
        "stores": STORES,
        "built": (
            "bulk-loaded into members, purchases, refunds (and rollup_days, rollup_returns "
            "when the dashboard's tables exist), not pushed through HTTP; see the module doc"
        ),
        "not_built": "events (raw payloads): the profile's per-cheque explanation is empty",
        **{
            f"{kind}_{page}_p95_ms": f["p95_ms"]
            for kind in kinds
            for page, f in figures[kind].get("pages", {}).items()
        },
        # a chosen period of 90 days (the chain's fragment), p95 per database
        "period_90d": {
            kind: figures[kind]["pages"]["dashboard_90d"]["p95_ms"]
            for kind in kinds
            if "dashboard_90d" in figures[kind].get("pages", {})
        },
        **figures,
        **lib.machine(kinds, "one browser-like httpx client with a console session"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "targets": {
            "dashboard_complete_p95_ms_max": TARGETS_MS["dashboard"],
            "search_p95_ms_max": TARGETS_MS["search"],
            "profile_p95_ms_max": TARGETS_MS["profile"],
            "passed": passed,
        },
        "ok": bool(passed) and all(passed.values()),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
