"""The segments section without a browser, on SQLite and PostgreSQL: httpx through the
real back-office app over a ledger with a real till's synced sales. Marketing creates a
segment on the form (the live count fragment first, a bad field refused naming it with
nothing saved), evaluates it, downloads its members as CSV (``;`` with a BOM, and ``,``)
and NDJSON (rows = the previewed count, audited), schedules an export; an analyst reads
but may not change; support may not open the section."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import httpx
import pytest
from cluster import Cluster
from test_console_coupons_rules_pages import PASSWORD, sign_in

from sync.backoffice.console.guard import PREFIX
from sync.backoffice.console.segments import form_from_rules, rules_from_form
from sync.backoffice.people import audit, users

M1, M2 = "m00000001", "m00000002"


@pytest.fixture
def office(cluster: Cluster) -> Cluster:
    for login, role in [("mk", "marketing"), ("an", "analyst"), ("sup", "support")]:
        users.add_user(cluster.bo.context, login, PASSWORD, role, name=login)
    till = cluster.till()
    till.sale("R1", M1, ("DR-1001", 2))
    till.sale("R2", M2, ("SH-2001", 1))
    till.sale("R3", M1, ("SH-2001", 1))
    till.client.drain()
    return cluster


@pytest.fixture
def browser(office: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(transport=office.transport, base_url="http://backoffice") as c:
        yield c


FORM = {
    "name": "Купили дважды",
    "control_pct": "10",
    "frequency.min": "2",
    "frequency.window_days": "30",
    "monetary_kop.min": "100,50",
}


def test_marketing_creates_previews_exports_a_segment(
    office: Cluster, browser: httpx.Client
) -> None:
    token = sign_in(browser, "mk")
    page = browser.get(f"{PREFIX}/segments")
    assert page.status_code == 200 and 'id="segment-form"' in page.text
    assert 'data-nav="segments"' in page.text
    form = dict(FORM)  # the consent box left unticked: every member, consent or not
    count = browser.get(f"{PREFIX}/segments/preview", params=form, headers={"HX-Request": "1"})
    n = int(re.search(r'data-count="(\d+)"', count.text)[1])  # type: ignore[index]
    assert n == 1  # M1: two cheques in 30 days
    bad = browser.get(f"{PREFIX}/segments/preview", params={**form, "frequency.max": "один"})
    assert 'data-field="frequency.max"' in bad.text and "frequency.max" in bad.text
    refused = browser.post(
        f"{PREFIX}/segments", data={**form, "csrf": token, "birthday_months": "5, 13"}
    )
    assert refused.status_code == 400 and "birthday_months.1" in refused.text
    assert 'id="f-birthday_months" value="5, 13"' in refused.text  # the typed value kept
    assert office.bo.segments() == []
    made = browser.post(f"{PREFIX}/segments", data={**form, "csrf": token})
    assert made.status_code == 303, made.text
    url = made.headers["location"].split("?")[0]
    seg_id = url.rsplit("/", 1)[1]
    shown = browser.get(made.headers["location"])
    assert "Купили дважды" in shown.text and 'id="notice"' in shown.text
    assert 'value="100,50"' in shown.text  # roubles back on the form
    seg = office.bo.segment(seg_id)
    assert seg is not None and seg.rules.monetary_kop is not None
    assert seg.rules.monetary_kop.min == 10_050 and seg.control_pct == 10
    done = browser.post(f"{url}/evaluate", data={"csrf": token})
    assert done.status_code == 303
    assert "entered=1" in done.headers["location"]
    body = browser.get(f"{url}/members.csv", params={"delimiter": ";"})
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/csv")
    assert body.content.startswith(b"\xef\xbb\xbf")
    assert f'filename="{seg_id}.csv"' in body.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(body.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) - 1 == n and rows[1][0] == M1
    comma = browser.get(f"{url}/members.csv", params={"delimiter": ","})
    assert len(list(csv.reader(io.StringIO(comma.content.decode("utf-8-sig"))))) - 1 == n
    lines = browser.get(f"{url}/members.ndjson").content.splitlines()
    assert len(lines) == n
    assert browser.get(f"{url}/members.csv", params={"delimiter": "|"}).status_code == 400
    actions = [e.action for e in audit.entries(office.db, limit=100)]
    assert actions.count("segment_exported") == 3 and "segment_created" in actions
    sched = browser.post(
        f"{url}/schedule",
        data={"csrf": token, "format": "csv", "delimiter": ";", "every_hours": "x"},
    )
    assert sched.status_code == 400 and "aria-invalid=true" in sched.text
    sched = browser.post(
        f"{url}/schedule",
        data={"csrf": token, "format": "ndjson", "delimiter": ";", "every_hours": "6"},
    )
    assert sched.status_code == 303 and len(office.bo.segment_exports(seg_id)) == 1
    changed = browser.post(url, data={**form, "name": "Дважды+", "csrf": token})
    assert changed.status_code == 303 and office.bo.segment(seg_id).name == "Дважды+"  # type: ignore[union-attr]
    listed = browser.get(f"{PREFIX}/segments").text
    assert f'data-segment="{seg_id}"' in listed and "Дважды+" in listed


def test_roles_analyst_reads_support_is_refused(office: Cluster, browser: httpx.Client) -> None:
    seg = office.bo.segment_save("Все", {"marketing_consent": False}, actor="mk")
    token = sign_in(browser, "an")
    page = browser.get(f"{PREFIX}/segments/{seg.segment_id}")
    assert page.status_code == 200 and 'id="segment-save"' not in page.text
    assert browser.get(f"{PREFIX}/segments/{seg.segment_id}/members.ndjson").status_code == 200
    assert (
        browser.post(
            f"{PREFIX}/segments/{seg.segment_id}/evaluate", data={"csrf": token}
        ).status_code
        == 403
    )
    assert browser.post(f"{PREFIX}/segments", data={"csrf": token, "name": "x"}).status_code == 403
    browser.cookies.clear()
    sign_in(browser, "sup")
    assert browser.get(f"{PREFIX}/segments").status_code == 403
    assert browser.get(f"{PREFIX}/segments/none").status_code == 403


def test_the_form_round_trips_a_rule_set() -> None:
    form = {
        "marketing_consent": "1",
        "recency_days.min": "90",
        "frequency.min": "1",
        "frequency.window_days": "365",
        "monetary_kop.max": "1 500,5",
        "tiers": "silver, gold",
        "registered_at": "s1 s2",
        "purchased_at.stores": "s1",
        "purchased_at.window_days": "30",
        "birthday_months": "6,7",
        "balance.min": "100",
        "expiring.within_days": "14",
        "expiring.min_points": "1",
        "collection.mechanic": "north-5",
        "collection.min": "4",
        "rfm.r": "1, 2",
        "abc": "a",
    }
    doc = rules_from_form(form)
    assert doc["monetary_kop"] == {"max": 150_050}
    assert (
        doc["abc"] == ["A"] and doc["rfm"] == {"r": [1, 2]} and doc["registered_at"] == ["s1", "s2"]
    )
    from agent.seed import demo_programme
    from sync.backoffice.audiences import parse_rules

    rules = parse_rules(doc, demo_programme())
    again = parse_rules(rules_from_form(form_from_rules(rules)), demo_programme())
    assert again == rules
