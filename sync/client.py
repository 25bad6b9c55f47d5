"""The till's sync client: one uploader per store, pulls, backoff, a watchdog.

Push: the oldest pending events in ``seq`` order, one batch in flight. The answer is
written in one local transaction (``agent.journal.settle``). Events the back office
``accepted`` but has not applied yet leave the send queue and wait for their verdict,
pulled from ``GET /v1/verdicts`` (``confirm_once``) with a cursor stored in the same
transaction as the verdicts it covers; until then the member keeps the till's own state
(the server's would not include the event). A timeout, a dropped
connection or a 5xx is an *unknown result*: the same bytes are sent again (the request
body is deterministic and cached while the batch is in flight) after an exponential
backoff with full jitter, so a thousand tills coming back after an outage do not arrive
together. Refused events are quarantined by ``settle`` and never block the queue.

Pull: pages of changes stored with their cursor in one transaction; an expired cursor
(410) reloads the snapshot, which never touches the outbox.

Liveness: ``SyncRunner`` runs the loop in a thread and a watchdog restarts it if it dies
or stops beating, so the queue always drains once faults stop (the stuck-queue bug of
other offline-first systems).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from agent import journal
from agent.erasure import note_blocked
from agent.errors import StoreError
from agent.journal import Change, Settlement, member_record_from_wire
from agent.service import Agent
from agent.version import user_agent
from sync.protocol import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    QUEUE_HEADER,
    QueueReport,
    encode_push,
    encode_queue,
)

AGENT_USER_AGENT = user_agent("agent")
"""Sent with every call to the back office, which records it as the till's software."""

log = logging.getLogger("kassa.sync")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 300.0
VERDICT_POLL_S = 1.0  # while accepted events wait for their verdict
PROBE_EVERY_S = 1.0
"""While the back office cannot be reached and events wait, how often the runner asks its
liveness probe (``GET /v1/live``) instead of sleeping out the whole backoff, seconds."""
PROBE_JITTER_S = 1.0
"""Once the probe answers, the round starts after a random wait up to this long, seconds:
tills back together after an outage still do not push in the same instant."""
PROBE_TIMEOUT_S = 2.0
"""Limit for one liveness probe, seconds."""
STORE_RETRY_CAP_S = 2.0
"""Longest wait between rounds while the till store cannot take an answer (a full disk),
seconds: the round is tried again soon after space is freed."""


HTTP_TIMEOUT_S = 10.0
"""Default limit for one back office call (read, write, pool), seconds: ``sync.timeout_s``."""
CONNECT_TIMEOUT_S = 3.0
"""Limit for opening the connection, seconds: a back office that is down is known soon."""


def backoffice_http(
    url: str,
    *,
    timeout_s: float = HTTP_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The one HTTP client set-up to the back office at ``url`` (its base URL): the sync
    client, enrolment and the command line's back office calls all use it, so they share
    one timeout policy (``timeout_s`` per call, never more than ``CONNECT_TIMEOUT_S`` to
    connect). ``transport``: tests and the demo pass an in-process one."""
    return httpx.Client(
        base_url=url,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
        transport=transport,
    )


class TransientError(Exception):
    """The result is unknown or the server is unavailable: try again later, same bytes.
    ``unreachable``: no connection could be made (the back office is down or cut off), so
    a liveness probe tells when it is back."""

    unreachable = False


class PermanentError(Exception):
    """The server refused the request itself (auth, protocol): needs a person. ``code``:
    the back office's error code when it answered with one (``bad_token``,
    ``enroll_code_used``), for callers that explain it; ``detail``: its message."""

    def __init__(self, message: str, code: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail

    @classmethod
    def answer(cls, prefix: str, error: dict[str, Any]) -> PermanentError:
        """The refusal in an error answer ``error`` (``{"error": code, "message": ...}``):
        ``"<prefix>: <code>: <message>"``, with the code and message kept as fields."""
        code, detail = error.get("error"), error.get("message")
        return cls(
            f"{prefix}: {code}: {detail}",
            code if isinstance(code, str) else None,
            detail if isinstance(detail, str) else None,
        )


@dataclass
class PushReport:
    sent: int = 0
    acked: int = 0
    quarantined: int = 0
    batches: int = 0
    gaps: int = 0


def backoff_delay(
    attempt: int, rng: random.Random, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S
) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


class SyncClient:
    """Push and pull for one till store over an ``httpx.Client`` (base_url = back office)."""

    def __init__(
        self,
        agent: Agent,
        http: httpx.Client,
        *,
        token: str | None = None,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BATCH_BYTES // 2,
    ) -> None:
        self.agent = agent
        self.store = agent.store
        self.http = http
        self.token = token or self.store.meta("sync_token") or ""
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._inflight: tuple[int, int, bytes] | None = None  # first seq, count, body
        self.lock = threading.Lock()
        """Held by whoever is exchanging with the back office (the runner's round, a
        "sync now" from the cashier screen): one batch in flight, never two."""

    # ---------------------------------------------------------------- plumbing
    def _headers(self) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self.token}",
            "user-agent": AGENT_USER_AGENT,
            "x-kassa-sent-at": self.agent.clock.now().isoformat(),
            QUEUE_HEADER.lower(): encode_queue(self.queue_report()),
            "content-type": "application/json",
        }

    def queue_report(self) -> QueueReport:
        """What this till's send queue holds now (``journal.status``: events waiting, the
        oldest one's time, quarantined), told to the back office with every call."""
        st = journal.status(self.store)
        return QueueReport(max(0, st.events_waiting), st.oldest_waiting, st.quarantined)

    def _now_iso(self) -> str:
        return self.agent.clock.now().isoformat()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:  # timeouts, refused, reset: result unknown
            error = TransientError(f"{type(e).__name__}: {e}")
            error.unreachable = isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)
            raise error from e
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"HTTP {resp.status_code}")
        return resp

    def live(self) -> bool:
        """Whether the back office answers its liveness probe (``GET /v1/live``, no
        database work, no token) now, within ``PROBE_TIMEOUT_S``."""
        try:
            resp = self.http.get(
                "/v1/live", headers={"user-agent": AGENT_USER_AGENT}, timeout=PROBE_TIMEOUT_S
            )
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    # ---------------------------------------------------------------- push
    def push_once(self) -> PushReport:
        """Send one batch and settle its answer. Raises ``TransientError`` to be retried."""
        if self.store.meta("training") == "1":  # agent.training: never sent as real
            raise PermanentError("this is a training store: its journal is never sent")
        batch = journal.next_batch(self.store, max_events=self.max_events, max_bytes=self.max_bytes)
        report = PushReport()
        if not batch:
            self._inflight = None
            return report
        key = (batch[0].seq, len(batch))
        if self._inflight is not None and self._inflight[:2] == key:
            body = self._inflight[2]  # a resend is the same bytes
        else:
            body = encode_push(self.agent.terminal_id, [e.wire() for e in batch])
            self._inflight = (*key, body)
        resp = self._request("POST", "/v1/events", content=body)
        if resp.status_code == 200:
            data = resp.json()
            results, members = _answers(batch, data["results"], data.get("members", {}))
            summary = journal.settle(
                self.store,
                batch,
                results,
                members,
                self._now_iso(),
                clock_skew_seconds=data.get("clock_skew_seconds"),
            )
            self._inflight = None
            return PushReport(
                len(batch),
                summary.acked + summary.accepted,
                summary.quarantined,
                1,
                len(data["gaps"]),
            )
        error = error_of(resp)
        if resp.status_code in (400, 413) and "index" in error and len(batch) > 1:
            # One unreadable event: send the events before it alone next time; it then
            # comes first and, alone, is quarantined below. The queue keeps moving.
            self.max_events = max(1, int(error["index"]))
            self._inflight = None
            raise TransientError(f"event {error['index']} unreadable; splitting the batch")
        if resp.status_code in (400, 413) and len(batch) == 1:
            results = [
                Settlement(batch[0].event_id, "rejected", error.get("error"), error.get("message"))
            ]
            summary = journal.settle(self.store, batch, results, {}, self._now_iso())
            self._inflight = None
            return PushReport(1, 0, summary.quarantined, 1)
        if resp.status_code == 413:
            self.max_events = max(1, len(batch) // 2)
            self._inflight = None
            raise TransientError("batch too large; halving")
        raise PermanentError.answer(f"HTTP {resp.status_code}", error)

    def drain(
        self, *, progress: Callable[[int, int], None] | None = None, max_batches: int | None = None
    ) -> PushReport:
        """Push until the queue is empty (no sleeping; raises on a transient fault)."""
        total = PushReport()
        waiting = journal.status(self.store).events_waiting
        while max_batches is None or total.batches < max_batches:
            r = self.push_once()
            if r.sent == 0:
                break
            self.max_events = min(MAX_BATCH_EVENTS, self.max_events * 2)
            total.sent += r.sent
            total.acked += r.acked
            total.quarantined += r.quarantined
            total.batches += 1
            total.gaps += r.gaps
            if progress:
                progress(total.acked + total.quarantined, waiting)
        return total

    # ---------------------------------------------------------------- verdicts
    def confirm_once(self, limit: int = 500) -> tuple[int, bool]:
        """Pull one page of this till's verdicts; returns (events decided, more waiting).

        Decided events are settled like a push answer (acked or quarantined, the member's
        server record taken once nothing of theirs is in flight), together with the page's
        cursor. Asks nothing when no event waits for a verdict."""
        if not journal.has_awaiting_verdict(self.store):
            return 0, False
        after = self.store.sync_value("verdict_cursor") or "0"
        resp = self._request("GET", "/v1/verdicts", params={"after": after, "limit": limit})
        if resp.status_code != 200:
            e = error_of(resp)
            raise PermanentError.answer(f"HTTP {resp.status_code}", e)
        data = resp.json()
        ids = [v["event_id"] for v in data["verdicts"]]
        batch = journal.outbox_events(self.store, ids)
        results, members = _answers(batch, data["verdicts"], data.get("members", {}))
        summary = journal.settle(
            self.store, batch, results, members, self._now_iso(), verdict_cursor=int(data["next"])
        )
        return summary.acked + summary.quarantined, bool(data["more"])

    def confirm_all(self) -> int:
        """Pull verdicts until none is ready (some may still wait at the projector)."""
        total = 0
        more = True
        while more:
            n, more = self.confirm_once()
            total += n
        return total

    # ---------------------------------------------------------------- pull
    def pull_once(self, limit: int = 500) -> tuple[int, bool]:
        """Pull one page of changes; returns (changes applied, more waiting).

        With no cursor yet, or an expired one, loads the snapshot instead."""
        cursor = self.store.sync_value("cursor")
        if cursor is None:
            return self.bootstrap(), False
        resp = self._request("GET", "/v1/changes", params={"cursor": cursor, "limit": limit})
        if resp.status_code == 410:
            return self.bootstrap(), False
        if resp.status_code != 200:
            e = error_of(resp)
            raise PermanentError.answer(f"HTTP {resp.status_code}", e)
        data = resp.json()
        changes = [_change(c) for c in data["changes"]]
        if journal.apply_changes(self.store, changes, data["next_cursor"], self._now_iso()):
            self.agent.rules_changed()
        return len(changes), bool(data["more"])

    def pull_all(self) -> int:
        n, more = self.pull_once()
        total = n
        while more:
            n, more = self.pull_once()
            total += n
        return total

    def bootstrap(self, progress: Callable[[int], None] | None = None) -> int:
        """Load the member snapshot, streamed: memory stays bounded for any base size."""
        try:
            with self.http.stream("GET", "/v1/snapshot", headers=self._headers()) as resp:
                if resp.status_code != 200:
                    resp.read()
                    if resp.status_code >= 500:
                        raise TransientError(f"HTTP {resp.status_code}")
                    e = error_of(resp)
                    raise PermanentError.answer(f"HTTP {resp.status_code}", e)
                batches = _ndjson_batches(resp.iter_bytes())
                first = next(batches, [])
                head = json.loads(first[0]) if first else {}
                if head.get("kind") != "snapshot":
                    raise TransientError("snapshot stream did not start with a header")
                trailer: dict[str, Any] = {}

                def records() -> Iterator[dict[str, Any]]:
                    # One orjson.loads per received chunk (its lines as a JSON array), not
                    # one per line: a million members is a million calls otherwise; orjson
                    # parses it in a third of json's time.
                    n = 0
                    for lines in itertools.chain([first[1:]], batches):
                        if not lines:
                            continue
                        for obj in orjson.loads(b"[" + b",".join(lines) + b"]"):
                            if obj.get("kind") == "end":
                                trailer.update(obj)
                                return
                            n += 1
                            if progress and n % 10_000 == 0:
                                progress(n)
                            yield obj

                count = journal.load_snapshot_wire(
                    self.store, _checked(records(), trailer), head["cursor"], self._now_iso()
                )
                revoked = head.get("revoked_coupons")
                if isinstance(revoked, list) and revoked:
                    journal.note_revoked_coupons(self.store, map(str, revoked), self._now_iso())
                blocked = head.get("blocked_members")
                if isinstance(blocked, list) and blocked:
                    note_blocked(self.store, map(str, blocked))
        except httpx.HTTPError as e:
            raise TransientError(f"snapshot interrupted: {e}") from e
        return count

    # ---------------------------------------------------------------- once
    def sync_now(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Push everything, then pull everything (``kassa sync now``, the cashier app's
        sync screen), holding ``lock``; ``progress`` is told the events pushed so far of
        those waiting (``drain``). A failed exchange is recorded on the journal (its
        status shows why) and raised: ``TransientError`` (the events stay queued) or
        ``PermanentError`` (the back office refused)."""
        try:
            with self.lock:
                pushed = self.drain(progress=progress)
                confirmed = self.confirm_all()
                pulled = self.pull_all()
        except (TransientError, PermanentError) as e:
            self.agent.record_sync_error(str(e))
            raise
        return {
            "pushed": pushed.sent,
            "acked": pushed.acked,
            "quarantined": pushed.quarantined,
            "confirmed": confirmed,
            "awaiting_verdict": journal.status(self.store).awaiting_verdict,
            "pulled": pulled,
        }


def _ndjson_batches(chunks: Iterator[bytes]) -> Iterator[list[bytes]]:
    """The complete, non-empty lines of an NDJSON byte stream, a list per received chunk."""
    pending = b""
    for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        lines = [line for line in lines if line]
        if lines:
            yield lines
    if pending.strip():
        yield [pending]


def _checked(
    records: Iterator[dict[str, Any]], trailer: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Pass records through; a stream that ends without its trailer is an error (the
    load's transaction then rolls back: a half snapshot is never kept)."""
    yield from records
    if "members" not in trailer:
        raise TransientError("snapshot stream ended early")


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The JSON object of an error answer (the back office's problem document, served as
    ``application/problem+json``; read whatever its media type says), or one naming the
    status and the start of the text when the body is not a JSON object."""
    try:
        data = resp.json()
    except ValueError:
        return {"error": f"http_{resp.status_code}", "message": resp.text[:200]}
    return data if isinstance(data, dict) else {"error": f"http_{resp.status_code}"}


def _answers(
    batch: list[journal.OutboxEvent], answers: list[dict[str, Any]], wire: dict[str, Any]
) -> tuple[list[Settlement], dict[str, journal.MemberRecord]]:
    """Per-event answers and member records (keyed by the server's member id of each
    answer) as ``journal.settle`` takes them: the records keyed by the till's member ids."""
    till_member = {e.event_id: e.member_id for e in batch}
    results: list[Settlement] = []
    members: dict[str, journal.MemberRecord] = {}
    for r in answers:
        results.append(Settlement(r["event_id"], r["status"], r.get("code"), r.get("message")))
        mine = till_member.get(r["event_id"])
        rec = wire.get(r.get("member_id") or "")
        if mine and rec is not None:
            members[mine] = member_record_from_wire(rec)
    return results, members


def _change(c: dict[str, Any]) -> Change:
    kind = c["kind"]
    body = c["body"]
    if kind == "member":
        return Change(int(c["seq"]), "member", member=member_record_from_wire(body))
    if kind == "merge":
        return Change(int(c["seq"]), "merge", merged_from=body["from"], merged_into=body["into"])
    if kind == "erase":
        return Change(int(c["seq"]), "erase", member_id=str(body["member_id"]))
    if kind == "block":
        return Change(
            int(c["seq"]), "block", member_id=str(body["member_id"]), blocked=bool(body["blocked"])
        )
    if kind == "coupon_revoked":
        return Change(
            int(c["seq"]),
            "coupon_revoked",
            coupon_ids=tuple(str(i) for i in body["coupon_ids"]),
            revoked_at=str(body.get("revoked_at") or ""),
        )
    if kind != "rules":  # a kind newer than this till: its cursor moves past it
        return Change(int(c["seq"]), "other")
    return Change(
        int(c["seq"]), "rules", rules_version=int(body["version"]), rules_document=body["document"]
    )


class SyncRunner:
    """The background loop with backoff and a watchdog (one per store).

    ``sleep`` and ``rng`` are injectable so tests run the loop deterministically.
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        interval_s: float = 5.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] | None = None,
        watch_s: float = 5.0,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.watch_s = watch_s
        self.stop = threading.Event()
        self.attempt = 0
        self.restarts = 0
        self.unreachable = False
        """The last round failed to connect at all: the wait probes ``/v1/live``."""
        self.store_error: StoreError | None = None
        """Why the last round's answer could not be stored (a full disk), else None."""
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None

    def step(self) -> float:
        """One round: push everything, pull a page; returns how long to wait next."""
        try:
            with self.client.lock:
                self.client.drain(max_batches=20)
                self.client.confirm_once()
                self.client.pull_once()
        except TransientError as e:
            self._record(str(e))
            self.unreachable = e.unreachable
            self.attempt += 1
            return backoff_delay(self.attempt, self.rng)
        except PermanentError as e:
            self._record(str(e))
            self.attempt += 1
            return backoff_delay(self.attempt, self.rng, base=5.0)
        except StoreError as e:
            # The till store cannot take the answer (a full disk): transient, nothing was
            # settled, the same batch is sent again (answered duplicate) once it can.
            if self.store_error is None:
                log.warning("sync: the till store cannot be written, retrying: %s", e)
            self.store_error = e
            self._record(f"till store: {e}")
            self.attempt += 1
            return backoff_delay(self.attempt, self.rng, cap=STORE_RETRY_CAP_S)
        if self.store_error is not None:
            log.info("sync: the till store can be written again")
        self.attempt = 0
        self.unreachable = False
        self.store_error = None
        if journal.status(self.client.store).events_waiting > 0:
            return 0.0
        if journal.has_awaiting_verdict(self.client.store):
            return min(self.interval_s, VERDICT_POLL_S)
        return self.interval_s

    def _record(self, message: str) -> None:
        """Note why the round failed on the journal (``kassa sync status``, the sync
        screen). On a full disk even that write fails; ``Agent.sync_status`` then says the
        disk is full itself (``disk_full``)."""
        with contextlib.suppress(StoreError):
            journal.record_error(self.client.store, message, self.client._now_iso())

    def _wait(self, delay: float) -> None:
        """Wait ``delay`` seconds before the next round, or less: while the back office
        cannot be reached and events wait to be sent (or to be confirmed), its liveness
        probe is asked every ``PROBE_EVERY_S`` and the round starts soon after it answers
        (``PROBE_JITTER_S``), instead of after the whole backoff (up to ``BACKOFF_CAP_S``)."""
        deadline = time.monotonic() + delay
        if not (self.unreachable and delay > PROBE_EVERY_S and self._work_waiting()):
            self.stop.wait(delay)
            return
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(left, PROBE_EVERY_S)):
                return
            if time.monotonic() < deadline and self.client.live():
                self.stop.wait(min(left, self.rng.uniform(0.0, PROBE_JITTER_S)))
                return

    def _work_waiting(self) -> bool:
        store = self.client.store
        return journal.status(store).events_waiting > 0 or journal.has_awaiting_verdict(store)

    def _loop(self) -> None:
        try:
            self._rounds()
        except Exception:
            # A bug, not a network fault: log it and let the thread end; the watchdog
            # starts a new one, so the queue still drains.
            log.exception("sync uploader stopped; the watchdog will restart it")

    def _rounds(self) -> None:
        while not self.stop.is_set():
            delay = self.step()
            if delay and self.sleep is not None:
                self.sleep(delay)
            elif delay:
                self._wait(delay)

    def start(self) -> None:
        self._spawn()
        self._watchdog = threading.Thread(
            target=self._watch, name="kassa-sync-watchdog", daemon=True
        )
        self._watchdog.start()

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kassa-sync", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self.stop.wait(self.watch_s):
            self.check()

    def check(self) -> bool:
        """Restart the uploader if its thread died (an unexpected error, a dead retry
        timer). A live thread is never doubled: one batch in flight. HTTP calls carry
        timeouts, so a live thread always comes back to its loop. Returns whether it did."""
        thread = self._thread
        dead = thread is None or not thread.is_alive()
        if not self.stop.is_set() and dead:
            self.restarts += 1
            self._spawn()
            return True
        return False

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        for t in (self._thread, self._watchdog):
            if t is not None:
                t.join(timeout)
