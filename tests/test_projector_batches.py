"""The set-based projector against the one-event-at-a-time projector, on random histories.

Real tills (offline, so their events pile up) make a pool of events once per database
kind: sales to seeded and newly registered members, points spent by two tills at once
(overdrafts), refunds of parts of cheques, the same phone registered on two tills (a
merge; later sales to the duplicate follow it), and a third terminal of forged events
the ledger refuses (unknown member, unknown purchase, a float, a duplicate receipt, no
consent, a member code taken, malformed JSON, a quote that does not parse, a row the
database itself refuses, which sends the batch the careful way: a savepoint per event). Hypothesis
picks a history from them (a prefix of each till's events, interleaved in any order, the
forged events among them) and a batch size; two copies of one back office accept it,
then one is projected in batches of that size (``project.run_once``), the other one
event per pass with the exact decoders only (``checks.exact_payload``,
``effects.exact_cart_and_quote``, ``batch.exact_member_state``, and ``codec.dumps`` for
``effects.canonical``: the oracle, today's behaviour). Both must end with the same ledger
rows (members, purchases, refunds, the re-score queue, flags), the same verdicts and the
same feed record of every member.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster import PG_ADMIN_URL, Cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synchelp import portal
from test_sync_ingest import _refuse_receipt

from agent import codec, journal
from agent.identify import make_member_code
from sync.backoffice import batch, checks, effects, ingest, project
from sync.backoffice import db as dbm
from sync.backoffice.context import Context
from sync.backoffice.db import Database
from sync.backoffice.terminal import Terminal
from sync.protocol import WireEvent

FORGER = "till-x"  # the terminal of the forged events
REFUSED = "X-REFUSED"  # a receipt whose purchases row the database refuses (a trigger)


@dataclass
class Pool:
    """The events of a history to choose from, and the back office they go to."""

    kind: str
    template: str  # the back office after enrollment, before any push
    streams: dict[str, list[dict[str, Any]]]  # terminal -> its events in seq order
    forged: list[dict[str, Any]]  # payload-level events for FORGER (seq set when used)
    terminals: dict[str, Terminal]
    clock: Any
    tmp: Path


def _canon(p: dict[str, Any]) -> str:
    return json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _forged(streams: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Events the ledger refuses (or, for the re-sent sale, applies to a new receipt)."""
    events = [e for s in streams.values() for e in s]
    sale = json.loads(next(e for e in events if e["type"] == "purchase")["payload"])
    reg = json.loads(next(e for e in events if e["type"] == "member_registered")["payload"])
    out: list[tuple[str, str]] = []

    def purchase(edit: Any) -> None:
        p = json.loads(json.dumps(sale))
        rid = f"X{len(out)}"
        p["receipt_id"] = p["cart"]["receipt_id"] = p["quote"]["receipt_id"] = rid
        edit(p)
        out.append(("purchase", _canon(p).replace("\ud800", "\\ud800")))  # as an escape

    purchase(lambda p: p.update(member_id="m-nobody"))
    purchase(lambda p: p["cart"]["lines"][0].update(price_kop=1.5))
    purchase(lambda p: p["quote"].update(earn_available_from="not a time"))
    purchase(lambda p: p["quote"].update(redeem_points="10"))

    def same_receipt(p: dict[str, Any]) -> None:
        p["receipt_id"] = p["cart"]["receipt_id"] = p["quote"]["receipt_id"] = "X-DUP"

    purchase(same_receipt)
    purchase(same_receipt)  # the second is a duplicate receipt
    purchase(lambda p: None)  # a plain sale of its own receipt: applied

    def refused(p: dict[str, Any]) -> None:
        p["receipt_id"] = p["cart"]["receipt_id"] = p["quote"]["receipt_id"] = REFUSED

    purchase(refused)  # the database refuses its row: the batch goes the careful way
    purchase(lambda p: p.update(member_id="m\ud800"))  # no database can read this id
    out.append(
        (
            "refund",
            _canon(
                {
                    "purchase_event_id": "0" * 32,
                    "refund_id": "F-X",
                    "lines": {"1": 1},
                    "occurred_at": sale["occurred_at"],
                }
            ),
        )
    )
    r = dict(
        reg,
        member_id=uuid.uuid4().hex,
        phone_hash=secrets.token_hex(16),
        member_code=make_member_code(770_001),
        consent_programme=False,
    )
    out.append(("member_registered", _canon(r)))
    r = dict(reg, member_id=uuid.uuid4().hex, phone_hash=secrets.token_hex(16))
    out.append(("member_registered", _canon(r)))  # the code is taken
    out.append(("purchase", '{"member_id": "m00000001", "cart": '))
    out.append(("purchase", '{"member_id": "m00000001", "x": 1e400}'))
    return [{"type": t, "payload": p, "event_id": uuid.uuid4().hex} for t, p in out]


def _histories(c: Cluster) -> dict[str, list[dict[str, Any]]]:
    """Each till's events, made offline by the real agent."""
    a, b = c.till("till-a"), c.till("till-b")
    phone = "+7 999 123-45-67"
    ra = a.agent.register(
        phone=phone, first_name="Ира", consent_programme=True, consent_marketing=False
    )
    rb = b.agent.register(
        phone=phone, first_name="Ирина", consent_programme=True, consent_marketing=True
    )
    rc = a.agent.register(
        phone="+7 999 765-43-21", first_name="Ян", consent_programme=True, consent_marketing=True
    )
    items = [("DR-1001", 1), ("OW-4001", 1), ("BG-7001", 2), ("SH-2001", 1), ("AC-6001", 1)]
    members = ["m00000001", "m00000003", "m00000004", rb.card.member_id, ra.card.member_id]
    for till in (a, b):
        tid = till.agent.terminal_id
        # both tills spend the same points offline: the later one overdraws
        for n, (member, points) in enumerate([("m00000002", 150), ("m00000003", 1000)]):
            with contextlib.suppress(Exception):
                till.sale(f"{tid}-S{n}", member, ("OW-4001", 3), redeem=points)
        for n, member in enumerate(members * 2):
            pick = (items[n % 5], items[(n + 2) % 5])
            with contextlib.suppress(Exception):  # a spend the till's view refuses
                till.sale(f"{tid}-R{n}", member, *pick, redeem=50 if n % 4 == 1 else 0)
        if till is a:  # b never heard of this member
            till.sale(f"{tid}-C", rc.card.member_id, ("DR-1001", 1))
        for k, receipt in enumerate([f"{tid}-R0", f"{tid}-R1", f"{tid}-R0", f"{tid}-S1"]):
            with contextlib.suppress(Exception):
                till.agent.refund(f"F{k}", receipt, {1: 1})
    streams = {}
    for till in (a, b):
        evs = journal.next_batch(till.store, max_events=10_000, max_bytes=10**9)
        streams[till.agent.terminal_id] = [e.wire() for e in evs]
    return streams


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    tmp = tmp_path_factory.mktemp(f"batches-{request.param}")
    name = f"kassa_test_{secrets.token_hex(4)}"
    if request.param == "sqlite":
        url = str(tmp / "template.db")
    else:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with portal() as p:
        c = Cluster(tmp, url, p)
        try:
            streams = _histories(c)
            code = c.bo.enroll_code("s1")
            c.bo.enroll(code, FORGER, FORGER)
            _refuse_receipt(c, REFUSED)
            with c.db.reading() as tx:
                terminals = {
                    r[0]: Terminal(r[0], r[1], r[2])
                    for r in tx.all("SELECT terminal_id, store_id, name FROM terminals")
                }
        finally:
            c.close()
    yield Pool(request.param, url, streams, _forged(streams), terminals, c.clock, tmp)
    if request.param == "postgresql":
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _copy(pool: Pool) -> Iterator[Database]:
    """A fresh copy of the pool's back office."""
    if pool.kind == "sqlite":
        path = pool.tmp / f"copy-{secrets.token_hex(4)}.db"
        shutil.copy(pool.template, path)
        db = Database.open(str(path))
        try:
            yield db
        finally:
            db.close()
            path.unlink()
        return
    import psycopg

    name = f"kassa_test_{secrets.token_hex(4)}"
    template = pool.template.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    db = Database.open(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", pool_size=1)
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _accept(ctx: Context, pool: Pool, pushes: list[tuple[str, list[dict[str, Any]]]]) -> None:
    for tid, wire in pushes:
        events = tuple(
            WireEvent(
                e["event_id"],
                e["terminal_id"],
                e["terminal_epoch"],
                e["seq"],
                e["type"],
                e["schema_version"],
                e["created_at"],
                e["payload"],
                e["payload_hash"],
            )
            for e in wire
        )
        ingest.push(ctx, pool.terminals[tid], events, pool.clock.now(), None)


def _view(db: Database) -> dict[str, Any]:
    """Every row the projector writes, and the latest feed record of each member."""
    with db.reading() as tx:
        rows = {
            t: sorted(tuple(r) for r in tx.all(f"SELECT * FROM {t}"))
            for t in ("members", "purchases", "refunds")
        }
        rows["verdicts"] = sorted(
            tuple(r)
            for r in tx.all("SELECT event_id, status, code, message, member_id FROM events")
        )
        rows["verify_queue"] = sorted(
            tuple(r)
            for r in tx.all("SELECT event_id, member_id, state, queued_at FROM verify_queue")
        )
        rows["flags"] = sorted(
            tuple(r)
            for r in tx.all("SELECT kind, event_id, member_id, terminal_id, detail FROM flags")
        )
        latest: dict[tuple[str, str], str] = {}
        for kind, member_id, body in tx.all(
            "SELECT kind, member_id, body FROM changes WHERE kind <> 'rules' ORDER BY seq"
        ):
            latest[(kind, member_id)] = body
        rows["feed"] = sorted(latest.items())
        rows["projected_pos"] = tx.all("SELECT value FROM settings WHERE key = 'projected_pos'")
    return rows


def _forger_stream(pool: Pool, forged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The forged events as the forging terminal's events, in seq order from 1."""
    return [
        {
            **f,
            "event_id": uuid.uuid4().hex,
            "terminal_id": FORGER,
            "terminal_epoch": "e1",
            "seq": seq,
            "schema_version": 1,
            "created_at": pool.clock.now().isoformat(),
            "payload_hash": hashlib.sha256(f["payload"].encode()).hexdigest(),
        }
        for seq, f in enumerate(forged, 1)
    ]


@st.composite
def histories(draw: st.DrawFn, pool: Pool) -> tuple[list[tuple[str, list[dict[str, Any]]]], int]:
    """Pushes (terminal, its next events) and the batch size to project them with."""
    left = {tid: draw(st.integers(1, len(s))) for tid, s in pool.streams.items()}
    forged = draw(st.lists(st.sampled_from(pool.forged), max_size=len(pool.forged), unique_by=id))
    queues = {tid: list(s[: left[tid]]) for tid, s in pool.streams.items()}
    queues[FORGER] = _forger_stream(pool, forged)
    pushes: list[tuple[str, list[dict[str, Any]]]] = []
    while any(queues.values()):
        tid = draw(st.sampled_from(sorted(t for t, q in queues.items() if q)))
        n = draw(st.integers(1, len(queues[tid])))
        pushes.append((tid, queues[tid][:n]))
        del queues[tid][:n]
    return pushes, draw(st.sampled_from([2, 3, 7, 50, 500]))


def _examples(n: int) -> Any:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.mark.parametrize("pool", ["sqlite"], indirect=True)
@_examples(10)
@given(data=st.data())
def test_batches_decide_as_one_event_at_a_time(
    pool: Pool, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compare_batched_with_one_by_one(pool, data, monkeypatch)


@pytest.mark.parametrize("pool", ["postgresql"], indirect=True)
@_examples(4)  # each example copies the database twice (CREATE DATABASE ... TEMPLATE)
@given(data=st.data())
def test_batches_decide_as_one_event_at_a_time_on_postgresql(
    pool: Pool, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compare_batched_with_one_by_one(pool, data, monkeypatch)


def _compare_batched_with_one_by_one(
    pool: Pool, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random history pushed by three tills, projected in batches of a drawn size and
    one event at a time with the exact (slow) decoders: the same verdicts, members, lots,
    purchases, refunds, flags and feed."""
    pushes, size = data.draw(histories(pool))
    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)  # accept only: project below
    views = []
    for oracle in (False, True):
        with _copy(pool) as db, monkeypatch.context() as m:
            ctx = Context.over(db, pool.clock)
            _accept(ctx, pool, pushes)
            if oracle:
                m.setattr(project, "parse_payload", checks.exact_payload)
                m.setattr(effects, "cart_and_quote", effects.exact_cart_and_quote)
                m.setattr(batch, "member_state", batch.exact_member_state)
                m.setattr(effects, "canonical", codec.dumps)
                while project.run_once(ctx, 1):
                    pass
            else:
                while project.run_once(ctx, size):
                    pass
            views.append(_view(db))
    batched, one_by_one = views
    assert len(one_by_one["verdicts"]) == sum(len(w) for _, w in pushes)
    assert "accepted" not in {r[1] for r in one_by_one["verdicts"]}
    for key in one_by_one:
        assert batched[key] == one_by_one[key], key


def test_the_pool_holds_every_case(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """All of the pool, pushed in one go and projected one event at a time, applies and
    refuses events of every kind the comparison is about."""
    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)
    everything = [(t, s) for t, s in pool.streams.items()]
    with _copy(pool) as db:
        ctx = Context.over(db, pool.clock)
        _accept(ctx, pool, [*everything, (FORGER, _forger_stream(pool, pool.forged))])
        while project.run_once(ctx, 1):
            pass
        view = _view(db)
    verdicts = {(r[1], r[2]) for r in view["verdicts"]}
    assert {
        ("applied", None),
        ("rejected", "unknown_member"),
        ("rejected", "bad_payload"),
        ("rejected", "duplicate_receipt"),
        ("rejected", "unknown_purchase"),
        ("rejected", "no_consent"),
        ("rejected", "member_exists"),
    } <= verdicts
    assert {"merge", "overdraft"} <= {f[0] for f in view["flags"]}
    assert len(view["refunds"]) >= 4
    receipts = {r[1] for r in view["purchases"]}
    assert "X-DUP" in receipts and REFUSED not in receipts
    assert any(m[22] is not None for m in view["members"])  # merged_into


# ------------------------------------------------------------- the fast decoders
def _outcome(f: Any, *args: Any) -> Any:
    """What ``f`` gives: its value, or the code and message of its refusal."""
    try:
        return ("ok", f(*args))
    except checks.Rejected as e:
        return ("rejected", e.code, e.message)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    value=_json,
    raw=st.sampled_from(
        [
            "",
            "{",
            "[]",
            '{"a": NaN}',
            '{"a": -Infinity}',
            '{"a": "\\ud800"}',
            '{"a":1}x',
            '{"a": 1, "a": 2}',
            '{"a": 1E5}',
            '{"a": -0}',
            '{"a": 1e400}',
            " {} ",
            "[" * 500 + "]" * 500,
            '{"a":' * 300 + "1" + "}" * 300,
            "\ufeff{}",
            '{"\\u0000": "\\u00e9"}',
        ]
    ),
    use_raw=st.booleans(),
)
def test_the_fast_payload_parser_decides_as_the_exact_one(
    value: Any, raw: str, use_raw: bool
) -> None:
    text = raw if use_raw else json.dumps({"v": value} if not isinstance(value, dict) else value)
    ev = WireEvent("0" * 32, "t", "e", 1, "purchase", 1, "2026-06-15T09:00:00+00:00", text, "h")
    assert _outcome(checks.parse_payload, ev) == _outcome(checks.exact_payload, ev)


def test_the_fast_cart_and_quote_decide_as_codec(pool: Pool) -> None:
    """Every field of a real sale's cart and quote given each odd value: the fast path
    builds the same objects as ``codec`` or leaves it to ``codec`` (same refusal)."""
    sale = json.loads(next(e for e in pool.streams["till-a"] if e["type"] == "purchase")["payload"])
    odd: list[Any] = [
        None,
        "",
        "7",
        7,
        -1,
        2**70,
        True,
        1.5,
        [],
        {},
        "2026-06-15T09:00:00+00:00",
        "2026-06-15T09:00:00.1234567+00:00",
        "2026-06-15",
        "20260615T0900Z",
        "welcome",
    ]
    cases = [sale]
    for part in ("cart", "quote"):
        for key in sale[part]:
            for v in odd:
                cases.append({**sale, part: {**sale[part], key: v}})
            cases.append({**sale, part: {k: x for k, x in sale[part].items() if k != key}})
        for v in odd:
            cases.append({**sale, part: v})
    line = sale["quote"]["lines"][0]
    for key in line:
        for v in odd:
            cases.append({**sale, "quote": {**sale["quote"], "lines": [{**line, key: v}]}})
    for p in cases:
        fast = _outcome(effects.cart_and_quote, p)
        exact = _outcome(effects.exact_cart_and_quote, p)
        assert fast == exact, p
        if fast[0] == "ok":  # the same objects, down to the types of their values
            assert [codec.dumps(x) for x in fast[1]] == [codec.dumps(x) for x in exact[1]]


def test_the_fast_member_state_decoder_reads_what_codec_reads(pool: Pool) -> None:
    with _copy(pool) as db, db.reading() as tx:
        texts = [r[0] for r in tx.all("SELECT state FROM members")]
    assert texts
    for text in texts:
        fast = batch.member_state(text)
        assert fast == batch.exact_member_state(text)
        assert codec.dumps(fast) == codec.dumps(batch.exact_member_state(text))


def test_pinned_plans_are_set_once_and_undone(pool: Pool) -> None:
    """``Tx.pinned`` turns index-only plans on for what runs inside (nested: no more
    statements) and leaves the server's own settings after it."""
    if pool.kind != "postgresql":
        pytest.skip("plans are pinned on PostgreSQL only")
    names = ", ".join(repr(n) for n in dbm._PINNED)
    read = f"SELECT name, setting FROM pg_settings WHERE name IN ({names}) ORDER BY name"
    with _copy(pool) as db, db.transaction() as tx:
        before = tx.all(read)
        with tx.pinned():
            assert {s for _, s in tx.all(read)} == {"off"}
            with tx.pinned():
                pass
            assert {s for _, s in tx.all(read)} == {"off"}  # the inner one undid nothing
        assert tx.all(read) == before
