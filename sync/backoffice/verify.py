"""The background verifier: re-scores applied purchases and flags what the till got wrong.

Why in the background: a purchase the projector applied was already re-scored there
(``effects.rescore``) and is within the programme's tolerance, so the ledger honours what
the till printed (the customer holds that slip); scoring again here is the audit that
flags any difference, kept out of the push. ``ingest`` queues
each applied purchase in ``verify_queue`` together with the member's state just before
it, in the push's own transaction; the verifier scores the cheque again with the same
``agent.engine``, the same rules version and that same state, so its verdict is the one
an inline re-score would have given. A difference in earned points or bonuses is flagged
``rescore_mismatch`` (as is a cheque the engine refuses), and the queue row is deleted in
the same transaction as the flag: each purchase is verified exactly once, also with
several verifiers on one PostgreSQL database (``DELETE ... RETURNING`` decides who won).

``kassa backoffice serve`` runs one ``Verifier`` thread (the app's lifespan). It yields
to ingest: while pushes arrive it verifies a small chunk per pause, and catches up when
the pushes stop. Its backlog is in ``GET /v1/health`` and the KPI report.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agent import codec, engine
from agent.errors import AgentError, RedemptionError
from agent.model import Cart, MemberState, Quote
from sync.backoffice import project
from sync.backoffice.batch import FLAG_INSERT, flag_row
from sync.backoffice.context import Context
from sync.backoffice.worker import RoundWorker

CHUNK = 200  # purchases per verifier transaction when the back office is idle
BUSY_CHUNK = 50  # ... while pushes are arriving
BUSY_PAUSE_S = 1.0  # pause between chunks while busy
IDLE_S = 1.0  # pause when the queue is empty


def backlog(ctx: Context) -> int:
    """Applied purchases not yet re-scored."""
    with ctx.db.reading() as tx:
        return int(tx.one("SELECT count(*) FROM verify_queue")[0])


def rescore(ctx: Context, payload: dict[str, Any], state: MemberState) -> dict[str, Any] | None:
    """Score a purchase again; the flag detail if it differs from the till's, else None."""
    cart = codec.from_plain(Cart, payload["cart"])
    q = codec.from_plain(Quote, payload["quote"])
    at = datetime.fromisoformat(payload["occurred_at"])
    rules = ctx.programmes.get(q.rules_version) or ctx.programmes.get()
    assert rules is not None
    try:
        try:
            mine = engine.quote(cart, state, rules, at, redeem_points=q.redeem_points)
        except RedemptionError:  # the centre's balance is lower (an overdraft)
            mine = engine.quote(cart, state, rules, at, redeem_points="max")
    except AgentError as e:
        return {"error": e.code}
    till = (q.earn_points, sorted((b.kind, b.points) for b in q.bonuses))
    ours = (mine.earn_points, sorted((b.kind, b.points) for b in mine.bonuses))
    if till != ours and not q.coupon_id:
        return {"till": till, "server": ours, "redeem": q.redeem_points}
    return None


def run_once(ctx: Context, limit: int = CHUNK) -> int:
    """Verify up to ``limit`` queued purchases (oldest first); returns how many."""
    with ctx.db.reading() as tx:
        rows = tx.all(
            "SELECT v.id, v.event_id, v.member_id, v.state, e.payload, e.terminal_id "
            "FROM verify_queue v JOIN events e ON e.event_id = v.event_id "
            "ORDER BY v.id LIMIT ?",
            (limit,),
        )
    if not rows:
        return 0
    now = ctx.clock.now().isoformat()
    flags: dict[int, tuple[Any, ...]] = {}
    for qid, event_id, member_id, state_text, payload, terminal_id in rows:
        try:
            detail = rescore(ctx, json.loads(payload), codec.loads(MemberState, state_text))
        except Exception as e:  # an applied payload the engine cannot read: say so
            detail = {"error": f"cannot rescore: {type(e).__name__}"}
        if detail is not None:
            flags[int(qid)] = flag_row(
                "rescore_mismatch", event_id, member_id, terminal_id, detail, now
            )
    ids = [int(r[0]) for r in rows]
    with ctx.db.transaction() as tx:
        marks = ",".join("?" * len(ids))
        won = {
            int(r[0])
            for r in tx.all(f"DELETE FROM verify_queue WHERE id IN ({marks}) RETURNING id", ids)
        }
        tx.executemany(FLAG_INSERT, [row for qid, row in flags.items() if qid in won])
    return len(won)


def run_all(ctx: Context) -> int:
    """Verify everything queued (tests, ``kassa backoffice report``); returns how many."""
    total = 0
    while n := run_once(ctx):
        total += n
    return total


class Verifier(RoundWorker):
    """The verifier thread of a serving back office (started and stopped by the app).

    It also yields to the projector: while accepted events wait to be applied, balances
    matter more than the audit, so it works as if pushes were arriving."""

    name = "kassa-verifier"
    idle_s = IDLE_S

    def round(self, busy: bool) -> int:
        if not busy and project.backlog_over(self.ctx, 0):
            busy = True
            self.stop_event.wait(BUSY_PAUSE_S)
        return run_once(self.ctx, BUSY_CHUNK if busy else CHUNK)

    def busy_pause(self, elapsed: float) -> float:
        return BUSY_PAUSE_S
