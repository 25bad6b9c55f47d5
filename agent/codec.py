"""JSON (de)serialisation of the core's frozen dataclasses, for the store and the journal.

Driven by type hints, so a new field needs no hand-written code: datetimes travel as ISO
8601 with offset, dates as ISO dates, tuples as lists, nested dataclasses as objects.
Canonical JSON (sorted keys, no spaces) makes payload hashes stable across processes and
machines.

Why compiled: every sale encodes about 10 KB of JSON (member state, purchase event with the
full quote, result, effects, slip) and decodes the member state, inside the cashier's wait.
A generic walker that asks ``dataclasses.fields``/``isinstance`` per value was the largest
single CPU cost of a sale (cProfile of ``bench/checkout.py``); so each dataclass gets, on
first use, an encoder and a decoder generated from its fields and hints
(``_compile_encoder`` / ``_compile_decoder``), with scalars passed through inline. The
output is exactly what the generic rules above give (tests/test_codec.py checks it against
the previous generic implementation; tests/test_codec_msgspec.py against the documents a
till stored, with their hashes, in tests/snapshots/codec_documents.json).

Why not msgspec's encoder (``msgspec.json.Encoder(order="sorted")``, msgspec 0.23), though
it is 3-10 times faster (a sale's result: 5.7 against 15.4 µs): it writes an aware datetime
in UTC as ``2026-06-15T09:00:00Z``, where the canonical form, ``datetime.isoformat``, has
``2026-06-15T09:00:00+00:00``. Every sale's journal payload, result, effects and member
state holds such datetimes, so every payload hash would change. The encoder has no option
for it, its ``enc_hook`` is called only for types it does not support (never for a
datetime), and turning ``Z"`` back into ``+00:00"`` in its output would also change a text
field that ends so. For all else in the stored types its bytes are the same (sorted keys,
compact, non-ASCII kept, the same escapes, big ints, dates, other offsets, microseconds).
Outside them it also writes ``1e16`` and ``0.00001`` for ``1e+16`` and ``1e-05``, ``null``
for NaN and infinities (written ``NaN``/``Infinity`` here, as Python's ``json`` does; no
stored type has a float), drops the seconds of an offset such as ``+03:00:30``, and refuses
dict keys that are not text (made text here). The tests pin each case.

Why not msgspec's decoder for ``loads`` (it would be 4-7 times faster): it checks every
value against its hint and raises its own ``ValidationError``, where this decoder passes
values through and a missing required field is a ``TypeError``; the back office decodes
tills' payloads with ``from_plain``, so that is a change of contract, not of speed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

_SCALARS = frozenset({str, int, bool, float, type(None)})
# type -> function giving the JSON-ready form of a value of exactly that type.
_ENCODERS: dict[type, Callable[[Any], Any]] = {}


def _plain_seq(value: Any) -> list[Any]:
    return [v if type(v) in _SCALARS else to_plain(v) for v in value]


def _plain_set(value: Any) -> list[Any]:
    return sorted(to_plain(v) for v in value)


def _plain_dict(value: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): v if type(v) in _SCALARS else to_plain(v) for k, v in value.items()}


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (dataclasses, tuples, datetimes, dates, dicts).

    Dispatch on the exact type; a dataclass met for the first time gets its encoder
    compiled. Subclasses of the built-in containers and of datetime/date fall back to
    ``isinstance`` checks.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    enc = _ENCODERS.get(kind)
    if enc is not None:
        return enc(value)
    if dataclasses.is_dataclass(kind):
        enc = _ENCODERS[kind] = _compile_encoder(kind)
        return enc(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return _plain_seq(value)
    if isinstance(value, frozenset | set):
        return _plain_set(value)
    if isinstance(value, dict):
        return _plain_dict(value)
    return value


_ENCODERS.update(
    {
        datetime: datetime.isoformat,
        date: date.isoformat,
        tuple: _plain_seq,
        list: _plain_seq,
        frozenset: _plain_set,
        set: _plain_set,
        dict: _plain_dict,
    }
)


def _compile_encoder(
    cls: type, plain: Callable[[Any], Any] | None = None, *, sort: bool = False
) -> Callable[[Any], Any]:
    """``lambda v: {"a": <v.a as plain>, ...}`` for the dataclass ``cls``, in field order
    (``sort``: in key order, for the canonical form).

    Each field is passed through when its runtime type is a JSON scalar, else handed to
    ``plain`` (default ``to_plain``): the same result as the generic walk, without its
    per-field calls.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    if sort:
        names.sort()
    lines = ["def encode(v, S=S, P=P):"]
    for i, name in enumerate(names):
        lines.append(f"    x{i} = v.{name}")
    items = ", ".join(
        f"{name!r}: (x{i} if type(x{i}) in S else P(x{i}))" for i, name in enumerate(names)
    )
    lines.append(f"    return {{{items}}}")
    scope: dict[str, Any] = {"S": _SCALARS, "P": plain or to_plain}
    exec("\n".join(lines), scope)  # noqa: S102 - code built from dataclass field names only
    encode: Callable[[Any], Any] = scope["encode"]
    encode.__qualname__ = f"encode_{cls.__name__}"
    return encode


# --------------------------------------------------------------------------- canonical
# ``dumps`` builds every object with its keys already in sorted order (``_canon``), so the
# JSON encoder need not sort them; the C encoder is made once and called directly, without
# the circular-reference bookkeeping (a JSON-ready tree built here holds no cycles).
_CANON: dict[type, Callable[[Any], Any]] = {}


def _canon(value: Any) -> Any:
    """``to_plain(value)`` with the keys of every object inserted in sorted order."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    enc = _CANON.get(kind)
    if enc is not None:
        return enc(value)
    if dataclasses.is_dataclass(kind):
        enc = _CANON[kind] = _compile_encoder(kind, _canon, sort=True)
        return enc(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return _canon_seq(value)
    if isinstance(value, frozenset | set):
        return sorted(_canon(v) for v in value)
    if isinstance(value, dict):
        return _canon_dict(value)
    return value


def _canon_seq(value: Any) -> list[Any]:
    return [v if type(v) in _SCALARS else _canon(v) for v in value]


def _canon_dict(value: dict[Any, Any]) -> dict[str, Any]:
    # As ``to_plain``: keys become text (a later key wins when two give the same text).
    out = {str(k): v if type(v) in _SCALARS else _canon(v) for k, v in value.items()}
    return {k: out[k] for k in sorted(out)}


_CANON.update(
    {
        datetime: datetime.isoformat,
        date: date.isoformat,
        tuple: _canon_seq,
        list: _canon_seq,
        dict: _canon_dict,
    }
)

# One encoder object instead of a new one per call (``json.dumps`` with options builds one).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_SORTED_ENCODE: Callable[[Any, int], Any] | None = (
    _c_make_encoder(
        None, _JSON.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    if _c_make_encoder is not None
    else None
)


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, compact, UTF-8 kept readable."""
    if _SORTED_ENCODE is None:  # pragma: no cover - a Python built without _json
        return _JSON.encode(to_plain(value))
    return _json_text(value)


def _canon_text(value: Any) -> str:
    """Canonical JSON through the JSON-ready tree and the C encoder (any value)."""
    assert _SORTED_ENCODE is not None
    plain = _canon(value)
    if type(plain) is str:
        return _ESCAPE(plain)
    return "".join(_SORTED_ENCODE(plain, 0))


# Dataclasses, tuples and lists straight to text: JSON is compositional, so the text of an
# object is its members' texts joined, and a dataclass's keys (sorted field names) are
# constants in its compiled encoder. Faster than building the JSON-ready tree first (the
# C encoder re-encodes every key of every object); anything else takes ``_canon_text``.
_TEXTS: dict[type, Callable[[Any], str]] = {}


def _json_text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _ESCAPE(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    enc = _TEXTS.get(kind)
    if enc is not None:
        return enc(value)
    if dataclasses.is_dataclass(kind):
        enc = _TEXTS[kind] = _compile_text_encoder(kind)
        return enc(value)
    return _canon_text(value)


def _seq_text(value: Any) -> str:
    return "[" + ",".join([_json_text(v) for v in value]) + "]"


def _time_text(value: datetime | date) -> str:
    return '"' + value.isoformat() + '"'  # digits, "-", ":", "T", "+", ".": nothing to escape


_TEXTS.update({tuple: _seq_text, list: _seq_text, datetime: _time_text, date: _time_text})


def _compile_text_encoder(cls: type) -> Callable[[Any], str]:
    """``lambda v: '{"a":' + <text of v.a> + ',"b":' ... + '}'`` for the dataclass ``cls``,
    keys in sorted order.

    Each member is encoded by code chosen from its type hint (``_field_text``): a ``str``
    field is escaped inline, an ``int`` one written inline, a datetime, a nested dataclass
    or a tuple of them encoded without the per-value dispatch of ``_json_text``. Every
    such shortcut is guarded by an exact type check, and a value of another type (a bool in
    an int field, a subclass, a list where a tuple was hinted) takes ``_json_text``: the
    hints make it faster, never different. Hints that cannot be resolved leave every member
    to the str/int/other check.
    """
    names = sorted(f.name for f in dataclasses.fields(cls))
    try:
        hints: dict[str, Any] = get_type_hints(cls)
    except Exception:  # unresolvable hints: the untyped form, the same output
        hints = {}
    _COMPILING.add(cls)  # a member of this type again (recursive hints): through T
    try:
        return _compile_fstring(cls, names, hints)
    finally:
        _COMPILING.discard(cls)


_COMPILING: set[type] = set()


def _compile_fstring(cls: type, names: list[str], hints: dict[str, Any]) -> Callable[[Any], str]:
    scope: dict[str, Any] = {"T": _json_text, "E": _ESCAPE, "R": int.__repr__, "Q": '"'}
    gen = _TextGen(scope)
    lines = ["def encode(v, T=T, E=E, R=R, Q=Q):"]
    # One f-string: keys are literal text, each member an expression. An int member is
    # formatted by the f-string itself (``format(int)`` is its decimal text).
    body = []
    for i, name in enumerate(names):
        lines.append(f"    x{i} = v.{name}")
        key = ("{" if i == 0 else ",") + json.dumps(name) + ":"
        body.append(key.replace("{", "{{"))
        tp = hints.get(name, Any)
        x = f"x{i}"
        member = f"{x} if type({x}) is int else T({x})" if tp is int else gen.expr(tp, x, 0)
        body.append("{" + member + "}")
    body.append("}}" if names else "{{}}")
    lines.append(f'    return f"""{"".join(body)}"""')
    exec("\n".join(lines), scope)  # noqa: S102 - code built from field names and hints only
    encode: Callable[[Any], str] = scope["encode"]
    encode.__qualname__ = f"text_{cls.__name__}"
    return encode


class _TextGen:
    """Source of the expression giving the JSON text of a value, from its type hint."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    def name(self, value: Any) -> str:
        """A name for ``value`` in the generated function's globals."""
        key = f"G{len(self.scope)}"
        self.scope[key] = value
        return key

    def expr(self, tp: Any, x: str, depth: int) -> str:
        other = f"T({x})"
        if tp is str:
            return f"(E({x}) if type({x}) is str else {other})"
        if tp is int:
            return f"(R({x}) if type({x}) is int else {other})"
        if tp is bool:
            return f"(('true' if {x} else 'false') if type({x}) is bool else {other})"
        if tp is datetime or tp is date:
            return f"((Q + {x}.isoformat() + Q) if type({x}) is {self.name(tp)} else {other})"
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is typing.Literal and args and all(type(a) is str for a in args):
            return self.expr(str, x, depth)
        if origin in (Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1 and len(args) == 2:
                return f"('null' if {x} is None else {self.expr(inner[0], x, depth)})"
            return other
        if origin is tuple and depth < 3:
            y = f"y{depth}"
            if len(args) == 2 and args[1] is Ellipsis:
                item = self.expr(args[0], y, depth + 1)
                return (
                    f"(('[' + ','.join([{item} for {y} in {x}]) + ']') "
                    f"if type({x}) is tuple else {other})"
                )
            if args and Ellipsis not in args:
                items = " + ',' + ".join(
                    self.expr(a, f"{x}[{k}]", depth + 1) for k, a in enumerate(args)
                )
                fits = f"type({x}) is tuple and len({x}) == {len(args)}"
                return f"(('[' + {items} + ']') if {fits} else {other})"
            return other
        if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in _COMPILING:
            enc = _TEXTS.get(tp)
            if enc is None:
                enc = _TEXTS[tp] = _compile_text_encoder(tp)
            return f"({self.name(enc)}({x}) if type({x}) is {self.name(tp)} else {other})"
        return other


def dumps_plain(plain: Any) -> str:
    """Canonical JSON of a value that is already JSON-ready (``to_plain`` output), so a
    part encoded once (the quote of a sale) can go into several documents."""
    return _JSON.encode(plain)


_ESCAPE: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)


def _text(value: Any) -> str:
    """Canonical JSON of one JSON-ready value; scalars without the encoder's set-up."""
    kind = type(value)
    if kind is str:
        return _ESCAPE(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return _JSON.encode(value)


def dumps_with(plain: dict[str, Any], /, **texts: str) -> str:
    """Canonical JSON of the JSON-ready object ``plain`` in which the members named in
    ``texts`` are given as canonical JSON text already (a part shared by several documents
    is encoded once). Byte-identical to ``dumps_plain`` of the whole object."""
    items = [(k, texts[k] if k in texts else _text(v)) for k, v in plain.items()]
    items.extend((k, t) for k, t in texts.items() if k not in plain)
    items.sort()
    return "{" + ",".join([f"{_ESCAPE(k)}:{t}" for k, t in items]) + "}"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_plain_with(value: Any, /, **parts: Any) -> dict[str, Any]:
    """``to_plain(value)`` of a dataclass, with the named fields taken from ``parts``
    (their JSON-ready form, made once by the caller and shared by several documents)."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return {n: parts[n] if n in parts else to_plain(getattr(value, n)) for n in names}


def digest(text: str) -> str:
    """SHA-256 hex of canonical JSON text (payload hashes, request fingerprints)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- decoding
_DECODERS: dict[type, Callable[[dict[str, Any]], Any]] = {}
_Conv = Callable[[Any], Any] | None  # None: the JSON value is used as it is


def _to_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _converter(tp: Any) -> _Conv:
    """The function turning a JSON value into a value of type ``tp`` (None: identity)."""
    if tp is Any:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        conv = _converter(inner[0])
        if conv is None:
            return None
        c = conv
        return lambda v: None if v is None else c(v)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])
            if item is None:
                return tuple
            c = item
            return lambda v: tuple(map(c, v))
        convs = [_converter(a) or _identity for a in args]
        return lambda v: tuple(c(x) for c, x in zip(convs, v, strict=True))
    if origin is frozenset:
        item = _converter(get_args(tp)[0]) or _identity
        return lambda v: frozenset(map(item, v))
    if origin is dict:
        key_t, val_t = get_args(tp)
        kc = _converter(key_t) or _identity
        vc = _converter(val_t) or _identity
        return lambda v: {kc(k): vc(x) for k, x in v.items()}
    if origin is typing.Literal:
        return None
    if tp is datetime:
        return datetime.fromisoformat
    if tp is date:
        return date.fromisoformat
    if tp is int:
        return _to_int
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        return lambda v: from_plain(cls, v)
    return None


def _identity(value: Any) -> Any:
    return value


def _compile_decoder(cls: type) -> Callable[[dict[str, Any]], Any]:
    """``lambda d: cls(a=conv_a(d["a"]), ...)`` for the dataclass ``cls``; when a key is
    missing (an older document), only the keys present are passed (defaults apply)."""
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    convs = {name: _converter(hints[name]) for name in names}
    scope: dict[str, Any] = {"cls": cls, "KeyError": KeyError, "slow": None}
    args = []
    for i, name in enumerate(names):
        conv = convs[name]
        if conv is None:
            args.append(f"{name}=d[{name!r}]")
        else:
            scope[f"c{i}"] = conv
            args.append(f"{name}=c{i}(d[{name!r}])")
    src = (
        "def decode(d):\n"
        "    try:\n"
        f"        return cls({', '.join(args)})\n"
        "    except KeyError:\n"
        "        return slow(d)\n"
    )

    def slow(data: dict[str, Any]) -> Any:
        kwargs = {}
        for name in names:
            if name in data:
                conv = convs[name]
                kwargs[name] = data[name] if conv is None else conv(data[name])
        return cls(**kwargs)

    scope["slow"] = slow
    exec(src, scope)  # noqa: S102 - code built from dataclass field names only
    decode: Callable[[dict[str, Any]], Any] = scope["decode"]
    decode.__qualname__ = f"decode_{cls.__name__}"
    return decode


def _decode(tp: Any, value: Any) -> Any:
    """Decode one JSON value as type ``tp``: its converter applied, or the value as is when
    ``tp`` needs none."""
    conv = _converter(tp)
    return value if conv is None else conv(value)


def from_plain(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass from ``to_plain`` output; unknown keys are ignored (forward compat)."""
    dec = _DECODERS.get(cls)
    if dec is None:
        dec = _DECODERS[cls] = _compile_decoder(cls)
    result: T = dec(data)
    return result


def loads(cls: type[T], text: str) -> T:
    return from_plain(cls, json.loads(text))
