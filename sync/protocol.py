"""The sync wire protocol, version 1: the models both ends share and their strict parsing.

A push is ``POST /v1/events`` with ``{"protocol": 1, "terminal_id": ..., "events": [...]}``.
Each event carries ``event_id`` (32 lowercase hex, made at commit, the ledger key forever),
``terminal_id``, ``terminal_epoch`` (new after a restore or clone), ``seq`` (gapless per
terminal), ``type``, ``schema_version``, ``created_at`` (till clock, ISO 8601),
``payload`` (canonical JSON text) and ``payload_hash`` (SHA-256 hex of that text). The
payload travels as text so its hash is checked on the exact bytes the till hashed.

The answer gives one result per event: ``accepted`` (durably on the server, waiting for
the projector), ``applied`` (accepted and already in the ledger; with ``member_id``),
``duplicate`` (already in the ledger with the same hash), ``conflict`` (already there with
another hash; nothing changed) or ``rejected`` with a code. Problems that make the whole
request unreadable are a 4xx with ``{"error": code, "message": ..., "index": i?}``;
nothing is accepted then.

An ``accepted`` event's verdict (``applied``, or ``rejected`` with a code when the ledger
cannot apply it) comes from ``GET /v1/verdicts?after=<pos>``: the till's own decided
events in acceptance order after a position, with the current records of the members
they touched (``members``, keyed by the ``member_id`` of each verdict; a merged member's
id maps to the survivor's record). ``next`` is the position to ask after next time; it
never passes an event still waiting (``waiting``: true). A push answer carries such
records too, for its events applied at once and for events sent again that the ledger
decided before (``duplicate``, with their ``member_id``).

Every member record (push answers, verdicts, snapshot rows) carries ``feed_seq``: the
change-feed position it reflects (every change up to it, none after); a feed entry's
position is its own ``seq``. The till never lets a record of an older position replace a
newer one (``agent.journal.upsert_members``): the feed, pulled page by page, lags behind
the answers after an outage.

Every call of a till carries ``X-Kassa-Queue`` (``QueueReport``): how many events its send
queue still holds, the oldest one's time and how many it quarantined, for the console's
monitoring of tills (an unreadable report is ignored, never refused).

The request models (``PushRequest``, ``WireEvent``) are msgspec Structs: their annotations
are both the push parser (``parse_push`` decodes with them) and the request schema of the
OpenAPI document (``sync.backoffice_api``); a body they refuse is read again field by
field from the same declarations to name its first fault. ``EventResult`` is the response
model of one event.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta

from agent.requests import BIDI_CONTROLS, INVISIBLE_CHARACTERS, text_fault

PROTOCOL_VERSION = 1
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 2_000_000
MAX_PAYLOAD_BYTES = 200_000
EVENT_TYPES = frozenset({"purchase", "refund", "member_registered"})
SUPPORTED_SCHEMAS = frozenset({1})
RESULT_STATUSES = ("accepted", "applied", "duplicate", "conflict", "rejected")

EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TERMINAL_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.:-]{0,63}$")

MAX_ENVELOPE_INT = 2**62
MAX_TEXT = 200

NO_NUL = r"^[^\u0000]*$"
"""Text without NUL, which neither database can store (a regular expression, as JSON
Schema writes it)."""

_REFUSED_CHARS = r"\u0000-\u001f\u007f-\u009f\u2028\u2029" + "".join(
    sorted(f"\\u{ord(c):04x}" for c in BIDI_CONTROLS | INVISIBLE_CHARACTERS)
)
PLAIN_TEXT = f"^[^{_REFUSED_CHARS}\\ud800-\\udfff]*$"
"""What ``agent.requests.text_fault`` lets through (no control, separator, bidi,
zero-width or lone surrogate character) as one regular expression, so a schema can say it.
The code also lets a zero-width joiner inside an emoji sequence through, which a pattern
without look-around cannot say."""
PLAIN_CHARS = f"^[^{_REFUSED_CHARS}]*$"
"""``PLAIN_TEXT`` without its lone-surrogate range, which some validators' regular
expressions cannot hold (Rust's, as in ``jsonschema_rs``): the POS API's document, read by
integrators' validators, says the rest (the server refuses lone surrogates all the same)."""

Text = Annotated[str, Meta(max_length=MAX_TEXT, extra_json_schema={"pattern": NO_NUL})]
"""A text field of an event: at most ``MAX_TEXT`` characters, no NUL (``parse_push``
checks it with ``in``, faster than a regular expression per string; the schema says it)."""

PlainText = Annotated[str, Meta(max_length=MAX_TEXT, pattern=PLAIN_TEXT)]
Int62 = Annotated[int, Meta(ge=-MAX_ENVELOPE_INT, le=MAX_ENVELOPE_INT)]


class ProtocolError(Exception):
    """A request the server cannot read at all: answered with ``status`` and nothing applied."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class WireEvent(msgspec.Struct, dict=True):
    """One event as the till sent it; ``payload`` is the text its ``payload_hash`` covers."""

    # Positional in this order (the projector makes events from rows); ``dict=True`` holds
    # ``payload_utf8`` once made. ``event_id``'s pattern and the text fields' ``NO_NUL`` are
    # schema (``extra_json_schema``) that ``parse_push`` checks in one pass over the decoded
    # events: a regular expression per string would cost more than the rest of the decoding.
    event_id: Annotated[
        str, Meta(min_length=32, max_length=32, extra_json_schema={"pattern": EVENT_ID_RE.pattern})
    ]
    terminal_id: Text
    terminal_epoch: Text
    seq: Int62
    type: Text
    schema_version: Annotated[int, Meta(ge=0, lt=2**31)]
    created_at: Text
    payload: Annotated[
        str,
        Meta(
            max_length=MAX_BATCH_BYTES,
            description="canonical JSON text of the event",
            extra_json_schema={"pattern": NO_NUL},
        ),
    ]
    payload_hash: Text

    @property
    def payload_utf8(self) -> bytes:
        """``payload`` as UTF-8, encoded once (``parse_push`` does it while it checks the
        bytes for NUL): the back office hashes and stores these bytes (encoding a payload
        with non-ASCII text costs as much as hashing it)."""
        cache = self.__dict__
        raw: bytes | None = cache.get("utf8")
        if raw is None:
            raw = cache["utf8"] = self.payload.encode()
        return raw

    def payload_bytes(self) -> bytes:
        return self.payload_utf8


class PushRequest(msgspec.Struct, frozen=True):
    """A batch of a till's events. Only this envelope is checked on reading; whether each
    event can enter the ledger (hash, type, schema, seq, payload) is decided per event
    and answered as rejected."""

    protocol: Literal[1]
    terminal_id: PlainText
    events: Annotated[tuple[WireEvent, ...], Meta(max_length=MAX_BATCH_EVENTS)]


# EventResult is made once per pushed event, so it is not ``frozen``: a frozen dataclass
# sets each field through ``object.__setattr__``. Nothing changes it after it is made.
@dataclass(slots=True)
class EventResult:
    event_id: str
    seq: int
    status: Annotated[str, Meta(extra_json_schema={"enum": list(RESULT_STATUSES)})]
    code: str | None = None
    message: str | None = None
    member_id: str | None = None  # applied: the member the ledger credited (after merges)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_id": self.event_id, "seq": self.seq, "status": self.status}
        if self.code:
            out["code"] = self.code
            out["message"] = self.message or self.code
        if self.member_id:
            out["member_id"] = self.member_id
        return out


QUEUE_HEADER = "X-Kassa-Queue"
"""The header on every call of a till: what its send queue holds (``QueueReport`` as
compact JSON), so the console shows each till's backlog without asking the till."""


class QueueReport(msgspec.Struct, frozen=True):
    """A till's send queue as it reports it (``QUEUE_HEADER``): ``waiting`` events not yet
    acknowledged by the back office, the ``oldest`` unsent one's ``created_at`` (ISO 8601
    with offset, till clock; None when none waits), and ``quarantined`` events (refused,
    set aside, waiting for a person). Counts are events."""

    waiting: Annotated[int, Meta(ge=0, le=MAX_ENVELOPE_INT)]
    oldest: Annotated[str, Meta(max_length=64)] | None = None
    quarantined: Annotated[int, Meta(ge=0, le=MAX_ENVELOPE_INT)] = 0


_QUEUE = msgspec.json.Decoder(QueueReport)


def encode_queue(report: QueueReport) -> str:
    """``report`` as the header's value (compact JSON, ASCII)."""
    return msgspec.json.encode(report).decode("ascii")


def parse_queue(value: str | None) -> QueueReport | None:
    """The queue report in a ``QUEUE_HEADER`` value, or None when it is absent or
    unreadable (not the model, or ``oldest`` no ISO 8601 time with offset). An unreadable
    report is ignored, never refused: monitoring must not stop a till's events."""
    if not value or len(value) > 300:
        return None
    try:
        report = _QUEUE.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if report.oldest is not None:
        try:
            oldest = datetime.fromisoformat(report.oldest)
        except ValueError:
            return None
        if oldest.tzinfo is None:
            return None
    return report


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (Python accepts them by default) and
    turns a nesting too deep to parse into ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def clean_text(
    value: str, where: str, max_len: int = MAX_TEXT, *, plain: bool = True, **details: Any
) -> str:
    """A text field both databases can store: no NUL, valid UTF-8, bounded length; a
    ``plain`` one (every field but an event's JSON payload) also none of the control or
    bidi characters ``agent.requests.text_fault`` refuses at the tills' front doors."""
    fault = text_fault(value) if plain else None
    if fault:
        raise ProtocolError(400, "bad_field", f"{where} {fault[0]}", **details)
    if "\x00" in value or len(value) > max_len:
        raise ProtocolError(
            400, "bad_field", f"{where} must be text of at most {max_len} characters", **details
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(400, "bad_field", f"{where} is not valid text", **details) from None
    return value


_PUSH = msgspec.json.Decoder(PushRequest)

_PATTERN_FAULTS = {"event_id": ("bad_event_id", "must be 32 hex digits")}
"""The code and message of a field whose ``pattern`` does not match (other than
``PLAIN_TEXT``, whose faults ``clean_text`` names)."""


def parse_push(body: bytes) -> PushRequest:
    """Read a push request or raise ``ProtocolError`` (400 unreadable, 413 too large).

    ``PushRequest`` decodes the body (msgspec: types, ranges, patterns, lengths, unknown
    keys ignored). A body it refuses is read again field by field (``_push_fault``), in
    the models' field order, to name the first fault with its code, field and event index.
    """
    if len(body) > MAX_BATCH_BYTES:
        raise ProtocolError(
            413,
            "batch_too_large",
            f"a batch is at most {MAX_BATCH_BYTES} bytes",
            limit=MAX_BATCH_BYTES,
        )
    try:
        req = _PUSH.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as e:
        # RecursionError: nesting deeper than the interpreter's stack, even in a key
        # the model ignores
        code = "bad_request" if isinstance(e, msgspec.ValidationError) else "bad_json"
        raise _push_fault(body) or ProtocolError(400, code, f"body is not valid: {e}") from None
    for ev in req.events:
        raw = ev.payload.encode()  # no lone surrogates: the decoder refuses them
        if not _sound(ev, raw):
            raise _push_fault(body) or ProtocolError(400, "bad_event", "an event is not valid")
        ev.__dict__["utf8"] = raw
    return req


_HEX = "0123456789abcdef"


def _sound(ev: WireEvent, raw: bytes) -> bool:
    """What the decoder leaves to ``parse_push``: ``event_id`` is lowercase hex (its
    length is the decoder's) and no text has a NUL; ``raw`` is ``payload`` as UTF-8."""
    return not (
        ev.event_id.strip(_HEX)
        or b"\x00" in raw  # NUL is the zero byte in UTF-8, and only NUL is
        or "\x00" in ev.terminal_id
        or "\x00" in ev.terminal_epoch
        or "\x00" in ev.type
        or "\x00" in ev.created_at
        or "\x00" in ev.payload_hash
    )


def _push_fault(body: bytes) -> ProtocolError | None:
    """The first fault of a push body, checked as ``PushRequest`` declares it, or None."""
    try:
        # orjson refuses NaN, Infinity, invalid UTF-8, lone surrogates, integers beyond
        # 64 bits and nesting too deep: all ``bad_json``
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return ProtocolError(400, "bad_json", f"body is not valid JSON: {e}")
    if not isinstance(data, dict):
        return ProtocolError(400, "bad_request", "body must be a JSON object")
    try:
        _check_fields(data, PushRequest, None)
    except ProtocolError as e:
        return e
    return None


def _check_fields(obj: dict[str, Any], model: type[msgspec.Struct], index: int | None) -> None:
    """Check ``obj``'s fields against ``model``'s declared types, in declaration order; an
    error names the field and, inside an event, carries its ``index`` so the till can set
    that one event aside instead of resending the batch for ever."""
    for f in _fields(model):
        key = f.encode_name
        where = f"events[{index}].{key}" if index is not None else key
        at: dict[str, Any] = {"field": where} if index is None else {"field": where, "index": index}
        kind: msgspec.inspect.Type = f.type
        extra: dict[str, Any] = {}
        if isinstance(kind, msgspec.inspect.Metadata):
            extra = dict(kind.extra_json_schema or {})
            kind = kind.type
        if isinstance(kind, msgspec.inspect.ListType | msgspec.inspect.VarTupleType):
            _check_events(obj.get(key), kind.max_length, kind.item_type)
            continue
        if key not in obj:
            raise ProtocolError(400, "missing_field", f"{where} is required", **at)
        value = obj[key]
        if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.LiteralType):
            _check_int(kind, value, where, at)
        elif isinstance(kind, msgspec.inspect.StrType):
            if not isinstance(value, str):
                raise ProtocolError(400, "bad_field", f"{where} must be a string", **at)
            # a pattern bounds the length of a short field (event_id): its fault comes next
            limit = max(kind.max_length or MAX_BATCH_BYTES, MAX_TEXT)
            # short text is held to ``text_fault`` here (only the JSON payload is not),
            # so a refused event names a control character before a later fault
            clean_text(value, where, limit, plain=limit <= MAX_TEXT, **at)
            pattern = kind.pattern or extra.get("pattern")
            if pattern not in (None, PLAIN_TEXT, NO_NUL) and not re.search(pattern, value):
                code, message = _PATTERN_FAULTS[key]
                raise ProtocolError(400, code, f"{where} {message}", index=index)


def _check_int(
    kind: msgspec.inspect.IntType | msgspec.inspect.LiteralType,
    value: Any,
    where: str,
    at: dict[str, Any],
) -> None:
    """An integer field (``bool`` is not one); a ``Literal`` one is the protocol version."""
    if type(value) is not int or abs(value) > MAX_ENVELOPE_INT:
        raise ProtocolError(400, "bad_field", f"{where} must be an integer below 2**62", **at)
    if isinstance(kind, msgspec.inspect.LiteralType):
        if value not in kind.values:
            raise ProtocolError(
                400,
                "unsupported_protocol",
                f"{where} {value} is not supported",
                supported=list(kind.values),
            )
        return
    high = kind.le if kind.lt is None else kind.lt - 1
    if (kind.ge is not None and value < kind.ge) or (high is not None and value > high):
        raise ProtocolError(400, "bad_field", f"{where} is out of range", index=at.get("index"))


_READ_FIRST = ("event_id", "seq", "schema_version")
"""An event's identity and numbers are named first when several fields are wrong."""


@functools.cache
def _fields(model: type[msgspec.Struct]) -> tuple[msgspec.inspect.Field, ...]:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    first = {name: i for i, name in enumerate(_READ_FIRST)}
    return tuple(sorted(info.fields, key=lambda f: first.get(f.name, len(first))))


def _check_events(events: Any, most: int | None, item: Any) -> None:
    if not isinstance(events, list):
        raise ProtocolError(400, "missing_field", "events must be a list", field="events")
    if most is not None and len(events) > most:
        raise ProtocolError(413, "batch_too_large", f"a batch is at most {most} events", limit=most)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise ProtocolError(400, "bad_event", f"events[{i}] must be an object", index=i)
        try:  # an event the model takes passes; only a refused one is checked field by field
            read = msgspec.convert(ev, item.cls)
        except msgspec.ValidationError:
            read = None
        if read is None or not _sound(read, read.payload.encode()):
            _check_fields(ev, item.cls, i)


def encode_push(terminal_id: str, events: list[dict[str, Any]]) -> bytes:
    """The request body the till sends; deterministic, so a resend is the same bytes."""
    body = {"protocol": PROTOCOL_VERSION, "terminal_id": terminal_id, "events": events}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
