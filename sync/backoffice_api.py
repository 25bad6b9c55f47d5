"""The back office's HTTP API declared once: request and response models, query
parameters, and the OpenAPI 3.1 document built from them (``openapi``).

The push's models (``PushRequest``, ``WireEvent``, ``EventResult``) live in
``sync.protocol``, shared with the till's uploader; a member's record is the till's own
``agent.journal.MemberRecord``; the rest of the API's bodies are here.
``sync.backoffice.app`` decodes request bodies with these types and its handlers answer
with the shapes they declare; the tests run schemathesis over the document against the
app, so a response that leaves its declared shape fails them. Counts are integers
(points, positions); times are ISO 8601 text with a UTC offset.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from agent.journal import MemberRecord as Member
from agent.problem import Problem
from sync.backoffice import event_feed
from sync.backoffice.project import VERDICTS_PAGE_MAX
from sync.openapi import Operation, Param, document, query_params
from sync.protocol import (
    MAX_ENVELOPE_INT,
    PLAIN_TEXT,
    PROTOCOL_VERSION,
    QUEUE_HEADER,
    TERMINAL_ID_RE,
    EventResult,
    ProtocolError,
    PushRequest,
    clean_text,
)

CHANGES_LIMIT_MAX = 999_999
"""The largest ``limit`` ``GET /v1/changes`` reads (six digits; the page is capped lower
by the feed)."""

ENROLL_NAME_MAX = 80
ENROLL_CODE_MAX = 64
ENROLL_CODE = "^[ -~]*$"
"""An enrollment code is printable ASCII (any other is answered 403 ``bad_enroll_code``,
as an unknown one is)."""


class Error(Problem, kw_only=True, omit_defaults=True):
    """Every 4xx/5xx answer: the problem document of both services (``agent.problem``:
    a stable ``code``, also as ``error``, and the English ``message``), whose details the
    back office also puts at the top level: ``field`` and ``index`` name what was wrong
    (``index``: the event of a push), ``limit`` the bound that was passed, ``supported``
    the protocol versions, ``pruned_through`` the last change a cursor can no longer
    reach."""

    field: str | None = None
    index: int | None = None
    limit: int | None = None
    supported: list[int] | None = None
    pruned_through: int | None = None


class Gap(msgspec.Struct):
    """Seqs of one terminal epoch missing between the events received (both included)."""

    epoch: str
    from_: int = msgspec.field(name="from")
    to: int


class PushResponse(msgspec.Struct):
    """One result per pushed event, in order; ``members``: the records of the members
    the applied events touched; ``clock_skew_seconds``: the till's ``X-Kassa-Sent-At``
    minus the server's clock (null without the header)."""

    results: list[EventResult]
    gaps: list[Gap]
    members: dict[str, Member]
    server_time: Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
    clock_skew_seconds: float | None


class VerdictsPage(msgspec.Struct):
    verdicts: list[EventResult]
    members: dict[str, Member]
    next: int
    more: bool
    waiting: bool


class Change(msgspec.Struct):
    seq: int
    kind: str
    member_id: str | None
    body: dict[str, Any]


class ChangesPage(msgspec.Struct):
    changes: list[Change]
    next_cursor: str
    more: bool


ENROLL_REQUEST_ID = "^[A-Za-z0-9_-]{16,64}$"
"""A till's enrollment request id (``sync.backoffice.enrollment.REQUEST_ID_RE``)."""
X25519_KEY = "^[A-Za-z0-9+/]{43}=$"
"""An X25519 public key: 32 bytes, standard base64."""


class EnrollRequest(msgspec.Struct):
    """``code``: the one-time enrollment code; ``name``: the till's display name;
    ``terminal_id``: the id it asks for (else one is made); ``request_id`` and
    ``public_key`` (together or neither): the till's request, made durable before it is
    sent, and its X25519 key the token is sealed to: a repeat of the same request gets the
    same answer until ``POST /v1/enroll/confirm`` (``sync.backoffice.enrollment``)."""

    code: Annotated[str, Meta(max_length=ENROLL_CODE_MAX, pattern=ENROLL_CODE)]
    name: Annotated[str, Meta(max_length=ENROLL_NAME_MAX, pattern=PLAIN_TEXT)] = ""
    terminal_id: Annotated[str, Meta(pattern=TERMINAL_ID_RE.pattern)] | None = None
    request_id: Annotated[str, Meta(pattern=ENROLL_REQUEST_ID)] | None = None
    public_key: Annotated[str, Meta(pattern=X25519_KEY)] | None = None


class RulesDocument(msgspec.Struct):
    """The active programme: its version and its canonical JSON text."""

    version: int
    document: str


class Enrolled(msgspec.Struct, omit_defaults=True):
    """A new till's credentials: its bearer ``token`` in clear (a request without a
    ``public_key``: shown only here), or ``sealed_token``, sealed to the request's
    ``public_key`` (``agent.tokens.seal_for_backoffice``; only the till opens it)."""

    terminal_id: str
    store_id: str
    store_name: str
    phone_hash_key: str
    token_public_key: str
    seal_public_key: str
    rules: RulesDocument
    token: str | None = None
    sealed_token: str | None = None


class EnrollConfirm(msgspec.Struct):
    """``request_id``: the enrollment request whose token the till has stored."""

    request_id: Annotated[str, Meta(pattern=ENROLL_REQUEST_ID)]


class EnrollConfirmed(msgspec.Struct):
    """``retired``: this call retired the code (false: it was before)."""

    retired: bool


class MemberToken(msgspec.Struct):
    token: str
    expires_at: str


class Health(msgspec.Struct):
    ok: bool
    version: str
    rules_version: int | None
    project_backlog: int
    verify_backlog: int


class Live(msgspec.Struct):
    ok: bool


class CloudEvent(msgspec.Struct):
    """One member event as CloudEvents 1.0 in structured JSON (``event_feed``): ``id``
    ``<member_id>:<member_seq>``, the same on every re-read and webhook retry (deduplicate
    on ``source`` + ``id``); ``type`` ``ru.kassa.<event type>``; ``time`` when it happened
    (RFC 3339, UTC); ``subject`` the member id; ``data`` the event's object (kopecks and
    points as integers, no personal data) with the member's ``member_seq``, which numbers a
    member's events 1, 2, 3... without gaps."""

    specversion: Literal["1.0"]
    id: Annotated[str, Meta(pattern=r"^.+:[1-9][0-9]*$")]
    source: str
    type: Annotated[str, Meta(pattern=event_feed.TYPE_PATTERN)]
    time: str
    subject: str
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]


class EventsPage(msgspec.Struct):
    """A page of the member events in global order; ``next``: the ``after`` of the next
    page (the last event's feed position, or the ``after`` given when there is nothing
    new: ask again with the same)."""

    events: list[CloudEvent]
    next: Annotated[int, Meta(ge=0, le=event_feed.MAX_CURSOR)]


Position = Annotated[int, Meta(ge=0, le=MAX_ENVELOPE_INT)]


class VerdictsQuery(msgspec.Struct):
    """``after``: the position to read after (0: from the start)."""

    after: Position = 0
    limit: Annotated[int, Meta(ge=1, le=VERDICTS_PAGE_MAX)] = 500


class ChangesQuery(msgspec.Struct):
    """``cursor``: ``next_cursor`` of the previous page (integer text; the feed reads it
    and answers ``bad_cursor`` or ``cursor_expired``); ``limit`` is capped by the feed."""

    cursor: str | None = None
    limit: Annotated[int, Meta(ge=0, le=CHANGES_LIMIT_MAX)] = 500


class LookupQuery(msgspec.Struct):
    """Exactly one of a member's ``phone_hash`` or ``code``."""

    phone_hash: str | None = None
    code: str | None = None


class KpiQuery(msgspec.Struct):
    """The report's first and last day (ISO dates, both included; default: all time)."""

    from_: str | None = msgspec.field(name="from", default=None)
    to: str | None = None


Q = TypeVar("Q", bound=msgspec.Struct)


def read_query(params: Mapping[str, str], model: type[Q]) -> Q:
    """The query parameters ``model`` declares, read from ``params`` (others ignored). An
    integer is ASCII digits only (no sign, space or other script's digits) within the
    field's bounds, else ``ProtocolError`` 400 ``bad_<name>``."""
    values: dict[str, Any] = {}
    for f in msgspec.structs.fields(model):
        text = params.get(f.encode_name)
        if text is None:
            continue
        kind = msgspec.inspect.type_info(f.type)
        if isinstance(kind, msgspec.inspect.IntType):
            low = kind.ge or 0
            high = kind.le if kind.le is not None else MAX_ENVELOPE_INT
            digits = text.isascii() and text.isdecimal() and len(text) <= 19
            if not digits or not low <= int(text) <= high:
                raise ProtocolError(
                    400,
                    f"bad_{f.encode_name}",
                    f"{f.encode_name} must be an integer from {low} to {high}",
                )
            values[f.name] = int(text)
        else:
            values[f.name] = text
    return model(**values)


SENT_AT = Param(
    "X-Kassa-Sent-At",
    "header",
    {"type": "string", "format": "date-time"},
    required=False,
    description="the till's clock when it sent the batch (ISO 8601 with offset)",
)
"""The push's optional header: when the till sent the batch, by its clock (the back
office answers the skew)."""


def parse_sent_at(headers: Mapping[str, str]) -> datetime | None:
    """``SENT_AT`` read from ``headers`` (``None`` when absent or empty), or
    ``ProtocolError`` 400 ``bad_header`` when it is not ISO 8601 with a UTC offset."""
    sent = headers.get(SENT_AT.name.lower())
    if not sent:
        return None
    try:
        sent_at = datetime.fromisoformat(sent)
    except ValueError:
        raise ProtocolError(400, "bad_header", "X-Kassa-Sent-At is not ISO 8601") from None
    if sent_at.tzinfo is None:
        raise ProtocolError(400, "bad_header", "X-Kassa-Sent-At needs a UTC offset")
    return sent_at


QUEUE = Param(
    QUEUE_HEADER,
    "header",
    {"type": "string", "contentMediaType": "application/json"},
    required=False,
    description="the till's send queue: JSON {waiting, oldest, quarantined} "
    "(protocol.QueueReport); an unreadable one is ignored",
)
"""The optional header a till sends with every call (listed on the push): what its send
queue holds, for the console's stores-and-tills page."""


_ENROLL = msgspec.json.Decoder(EnrollRequest)
_CONFIRM = msgspec.json.Decoder(EnrollConfirm)


def parse_enroll_confirm(body: bytes) -> EnrollConfirm:
    """Read ``POST /v1/enroll/confirm``'s body or raise ``ProtocolError`` 400
    ``bad_json`` or ``bad_field`` (``request_id``)."""
    try:
        return _CONFIRM.decode(body)
    except msgspec.ValidationError:
        raise ProtocolError(
            400, "bad_field", "request_id: 16-64 letters, digits, _ -", field="request_id"
        ) from None
    except (msgspec.DecodeError, RecursionError):
        raise ProtocolError(400, "bad_json", "body is not valid JSON") from None


def parse_enroll(body: bytes) -> EnrollRequest:
    """Read ``POST /v1/enroll``'s body or raise ``ProtocolError`` 400: ``bad_json``,
    ``missing_field`` (no ``code`` string), ``bad_field`` (``name`` or ``terminal_id``),
    or 403 ``bad_enroll_code`` (a code no enrollment can have).
    A body ``EnrollRequest`` refuses is read again as plain JSON to name the fault (the
    decoder stops at the first wrong value, before it would see the JSON is bad)."""
    try:
        return _ENROLL.decode(body)
    except msgspec.ValidationError:  # a DecodeError too: caught first
        pass
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
        raise ProtocolError(400, "bad_json", "body is not valid JSON") from None
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise ProtocolError(400, "bad_json", "body is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ProtocolError(400, "missing_field", "code is required", field="code")
    code, name, tid = data["code"], data.get("name", ""), data.get("terminal_id")
    if not isinstance(name, str) or not isinstance(tid, str | None):
        raise ProtocolError(400, "bad_field", "name and terminal_id must be strings")
    if len(code) > ENROLL_CODE_MAX or not re.match(ENROLL_CODE, code):
        raise ProtocolError(403, "bad_enroll_code", "enrollment code is not valid")
    clean_text(name, "name", ENROLL_NAME_MAX)
    for field, pattern, what in (
        ("request_id", ENROLL_REQUEST_ID, "16-64 letters, digits, _ -"),
        ("public_key", X25519_KEY, "an X25519 key, 32 bytes base64"),
    ):
        value = data.get(field)
        if value is not None and not (isinstance(value, str) and re.match(pattern, value)):
            raise ProtocolError(400, "bad_field", f"{field}: {what}", field=field)
    if tid is None:  # every field read well: another type somewhere
        raise ProtocolError(400, "bad_field", "a field has the wrong type")
    raise ProtocolError(
        400, "bad_field", "terminal_id: 1-64 letters, digits, _ . : -", field="terminal_id"
    )


AUTH = {
    401: "no bearer token, or one not valid",
    429: "too_many_failures: too many failed attempts from this address or with this "
    "credential (Retry-After)",
}
"""Every authenticated operation's refusals (``app.Failures`` answers 429 before anything
is looked at once a key failed too often)."""
TIMEOUT = {408: "request_timeout: the body was trickled or stalled (sync.httpserve)"}
EVENTS_QUERY = [
    Param(
        "after",
        "query",
        {"type": "integer", "minimum": 0, "maximum": event_feed.MAX_CURSOR, "default": 0},
        required=False,
        description="the feed position to read after: the previous page's next (0: from the start)",
    ),
    Param(
        "limit",
        "query",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": event_feed.MAX_LIMIT,
            "default": event_feed.DEFAULT_LIMIT,
        },
        required=False,
        description="at most this many events",
    ),
    Param(
        "types",
        "query",
        {"type": "string", "pattern": event_feed.TYPES_PATTERN},
        required=False,
        description="only these event types, comma-separated, as member.registered or "
        "ru.kassa.member.registered (default: every type)",
    ),
]
"""The pull feed's parameters (``event_feed.page`` reads them as text)."""


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document the back office publishes at ``/openapi.json``."""
    ops = [
        Operation(
            "GET", "/v1/health", "health, versions and backlogs", response=Health, auth=False
        ),
        Operation("GET", "/v1/live", "liveness (no database)", response=Live, auth=False),
        Operation(
            "POST",
            "/v1/enroll",
            "enroll a till with a one-time code; returns its bearer token",
            request=EnrollRequest,
            response=Enrolled,
            errors={
                400: "unreadable body",
                403: "code not valid, used or expired",
                409: "terminal id taken",
                413: "body too large",
                429: AUTH[429],
                **TIMEOUT,
            },
            auth=False,
            description="enrolled",
        ),
        Operation(
            "POST",
            "/v1/enroll/confirm",
            "the till has stored its token: retire its enrollment code",
            request=EnrollConfirm,
            response=EnrollConfirmed,
            errors={400: "unreadable body, or not this till's request id", **AUTH, **TIMEOUT},
            description="confirmed",
        ),
        Operation(
            "POST",
            "/v1/events",
            "push a batch of till events (accepted and applied exactly once)",
            request=PushRequest,
            response=PushResponse,
            errors={
                400: "unreadable request (nothing accepted)",
                **AUTH,
                403: "events of another terminal",
                413: "batch too large",
                **TIMEOUT,
            },
            params=[SENT_AT, QUEUE],
            description="per-event results",
        ),
        Operation(
            "GET",
            "/v1/events",
            "the member events after a feed position, as CloudEvents (admin token)",
            response=EventsPage,
            errors={
                400: "bad_feed_query: after, limit or types not as declared (details.field "
                "names it)",
                **AUTH,
            },
            params=EVENTS_QUERY,
            description="page",
        ),
        Operation(
            "GET",
            "/v1/verdicts",
            "this till's decided events after a position (accepted -> verdict)",
            response=VerdictsPage,
            errors={400: "bad after or limit", **AUTH},
            params=query_params(VerdictsQuery),
            description="page",
        ),
        Operation(
            "GET",
            "/v1/changes",
            "a page of member, merge and rules changes after a cursor (a member of "
            "another store than the till's without first_name and phone_masked)",
            response=ChangesPage,
            errors={400: "bad cursor or limit", **AUTH, 410: "cursor pruned: load /v1/snapshot"},
            params=query_params(ChangesQuery),
            description="page",
        ),
        Operation(
            "GET",
            "/v1/snapshot",
            "every member as NDJSON (first load of a big base; members of other stores "
            "than the till's without first_name and phone_masked)",
            response={"type": "string"},
            errors=AUTH,
            media_type="application/x-ndjson",
            description="NDJSON stream",
        ),
        Operation(
            "GET",
            "/v1/members/lookup",
            "a member not in the till's cache, by phone hash or code",
            response=Member,
            errors={
                400: "not exactly one of phone_hash and code",
                **AUTH,
                404: "no such member (a malformed code or hash too: no code's validity shows)",
            },
            params=query_params(LookupQuery),
            description="member",
        ),
        Operation(
            "POST",
            "/v1/members/{code}/token",
            "a signed short-lived QR token for a member's card (admin token; not a till's)",
            response=MemberToken,
            errors={400: "not a member code (check digit)", **AUTH, 404: "no such member"},
            description="token",
        ),
        Operation(
            "GET",
            "/v1/rules",
            "the active programme",
            response=RulesDocument,
            errors=AUTH,
            description="programme",
        ),
        Operation(
            "GET",
            "/v1/kpi",
            "programme KPIs by store, day and cashier, with fraud signals (admin token)",
            errors={400: "bad period", **AUTH},
            params=query_params(KpiQuery),
            description="KPIs",
        ),
    ]
    return document(
        ops,
        title="Kassa back office",
        version=f"{PROTOCOL_VERSION}",
        description="Exactly-once event ingest from tills, member changes, KPIs, the "
        "member events' pull feed.",
        error=Error,
    )
