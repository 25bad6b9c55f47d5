"""Demo data for a till: the demo programme, a catalogue and a member base of any size.

The member base is made the way a first snapshot from the back office would arrive: in
one transaction, indexes built after the load (``Store.bulk_load_members``). States come
from a few dozen templates so a million rows load in seconds; phones are distinct and
valid Russian mobiles, derived from the row number so the demo can print some to type.
"""

from __future__ import annotations

import functools
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from hashlib import sha256
from importlib import resources
from pathlib import Path
from typing import Any

from agent import codec, engine
from agent.identify import MEMBER_CODE_LENGTH, damm_check_digit, make_member_code
from agent.model import Cart, CartLine, MemberState, PointLot
from agent.phonehash import ScryptCost, upgrader
from agent.private import prepare_sqlite_file
from agent.rules import Programme, load_programme_text
from agent.store import MEMBER_LOAD_COLUMNS, Store

FIRST_NAMES = (
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Ирина",
    "Дарья",
    "Алексей",
    "Сергей",
    "Наталья",
    "Татьяна",
    "Екатерина",
    "Дмитрий",
    "Юлия",
    "Светлана",
    "Андрей",
)

CATALOG = (
    # sku, name, category, collection, price_kop
    ("DR-1001", "Платье миди «Лён»", "dresses", None, 649900),
    ("SH-2001", "Рубашка оверсайз", "shirts", None, 349900),
    ("TR-3001", "Брюки палаццо", "trousers", None, 459900),
    ("OW-4001", "Пуховик «Север»", "outerwear", "north", 1899900),
    ("OW-4002", "Шапка «Север»", "accessories", "north", 199900),
    ("SS-5001", "Ботинки челси", "shoes", None, 899900),
    ("AC-6001", "Шарф кашемир «Север»", "accessories", "north", 299900),
    ("BG-7001", "Сумка-шопер", "bags", None, 249900),
    ("GC-9001", "Подарочная карта 3000 ₽", "gift_cards", None, 300000),
)


def demo_cart(receipt_id: str, skus: list[tuple[str, int]]) -> Cart:
    """A demo cheque from catalogue SKUs and quantities (the demos' cheques)."""
    by_sku = {row[0]: row for row in CATALOG}
    lines = []
    for n, (sku, qty) in enumerate(skus, start=1):
        _, name, category, collection, price = by_sku[sku]
        lines.append(
            CartLine(n, sku, name, category, price, qty, price * qty, collection=collection)
        )
    return Cart(receipt_id, tuple(lines))


def demo_programme() -> Programme:
    text = resources.files("agent").joinpath("data/demo_programme.toml").read_text("utf-8")
    return load_programme_text(text, "toml", "demo_programme.toml")


def demo_phone(i: int) -> str:
    """A distinct valid Russian mobile (+7 9xx) for row ``i`` (i < 10**8)."""
    return (
        f"+7916{(i * 7919 + 1_234_567) % 10**7:07d}"
        if i < 10**7
        else f"+7926{(i * 7919 + 1_234_567) % 10**7:07d}"
    )


def _templates(rules: Programme, now: datetime, rng: random.Random) -> list[str]:
    out = []
    for t in range(48):
        lots = []
        if t % 4:
            points = rng.choice((150, 480, 1200, 2500, 4000, 9000))
            earned = now - timedelta(days=rng.randint(20, 340))
            lots.append(
                PointLot(
                    f"seed-{t}-a",
                    points,
                    earned,
                    earned + timedelta(days=14),
                    earned + timedelta(days=rules.expiry_days),
                    "server",
                )
            )
        if t % 6 == 1:  # a lot burning soon: "N бонусов сгорят DD.MM"
            earned = now - timedelta(days=rules.expiry_days - 9)
            lots.append(
                PointLot(
                    f"seed-{t}-b",
                    700,
                    earned,
                    earned,
                    earned + timedelta(days=rules.expiry_days),
                    "server",
                )
            )
        spend_kop = rng.choice((0, 500000, 1500000, 3500000, 6000000, 12000000))
        day = (engine.local_date(rules, now) - timedelta(days=rng.randint(1, 200))).isoformat()
        birthday = date(1970 + t, (t % 12) + 1, (t % 27) + 1)
        if t == 7:  # someone with a birthday today
            birthday = engine.local_date(rules, now).replace(year=1990)
        state = MemberState(
            "__MID__",
            lots=tuple(lots),
            spend=((day, spend_kop),) if spend_kop else (),
            birthday=birthday,
            collections=(("north-5", 4),) if t % 5 == 0 else (),
        )
        out.append(codec.dumps(state))
    return out


def member_rows(
    n: int, rules: Programme, hash_key: bytes, now: datetime, seed: int = 7, *, start: int = 0
) -> Iterator[tuple[Any, ...]]:
    """Rows ``start`` to ``n - 1`` of the demo base, for ``Store.bulk_load_members``, in
    ``MEMBER_LOAD_COLUMNS`` order. Row i is the same whatever range it is made in."""
    return _rows(_plan(rules, hash_key, now, seed), start, n)


def write_member_rows(
    path: Path,
    start: int,
    stop: int,
    rules: Programme,
    hash_key: bytes,
    now: datetime,
    seed: int = 7,
) -> int:
    """Rows ``start`` to ``stop - 1`` of the demo base into a new scratch SQLite file at
    ``path`` (table ``members``, ``MEMBER_LOAD_COLUMNS``, no index, no journal, no fsync:
    it is read once by ``Store.bulk_load_members(side_files=...)`` and deleted, and the
    durability is that load's). Made in a second process while the first loads its own
    part, so a big demo base is built on two cores. Returns the number of rows."""
    cols = ", ".join(MEMBER_LOAD_COLUMNS)
    marks = ", ".join("?" * len(MEMBER_LOAD_COLUMNS))
    prepare_sqlite_file(path)
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"CREATE TABLE members({cols})")
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO members({cols}) VALUES ({marks})",
            _rows(_plan(rules, hash_key, now, seed), start, stop),
        )
        conn.execute("COMMIT")
        return int(conn.execute("SELECT count(*) FROM members").fetchone()[0])
    finally:
        conn.close()


@dataclass(frozen=True)
class _Plan:
    """Everything a row depends on besides its number."""

    hash_key: bytes
    phone_cost: ScryptCost  # the programme's ``phone_hash``: v2 fingerprints
    halves: tuple[tuple[str, str], ...]  # state template around the member id
    summaries: tuple[tuple[Any, ...], ...]  # balance, available, pending, expiry, tier
    synced: str


def _plan(rules: Programme, hash_key: bytes, now: datetime, seed: int) -> _Plan:
    rng = random.Random(seed)
    templates = _templates(rules, now, rng)
    summaries = []
    for text in templates:
        st = codec.loads(MemberState, text)
        exp, exp_on = engine.expiring_soon(st.lots, rules, now)
        tier = rules.tier_for_spend(engine.rolling_spend(st, rules, now)).code
        summaries.append(
            (
                st.balance(now),
                st.available_points(now),
                st.pending_points(now),
                exp,
                exp_on.isoformat() if exp_on else None,
                tier,
            )
        )
    halves = []
    for text in templates:
        head, tail = text.split("__MID__", 1)
        halves.append((head, tail))
    return _Plan(hash_key, rules.phone_hash, tuple(halves), tuple(summaries), now.isoformat())


def _rows(plan: _Plan, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """Rows ``start`` to ``stop - 1`` of the demo base.

    Per row this loop is the build's Python cost: the member code's Damm digit is carried
    over the shared leading digits of each block of 1,000 numbers, and the phone's v1 HMAC
    is computed from SHA-256 states keyed once (``_hmac_pads``: per row two state copies, a
    third less than copying an ``hmac`` object, which the one-shot ``hmac.digest`` is
    slower still than), then taken to v2 by the programme's scrypt
    (``agent.phonehash.upgrader``: ~10 us at the demo programme's cost; a programme at the
    production cost makes ~20-50 ms rows, so only demo programmes seed big bases), the
    phone itself made inline (``demo_phone``).
    """
    inner, outer = _hmac_pads(plan.hash_key)
    to_v2 = upgrader(plan.hash_key, plan.phone_cost)
    halves = plan.halves
    summaries = plan.summaries
    synced = plan.synced
    names = FIRST_NAMES
    n_names = len(names)
    n_templates = len(halves)
    tails = _damm_tails()
    block_key = -1
    block_prefix = ""
    block_tails: tuple[str, ...] = ()
    for i in range(start, stop):
        t = i % n_templates
        number = 100_000_000 + i
        if number // 1000 != block_key:
            block_key = number // 1000
            block_prefix = f"{block_key:0{MEMBER_CODE_LENGTH - 4}d}"
            block_tails = tails[damm_check_digit(block_prefix)]
        member_id = f"m{i:08d}"
        phone = (  # == demo_phone(i)
            f"+7916{(i * 7919 + 1_234_567) % 10**7:07d}"
            if i < 10**7
            else f"+7926{(i * 7919 + 1_234_567) % 10**7:07d}"
        )
        h = inner.copy()
        h.update(phone.encode())
        o = outer.copy()
        o.update(h.digest())
        bal, avail, pend, exp, exp_day, tier = summaries[t]
        head, tail = halves[t]
        yield (
            member_id,
            block_prefix + block_tails[number % 1000],  # == make_member_code(number)
            to_v2(o.digest()[:16]),  # == hard_phone_hash(phone, hash_key, rules.phone_hash)
            "+7 *** ***-**-**",  # == store_mask(phone): every demo phone is +7 and 10 digits
            names[i % n_names],
            head + member_id + tail,
            bal,
            avail,
            pend,
            exp,
            exp_day,
            tier,
            synced,
            0,
            1,
            i % 3 == 0,
            synced,
        )


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """The SHA-256 states after the HMAC key's inner and outer pads (RFC 2104): HMAC(key,
    m) = H(outer_pad || H(inner_pad || m)), so each message costs two state copies."""
    if len(key) > 64:  # SHA-256's block size
        key = sha256(key).digest()
    key = key.ljust(64, b"\0")
    return sha256(bytes(b ^ 0x36 for b in key)), sha256(bytes(b ^ 0x5C for b in key))


@functools.cache
def _damm_tails() -> tuple[tuple[str, ...], ...]:
    """For each Damm interim digit d (of a 9-digit prefix): the last 4 characters of the
    member code, i.e. the number's last 3 digits "000".."999" and the check digit reached
    from d. Built from ``make_member_code`` itself, on a prefix with interim d."""
    prefixes: dict[int, int] = {}
    number = 0
    while len(prefixes) < 10:
        prefixes.setdefault(damm_check_digit(f"{number:09d}"), number)
        number += 1
    return tuple(
        tuple(make_member_code(prefixes[d] * 1000 + tail)[-4:] for tail in range(1000))
        for d in range(10)
    )


def seed_catalog(store: Store) -> None:
    with store.write() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO catalog(sku, name, category, collection, "
            "price_kop) VALUES (?,?,?,?,?)",
            CATALOG,
        )
