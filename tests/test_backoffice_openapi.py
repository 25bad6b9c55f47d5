"""The back office's generated OpenAPI document against the real app: schemathesis draws
requests from the document it serves (valid ones, and invalid ones for the bodies and
parameters), sends them in-process over ASGI with a till's token (the admin token for
``/v1/kpi``, the member-token endpoint and the member events' pull feed ``GET
/v1/events``, which has events to page through), and checks every answer against the document:
no 5xx, a documented status, the documented content type and a body of the documented
schema; a request the document calls invalid must be refused (4xx)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conformance import conform, scaled
from conftest import NOW, FakeClock
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from agent.seed import demo_programme, member_rows
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.backoffice_api import openapi

EXAMPLES = {GenerationMode.POSITIVE: scaled(12), GenerationMode.NEGATIVE: scaled(8)}
TILL = "till-1"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    """The document as the app serves it, loaded by schemathesis over ASGI, and the bearer
    tokens (path -> token) its operations need."""
    db = Database.open(str(tmp_path / "backoffice.db"))
    bo = Backoffice(db, FakeClock(NOW))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    bo.load_members(
        member_rows(10, demo_programme(), bytes.fromhex(bo.setting("phone_hash_key")), NOW),
        store_id="s1",
    )
    till = bo.enroll(bo.enroll_code("s1"), "Касса 1", TILL)["token"]
    admin = bo.new_admin_token()
    for member in ("m00000001", "m00000002"):  # member events for the pull feed's pages
        bo.adjust_points(member, "+10", "подарок", actor="sup")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(bo, verifier=False))
    # the test sends the bearer token itself (a till's, or the admin's for the KPIs)
    schema.config.generation.update(with_security_parameters=False)
    try:
        yield (
            schema,
            {
                "GET /v1/kpi": admin,
                "POST /v1/members/{code}/token": admin,
                "GET /v1/events": admin,
                "*": till,
            },
        )
    finally:
        db.close()


def test_served_document_is_the_generated_one(
    served: tuple[schemathesis.BaseSchema, dict[str, str]],
) -> None:
    schema, _ = served
    assert schema.raw_schema == openapi()
    assert schema.raw_schema["openapi"] == "3.1.0"
    schema.validate()  # against the OpenAPI 3.1 meta-schema


def _own_events(case: Any) -> Any:
    """A drawn push as the enrolled till would send it (its terminal id on the batch and
    on every event), so valid batches reach the ledger's per-event checks and answer 200."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        body["terminal_id"] = TILL
        for ev in body["events"]:
            if isinstance(ev, dict):
                ev["terminal_id"] = TILL
    return case


def _fuzz(op: Any, mode: GenerationMode, token: str, statuses: Counter[tuple[str, int]]) -> None:
    """Draw ``EXAMPLES[mode]`` requests of ``op`` and check each answer, counting the
    statuses per operation."""
    cases = op.as_strategy(generation_mode=mode)
    if op.label == "POST /v1/events" and mode is not GenerationMode.NEGATIVE:
        cases = cases.map(_own_events)

    def respond(case: Any, checks: Sequence[Any]) -> None:
        response = case.call_and_validate(
            headers={"authorization": f"Bearer {token}"}, checks=checks
        )
        statuses[op.label, response.status_code] += 1

    conform(op, mode, EXAMPLES[mode], respond, cases=cases)


def test_no_drift_between_the_document_and_the_app(
    served: tuple[schemathesis.BaseSchema, dict[str, str]],
) -> None:
    schema, tokens = served
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) == sum(len(methods) for methods in openapi()["paths"].values())
    statuses: Counter[tuple[str, int]] = Counter()
    for op in operations:
        for mode in EXAMPLES:
            _fuzz(op, mode, tokens.get(op.label, tokens["*"]), statuses)
    # the answers checked include the push's and the pages' bodies, not only refusals
    for label in (
        "POST /v1/events",
        "GET /v1/events",
        "GET /v1/verdicts",
        "GET /v1/changes",
        "GET /v1/kpi",
    ):
        assert statuses[label, 200], (label, statuses)
    assert statuses["GET /v1/events", 400], statuses  # bad_feed_query, as declared
