"""JSON (de)serialisation of the core's frozen dataclasses, for the store and the journal.

One generic codec driven by type hints, so a new field needs no hand-written code:
datetimes travel as ISO 8601 with offset, dates as ISO dates, tuples as lists, nested
dataclasses as objects. Canonical JSON (sorted keys, no spaces) makes payload hashes
stable across processes and machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from datetime import date, datetime
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


_SCALARS = frozenset({str, int, bool, float, type(None)})
_FIELDS: dict[type, tuple[str, ...]] = {}


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (dataclasses, tuples, datetimes, dates, dicts).

    Hot path of every commit: scalars return at once and dataclass field names are cached
    per class (``dataclasses.fields`` is slow when called per value).
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(kind):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    if names is not None:
        return {name: to_plain(getattr(value, name)) for name in names}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(to_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, compact, UTF-8 kept readable."""
    return json.dumps(to_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(text: str) -> str:
    """SHA-256 hex of canonical JSON text (payload hashes, request fingerprints)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _decode(tp: Any, value: Any) -> Any:
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _decode(inner[0], value)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is frozenset:
        return frozenset(_decode(get_args(tp)[0], v) for v in value)
    if origin is dict:
        key_t, val_t = get_args(tp)
        return {_decode(key_t, k): _decode(val_t, v) for k, v in value.items()}
    if origin is typing.Literal:
        return value
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is int and isinstance(value, str):
        return int(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_plain(tp, value)
    return value


def from_plain(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass from ``to_plain`` output; unknown keys are ignored (forward compat)."""
    hints = _hints(cls)
    kwargs = {
        f.name: _decode(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)


def loads(cls: type[T], text: str) -> T:
    return from_plain(cls, json.loads(text))
