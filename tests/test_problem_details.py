"""One error shape for both services, as their OpenAPI documents declare it: every refusal
of the POS API (real till store) and of the back office (real app on SQLite and
PostgreSQL) is an RFC 9457 problem served as ``application/problem+json``, valid against
the document's error schema, keeping the fields clients read (``error``, ``message``,
``message_ru``, ``message_en``, ``details`` and the back office's top-level details); a
401 carries its ``WWW-Authenticate`` challenge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from cluster import Cluster
from conftest import Till
from synchelp import SyncASGITransport, portal

from agent.problem import PROBLEM_JSON, TYPE_PREFIX, problem
from kassa.posapi import create_app
from kassa.posapi import openapi as pos_openapi
from sync.backoffice_api import openapi as backoffice_openapi
from sync.client import PermanentError
from sync.openapi import UTF8_BODY

TOKEN = "problem-token-0123456789"


def _error_schemas(doc: dict[str, Any]) -> set[str]:
    """The schemas every error answer of ``doc`` declares, checking each is problem+json."""
    refs = set()
    for path in doc["paths"].values():
        for entry in path.values():
            for status, answer in entry["responses"].items():
                if int(status) >= 400:
                    (media,) = answer["content"]
                    assert media == PROBLEM_JSON, (status, answer)
                    refs.add(answer["content"][media]["schema"]["$ref"])
                    if status == "401":
                        assert "WWW-Authenticate" in answer["headers"]
    return refs


def _validator(doc: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    (ref,) = _error_schemas(doc)
    name = ref.rsplit("/", 1)[-1]
    schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def _check(
    validator: jsonschema_rs.Draft202012Validator, r: httpx.Response, status: int, code: str
) -> dict[str, Any]:
    """``r`` is the documented problem of ``status`` and ``code``; its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    validator.validate(body)
    assert (body["status"], body["code"], body["error"]) == (status, code, code)
    assert body["type"] == TYPE_PREFIX + code and body["instance"] == r.request.url.path
    assert body["detail"] == body["message"] == body["message_en"] and body["message_ru"]
    assert body["title"]
    return body


def test_problem_keeps_details_nested_and_at_the_top_unless_reserved() -> None:
    body = problem(
        400, "bad_event", "events[3] is not an object", details={"index": 3, "status": "x"}
    )
    assert body["details"] == {"index": 3, "status": "x"} and body["index"] == 3
    assert body["status"] == 400  # a detail cannot take a member's name
    assert body["message_ru"] == body["message_en"]  # no Russian given: the English stands


@pytest.mark.parametrize("doc", [pos_openapi(), backoffice_openapi()], ids=["pos", "bo"])
def test_every_request_body_is_documented_as_utf8_json(doc: dict[str, Any]) -> None:
    """What both servers refuse before reading JSON (tested below: UTF-16 is bad_json)."""
    bodies = [
        entry["requestBody"]
        for path in doc["paths"].values()
        for entry in path.values()
        if "requestBody" in entry
    ]
    assert bodies and all(b["description"].startswith(UTF8_BODY) for b in bodies)


@pytest.fixture
def pos(till: Till) -> Iterator[httpx.Client]:
    with (
        portal() as p,
        httpx.Client(
            transport=SyncASGITransport(create_app(till.agent, token=TOKEN), p),
            base_url="http://pos",
        ) as client,
    ):
        yield client


def test_pos_api_refusals_are_the_documented_problem(pos: httpx.Client) -> None:
    v = _validator(pos_openapi())
    auth = {"authorization": f"Bearer {TOKEN}"}
    missing = _check(v, pos.get("/v1/status"), 401, "unauthenticated")
    assert missing["message_ru"] != missing["message_en"]
    r = pos.get("/v1/status")
    assert r.headers["www-authenticate"] == 'Bearer realm="kassa-pos"'
    r = pos.get("/v1/status", headers={"authorization": "Bearer wrong-token-000000"})
    _check(v, r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == 'Bearer realm="kassa-pos", error="invalid_token"'
    _check(v, pos.get("/v1/nowhere", headers=auth), 404, "not_found")
    allowed = _check(v, pos.get("/v1/commit", headers=auth), 405, "method_not_allowed")
    assert allowed["details"]["allowed"] == allowed["allowed"] == ["POST"]
    utf16 = '{"input": "1"}'.encode("utf-16")
    _check(v, pos.post("/v1/identify", content=utf16, headers=auth), 400, "bad_json")
    text = _check(
        v, pos.post("/v1/quote", json={"receipt_id": "R\u0007"}, headers=auth), 400, "bad_text"
    )
    assert (
        text["details"]["field"] == "receipt_id" and text["title"] == "Недопустимый текст в запросе"
    )
    _check(v, pos.get("/v1/members/m99999999", headers=auth), 404, "not_found")


def test_backoffice_refusals_are_the_documented_problem(cluster: Cluster) -> None:
    v = _validator(backoffice_openapi())
    http = cluster.http
    till = cluster.till()
    own = {"authorization": f"Bearer {till.client.token}"}
    r = http.get("/v1/rules")
    _check(v, r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == 'Bearer realm="kassa-backoffice"'
    r = http.get("/v1/rules", headers={"authorization": "Bearer not-a-till-token"})
    _check(v, r, 401, "bad_token")
    assert r.headers["www-authenticate"] == 'Bearer realm="kassa-backoffice", error="invalid_token"'
    r = http.get("/v1/kpi", headers=own)  # a till's token is not the admin's
    _check(v, r, 401, "bad_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    _check(v, http.get("/v1/nowhere", headers=own), 404, "not_found")
    _check(v, http.get("/v1/enroll", headers=own), 405, "method_not_allowed")
    utf16 = '{"code": "x"}'.encode("utf-16")
    _check(v, http.post("/v1/enroll", content=utf16), 400, "bad_json")
    _check(v, http.get("/v1/changes", params={"cursor": "x"}, headers=own), 400, "bad_cursor")
    # a push's unreadable event: its index where the till's client has always read it
    body = {"protocol": 1, "terminal_id": "till-1", "events": [{}, 7]}
    pushed = _check(v, http.post("/v1/events", json=body, headers=own), 400, "missing_field")
    assert pushed["index"] == pushed["details"]["index"]
    refusal = PermanentError.answer("HTTP 400", pushed)
    assert (refusal.code, refusal.detail) == ("missing_field", pushed["message"])
    # the member-token endpoint's documented 400, for the admin token's malformed code
    doc = backoffice_openapi()
    assert "400" in doc["paths"]["/v1/members/{code}/token"]["post"]["responses"]
    admin = {"authorization": f"Bearer {cluster.bo.new_admin_token()}"}
    _check(v, http.post("/v1/members/ABC/token", headers=admin), 400, "bad_member_code")
    # the console's own pages keep their answers
    assert not http.get("/console/nowhere").headers["content-type"].startswith(PROBLEM_JSON)
