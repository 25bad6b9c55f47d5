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
never passes an event still waiting (``waiting``: true).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.requests import text_fault

PROTOCOL_VERSION = 1
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 2_000_000
MAX_PAYLOAD_BYTES = 200_000
EVENT_TYPES = frozenset({"purchase", "refund", "member_registered"})
SUPPORTED_SCHEMAS = frozenset({1})

EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TERMINAL_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.:-]{0,63}$")
HASH_RE = re.compile(r"^[0-9a-f]{64}$")


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


# WireEvent and EventResult are made once per pushed event, so they are not ``frozen``: a
# frozen dataclass sets each field through ``object.__setattr__`` (3.1 us for a WireEvent
# against 0.4 us). Nothing changes them after they are made.
@dataclass(slots=True)
class WireEvent:
    event_id: str
    terminal_id: str
    terminal_epoch: str
    seq: int
    type: str
    schema_version: int
    created_at: str
    payload: str
    payload_hash: str
    # ``payload`` as UTF-8, when the push parser made it: the back office hashes and stores
    # these bytes (encoding a payload with non-ASCII text costs as much as hashing it)
    payload_utf8: bytes | None = field(default=None, compare=False, repr=False)

    def payload_bytes(self) -> bytes:
        """``payload`` as UTF-8: the parser's bytes when it made them, else encoded now."""
        return self.payload_utf8 if self.payload_utf8 is not None else self.payload.encode()


@dataclass(frozen=True, slots=True)
class PushRequest:
    terminal_id: str
    events: tuple[WireEvent, ...]


@dataclass(slots=True)
class EventResult:
    event_id: str
    seq: int
    status: str
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (Python accepts them by default) and
    turns a nesting too deep to parse into ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


MAX_ENVELOPE_INT = 2**62
MAX_TEXT = 200


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


def _field(obj: Mapping[str, Any], key: str, kind: type, index: int | None = None) -> Any:
    """A typed envelope field; errors name it and, inside an event, carry its ``index`` so
    the till can set that one event aside instead of resending the batch for ever."""
    where = f"events[{index}].{key}" if index is not None else key
    at: dict[str, Any] = {"field": where} if index is None else {"field": where, "index": index}
    if key not in obj:
        raise ProtocolError(400, "missing_field", f"{where} is required", **at)
    value = obj[key]
    if kind is int and (
        isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_ENVELOPE_INT
    ):
        raise ProtocolError(400, "bad_field", f"{where} must be an integer below 2**62", **at)
    if kind is str:
        if not isinstance(value, str):
            raise ProtocolError(400, "bad_field", f"{where} must be a string", **at)
        limit = MAX_BATCH_BYTES if key == "payload" else MAX_TEXT
        clean_text(value, where, limit, plain=key != "payload", **at)
    return value


def _fast_event(ev: Any) -> WireEvent | None:
    """The common case of ``parse_push``'s per-event checks in one pass: a well-formed
    event, or None (then the field-by-field path runs and names what is wrong). The
    payload is encoded to UTF-8 here, once: its NUL check runs on the bytes (``memchr``)
    and the back office hashes and stores them (``WireEvent.payload_utf8``)."""
    if type(ev) is not dict:
        return None
    try:
        event_id = ev["event_id"]
        seq = ev["seq"]
        schema = ev["schema_version"]
        payload = ev["payload"]
        terminal_id = ev["terminal_id"]
        epoch = ev["terminal_epoch"]
        kind = ev["type"]
        created_at = ev["created_at"]
        payload_hash = ev["payload_hash"]
    except KeyError:
        return None
    if not (
        type(event_id) is str
        and EVENT_ID_RE.match(event_id)
        and type(seq) is int
        and -MAX_ENVELOPE_INT <= seq <= MAX_ENVELOPE_INT
        and type(schema) is int
        and 0 <= schema < 2**31
        and type(payload) is str
        and len(payload) <= MAX_BATCH_BYTES
        and type(terminal_id) is str
        and type(epoch) is str
        and type(kind) is str
        and type(created_at) is str
        and type(payload_hash) is str
        and len(terminal_id) <= MAX_TEXT
        and len(epoch) <= MAX_TEXT
        and len(kind) <= MAX_TEXT
        and len(created_at) <= MAX_TEXT
        and len(payload_hash) <= MAX_TEXT
        and "\x00" not in terminal_id
        and "\x00" not in epoch
        and "\x00" not in kind
        and "\x00" not in created_at
        and "\x00" not in payload_hash
    ):
        return None
    # The body was parsed by orjson, which refuses lone surrogates, so every string in it
    # encodes (the slow path checks it anyway).
    try:
        raw = payload.encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - orjson never returns such text
        return None
    if b"\x00" in raw:  # NUL is the zero byte in UTF-8, and only NUL is
        return None
    return WireEvent(
        event_id, terminal_id, epoch, seq, kind, schema, created_at, payload, payload_hash, raw
    )


def parse_push(body: bytes) -> PushRequest:
    """Read a push request or raise ``ProtocolError`` (400 unreadable, 413 too large).

    Only the envelope is checked here; whether each event can enter the ledger (hash,
    type, schema, payload) is decided per event and answered as ``rejected``.
    """
    if len(body) > MAX_BATCH_BYTES:
        raise ProtocolError(
            413,
            "batch_too_large",
            f"a batch is at most {MAX_BATCH_BYTES} bytes",
            limit=MAX_BATCH_BYTES,
        )
    try:
        # orjson: a 1 MB batch (payloads as escaped JSON text) parses in a quarter of the
        # time of ``json``; like ``strict_json`` it refuses NaN, Infinity, invalid UTF-8
        # and nesting too deep, and it also refuses integers beyond 64 bits and lone
        # surrogates (neither can be a valid event).
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(400, "bad_json", f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ProtocolError(400, "bad_request", "body must be a JSON object")
    protocol = _field(data, "protocol", int)
    if protocol != PROTOCOL_VERSION:
        raise ProtocolError(
            400, "unsupported_protocol", f"protocol {protocol} is not supported", supported=[1]
        )
    terminal_id = _field(data, "terminal_id", str)
    events = data.get("events")
    if not isinstance(events, list):
        raise ProtocolError(400, "missing_field", "events must be a list", field="events")
    if len(events) > MAX_BATCH_EVENTS:
        raise ProtocolError(
            413,
            "batch_too_large",
            f"a batch is at most {MAX_BATCH_EVENTS} events",
            limit=MAX_BATCH_EVENTS,
        )
    out: list[WireEvent] = []
    for i, ev in enumerate(events):
        fast = _fast_event(ev)
        if fast is not None:
            out.append(fast)
            continue
        if not isinstance(ev, dict):
            raise ProtocolError(400, "bad_event", f"events[{i}] must be an object", index=i)
        event_id = _field(ev, "event_id", str, i)
        if not EVENT_ID_RE.match(event_id):
            raise ProtocolError(
                400, "bad_event_id", f"events[{i}].event_id must be 32 hex digits", index=i
            )
        seq = _field(ev, "seq", int, i)
        schema = _field(ev, "schema_version", int, i)
        if not 0 <= schema < 2**31:
            raise ProtocolError(
                400, "bad_field", f"events[{i}].schema_version is out of range", index=i
            )
        out.append(
            WireEvent(
                event_id=event_id,
                terminal_id=_field(ev, "terminal_id", str, i),
                terminal_epoch=_field(ev, "terminal_epoch", str, i),
                seq=seq,
                type=_field(ev, "type", str, i),
                schema_version=schema,
                created_at=_field(ev, "created_at", str, i),
                payload=_field(ev, "payload", str, i),
                payload_hash=_field(ev, "payload_hash", str, i),
            )
        )
    return PushRequest(terminal_id, tuple(out))


def encode_push(terminal_id: str, events: list[dict[str, Any]]) -> bytes:
    """The request body the till sends; deterministic, so a resend is the same bytes."""
    body = {"protocol": PROTOCOL_VERSION, "terminal_id": terminal_id, "events": events}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = {"description": "error", "content": {"application/json": {"schema": _schema_ref("Error")}}}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document the back office publishes at ``/openapi.json``."""
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    event_props = {
        "event_id": {"type": "string", "pattern": EVENT_ID_RE.pattern},
        "terminal_id": {"type": "string"},
        "terminal_epoch": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1},
        "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "schema_version": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "payload": {"type": "string", "description": "canonical JSON text of the event"},
        "payload_hash": {"type": "string", "pattern": HASH_RE.pattern},
    }
    member_props = {
        k: {"type": t}
        for k, t in {
            "member_id": "string",
            "code": "string",
            "phone_hash": ["string", "null"],
            "phone_masked": ["string", "null"],
            "first_name": ["string", "null"],
            "state": "string",
            "balance": "integer",
            "available": "integer",
            "pending": "integer",
            "expiring_points": "integer",
            "expiring_on": ["string", "null"],
            "tier": "string",
            "consent_programme": "boolean",
            "consent_marketing": "boolean",
            "merged_into": ["string", "null"],
        }.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kassa back office",
            "version": f"{PROTOCOL_VERSION}",
            "description": "Exactly-once event ingest from tills, member changes, KPIs.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "Event": {
                    "type": "object",
                    "required": list(event_props),
                    "properties": event_props,
                },
                "PushRequest": {
                    "type": "object",
                    "required": ["protocol", "terminal_id", "events"],
                    "properties": {
                        "protocol": {"type": "integer", "const": PROTOCOL_VERSION},
                        "terminal_id": {"type": "string"},
                        "events": {
                            "type": "array",
                            "maxItems": MAX_BATCH_EVENTS,
                            "items": _schema_ref("Event"),
                        },
                    },
                },
                "EventResult": {
                    "type": "object",
                    "required": ["event_id", "seq", "status"],
                    "properties": {
                        "event_id": {"type": "string"},
                        "seq": {"type": "integer"},
                        "status": {
                            "type": "string",
                            "enum": ["accepted", "applied", "duplicate", "conflict", "rejected"],
                        },
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "member_id": {"type": "string"},
                    },
                },
                "VerdictsPage": {
                    "type": "object",
                    "properties": {
                        "verdicts": {"type": "array", "items": _schema_ref("EventResult")},
                        "members": {
                            "type": "object",
                            "additionalProperties": _schema_ref("Member"),
                        },
                        "next": {"type": "integer"},
                        "more": {"type": "boolean"},
                        "waiting": {"type": "boolean"},
                    },
                },
                "PushResponse": {
                    "type": "object",
                    "properties": {
                        "results": {"type": "array", "items": _schema_ref("EventResult")},
                        "gaps": {"type": "array", "items": {"type": "object"}},
                        "members": {
                            "type": "object",
                            "additionalProperties": _schema_ref("Member"),
                        },
                        "server_time": {"type": "string", "format": "date-time"},
                        "clock_skew_seconds": {"type": ["number", "null"]},
                    },
                },
                "Member": {"type": "object", "properties": member_props},
                "ChangesPage": {
                    "type": "object",
                    "properties": {
                        "changes": {"type": "array", "items": {"type": "object"}},
                        "next_cursor": {"type": "string"},
                        "more": {"type": "boolean"},
                    },
                },
            },
        },
        "paths": {
            "/v1/health": {
                "get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}
            },
            "/v1/enroll": {
                "post": {
                    "summary": "enroll a till with a one-time code; returns its bearer token",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["code"],
                                    "properties": {
                                        "code": {"type": "string"},
                                        "name": {"type": "string"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "enrolled"}, "400": _ERROR, "403": _ERROR},
                }
            },
            "/v1/events": {
                "post": {
                    "summary": "push a batch of till events (accepted and applied exactly once)",
                    "security": bearer,
                    "requestBody": {
                        "content": {"application/json": {"schema": _schema_ref("PushRequest")}}
                    },
                    "responses": {
                        "200": {
                            "description": "per-event results",
                            "content": {
                                "application/json": {"schema": _schema_ref("PushResponse")}
                            },
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "403": _ERROR,
                        "413": _ERROR,
                    },
                }
            },
            "/v1/verdicts": {
                "get": {
                    "summary": "this till's decided events after a position (accepted -> verdict)",
                    "security": bearer,
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "integer"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "page",
                            "content": {
                                "application/json": {"schema": _schema_ref("VerdictsPage")}
                            },
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                    },
                }
            },
            "/v1/changes": {
                "get": {
                    "summary": "a page of member, merge and rules changes after a cursor",
                    "security": bearer,
                    "parameters": [
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "page",
                            "content": {"application/json": {"schema": _schema_ref("ChangesPage")}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "410": _ERROR,
                    },
                }
            },
            "/v1/snapshot": {
                "get": {
                    "summary": "every member as NDJSON (first load of a big base)",
                    "security": bearer,
                    "responses": {"200": {"description": "NDJSON stream"}, "401": _ERROR},
                }
            },
            "/v1/members/lookup": {
                "get": {
                    "summary": "a member not in the till's cache, by phone hash or code",
                    "security": bearer,
                    "parameters": [
                        {"name": "phone_hash", "in": "query", "schema": {"type": "string"}},
                        {"name": "code", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "member",
                            "content": {"application/json": {"schema": _schema_ref("Member")}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/v1/members/{code}/token": {
                "post": {
                    "summary": "a signed short-lived QR token for the member app",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "code",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": {"description": "token"}, "401": _ERROR, "404": _ERROR},
                }
            },
            "/v1/rules": {
                "get": {
                    "summary": "the active programme",
                    "security": bearer,
                    "responses": {"200": {"description": "programme"}, "401": _ERROR},
                }
            },
            "/v1/kpi": {
                "get": {
                    "summary": "programme KPIs by store, day and cashier, with fraud signals",
                    "security": bearer,
                    "parameters": [
                        {"name": "from", "in": "query", "schema": {"type": "string"}},
                        {"name": "to", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "KPIs"}, "400": _ERROR, "401": _ERROR},
                }
            },
        },
    }
