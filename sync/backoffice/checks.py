"""Validation of pushed events and their payloads: each failure is a ``Rejected`` with a code
and a message naming the field, answered per event (the rest of the batch goes on).

Pure functions, no database: the ingest runs them for a whole batch before it touches the
ledger, so a bad event is refused before any of its effects exist.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from datetime import datetime
from typing import Any

import msgspec

from agent.requests import text_fault
from sync.protocol import (
    EVENT_TYPES,
    MAX_PAYLOAD_BYTES,
    SUPPORTED_SCHEMAS,
    WireEvent,
)

MAX_POINTS = 10**12
MIN_YEAR, MAX_YEAR = 2000, 2199


class Rejected(Exception):
    """An event that cannot enter the ledger: answered ``rejected`` with ``code``.

    ``member_id``: the member the verdict names, so the till gets the member's record
    with it (a purchase held for review: the till had applied its own claim to its cache,
    and learns the balance the back office holds)."""

    def __init__(self, code: str, message: str, member_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.member_id = member_id


class _FloatInPayload(ValueError):
    """A JSON number with a fraction or an exponent, or NaN/Infinity."""


def _refuse_float(text: str) -> Any:
    raise _FloatInPayload(text)


# Money and points are integers: a float is refused while parsing (no second walk over
# the parsed payload); NaN and Infinity are not JSON at all.
_PAYLOAD_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)
_FAST_DECODER = msgspec.json.Decoder(float_hook=_refuse_float)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_envelope(ev: WireEvent) -> None:
    """The checks an event must pass to be accepted: seq, epoch, type, schema, size, the
    payload's hash and the till's time. The payload itself is read by the projector
    (``parse_payload``): parsing it is most of an event's cost, and the hash already
    proves it is the text the till wrote."""
    if ev.seq < 1:
        raise Rejected("bad_seq", "seq must be 1 or more")
    if not ev.terminal_epoch or len(ev.terminal_epoch) > 64:
        raise Rejected("bad_epoch", "terminal_epoch must be 1-64 characters")
    if ev.type not in EVENT_TYPES:
        raise Rejected("unknown_type", f"event type {ev.type!r} is not known")
    if ev.schema_version not in SUPPORTED_SCHEMAS:
        raise Rejected("unsupported_schema", f"schema_version {ev.schema_version} is not supported")
    if len(ev.payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("payload_too_large", f"payload is over {MAX_PAYLOAD_BYTES} bytes")
    # (a SHA-256 hex digest is 64 lowercase hex digits: equal to it is the format check too)
    if hashlib.sha256(ev.payload_bytes()).hexdigest() != ev.payload_hash:
        raise Rejected("hash_mismatch", "payload_hash is not the SHA-256 of payload")
    moment(ev.created_at, "created_at")


_FAST_MAX_BRACKETS = 400  # fewer opening brackets than this: nesting is within every limit


def parse_payload(ev: WireEvent) -> dict[str, Any]:
    """The payload as a JSON object with integer numbers only, or ``Rejected``.

    Fast path: ``msgspec`` refusing floats as it parses (``float_hook``), when the text
    nests less deeply than either parser's limit. It reads integers of any size, the
    last of duplicate keys and every escape as ``json`` does; what it refuses (a float,
    NaN, a lone surrogate, any malformed text) or gives as something other than an
    object goes to ``exact_payload``, so every refusal is worded as there and every
    accepted payload is the same object."""
    text = ev.payload
    if text.count("{") + text.count("[") < _FAST_MAX_BRACKETS:
        try:
            payload = _FAST_DECODER.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass
        else:
            if type(payload) is dict:
                return payload
    return exact_payload(ev)


def exact_payload(ev: WireEvent) -> dict[str, Any]:
    """``parse_payload`` by Python's ``json`` alone: a float is refused while parsing."""
    try:
        payload = _PAYLOAD_DECODER.decode(ev.payload)
    except _FloatInPayload:
        try:
            plain = json.loads(ev.payload, parse_constant=_reject_constant)
        except ValueError as e:  # NaN / Infinity
            raise Rejected("bad_payload", f"payload is not valid JSON: {e}") from None
        _no_floats(plain)  # names the first float
        raise Rejected("bad_payload", "payload numbers must be integers") from None
    except RecursionError:
        raise Rejected("bad_payload", "payload is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise Rejected("bad_payload", f"payload is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise Rejected("bad_payload", "payload must be a JSON object")
    return payload


def _no_floats(value: Any, path: str = "payload") -> None:
    """Name the first float in a payload (only run once a float was seen)."""
    if isinstance(value, float):
        raise Rejected("bad_payload", f"{path} must be an integer, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_floats(v, f"{path}[{i}]")


def nonneg(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
        raise Rejected("bad_payload", f"{path} must be an integer from 0 to {MAX_POINTS}")
    return value


def is_db_outage(e: Exception) -> bool:
    """A lost database connection is not the event's fault: let the push fail (5xx, the
    till resends) instead of rejecting a good event. psycopg's errors count only once it is
    loaded (it is the optional ``backoffice`` extra, imported with a PostgreSQL URL)."""
    if isinstance(e, sqlite3.OperationalError):
        return True
    pg = sys.modules.get("sync.backoffice.pg")
    return pg is not None and isinstance(e, pg.OperationalError) and not isinstance(e, pg.DataError)


def opt(payload: dict[str, Any], key: str, limit: int = 200) -> str | None:
    """An optional text field as both databases can store it (or a rejection naming it)."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise Rejected("bad_payload", f"payload.{key} must be text up to {limit} characters")
    # A till refuses these at its front doors; an event carrying one was not made by one.
    fault = text_fault(value)
    if fault is not None:
        raise Rejected("bad_payload", f"payload.{key} {fault[0]}")
    return value


def text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise Rejected("bad_payload", f"payload.{key} must be a non-empty string")
    return value


def moment(value: Any, path: str, *, bounded: bool = False) -> datetime:
    """An ISO 8601 time with an offset. ``bounded`` (a business time the ledger computes
    with: expiry, pending and tier windows are added to it) also requires a year from
    ``MIN_YEAR`` to ``MAX_YEAR``: a till clock outside them is wrong, and date arithmetic
    near year 1 or 9999 overflows."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise Rejected("bad_payload", f"{path} must be an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise Rejected("bad_payload", f"{path} must carry a UTC offset")
    if bounded and not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise Rejected("bad_payload", f"{path} must be in the years {MIN_YEAR}-{MAX_YEAR}")
    return dt
