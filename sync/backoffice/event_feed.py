"""The member events as CloudEvents 1.0: the pull feed, and the one encoder webhook
delivery uses too (``cloud_event``).

One event (``outbox.Row``) is this JSON object (CloudEvents 1.0, structured JSON mode)::

    {"specversion": "1.0",
     "id": "<member_id>:<member_seq>",
     "source": "urn:kassa:backoffice",
     "type": "ru.kassa.<outbox type>",        # e.g. ru.kassa.member.registered
     "time": "<occurred_at, RFC 3339 UTC>",
     "subject": "<member_id>",
     "datacontenttype": "application/json",
     "data": {...the outbox data..., "member_seq": n}}

``id`` is the member id and the member's sequence number, not the outbox row's number: it
names the event itself (what happened to whom, in which place of the member's history),
so it stays one and the same through every retry and every re-read, and a receiver can
deduplicate on it (``source`` + ``id`` is unique, as CloudEvents requires) and order a
member's events by ``data.member_seq`` and see a gap.

The pull feed (``page``): the events after a cursor (the outbox ``id`` of the last event
seen; 0 from the start) in global order, at most ``limit`` (1 to ``MAX_LIMIT``,
``DEFAULT_LIMIT`` when not given), only of the given types when asked; the answer's
``next`` is the cursor for the following page (the last id returned, or the cursor given
when there is nothing new, so a poller asks again with the same one).
"""

from __future__ import annotations

import re
from typing import Any

from agent.errors import InputError
from sync.backoffice import outbox
from sync.backoffice.db import Database

SPECVERSION = "1.0"
SOURCE = "urn:kassa:backoffice"
TYPE_PREFIX = "ru.kassa."
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 2**63 - 1
_ONE_TYPE = rf"({re.escape(TYPE_PREFIX)})?({'|'.join(re.escape(t) for t in outbox.TYPES)})"
TYPES_PATTERN = rf"^{_ONE_TYPE}(,{_ONE_TYPE})*$"
"""The ``types`` parameters ``types_of`` accepts, as a regular expression."""
TYPE_PATTERN = rf"^{re.escape(TYPE_PREFIX)}({'|'.join(re.escape(t) for t in outbox.TYPES)})$"
"""A CloudEvents ``type`` the feed gives, as a regular expression."""


class FeedQueryError(InputError):
    """A pull-feed request the feed cannot answer: a cursor, limit or type it does not
    know (answered 400 naming the parameter)."""

    code = "bad_feed_query"
    title_ru = "Неверный запрос событий"
    title_en = "Bad event feed request"


def cloud_event(row: outbox.Row, source: str = SOURCE) -> dict[str, Any]:
    """``row`` as a CloudEvents 1.0 JSON object (see the module docstring)."""
    return {
        "specversion": SPECVERSION,
        "id": f"{row.member_id}:{row.member_seq}",
        "source": source,
        "type": TYPE_PREFIX + row.type,
        "time": row.occurred_at,
        "subject": row.member_id,
        "datacontenttype": "application/json",
        "data": {**row.data, "member_seq": row.member_seq},
    }


def _whole(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not (text.isascii() and text.isdecimal() and len(text) <= 19) or not (
        low <= int(text) <= high
    ):
        raise FeedQueryError(
            f"{name}: a whole number from {low} to {high}, not {text!r}",
            f"{name}: целое число от {low} до {high}, а не «{text}»",
            field=name,
        )
    return int(text)


def types_of(text: str | None) -> tuple[str, ...] | None:
    """The ``types`` parameter: comma-separated event types (no spaces), each as the
    outbox names it (``member.registered``) or as CloudEvents ``type`` does
    (``ru.kassa.member.registered``); None when not given. An unknown or empty one raises
    ``FeedQueryError`` (exactly what ``TYPES_PATTERN``, the OpenAPI document's pattern,
    refuses)."""
    if text is None:
        return None
    out: list[str] = []
    for part in text.split(","):
        name = part.removeprefix(TYPE_PREFIX)
        if name not in outbox.TYPES:
            raise FeedQueryError(
                f"types: unknown event type {part!r} (known: {', '.join(outbox.TYPES)})",
                f"types: неизвестный тип события «{part}» (известные: {', '.join(outbox.TYPES)})",
                field="types",
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def page(
    db: Database,
    after: str | None = None,
    limit: str | None = None,
    types: str | None = None,
    *,
    source: str = SOURCE,
) -> dict[str, Any]:
    """One page of the pull feed from the request's parameters as text (None: not
    given): ``{"events": [...CloudEvents], "next": cursor}``; bad parameters raise
    ``FeedQueryError`` before anything is read."""
    cursor = _whole("after", after, 0, 0, MAX_CURSOR)
    n = _whole("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)
    wanted = types_of(types)
    rows = outbox.read_after(db, cursor, n, wanted)
    return {
        "events": [cloud_event(r, source) for r in rows],
        "next": rows[-1].id if rows else cursor,
    }
