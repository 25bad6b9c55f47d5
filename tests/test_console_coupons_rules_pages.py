"""The coupons and programme-rules pages without a browser: httpx over ASGITransport into
the real back office app (SQLite). Issuing from the form (a bad field: 400 naming it,
the typed values kept, nothing issued), an issue's page, its PDF sheet (every QR code
read back from the PDF's own drawing with zxing-cpp equals an issued token) and CSV,
revoking; the rules page readable, a draft checked and compared, a cheque previewed,
a version published for later; the role table (analysts read, support cannot open)."""

from __future__ import annotations

import csv
import io
import re
import zlib
from collections.abc import Iterator
from datetime import timedelta

import httpx
import numpy as np
import pytest
import zxingcpp
from pypdf import PdfReader
from synchelp import SyncASGITransport, portal

from agent.rules import programme_to_dict
from agent.seed import demo_programme
from sync.backoffice.app import create_app
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.db import Database
from sync.backoffice.people import users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock

PASSWORD = "correct horse 1"


@pytest.fixture
def bo(tmp_path) -> Iterator[Backoffice]:
    office = Backoffice(Database.open(str(tmp_path / "bo.db")), FakeClock())
    office.initialise()
    for login, role in [("mk", "marketing"), ("an", "analyst"), ("sup", "support")]:
        users.add_user(office.context, login, PASSWORD, role, name=login)
    try:
        yield office
    finally:
        office.db.close()


@pytest.fixture
def http(bo: Backoffice) -> Iterator[httpx.Client]:
    with portal() as p:
        app = create_app(bo, verifier=False)
        with httpx.Client(transport=SyncASGITransport(app, p), base_url="http://bo") as c:
            yield c


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


def sign_in(c: httpx.Client, login: str = "mk") -> str:
    token = csrf(c.get(f"{PREFIX}/signin").text)
    r = c.post(f"{PREFIX}/signin", data={"csrf": token, "login": login, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return csrf(c.get(f"{PREFIX}/").text)


FORM = {
    "mode": "batch",
    "kind": "percent",
    "value": "15",
    "valid_from": "2026-06-15",
    "valid_until": "2026-07-15",
    "min_cheque": "1000",
    "count": "13",
    "members": "",
    "note": "Летняя листовка",
}


def decode_pdf_qr(pdf: bytes) -> list[str]:
    """Every QR code drawn in the PDF, decoded from its vector squares: each page stream
    is inflated, its ``x y w h re`` runs up to each ``f`` are one code, painted on a
    bitmap with a quiet zone and read with zxing-cpp."""
    texts: list[str] = []
    for raw in re.findall(rb"/FlateDecode >>\nstream\n(.*?)\nendstream", pdf, re.S):
        ops = zlib.decompress(raw).decode("ascii")
        for group in ops.split("\nf"):
            rects = [
                tuple(float(v) for v in m.groups())
                for m in re.finditer(r"([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) re", group)
            ]
            if not rects:
                continue
            m = min(r[3] for r in rects)
            x0 = min(r[0] for r in rects)
            top = max(r[1] + r[3] for r in rects)
            size = round((max(r[0] + r[2] for r in rects) - x0) / m)
            grid = np.zeros((size + 8, size + 8), dtype=bool)
            for x, y, w, _ in rects:
                row = round((top - y) / m) - 1
                col = round((x - x0) / m)
                grid[row + 4, col + 4 : col + 4 + round(w / m)] = True
            image = np.kron(grid, np.ones((4, 4), dtype=bool))
            pixels = np.where(image, 0, 255).astype(np.uint8)
            found = zxingcpp.read_barcodes(
                pixels, formats=zxingcpp.BarcodeFormat.QRCode, try_invert=False, try_rotate=False
            )
            assert len(found) == 1, "a drawn QR code did not read"
            texts.append(found[0].text)
    return texts


def test_issue_batch_sheet_csv_and_revoke(http: httpx.Client, bo: Backoffice) -> None:
    token = sign_in(http)
    page = http.get(f"{PREFIX}/coupons")
    assert page.status_code == 200 and 'id="issue"' in page.text
    bad = http.post(f"{PREFIX}/coupons", data=FORM | {"csrf": token, "count": "5000"})
    assert bad.status_code == 400
    assert "в партии от 1 до 2000 кодов" in bad.text and 'data-field="count"' in bad.text
    assert 'value="Летняя листовка"' in bad.text and 'value="5000"' in bad.text
    assert bo.coupon_batches() == []
    r = http.post(f"{PREFIX}/coupons", data=FORM | {"csrf": token})
    assert r.status_code == 303
    batch_id = r.headers["location"].split("/coupons/")[1].split("?")[0]
    page = http.get(r.headers["location"])
    assert "Выпущено купонов: 13." in page.text and "−15 %" in page.text
    assert "2026-06-15 — 2026-07-15 (Europe/Moscow)" in page.text
    found = bo.coupon_batch(batch_id)
    assert found is not None
    tokens = [c.token for c in found[1]]
    assert all(t in page.text for t in tokens)
    pdf = http.get(f"{PREFIX}/coupons/{batch_id}/sheet.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert decode_pdf_qr(pdf.content) == tokens
    rows = list(
        csv.DictReader(io.StringIO(http.get(f"{PREFIX}/coupons/{batch_id}/codes.csv").text))
    )
    assert [row["token"] for row in rows] == tokens
    # revoking: a reason is required, then one coupon, then the rest
    url = f"{PREFIX}/coupons/{batch_id}/revoke"
    no_reason = http.post(url, data={"csrf": token, "coupon_id": found[1][0].coupon_id})
    assert no_reason.status_code == 400 and "укажите причину отзыва" in no_reason.text
    one = http.post(url, data={"csrf": token, "coupon_id": found[1][0].coupon_id, "reason": "x"})
    assert one.status_code == 303
    assert "Отозвано купонов: 1." in http.get(one.headers["location"]).text
    rest = http.post(url, data={"csrf": token, "reason": "конец акции"})
    assert rest.headers["location"].endswith("revoked=12")
    listed = http.get(f"{PREFIX}/coupons").text
    assert f'data-batch="{batch_id}"' in listed
    assert http.get(f"{PREFIX}/coupons/nope").status_code == 404
    actions = [e.action for e in bo.audit_entries()]
    assert actions[:3] == ["coupon_revoked", "coupon_revoked", "coupons_issued"]


def test_personal_coupons_and_english_messages(http: httpx.Client, bo: Backoffice) -> None:
    token = sign_in(http)
    http.post(f"{PREFIX}/lang", data={"csrf": token, "lang": "en", "next": f"{PREFIX}/coupons"})
    form = FORM | {"csrf": token, "mode": "members", "members": "1234567"}
    bad = http.post(f"{PREFIX}/coupons", data=form)
    assert bad.status_code == 400 and "is not a member code" in bad.text
    assert bo.coupon_batches() == []
    # the printed sheet follows the console's language
    made = http.post(f"{PREFIX}/coupons", data=FORM | {"csrf": token})
    batch_id = made.headers["location"].split("/coupons/")[1].split("?")[0]
    sheet = http.get(f"{PREFIX}/coupons/{batch_id}/sheet.pdf").content
    text = PdfReader(io.BytesIO(sheet)).pages[0].extract_text()
    assert f"Kassa coupons {batch_id}" in text and "Discount" in text and "Купоны" not in text


def test_roles_on_coupons_and_rules(http: httpx.Client) -> None:
    token = sign_in(http, "an")
    page = http.get(f"{PREFIX}/coupons")
    assert page.status_code == 200 and 'id="issue"' not in page.text
    assert http.post(f"{PREFIX}/coupons", data=FORM | {"csrf": token}).status_code == 403
    rules = http.get(f"{PREFIX}/rules")
    assert rules.status_code == 200 and 'id="publish"' not in rules.text
    assert http.post(f"{PREFIX}/rules/publish", data={"csrf": token}).status_code == 403
    http.post(f"{PREFIX}/signout", data={"csrf": token})
    sign_in(http, "sup")
    assert http.get(f"{PREFIX}/coupons").status_code == 403
    assert http.get(f"{PREFIX}/rules").status_code == 403


def test_rules_view_check_preview_publish(http: httpx.Client, bo: Backoffice) -> None:
    token = sign_in(http)
    page = http.get(f"{PREFIX}/rules")
    assert page.status_code == 200
    assert 'data-key="point_value_kop"' in page.text and 'id="tiers"' in page.text
    assert "&#34;version&#34;: 2" in page.text or '"version": 2' in page.text  # editor: one up
    doc = programme_to_dict(demo_programme()) | {"version": 2, "redeem_cap_bp": 5000}
    import json

    text = json.dumps(doc, ensure_ascii=False)
    bad = http.post(f"{PREFIX}/rules/check", data={"csrf": token, "text": "{", "fmt": "auto"})
    assert bad.status_code == 400 and "это не JSON" in bad.text
    ok = http.post(f"{PREFIX}/rules/check", data={"csrf": token, "text": text, "fmt": "json"})
    assert ok.status_code == 200 and 'data-path="redeem_cap_bp"' in ok.text
    cat = sorted(demo_programme().categories)[0]
    preview = http.post(
        f"{PREFIX}/rules/preview",
        data={"csrf": token, "text": text, "fmt": "json", "lines": f"{cat} 1000 2", "points": "0"},
    )
    assert preview.status_code == 200 and 'id="quote-lines"' in preview.text
    wrong = http.post(
        f"{PREFIX}/rules/preview",
        data={"csrf": token, "text": text, "fmt": "json", "lines": f"{cat} abc"},
    )
    assert wrong.status_code == 400 and "не сумма в рублях" in wrong.text
    assert f"{cat} abc" in wrong.text  # what was typed is kept
    later = (bo.clock.now() + timedelta(days=3)).astimezone(demo_programme().tz)
    done = http.post(
        f"{PREFIX}/rules/publish",
        data={
            "csrf": token,
            "text": text,
            "fmt": "json",
            "effective_at": later.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert done.status_code == 303
    page = http.get(done.headers["location"]).text
    assert "вступит в силу" in page and 'data-version="2" data-state="scheduled"' in page
    assert bo.active_rules().version == 1
    assert http.get(f"{PREFIX}/rules/v/2").status_code == 200
    assert http.get(f"{PREFIX}/rules/v/99").status_code == 404
    assert bo.audit_entries()[0].action == "rules_published"
