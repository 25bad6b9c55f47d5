"""Programme versions in the console: a draft checked as ``kassa rules check`` checks a
file, its difference from the active version, a cheque previewed against it with the
tills' engine, and publication with an effective time.

The schedule (``rules_activations``): publishing a version adds an activation with its
``effective_at``; the version tills run at time t is the one of the latest activation
effective by t (``context.Programmes.active_version``, which the ingest, the projector,
the verifier, the KPI report, ``GET /v1/rules`` and the enrolment all read). An
activation enters the change feed (a ``rules`` change, which tills install and run) only
once it is effective: at publication when it is due at once, else at the first feed read,
``/v1/rules`` or enrolment after its time (``announce_due``), so no till runs a version
before its time. Each publication by a person writes its audit row in its transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent import codec, engine
from agent.errors import InputError
from agent.model import Cart, CartLine, MemberState, PointLot, Quote
from agent.rules import Programme, load_programme_text, programme_to_dict
from sync.backoffice.context import Context, moment_text
from sync.backoffice.db import Tx
from sync.backoffice.people import audit
from sync.protocol import ProtocolError

PAST_LEEWAY = timedelta(minutes=1)
"""How far in the past an effective time may be given (a form filled a moment ago); an
earlier one is refused rather than silently made 'now'."""
MAX_PREVIEW_LINES = 50


class ProgrammeError(InputError):
    """A draft, a preview or a publication the console refuses (the field named)."""

    code = "bad_programme"
    title_ru = "Правила не приняты"
    title_en = "Rules refused"


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked draft: the programme, its canonical JSON document (what tills receive)
    and the rows of its difference from the active version (``diff``)."""

    programme: Programme
    document: str
    changes: tuple[Change, ...]
    active_version: int | None


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: a readable key path (``tiers[silver].accrual_bp``), the active
    version's value and the draft's (``None``: absent), as display text."""

    path: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class Activation:
    """One publication: the version, its name, when it takes (``effective_at``) and was
    published (aware UTC), by whom, and its state now: ``active`` (tills run it),
    ``scheduled`` (its time has not come) or ``past`` (a later one took over)."""

    version: int
    name: str
    effective_at: datetime
    published_at: datetime
    published_by: str
    state: str


# ---------------------------------------------------------------------- drafts


def read_draft(ctx: Context, text: str, fmt: str) -> Draft:
    """Check ``text`` (``fmt``: ``json``, ``toml`` or ``auto``: JSON when it starts with
    ``{``) with the checks of ``kassa rules check`` (``agent.rules.load_programme_text``),
    refuse a version number already published with other content, and compare it with
    the active version. Raises ``RulesError`` / ``ProgrammeError``."""
    if not text.strip():
        raise ProgrammeError("the rules text is empty", "текст правил пуст", field="text")
    if fmt not in ("json", "toml", "auto"):
        raise ProgrammeError("format must be JSON or TOML", "формат: JSON или TOML", field="fmt")
    if fmt == "auto":
        fmt = "json" if text.lstrip().startswith("{") else "toml"
    programme = load_programme_text(text, fmt, "console")
    document = codec.dumps(programme_to_dict(programme))
    with ctx.db.reading() as tx:
        row = tx.one("SELECT document FROM rules WHERE version = ?", (programme.version,))
        active = ctx.programmes.active_version(tx)
        active_doc = None if active is None else ctx.programmes.document(active, tx)
    if row is not None and row[0] != document:
        raise ProgrammeError(
            f"version {programme.version} is already published with other content: "
            "give the new version another number",
            f"версия {programme.version} уже опубликована с другим содержанием: "
            "дайте новой версии другой номер",
            field="version",
            version=programme.version,
        )
    old = {} if active_doc is None else json.loads(active_doc)
    return Draft(programme, document, tuple(diff(old, json.loads(document))), active)


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of tables keyed by their ``code`` or ``id`` (tiers, campaigns), else None."""
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        key = item.get("code", item.get("id"))
        if not isinstance(key, str) or key in out:
            return None
        out[key] = item
    return out


def _flat(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{path}.{k}" if path else str(k), out)
        return
    if isinstance(value, list):
        keyed = _keyed(value)
        if keyed is not None and value:
            for k, v in keyed.items():
                _flat(v, f"{path}[{k}]", out)
            return
        out[path] = ", ".join(str(v) for v in value) if value else "—"
        return
    out[path] = json.dumps(value, ensure_ascii=False) if isinstance(value, bool) else str(value)


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The keys whose values differ between two rules documents, tables of lists matched
    by code or id (a tier renamed is one change, not the whole list), in the new
    document's order, then the keys it dropped."""
    a: dict[str, str] = {}
    b: dict[str, str] = {}
    _flat(old, "", a)
    _flat(new, "", b)
    rows = [Change(k, a.get(k), v) for k, v in b.items() if a.get(k) != v]
    rows += [Change(k, v, None) for k, v in a.items() if k not in b]
    return rows


def active_document(ctx: Context) -> tuple[int, dict[str, Any]] | None:
    """The active version and its document (a dict, for the readable view)."""
    with ctx.db.reading() as tx:
        version = ctx.programmes.active_version(tx)
        if version is None:
            return None
        return version, json.loads(ctx.programmes.document(version, tx))


def version_document(ctx: Context, version: int) -> dict[str, Any] | None:
    """A published version's document, or None when there is no such version."""
    try:
        with ctx.db.reading() as tx:
            return dict(json.loads(ctx.programmes.document(version, tx)))
    except KeyError:
        return None


# ---------------------------------------------------------------------- preview


def parse_rub(text: str, field: str) -> int:
    """Rubles as typed (``4999``, ``4999.90``, ``4 999,9``) in kopecks, without floats."""
    t = text.strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    whole, _, frac = t.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)) or len(t) > 12:
        raise ProgrammeError(
            f"{field}: {text!r} is not an amount in rubles (e.g. 4999.90)",
            f"{field}: «{text}» — не сумма в рублях (например, 4999,90)",
            field=field,
        )
    return int(whole) * 100 + int((frac + "00")[:2])


def preview_lines(text: str) -> tuple[CartLine, ...]:
    """Cheque lines typed one a line as ``category price [qty] [sale]`` (price in rubles),
    e.g. ``dresses 4999.90 2 sale``; refused naming the line."""
    lines: list[CartLine] = []
    for i, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        where = f"line {i}"
        sale = parts[-1].lower() in ("sale", "распродажа", "скидка")
        if sale:
            parts = parts[:-1]
        if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()):
            raise ProgrammeError(
                f"{where}: write 'category price [qty] [sale]', e.g. 'dresses 4999.90 1'",
                f"строка {i}: пишите «категория цена [кол-во] [sale]», "
                "например «dresses 4999,90 1»",
                field="lines",
                line=i,
            )
        price = parse_rub(parts[1], f"строка {i} / line {i}")
        qty = int(parts[2]) if len(parts) == 3 else 1
        if not 1 <= qty <= 999 or price <= 0:
            raise ProgrammeError(
                f"{where}: the price must be above zero and the quantity 1..999",
                f"строка {i}: цена должна быть больше нуля, количество от 1 до 999",
                field="lines",
                line=i,
            )
        n = len(lines) + 1
        lines.append(CartLine(n, f"PREVIEW-{n}", parts[0], parts[0], price, qty, price * qty, sale))
        if len(lines) > MAX_PREVIEW_LINES:
            raise ProgrammeError(
                f"at most {MAX_PREVIEW_LINES} lines",
                f"не больше {MAX_PREVIEW_LINES} строк",
                field="lines",
            )
    if not lines:
        raise ProgrammeError("give at least one line", "укажите хотя бы одну строку", field="lines")
    return tuple(lines)


def preview(
    programme: Programme,
    lines_text: str,
    at: datetime,
    *,
    points: int = 0,
    spend_kop: int = 0,
    redeem: int = 0,
) -> Quote:
    """A cheque scored by ``agent.engine.quote`` (the tills' engine) under ``programme``
    at ``at``, for a member holding ``points`` spendable points and ``spend_kop`` kopecks
    spent in the tier window (which sets the tier), spending ``redeem`` points."""
    for name, value, hi in (("points", points, 10**9), ("spend", spend_kop, 10**13)):
        if not 0 <= value <= hi:
            raise ProgrammeError(f"{name} must be 0..{hi}", f"{name}: от 0 до {hi}", field=name)
    lots: tuple[PointLot, ...] = ()
    if points:
        lots = (
            PointLot(
                "preview",
                points,
                at - timedelta(days=1),
                at - timedelta(days=1),
                at + timedelta(days=365),
                "purchase",
            ),
        )
    spend = ((engine.local_date(programme, at - timedelta(days=1)).isoformat(), spend_kop),)
    state = MemberState("preview", lots, spend if spend_kop else ())
    cart = Cart("preview", preview_lines(lines_text))
    return engine.quote(cart, state, programme, at, redeem_points=redeem)


# ---------------------------------------------------------------------- publication


def publish(
    ctx: Context,
    programme: Programme,
    *,
    effective_at: datetime | None = None,
    actor: str = "cli",
    audited: bool = False,
) -> Activation:
    """Publish ``programme`` to take effect at ``effective_at`` (now when None), in one
    transaction with its audit row when ``audited`` (a person in the console). A version
    number already used with other content is refused (409 ``rules_version_exists``); an
    effective time more than ``PAST_LEEWAY`` ago is refused (``ProgrammeError``). Due at
    once: announced to tills in the same transaction."""
    now = ctx.clock.now()
    at = now if effective_at is None else effective_at
    if at.tzinfo is None:
        raise ProgrammeError("effective time needs a time zone", "не указан часовой пояс")
    if at < now - PAST_LEEWAY:
        raise ProgrammeError(
            "the effective time is in the past: give a later one, or leave it empty for now",
            "время вступления в силу уже прошло: укажите более позднее или оставьте пустым (сразу)",
            field="effective_at",
        )
    at = max(at, now)
    doc = codec.dumps(programme_to_dict(programme))
    with ctx.db.transaction(feed=True) as tx:
        current = ctx.programmes.get(None, tx)
        if current is not None and current.phone_hash != programme.phone_hash:
            # Every fingerprint on the tills and here was made at the active cost.
            raise ProgrammeError(
                "[phone_hash] must stay as the active programme has it: a new cost would "
                "make every stored phone fingerprint miss",
                "[phone_hash] нельзя менять: отпечатки телефонов всех участников перестанут "
                "совпадать",
                field="phone_hash",
            )
        row = tx.one("SELECT document FROM rules WHERE version = ?", (programme.version,))
        if row is not None and row[0] != doc:
            raise ProtocolError(
                409,
                "rules_version_exists",
                f"rules version {programme.version} exists with other content",
            )
        if row is None:
            tx.execute(
                "INSERT INTO rules(version, document, published_at) VALUES (?,?,?)",
                (programme.version, doc, now.isoformat()),
            )
        tx.execute(
            "INSERT INTO rules_activations(version, effective_at, published_at, published_by,"
            " announced) VALUES (?,?,?,?,0)",
            (programme.version, moment_text(at), moment_text(now), actor),
        )
        _announce(ctx, tx, now)
        if audited:
            audit.record(
                tx,
                now,
                actor,
                "rules_published",
                f"v{programme.version}",
                {"name": programme.name, "effective_at": at.isoformat()},
            )
    return Activation(
        programme.version,
        programme.name,
        at,
        now,
        actor,
        "active" if at <= now else "scheduled",
    )


def _announce(ctx: Context, tx: Tx, now: datetime) -> int | None:
    """Inside a feed transaction: the activations due by ``now`` not yet announced are
    marked so, and the version active now goes into the feed (and the ``active`` flag);
    returns it, or None when nothing was due."""
    due = tx.all(
        "SELECT id FROM rules_activations WHERE announced = 0 AND effective_at <= ?",
        (moment_text(now),),
    )
    if not due:
        return None
    version = ctx.programmes.active_version(tx)
    assert version is not None
    tx.execute("UPDATE rules SET active = CASE WHEN version = ? THEN 1 ELSE 0 END", (version,))
    body = json.dumps({"version": version, "document": ctx.programmes.document(version, tx)})
    tx.execute(
        "INSERT INTO changes(kind, member_id, body, created_at) VALUES ('rules', NULL, ?, ?)",
        (body, now.isoformat()),
    )
    marks = ",".join("?" * len(due))
    tx.execute(
        f"UPDATE rules_activations SET announced = 1 WHERE id IN ({marks})",
        [int(r[0]) for r in due],
    )
    return version


def announce_due(ctx: Context) -> int | None:
    """Announce the activations whose time has come (see the module doc): one indexed
    read when none is due; else one feed transaction (two callers at once: the second
    finds nothing left). Returns the version announced, or None."""
    now = ctx.clock.now()
    with ctx.db.reading() as tx:
        row = tx.one(
            "SELECT 1 FROM rules_activations WHERE announced = 0 AND effective_at <= ? LIMIT 1",
            (moment_text(now),),
        )
    if row is None:
        return None
    with ctx.db.transaction(feed=True) as tx:
        return _announce(ctx, tx, now)


def schedule(ctx: Context, limit: int = 50) -> list[Activation]:
    """The newest ``limit`` publications, latest effective first, each with its state."""
    now = ctx.clock.now()
    with ctx.db.reading() as tx:
        active = ctx.programmes.active_version(tx)
        rows = tx.all(
            "SELECT a.id, a.version, a.effective_at, a.published_at, a.published_by, "
            "r.document FROM rules_activations a JOIN rules r ON r.version = a.version "
            "ORDER BY a.effective_at DESC, a.id DESC LIMIT ?",
            (limit,),
        )
    out: list[Activation] = []
    seen_active = False
    for _id, version, eff, pub, by, doc in rows:
        at = datetime.fromisoformat(eff)
        if at > now:
            state = "scheduled"
        elif not seen_active and int(version) == active:
            state, seen_active = "active", True
        else:
            state = "past"
        name = str(json.loads(doc).get("name", ""))
        out.append(Activation(int(version), name, at, datetime.fromisoformat(pub), by, state))
    return out


def moment_of(text: str, tz: ZoneInfo) -> datetime | None:
    """A local date and time as typed (``2026-07-01T00:00`` or ``2026-07-01``, in ``tz``)
    as an aware moment; None for an empty field."""
    t = text.strip()
    if not t:
        return None
    try:
        at = datetime.fromisoformat(t)
    except ValueError:
        raise ProgrammeError(
            f"{text!r} is not a date and time (YYYY-MM-DD HH:MM)",
            f"«{text}» — не дата и время (ГГГГ-ММ-ДД ЧЧ:ММ)",
            field="effective_at",
        ) from None
    return at.replace(tzinfo=tz) if at.tzinfo is None else at


def _whole(text: str, field: str) -> int:
    t = text.strip() or "0"
    if not t.isdigit() or len(t) > 12:
        raise ProgrammeError(f"{field}: a whole number", f"{field}: целое число", field=field)
    return int(t)


def preview_form(
    ctx: Context,
    text: str,
    fmt: str,
    lines: str,
    at_text: str,
    points: str,
    spend: str,
    redeem: str,
) -> tuple[Draft, Quote, datetime]:
    """The draft checked and a cheque scored under it at ``at_text`` (local time in the
    draft's zone; empty: now), as typed in the console."""
    draft = read_draft(ctx, text, fmt)
    at = moment_of(at_text, draft.programme.tz) or ctx.clock.now()
    q = preview(
        draft.programme,
        lines,
        at,
        points=_whole(points, "points"),
        spend_kop=parse_rub(spend or "0", "spend"),
        redeem=_whole(redeem, "redeem"),
    )
    return draft, q, at


def publish_form(ctx: Context, text: str, fmt: str, effective_text: str, actor: str) -> Activation:
    """The draft checked and published, effective at ``effective_text`` (local time in the
    draft's zone; empty: now), audited as ``actor``."""
    draft = read_draft(ctx, text, fmt)
    at = moment_of(effective_text, draft.programme.tz)
    return publish(ctx, draft.programme, effective_at=at, actor=actor, audited=True)
