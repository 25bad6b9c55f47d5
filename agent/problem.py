"""The one error document of both HTTP services (the till's POS API and the back office):
an RFC 9457 problem details object, served as ``application/problem+json``.

``problem`` builds it; ``Problem`` is its schema, which both services' OpenAPI documents
declare for every error answer. Beside RFC 9457's members (``type``, ``title``,
``status``, ``detail``, ``instance``) it keeps what clients read before the shape was
adopted, so none of them breaks:

- ``code``: the stable machine code (``bad_json``, ``member_not_found``); ``error``
  repeats it (the field the till's sync client and POS integrations read);
- ``message_ru`` and ``message_en``: the message in Russian (shown at the till) and in
  English (logs); ``message`` repeats the English one (the back office's former field);
- ``details``: machine-readable context (the field, the event's index, a limit), each
  also an extension member at the top level (the back office's former place for them),
  unless its name is one of the members above.

``type`` is a non-resolvable tag URI (RFC 4151) per code, so a client can tell problems
apart by it as RFC 9457 intends, without anything to fetch. Pure: no web framework here.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

PROBLEM_JSON = "application/problem+json"
"""The media type of every error answer (RFC 9457 section 3)."""

TYPE_PREFIX = "tag:kassa,2026:problem:"
"""``type`` is this followed by the code (a tag URI: names the problem, fetches nothing)."""

TITLES: dict[int, str] = {
    400: "Неверный запрос",
    401: "Нужна авторизация",
    403: "Доступ запрещён",
    404: "Не найдено",
    405: "Метод не поддерживается",
    408: "Запрос не пришёл вовремя",
    409: "Конфликт данных",
    410: "Больше недоступно",
    413: "Запрос слишком большой",
    429: "Слишком много запросов",
    500: "Внутренняя ошибка",
    503: "Сервис временно недоступен",
}
"""The short Russian heading of a problem that brings no title of its own, by status."""


class Problem(msgspec.Struct, kw_only=True):
    """Every refusal of the POS API and the back office (RFC 9457 problem details, with
    the fields clients read before it: see the module's docstring). ``status`` is the
    HTTP status repeated; ``instance`` the request's path."""

    type: str
    title: str
    status: Annotated[int, msgspec.Meta(ge=400, le=599)]
    detail: str
    code: str
    error: str
    message: str
    message_ru: str
    message_en: str
    details: dict[str, Any]
    instance: str | msgspec.UnsetType = msgspec.UNSET


RESERVED = frozenset(f.name for f in msgspec.structs.fields(Problem))
"""Member names a detail cannot take at the top level (it stays under ``details``)."""


def problem(
    status: int,
    code: str,
    message_en: str,
    message_ru: str | None = None,
    *,
    title: str | None = None,
    instance: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document of one refusal, ready for JSON. ``status``: the HTTP status;
    ``code``: the stable machine code; ``message_ru``: the Russian message (None where the
    server has only the English one, which then stands in both); ``title``: the heading
    (default: by status, ``TITLES``); ``instance``: the request's path; ``details``: the
    machine-readable context (see the module's docstring)."""
    extra = dict(details or {})
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or TITLES.get(status, "Ошибка"),
        "status": status,
        "detail": message_en,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(
        code=code,
        error=code,
        message=message_en,
        message_ru=message_ru if message_ru is not None else message_en,
        message_en=message_en,
        details=extra,
    )
    for name, value in extra.items():
        if name not in RESERVED:
            body[name] = value
    return body


def bearer_challenge(realm: str, *, invalid: bool) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750 section 3): the realm, and
    ``error="invalid_token"`` when a token was given but is not valid (a request with no
    token at all gets the realm alone)."""
    challenge = f'Bearer realm="{realm}"'
    return f'{challenge}, error="invalid_token"' if invalid else challenge
