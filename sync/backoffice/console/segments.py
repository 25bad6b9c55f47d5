"""The segments section: the saved segments, creating and changing one on a form with a
live count of its members (htmx: the form's fields sent as they change), evaluating its
membership, downloading its members (CSV for Excel with ``;`` or ``,``, NDJSON) and
scheduling exports. Marketing and the owner change segments; analysts read them.

The form's inputs are named by the rule's path (``frequency.min``), so an error naming
a field (``SegmentError.details["field"]``) marks that input. Amounts are typed in
roubles (``1500`` or ``1500,50``) and sent to the rules in kopecks; lists are typed
comma-separated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.errors import AgentError
from sync.backoffice.audiences import Rules
from sync.backoffice.console.guard import HEADERS, PREFIX, Pages, Visit
from sync.backoffice.people.roles import allows

SECTION = "segments"
RANGES = ("recency_days", "frequency", "monetary_kop", "balance", "collection")
"""The rules typed as a range (``<rule>.min`` / ``<rule>.max``)."""
WINDOWED = ("frequency", "monetary_kop")
LISTS = ("tiers", "registered_at", "birthday_months", "abc", "rfm.r", "rfm.f", "rfm.m")
"""The rules typed as comma-separated lists (numbers for months and RFM)."""
_INT = re.compile(r"-?\d+")
_RUB = re.compile(r"(-?\d+)(?:[.,](\d{1,2}))?")


def _number(text: str, *, rub: bool = False) -> int | str:
    """A typed number (kopecks when ``rub``), or the text itself so the rule check names
    the field that is not one."""
    text = text.strip().replace(" ", "").replace("\u00a0", "")
    if rub and (m := _RUB.fullmatch(text)):
        whole, frac = m[1], (m[2] or "").ljust(2, "0")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * 100 + sign * int(frac)
    return int(text) if _INT.fullmatch(text) else text


def _items(text: str, *, numbers: bool) -> list[Any]:
    parts = [p.strip() for p in re.split(r"[,;\s]+", text) if p.strip()]
    return [_number(p) for p in parts] if numbers else parts


def rules_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The rule set the form describes (empty inputs: no such rule)."""
    got = {k: v.strip() for k, v in form.items() if v.strip()}
    doc: dict[str, Any] = {"marketing_consent": form.get("marketing_consent") == "1"}
    for rule in RANGES:
        part = {
            end: _number(got[f"{rule}.{end}"], rub=rule == "monetary_kop")
            for end in ("min", "max")
            if f"{rule}.{end}" in got
        }
        if rule == "collection" and "collection.mechanic" in got:
            part["mechanic"] = got["collection.mechanic"]
        if part:
            if rule in WINDOWED and f"{rule}.window_days" in got:
                part["window_days"] = _number(got[f"{rule}.window_days"])
            doc[rule] = part
    for name in LISTS:
        if name in got:
            values = _items(
                got[name], numbers=name in ("birthday_months", "rfm.r", "rfm.f", "rfm.m")
            )
            if name.startswith("rfm."):
                doc.setdefault("rfm", {})[name[4:]] = values
            else:
                doc[name] = [v.upper() for v in values] if name == "abc" else values
    if "purchased_at.stores" in got:
        doc["purchased_at"] = {"stores": _items(got["purchased_at.stores"], numbers=False)}
        if "purchased_at.window_days" in got:
            doc["purchased_at"]["window_days"] = _number(got["purchased_at.window_days"])
    if "expiring.within_days" in got:
        doc["expiring"] = {"within_days": _number(got["expiring.within_days"])}
        if "expiring.min_points" in got:
            doc["expiring"]["min_points"] = _number(got["expiring.min_points"])
    return doc


def _rub_text(kop: int) -> str:
    whole, frac = divmod(abs(kop), 100)
    return ("-" if kop < 0 else "") + (f"{whole},{frac:02d}" if frac else str(whole))


def form_from_rules(rules: Rules) -> dict[str, str]:
    """The form's inputs for a saved rule set (the inverse of ``rules_from_form``)."""
    out: dict[str, str] = {"marketing_consent": "1" if rules.marketing_consent else ""}
    for rule in RANGES:
        r = getattr(rules, rule)
        if r is None:
            continue
        for end in ("min", "max"):
            value = getattr(r, end)
            if value is not None:
                out[f"{rule}.{end}"] = _rub_text(value) if rule == "monetary_kop" else str(value)
        if rule in WINDOWED:
            out[f"{rule}.window_days"] = str(r.window_days)
    if rules.collection is not None:
        out["collection.mechanic"] = rules.collection.mechanic
    for name in LISTS:
        head, _, part = name.partition(".")
        values = getattr(rules.rfm, part, None) if part else getattr(rules, head)
        if values is not None:
            out[name] = ", ".join(str(v) for v in values)
    if rules.purchased_at is not None:
        out["purchased_at.stores"] = ", ".join(rules.purchased_at.stores)
        if rules.purchased_at.window_days is not None:
            out["purchased_at.window_days"] = str(rules.purchased_at.window_days)
    if rules.expiring is not None:
        out["expiring.within_days"] = str(rules.expiring.within_days)
        out["expiring.min_points"] = str(rules.expiring.min_points)
    return out


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    def shared(visit: Visit) -> dict[str, Any]:
        assert visit.user is not None
        programme = bo.rules()
        return {
            "can_write": allows(visit.user.role, SECTION, "write"),
            "tiers": ", ".join(t.code for t in programme.tiers) if programme else "",
            "mechanics": ", ".join(c.id for c in programme.collections) if programme else "",
        }

    async def list_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        found = await pages.call(bo.segments)
        values.setdefault("error", None)
        values.setdefault("error_field", None)
        values.setdefault("form", {"marketing_consent": "1", "frequency.window_days": "365"})
        values.setdefault("count", None)
        return pages.render(
            visit,
            "segments.html",
            status=status,
            segments=found,
            seg=None,
            **shared(visit),
            **values,
        )

    async def segment_view(
        visit: Visit, segment_id: str, status: int = 200, **values: Any
    ) -> Response:
        seg = await pages.call(bo.segment, segment_id)
        if seg is None:
            return await list_view(visit, 404, error=visit.t("segments_not_found"))
        values.setdefault("error", None)
        values.setdefault("error_field", None)
        values.setdefault("notice", None)
        values.setdefault(
            "form",
            {"name": seg.name, "control_pct": str(seg.control_pct), **form_from_rules(seg.rules)},
        )
        values.setdefault("count", None)
        exports = await pages.call(bo.segment_exports, segment_id)
        return pages.render(
            visit,
            "segment.html",
            status=status,
            seg=seg,
            exports=exports,
            **shared(visit),
            **values,
        )

    @pages.page(SECTION)
    async def segments_page(request: Request, visit: Visit) -> Response:
        return await list_view(visit)

    @pages.page(SECTION)
    async def preview(request: Request, visit: Visit) -> Response:
        form = dict(request.query_params)
        try:
            n = await pages.call(bo.segment_preview, rules_from_form(form))
        except AgentError as e:
            return pages.render(
                visit,
                "segment_preview.html",
                count=None,
                error=e.message(visit.lang),
                error_field=e.details.get("field"),
            )
        return pages.render(visit, "segment_preview.html", count=n, error=None, error_field=None)

    async def save(request: Request, visit: Visit, segment_id: str | None) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        try:
            seg = await pages.call(
                bo.segment_save,
                form.get("name", ""),
                rules_from_form(form),
                form.get("control_pct", "0"),
                actor=visit.user.login,
                segment_id=segment_id,
                salt=form.get("salt", "").strip() or None,
            )
        except AgentError as e:
            failed = {
                "error": e.message(visit.lang),
                "error_field": e.details.get("field"),
                "form": form,
            }
            if segment_id is None:
                return await list_view(visit, 400, **failed)
            return await segment_view(visit, segment_id, 400, **failed)
        return RedirectResponse(f"{PREFIX}/segments/{seg.segment_id}?saved=1", 303)

    @pages.page(SECTION, write=True)
    async def create(request: Request, visit: Visit) -> Response:
        return await save(request, visit, None)

    @pages.page(SECTION, write=True)
    async def change(request: Request, visit: Visit) -> Response:
        return await save(request, visit, request.path_params["segment_id"])

    @pages.page(SECTION)
    async def segment_page(request: Request, visit: Visit) -> Response:
        notice = None
        q = request.query_params
        if q.get("saved"):
            notice = visit.t("segments_saved")
        elif q.get("scheduled"):
            notice = visit.t("segments_scheduled_ok")
        elif q.get("members", "").isdigit():
            notice = visit.t(
                "segments_evaluated",
                n=int(q["members"]),
                entered=int(q.get("entered", "0") or 0),
                left=int(q.get("left", "0") or 0),
            )
        return await segment_view(visit, request.path_params["segment_id"], notice=notice)

    @pages.page(SECTION, write=True)
    async def evaluate(request: Request, visit: Visit) -> Response:
        segment_id = request.path_params["segment_id"]
        try:
            ev = await pages.call(bo.segment_evaluate, segment_id)
        except AgentError as e:
            return await list_view(visit, 404, error=e.message(visit.lang))
        return RedirectResponse(
            f"{PREFIX}/segments/{segment_id}?members={ev.members}&entered={ev.entered}"
            f"&left={ev.left}",
            303,
        )

    @pages.page(SECTION, write=True)
    async def schedule(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        segment_id = request.path_params["segment_id"]
        form: dict[str, str] = request.state.form
        try:
            await pages.call(
                bo.segment_schedule_export,
                segment_id,
                form.get("format", "csv"),
                form.get("delimiter", ";"),
                form.get("every_hours", ""),
                actor=visit.user.login,
            )
        except AgentError as e:
            return await segment_view(
                visit,
                segment_id,
                400,
                error=e.message(visit.lang),
                error_field=e.details.get("field"),
            )
        return RedirectResponse(f"{PREFIX}/segments/{segment_id}?scheduled=1", 303)

    @pages.page(SECTION)
    async def download(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        segment_id = request.path_params["segment_id"]
        fmt = "ndjson" if request.url.path.endswith(".ndjson") else "csv"
        delimiter = request.query_params.get("delimiter", ";")
        try:
            chunks: Iterator[bytes] = await pages.call(
                bo.segment_export, segment_id, fmt, delimiter, actor=visit.user.login
            )
        except AgentError as e:
            return await list_view(
                visit,
                404 if e.details.get("field") == "segment_id" else 400,
                error=e.message(visit.lang),
            )
        kind = "application/x-ndjson" if fmt == "ndjson" else "text/csv; charset=utf-8"
        return StreamingResponse(
            chunks,
            media_type=kind,
            headers={
                **HEADERS,
                "Content-Disposition": f'attachment; filename="{segment_id}.{fmt}"',
            },
        )

    return [
        Route("/segments", segments_page, methods=["GET"]),
        Route("/segments", create, methods=["POST"]),
        Route("/segments/preview", preview, methods=["GET"]),
        Route("/segments/{segment_id:str}/members.csv", download, methods=["GET"]),
        Route("/segments/{segment_id:str}/members.ndjson", download, methods=["GET"]),
        Route("/segments/{segment_id:str}/evaluate", evaluate, methods=["POST"]),
        Route("/segments/{segment_id:str}/schedule", schedule, methods=["POST"]),
        Route("/segments/{segment_id:str}", segment_page, methods=["GET"]),
        Route("/segments/{segment_id:str}", change, methods=["POST"]),
    ]
