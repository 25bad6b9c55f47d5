"""A client that hangs up before its body arrived (a till whose network dropped, anyone on
``/v1/enroll``) costs the back office one INFO line: no ERROR, no traceback, nothing
written."""

from __future__ import annotations

import logging

import pytest
from synchelp import hang_up_mid_body

from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice


def _counts(bo: Backoffice) -> tuple[int, int]:
    with bo.db.reading() as tx:
        (events,) = tx.one("SELECT count(*) FROM events")
        (terminals,) = tx.one("SELECT count(*) FROM terminals")
    return int(events), int(terminals)


@pytest.mark.parametrize("path", ["/v1/enroll", "/v1/events"])
def test_a_client_that_hangs_up_mid_body_is_one_info_line(tmp_path, caplog, path):
    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    bo.initialise()
    terminal_token = "t" * 40
    if path == "/v1/events":
        code = bo.enroll_code("S1", store_name="Магазин")
        terminal_token = bo.enroll(code, "Касса 1")["token"]
    app = create_app(bo, verifier=False)
    before = _counts(bo)
    with caplog.at_level(logging.DEBUG):
        hang_up_mid_body(app, path, [(b"authorization", f"Bearer {terminal_token}".encode())])
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelno for r in records] == [logging.INFO], records
    assert records[0].exc_info is None and path in records[0].getMessage()
    assert "disconnected" in records[0].getMessage()
    assert _counts(bo) == before
    bo.db.close()
