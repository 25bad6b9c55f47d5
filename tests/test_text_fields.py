"""Control, line-separator and bidi-override characters and lone surrogates are refused
in text fields at every front door: the POS API, the engine (so the cashier app's cheques
too), registration and the back office's enrolment; the same validator names them."""

from __future__ import annotations

import pytest
from test_posapi import TestClient

from agent.errors import CartError, InputError
from agent.model import Cart, CartLine
from agent.requests import text_fault
from agent.results import CheckoutRequest
from kassa.posapi import create_app

TOKEN = "test-token-0123456789abcdef"
HOSTILE = ["\x00", "\x07", "\x1b[2J", "\u202e", "\u2066", "\u2028", "\ud800", "\x85"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_text_fault_names_the_character_and_its_position(bad):
    en, ru = text_fault(f"DR{bad}1") or ("", "")
    assert f"U+{ord(bad[0]):04X}" in en and "position 3" in en
    assert f"U+{ord(bad[0]):04X}" in ru and "позиции 3" in ru


def test_ordinary_text_passes():
    for good in ("Платье «Лето» №5", "Zoë 👩‍👩‍👧", "SH-2001", "Ёлка\u00a0д.1"):
        assert text_fault(good) is None


@pytest.mark.parametrize("bad", ["\x07", "\u202e", "\x00"])
def test_pos_api_refuses_them_in_a_line_name_and_commits_nothing(till, bad):
    body = {
        "identify": "0001000000018",
        "receipt_id": "API-1",
        "lines": [{"sku": "DR-1001", "name": f"Пла{bad}тье"}],
    }
    headers = {"authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(till.agent, token=TOKEN), headers=headers) as api:
        resp = api.post("/v1/commit", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["details"]["field"] == "lines[0].name"
    assert f"U+{ord(bad):04X}" in resp.json()["message_ru"]
    assert till.count("purchases") == 0


def test_the_engine_refuses_them_whatever_door_built_the_cheque(till):
    """The cashier app builds its cheques itself (no JSON): the engine's check is its guard."""
    line = CartLine(1, "DR-1001", "Платье\x1b[2J", "dresses", 499_900, 1, 499_900)
    member = till.agent.identify("0001000000018").member_id
    with pytest.raises(CartError) as caught:
        till.agent.quote(CheckoutRequest(member, Cart("TUI-1", (line,))))
    assert caught.value.details["field"] == "name"
    assert "U+001B" in caught.value.message_ru


@pytest.mark.parametrize("bad", ["\x07", "\u202e"])
def test_registration_refuses_them_in_the_first_name(till, bad):
    with pytest.raises(InputError) as caught:
        till.agent.register(
            phone="+79161112233",
            first_name=f"Анна{bad}",
            consent_programme=True,
            consent_marketing=False,
        )
    assert caught.value.details["field"] == "first_name"
    assert till.count("members") == 200


def test_the_back_office_refuses_them_in_a_terminal_name(cluster):
    code = cluster.bo.enroll_code("s1")
    resp = cluster.http.post("/v1/enroll", json={"code": code, "name": "Касса\u202e1"})
    assert resp.status_code == 400, resp.text
    assert "U+202E" in resp.text
    assert not list(cluster.ledger("SELECT terminal_id FROM terminals"))


@pytest.mark.parametrize("bad", ["Ан\u200bна", "\ufeffАнна", "Анна\u202e", "Ан\u2060на"])
def test_the_back_office_refuses_a_pushed_name_a_till_would_refuse(bad):
    """A ``member_registered`` whose first name holds a bidi override or a zero-width
    character was not made by a till (its front doors refuse them): the projector rejects
    the event, naming the field, and stores no member."""
    from sync.backoffice.checks import Rejected, opt

    with pytest.raises(Rejected) as e:
        opt({"first_name": bad}, "first_name")
    assert e.value.code == "bad_payload" and "payload.first_name" in e.value.message
    assert opt({"first_name": "Анна-Мария"}, "first_name") == "Анна-Мария"


@pytest.mark.parametrize("bad", ["Ан\u200bна", "\ufeffАнна", "Ан\u200dна"])
def test_a_zero_width_character_is_refused_at_the_tills_front_doors(bad):
    from agent.requests import text_fault

    fault = text_fault(bad)
    assert fault is not None and "zero-width" in fault[0] and "нулевой ширины" in fault[1]
