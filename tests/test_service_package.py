"""The till service's package: the cheque's one-statement read by name, and the holds'
table in it alone (its time-to-live bounds in ``agent.results``, beside ``Hold``)."""

from __future__ import annotations

import importlib

import pytest

from agent import results
from agent.results import CheckoutRequest
from agent.service import holds
from agent.service.sales import CHEQUE_READ_SQL, ChequeRow, cheque_read
from tests.conftest import make_cart
from tests.test_service_facade import RICH, _req


def test_cheque_read_is_one_statement_read_by_name(till, clock):
    # the row, its 8 subqueries (held, has_hold, 5 counters, stored_hash), the one-row FROM
    assert CHEQUE_READ_SQL.count("SELECT") == 1 + 8 + 1
    hold = till.agent.place_hold(_req("OTHER", 10))
    with till.store.read() as conn:
        row = cheque_read(conn, _req("R-1", 0), clock.now())
    assert isinstance(row, ChequeRow)
    assert row.member_id == RICH and row.code and row.state.startswith("{")
    assert (row.held, row.has_hold, row.stored_hash) == (hold.points, 0, None)
    assert row.last_contact == clock.now().isoformat() and row.last_seq == "0"
    till.agent.commit(_req("R-1", 0))
    with till.store.read() as conn:
        again = cheque_read(conn, _req("R-1", 0), clock.now())
        own = cheque_read(conn, _req("OTHER", 0), clock.now())
    assert again.stored_hash is not None and again.last_seq == "1"
    assert (own.held, own.has_hold) == (0, 1)  # its own hold is not "other cheques'"


def test_cheque_read_of_an_unknown_member_is_one_row_of_nulls(till, clock):
    with till.store.read() as conn:
        row = cheque_read(
            conn, CheckoutRequest("nobody", make_cart("R-2", ("DR-1001", 1))), clock.now()
        )
    assert row.member_id is None and row.code is None and row.held == 0
    assert row.last_contact is not None  # the counters are read all the same


def test_the_holds_table_has_one_home_and_its_bounds_are_value_types():
    assert holds.Hold is results.Hold
    assert (holds.MIN_TTL_S, holds.DEFAULT_TTL_S, holds.MAX_TTL_S) == (
        results.MIN_TTL_S,
        results.DEFAULT_TTL_S,
        results.MAX_TTL_S,
    )
    assert (results.MIN_TTL_S, results.DEFAULT_TTL_S, results.MAX_TTL_S) == (10, 900, 86400)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("agent.holds")
