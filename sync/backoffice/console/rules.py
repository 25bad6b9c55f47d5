"""The programme-rules section: the active programme shown readably with its
publications, and a new version edited as text (or loaded from a file), checked as
``kassa rules check`` checks it with its difference from the active one, a cheque
previewed against it with the tills' engine, and published with an effective time
(audited). Each action is one service call."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.errors import AgentError
from agent.money import format_rub
from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.people.roles import allows

SECTION = "rules"
GENERAL = (
    "version",
    "name",
    "timezone",
    "point_value_kop",
    "tier_window_days",
    "redeem_cap_bp",
    "min_payable_line_kop",
    "pending_days",
    "expiry_days",
    "accrue_on_sale_items",
    "redeem_on_sale_items",
    "categories",
    "excluded_categories",
)


def value_text(visit: Visit, key: str, value: Any) -> str:
    """A setting as people read it: kopecks in rubles, basis points in percent, flags as
    yes/no, lists joined, tables as ``key: value`` pairs."""
    if isinstance(value, bool):
        return visit.t("rules_yes") if value else visit.t("rules_no")
    if isinstance(value, int) and key.endswith("_kop"):
        return format_rub(value, lang=visit.lang)
    if isinstance(value, int) and key.endswith("_bp"):
        whole, frac = divmod(value, 100)
        return f"{whole}" + (f".{frac:02d}".rstrip("0") if frac else "") + " %"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or visit.t("rules_none")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {value_text(visit, k, v)}" for k, v in value.items())
    return str(value)


def editor_text(doc: dict[str, Any] | None) -> str:
    """The editor's starting text: the active document as indented JSON, one version up."""
    if doc is None:
        return ""
    return json.dumps(doc | {"version": int(doc["version"]) + 1}, ensure_ascii=False, indent=2)


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    async def view(visit: Visit, status: int = 200, **values: Any) -> Response:
        assert visit.user is not None
        active, published = await pages.call(bo.rules_overview)
        doc = active[1] if active else None
        values.setdefault("error", None)
        values.setdefault("notice", None)
        values.setdefault("draft", None)
        values.setdefault("quote", None)
        values.setdefault("form", {"text": editor_text(doc), "fmt": "auto"})
        return pages.render(
            visit,
            "rules.html",
            status=status,
            doc=doc,
            published=published,
            general=GENERAL,
            show=lambda k, v: value_text(visit, k, v),
            rub=lambda kop: format_rub(kop, lang=visit.lang),
            can_write=allows(visit.user.role, SECTION, "write"),
            **values,
        )

    def kept(form: dict[str, str]) -> dict[str, str]:
        names = ("text", "fmt", "lines", "at", "points", "spend", "redeem", "effective_at")
        return {k: form.get(k, "") for k in names}

    @pages.page(SECTION)
    async def rules_page(request: Request, visit: Visit) -> Response:
        v = request.query_params.get("published", "")
        notice = None
        if v.isdigit():
            at = request.query_params.get("at", "")
            notice = (
                visit.t("rules_published_later", v=v, at=at)
                if at
                else visit.t("rules_published_now", v=v)
            )
        return await view(visit, notice=notice)

    @pages.page(SECTION)
    async def rules_check(request: Request, visit: Visit) -> Response:
        form = kept(request.state.form)
        try:
            draft = await pages.call(bo.rules_check, form["text"], form["fmt"] or "auto")
        except AgentError as e:
            return await view(visit, 400, error=e.message(visit.lang), form=form)
        return await view(visit, draft=draft, form=form)

    @pages.page(SECTION)
    async def rules_preview(request: Request, visit: Visit) -> Response:
        form = kept(request.state.form)
        try:
            draft, quote, at = await pages.call(
                bo.rules_preview,
                form["text"],
                form["fmt"] or "auto",
                form["lines"],
                form["at"],
                form["points"],
                form["spend"],
                form["redeem"],
            )
        except AgentError as e:
            return await view(visit, 400, error=e.message(visit.lang), form=form)
        local = at.astimezone(draft.programme.tz).strftime("%Y-%m-%d %H:%M")
        return await view(visit, draft=draft, quote=quote, quote_at=local, form=form)

    @pages.page(SECTION, write=True)
    async def rules_publish(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form = kept(request.state.form)
        try:
            done = await pages.call(
                bo.rules_publish,
                form["text"],
                form["fmt"] or "auto",
                form["effective_at"],
                actor=visit.user.login,
            )
        except AgentError as e:
            return await view(visit, 400, error=e.message(visit.lang), form=form)
        target = f"{PREFIX}/rules?published={done.version}"
        if done.state == "scheduled":
            target += "&at=" + done.effective_at.astimezone(UTC).strftime("%Y-%m-%d%%20%H:%M")
        return RedirectResponse(target, 303)

    @pages.page(SECTION)
    async def rules_version(request: Request, visit: Visit) -> Response:
        raw = request.path_params["version"]
        doc = await pages.call(bo.rules_version_document, int(raw)) if raw.isdigit() else None
        if doc is None:
            return await view(visit, 404, error=visit.t("rules_not_found"))
        return pages.render(
            visit,
            "rules_version.html",
            doc=doc,
            general=GENERAL,
            show=lambda k, v: value_text(visit, k, v),
            rub=lambda kop: format_rub(kop, lang=visit.lang),
        )

    return [
        Route("/rules", rules_page, methods=["GET"]),
        Route("/rules/check", rules_check, methods=["POST"]),
        Route("/rules/preview", rules_preview, methods=["POST"]),
        Route("/rules/publish", rules_publish, methods=["POST"]),
        Route("/rules/v/{version}", rules_version, methods=["GET"]),
    ]
