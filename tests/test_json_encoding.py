"""A JSON body must be UTF-8 (RFC 8259) on both servers: UTF-16 and UTF-32 (which
Python's json would read), a byte order mark or a NUL byte get a clear 400 ``bad_json``
naming the encoding, and nothing is written."""

from __future__ import annotations

import json

import httpx
import pytest
from cluster import Cluster
from synchelp import SyncASGITransport, portal

from kassa.posapi import create_app

TOKEN = "encoding-token-0123456789"
BODY = {"receipt_id": "R1", "lines": [{"sku": "BG-7001", "price_kop": 100, "qty": 1}]}
TEXT = json.dumps(BODY)
ENCODED = [
    TEXT.encode("utf-16"),
    TEXT.encode("utf-16-le"),
    TEXT.encode("utf-32"),
    b"\xef\xbb\xbf" + TEXT.encode(),
    TEXT.encode().replace(b"R1", b"R\x001"),
]


@pytest.mark.parametrize("body", ENCODED, ids=["utf16", "utf16le", "utf32", "bom", "nul"])
def test_pos_api_refuses_a_body_that_is_not_utf8(till, body: bytes) -> None:
    app = create_app(till.agent, token=TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    with (
        portal() as p,
        httpx.Client(
            transport=SyncASGITransport(app, p), base_url="http://pos", headers=auth
        ) as api,
    ):
        before = till.store.one("SELECT count(*) FROM outbox")
        r = api.post("/v1/commit", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        err = r.json()
        assert err["error"] == "bad_json" and "UTF-8" in err["message_en"]
        assert "UTF-8" in err["message_ru"]
        assert till.store.one("SELECT count(*) FROM outbox") == before
        assert api.post("/v1/quote", json=BODY).status_code != 500  # UTF-8 is still read


@pytest.mark.parametrize("body", ENCODED, ids=["utf16", "utf16le", "utf32", "bom", "nul"])
def test_backoffice_refuses_a_body_that_is_not_utf8(cluster: Cluster, body: bytes) -> None:
    text = json.dumps({"code": cluster.bo.enroll_code("s1")})
    sent = body.replace(TEXT.encode("utf-8"), text.encode()) if body.isascii() else body
    r = cluster.http.post("/v1/enroll", content=sent, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_json" and "UTF-8" in r.json()["message"]
    assert cluster.ledger("SELECT count(*) FROM terminals") == [(0,)]
    assert cluster.http.post("/v1/enroll", json=json.loads(text)).status_code == 200
