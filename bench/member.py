"""Members' pages benchmark: a member's card page with a fresh QR token over a big back
office, and the sign-up from a poster to the card, against the targets (card p95 <= 200 ms
at 1,000,000 members; sign-up to card <= 30 s of a person's time).

What is built (untimed, cached): the console bench's back office (``bench/console.py``:
``--members`` members and ``--events`` events bulk-loaded into the ledger's tables over 100
stores, cached per size and schema in ``KASSA_BENCH_CACHE``, default
``~/.cache/kassa-bench``), reused as it is, or a migrated copy of one made under older
migrations (``prepare``); then ``--samples`` member sessions opened for
random members of the base (``member_signup.open_session`` with each member's phone, as
a confirmed SMS code opens one).

What is measured: the real back-office app under uvicorn (``_synclib.ServerProcess``),
over loopback HTTP, per database:

- ``card``: ``GET /my/card`` of a random member's session (the session cookie as a phone
  keeps it): the member's card (balance, pending and expiring points, tier, collections,
  last cheques, consents) with three freshly signed QR tokens drawn as SVG;
- ``tokens``: ``GET /my/tokens``, what the card's script asks before a token expires;
- ``signup``: the whole sign-up of a new phone from the poster's address, the server's
  time of its 7 requests (join page, phone, code, profile page, profile, card), the
  code read back from the file SMS provider (``KASSA_SMS_FILE``) in between (not timed).
  The sends' per-address limit (20 an hour from one address: the bench is one address)
  caps it at 15 sign-ups a run; the bench's earlier codes are deleted first.

p50 / p95 per page (ms, nearest rank). The person's side of the sign-up is not a
measurement but a count: ``signup_steps`` lists the screens, taps, characters typed and
the SMS, and ``signup_person_s_model`` adds them up with stated per-step times.

Usage: ``python bench/member.py [--quick | --full] [--members M --events E]
[--db sqlite|postgresql|both] [--samples N] [--rebuild]``. Default (``--full``):
1,000,000 members, 10,000,000 events (the console bench's full base); ``--quick``:
100,000 / 1,000,000. The last line printed is the JSON result; exit status is 0 whether
or not targets are met.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if "_synclib" not in sys.modules:  # a test loads it first (tests/benchlib.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib


def _console() -> Any:
    """``bench/console.py`` (its cached base and builder), loaded once by path."""
    if "bench_console" in sys.modules:
        return sys.modules["bench_console"]
    spec = importlib.util.spec_from_file_location(
        "bench_console", Path(__file__).resolve().parent / "console.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_console"] = module
    spec.loader.exec_module(module)
    return module


FULL = {"members": 1_000_000, "events": 10_000_000}
QUICK = {"members": 100_000, "events": 1_000_000}
SAMPLES = 60
WARMUP = 3
SIGNUPS_MAX = 15
TARGETS = {"card_p95_ms_max": 200.0, "signup_person_s_max": 30.0}
SEED = 20261218
BENCH_CLIENT = "127.0.0.1"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SIGNUP_STEPS = {
    "screens": 3,  # the phone, the code, the name and consents; then the card
    "requests": 7,
    "sms": 1,
    "taps": 4,  # "get a code", "confirm", the programme consent's box, "get the card"
}
TYPED = {"phone": 10, "code": 6, "first_name": 5}
"""Characters a person types (a five-letter name)."""
PERSON_S = {
    "scan_poster": 4.0,  # open the camera, point it, tap the link
    "per_char": 0.5,  # typing on a phone (the SMS code is often offered by the keyboard)
    "per_tap": 1.0,
    "sms_wait": 5.0,
    "read_screen": 2.0,
}
"""Seconds of a person's time per step: the model behind ``signup_person_s_model``."""


def person_seconds() -> float:
    """The sign-up's person time by the model: ``PERSON_S`` per step of ``SIGNUP_STEPS``."""
    p = PERSON_S
    chars = sum(TYPED.values())
    taps, sms, screens = SIGNUP_STEPS["taps"], SIGNUP_STEPS["sms"], SIGNUP_STEPS["screens"]
    return round(
        p["scan_poster"]
        + chars * p["per_char"]
        + taps * p["per_tap"]
        + sms * p["sms_wait"]
        + screens * p["read_screen"],
        1,
    )


def sessions(url: str, samples: int) -> list[str]:
    """Session tokens of ``samples`` random members of the base (untimed set-up)."""
    from agent.seed import demo_phone
    from sync.backoffice import member_signup
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    rng = random.Random(SEED)
    db = Database.open(url)
    try:
        bo = Backoffice(db)
        key = bytes.fromhex(bo.setting("phone_hash_key"))
        with db.reading() as tx:
            n = int(tx.one("SELECT count(*) FROM members")[0])
        now = datetime.now(UTC)
        out = []
        while len(out) < samples:
            token = member_signup.open_session(
                bo.context, key, demo_phone(rng.randrange(n)), None, None, now
            )
            opened = bo.member_session(token)
            if opened is not None and opened.member_id is not None:
                out.append(token)
        with db.transaction() as tx:  # the send limit counts the bench's earlier codes
            tx.execute("DELETE FROM member_otp WHERE client = ?", (BENCH_CLIENT,))
    finally:
        db.close()
    return out


def timed(http: Any, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    t0 = time.perf_counter_ns()
    r = http.request(method, path, **kw)
    took = time.perf_counter_ns() - t0
    if r.status_code not in (200, 303):
        raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
    return took, r


def signup(base_url: str, sms_file: Path, phone: str) -> int:
    """One sign-up from the poster's address to the card: the server's time (ns)."""
    from sync.backoffice.sms import FileGateway

    total = 0
    with lib.client(base_url) as http:
        took, r = timed(http, "GET", "/my/join?store=s0001&poster=bench")
        total += took
        csrf = _CSRF.search(r.text)
        assert csrf is not None
        src = {"csrf": csrf[1], "store": "s0001", "poster": "bench"}
        took, r = timed(http, "POST", "/my/join/phone", data={**src, "phone": phone})
        total += took
        text = FileGateway(sms_file).read_last(phone)
        code = re.search(r"\b(\d{6})\b", text or "")
        if code is None:
            raise RuntimeError(f"no code was sent to {phone}: {r.text[:300]}")
        for method, path, data in (
            ("POST", "/my/join/code", {**src, "phone": phone, "code": code[1]}),
            ("GET", "/my/join/profile", None),
        ):
            took, r = timed(http, method, path, data=data)
            total += took
        csrf = _CSRF.search(r.text)
        assert csrf is not None
        form = {"csrf": csrf[1], "first_name": "Бенч", "consent_programme": "yes"}
        for method, path, data in (
            ("POST", "/my/join/profile", form),
            ("GET", "/my/card", None),
        ):
            took, r = timed(http, method, path, data=data)
            total += took
        if 'id="qr"' not in r.text:
            raise RuntimeError("the sign-up did not end on the card")
    return total


def figures(ns: list[int]) -> dict[str, Any]:
    return {
        "p50_ms": lib.pct_ms(ns, 50),
        "p95_ms": lib.pct_ms(ns, 95),
        "max_ms": round(max(ns) / 1e6, 1),
        "n": len(ns),
    }


def measure(url: str, samples: int) -> dict[str, Any]:
    tokens = sessions(url, samples)
    rng = random.Random(time.time_ns())  # new phones each run: the base keeps its sign-ups
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sms_file = Path(tmp) / "sms.log"
        os.environ["KASSA_SMS_FILE"] = str(sms_file)  # the server's SMS provider
        try:
            server = lib.ServerProcess(url)
        finally:
            del os.environ["KASSA_SMS_FILE"]
        with server, lib.client(server.base_url) as http:
            for page in ("card", "tokens"):
                ns = []
                for k in range(WARMUP + samples):
                    http.cookies.clear()
                    http.cookies.set("kassa_my", tokens[k % len(tokens)], path="/my")
                    took, r = timed(http, "GET", f"/my/{page}")
                    if page == "card" and 'id="qr"' not in r.text:
                        raise RuntimeError("the card page has no QR")
                    if k >= WARMUP:
                        ns.append(took)
                out[page] = figures(ns)
            ns = [
                signup(server.base_url, sms_file, f"+7903{rng.randrange(10**7):07d}")
                for _ in range(min(samples, SIGNUPS_MAX))
            ]
            out["signup"] = figures(ns)
        # the server has exited: its output pipe is at its end (the reader thread done)
        time.sleep(0.2)
        if server.proc.stdout is not None:
            server.proc.stdout.close()
    return out


def prepare(kind: str, members: int, events: int, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """The base's URL: the console bench's cache of this size under the current schema
    when it is there; else a complete one made under older migrations, copied (SQLite: the
    file; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``) to a cache of this bench's own and
    migrated (the pages read no roll-up: nothing to back-fill), so the console bench's
    cache is left as it is; else the console bench builds it."""
    import shutil

    from sync.backoffice.db import Database
    from sync.backoffice.schema import migrate

    cb = _console()
    name = cb.cache_name(members, events)
    mine = name.replace("console_", "member_", 1)
    if kind == "sqlite":
        current, copy = cb.cache_dir() / f"{name}.db", cb.cache_dir() / f"{mine}.db"
        if not rebuild and cb.is_built(str(current)):
            return str(current), {"cache": name, "cached": True}
        if not rebuild and cb.is_built(str(copy)):
            return str(copy), {"cache": mine, "cached": True}
        older = [
            p
            for p in sorted(cb.cache_dir().glob(f"{cb.cache_prefix(members, events)}*.db"))
            if not p.name.endswith(".partial.db") and cb.is_built(str(p))
        ]
        if not rebuild and older:
            t0 = time.perf_counter()
            partial = copy.with_suffix(".partial.db")
            for suffix in ("", "-wal"):  # with its write-ahead log: the copy is whole
                if Path(f"{older[-1]}{suffix}").exists():
                    shutil.copyfile(f"{older[-1]}{suffix}", f"{partial}{suffix}")
            db = Database.open(str(partial))
            try:
                migrate(db)
            finally:
                db.close()
            con = sqlite3.connect(partial)  # all in the file before it is renamed
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            os.replace(partial, copy)
            took = round(time.perf_counter() - t0, 1)
            return str(copy), {"cache": mine, "copied_from": older[-1].name, "copy_s": took}
    else:
        url = cb.pg_url(mine)
        if not rebuild and cb.is_built(cb.pg_url(name)):
            return cb.pg_url(name), {"cache": name, "cached": True}
        if not rebuild and cb.is_built(url):
            return url, {"cache": mine, "cached": True}
        older_pg = [
            str(r[0])
            for r in cb.pg_exec(
                "SELECT datname FROM pg_database WHERE datname LIKE "
                f"'{cb.cache_prefix(members, events)}%' ORDER BY datname"
            )
            if cb.is_built(cb.pg_url(str(r[0])))
        ]
        if not rebuild and older_pg:
            t0 = time.perf_counter()
            cb.pg_exec(f"DROP DATABASE IF EXISTS {mine} WITH (FORCE)")
            cb.pg_exec(f"CREATE DATABASE {mine} TEMPLATE {older_pg[-1]}")
            db = Database.open(url)
            try:
                migrate(db)
            finally:
                db.close()
            took = round(time.perf_counter() - t0, 1)
            return url, {"cache": mine, "copied_from": older_pg[-1], "copy_s": took}
    url, data = cb.prepare(kind, members, events, rebuild)
    return str(url), dict(data)


def run(kind: str, members: int, events: int, samples: int, rebuild: bool) -> dict[str, Any]:
    url, data = prepare(kind, members, events, rebuild)
    t0 = time.perf_counter()
    pages = measure(url, samples)
    return {"data": data, "pages": pages, "measure_s": round(time.perf_counter() - t0, 1)}


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
    results: dict[str, Any] = {}
    passed: dict[str, bool] = {}
    person = person_seconds()
    for kind in kinds:
        try:
            results[kind] = run(kind, members, events, args.samples, args.rebuild)
            p95 = results[kind]["pages"]["card"]["p95_ms"]
            passed[f"{kind}_card"] = p95 <= TARGETS["card_p95_ms_max"]
        except Exception as e:
            traceback.print_exc()
            results[kind] = {"error": f"{type(e).__name__}: {e}"}
            passed[f"{kind}_ran"] = False
    passed["signup_person"] = person <= TARGETS["signup_person_s_max"]
    result = {
        "bench": "member",
        "quick": args.quick,
        "members": members,
        "events": events,
        **{
            f"{kind}_{page}_p95_ms": f["p95_ms"]
            for kind in kinds
            for page, f in results[kind].get("pages", {}).items()
        },
        "signup_steps": {**SIGNUP_STEPS, "typed_chars": TYPED},
        "signup_person_s_model": person,
        "signup_person_model_s": PERSON_S,
        **results,
        **lib.machine(kinds, "one httpx client with a member's session cookie, over loopback"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "targets": {**TARGETS, "passed": passed},
        "ok": bool(passed) and all(passed.values()),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
