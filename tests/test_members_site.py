"""The members' pages (/my) over the real back-office app (ASGI) on SQLite and PostgreSQL,
with a real till and the file SMS provider read back: sign-up from a poster with the
welcome bonus, the consents and the source recorded; a phone with a card (one joined here
before, one a till registered offline and synced) signed in, never given a second card;
the resend limit and the 5 tries; marketing withdrawn; the erase request handed to the
console; the token endpoint's windows identified by the till offline, and past its
lifetime refused with the member told to refresh; CSRF and the session cookie; no secret
in any page; the console's poster and sign-up counts."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from pypdf import PdfReader
from synchelp import SyncASGITransport, portal

from agent.errors import AgentError
from agent.tokens import TokenVerifier, load_ed25519_public_key, verify_member_token
from sync.backoffice.app import create_app
from sync.backoffice.people import users
from sync.backoffice.sms import FileGateway

PHONE = "+79035550101"
TYPED = "8 (903) 555-01-01"
SOURCE = {"store": "s1", "poster": "door"}


@dataclass
class Site:
    cluster: Cluster
    sms: FileGateway
    transport: SyncASGITransport

    def phone(self, address: str = "10.0.0.1") -> httpx.Client:
        """A phone: a browser of its own (cookies) from ``address``."""
        return httpx.Client(
            transport=Addressed(self.transport, address), base_url="http://kassa.test"
        )

    def code(self, phone: str = PHONE) -> str:
        text = self.sms.read_last(phone)
        assert text is not None
        m = re.search(r"\b(\d{6})\b", text)
        assert m is not None
        return m.group(1)


class Addressed(httpx.BaseTransport):
    """The client's address as the app sees it (the per-address limit counts it)."""

    def __init__(self, inner: SyncASGITransport, address: str) -> None:
        self.inner, self.address = inner, address

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.inner.inner = httpx.ASGITransport(app=self.inner.inner.app, client=(self.address, 1))
        return self.inner.handle_request(request)


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[Site]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=5)
        sms = FileGateway(tmp_path / "sms.log")
        app = create_app(c.bo, verifier=False, sms=sms)
        yield Site(c, sms, SyncASGITransport(app, p))
        c.close()


def csrf(page: httpx.Response) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m is not None, page.text[:500]
    return m.group(1)


def ask_code(phone: httpx.Client, typed: str = TYPED, **src: str) -> httpx.Response:
    page = phone.get("/my/join", params=src)
    assert page.status_code == 200
    return phone.post("/my/join/phone", data={"csrf": csrf(page), "phone": typed, **src})


def confirm(phone: httpx.Client, sent: httpx.Response, code: str, **src: str) -> httpx.Response:
    return phone.post(
        "/my/join/code", data={"csrf": csrf(sent), "phone": PHONE, "code": code, **src}
    )


def sign_up(site: Site, phone: httpx.Client, marketing: bool = True) -> httpx.Response:
    """The whole sign-up from the poster's address: the card page at the end."""
    sent = ask_code(phone, **SOURCE)
    assert sent.status_code == 200, sent.text
    r = confirm(phone, sent, site.code(), **SOURCE)
    assert r.status_code == 303 and r.headers["location"] == "/my/join/profile"
    form = phone.get("/my/join/profile")
    fields = {"csrf": csrf(form), "first_name": "Анна", "birthday": "1990-05-01"}
    fields["consent_programme"] = "yes"
    if marketing:
        fields["consent_marketing"] = "yes"
    r = phone.post("/my/join/profile", data=fields)
    assert r.status_code == 303 and r.headers["location"] == "/my/card"
    card = phone.get("/my/card")
    assert card.status_code == 200
    return card


def member_of(site: Site, phone: str = PHONE) -> list[tuple[str, str]]:
    key = bytes.fromhex(site.cluster.bo.setting("phone_hash_key"))
    from agent.phonehash import hard_phone_hash

    rules = site.cluster.bo.rules()
    assert rules is not None
    return [
        (r[0], r[1])
        for r in site.cluster.ledger(
            "SELECT member_id, code FROM members WHERE phone_hash = ? AND merged_into IS NULL",
            (hard_phone_hash(phone, key, rules.phone_hash),),
        )
    ]


def test_sign_up_from_a_poster(site: Site) -> None:
    with site.phone() as phone:
        card = sign_up(site, phone)
        cookie = next(c for c in phone.cookies.jar if c.name == "kassa_my")
    (member_id, code), *more = member_of(site)
    assert not more
    rules = site.cluster.bo.rules()
    assert rules is not None and rules.welcome_points > 0
    assert f'id="balance">{rules.welcome_points}<' in card.text
    assert f'data-code="{code}"' in card.text and "<svg" in card.text
    assert cookie.path == "/my" and cookie.has_nonstandard_attr("HttpOnly")
    assert not cookie.secure  # plain http here; https pages set Secure
    source = site.cluster.ledger("SELECT store_id, poster_id FROM member_sources")
    assert source == [("s1", "door")]
    assert site.cluster.bo.member_signups() == [
        {"store_id": "s1", "poster_id": "door", "members": 1}
    ]
    consents = {
        (c.kind, c.granted, c.text_version) for c in site.cluster.bo.member_consents(member_id)
    }
    assert consents == {
        ("programme", True, rules.consent_text_version),
        ("marketing", True, "marketing-2026-01"),
    }
    # every till learns the card through the feed
    changes = site.cluster.ledger("SELECT kind FROM changes WHERE member_id = ?", (member_id,))
    assert changes == [("member",)]
    events = site.cluster.ledger("SELECT type, data FROM outbox WHERE member_id = ?", (member_id,))
    assert [e[0] for e in events] == ["member.registered"] and '"s1"' in events[0][1]
    row = site.cluster.ledger(
        "SELECT phone_sealed, phone_masked, store_id FROM members WHERE member_id = ?",
        (member_id,),
    )[0]
    assert row[0].startswith("S1:") and PHONE not in row[1] and row[2] == "s1"


def test_no_secret_in_any_page(site: Site) -> None:
    bo = site.cluster.bo
    secrets_ = [bo.setting(k) for k in ("token_private_key", "seal_private_key", "phone_hash_key")]
    pages: list[str] = []
    with site.phone() as phone:
        sent = ask_code(phone, **SOURCE)
        pages += [sent.text, phone.get("/my/join").text]
        confirm(phone, sent, site.code(), **SOURCE)
        pages.append(phone.get("/my/join/profile").text)
        sign_up_rest = phone.post(
            "/my/join/profile",
            data={
                "csrf": csrf(phone.get("/my/join/profile")),
                "first_name": "Анна",
                "consent_programme": "yes",
            },
        )
        assert sign_up_rest.status_code == 303
        pages += [phone.get("/my/card").text, phone.get("/my/tokens").text]
        assert 'data-consent="marketing" data-granted="no" data-state="refused"' in pages[-2]
        pages += [phone.get(p).text for p in ("/my/sw.js", "/my/manifest.webmanifest")]
        cookies = " ".join(f"{c.name}={c.value}" for c in phone.cookies.jar)
    for secret in secrets_:
        assert all(secret not in p for p in pages) and secret not in cookies
    assert all(PHONE not in p and "9035550101" not in p for p in pages[2:])


def test_an_existing_member_is_signed_in_not_duplicated(site: Site) -> None:
    with site.phone() as phone:
        sign_up(site, phone)
    site.cluster.clock.advance(seconds=61)
    with site.phone("10.0.0.2") as other:  # another phone, the same number
        sent = ask_code(other)
        r = confirm(other, sent, site.code())
        assert r.status_code == 303 and r.headers["location"] == "/my/card"
        assert other.get("/my/card").status_code == 200
    assert len(member_of(site)) == 1


def test_a_member_registered_at_an_offline_till_is_signed_in(site: Site) -> None:
    till = site.cluster.till()

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    online = till.client.http
    till.client.http = httpx.Client(transport=httpx.MockTransport(unreachable))
    reg = till.agent.register(
        phone=TYPED, first_name="Борис", consent_programme=True, consent_marketing=False
    )
    till.client.http = online
    till.client.drain()  # back online: the registration reaches the ledger
    with site.phone() as phone:
        sent = ask_code(phone)
        r = confirm(phone, sent, site.code())
        assert r.headers["location"] == "/my/card"
        card = phone.get("/my/card")
    assert member_of(site) == [(reg.card.member_id, reg.card.code)]
    assert f'data-code="{reg.card.code}"' in card.text and "Борис" in card.text


def test_a_till_registering_the_phone_offline_later_joins_the_web_card(site: Site) -> None:
    """Registered at an offline till, then on the web before the till synced: the first
    registration the ledger holds (the web's) wins, the till's is merged into it."""
    till = site.cluster.till()

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    online = till.client.http
    till.client.http = httpx.Client(transport=httpx.MockTransport(unreachable))
    reg = till.agent.register(
        phone=TYPED, first_name="Борис", consent_programme=True, consent_marketing=False
    )
    with site.phone() as phone:
        sign_up(site, phone)
    ((web_id, _),) = member_of(site)
    till.client.http = online
    till.client.drain()
    assert [m for m, _ in member_of(site)] == [web_id]
    merged = site.cluster.ledger(
        "SELECT merged_into FROM members WHERE member_id = ?", (reg.card.member_id,)
    )
    assert merged == [(web_id,)]


def test_the_answer_does_not_tell_a_member_from_a_stranger(site: Site) -> None:
    with site.phone() as phone:
        sign_up(site, phone)
    with site.phone("10.0.0.2") as a, site.phone("10.0.0.3") as b:
        site.cluster.clock.advance(seconds=61)
        member = ask_code(a)
        stranger = ask_code(b, "+7 916 765-43-21")
    assert member.status_code == stranger.status_code == 200
    strip = re.compile(r'value="[^"]*"|\+7\d+|\d{3}')
    assert strip.sub("", member.text) == strip.sub("", stranger.text)


def test_resend_limit_and_five_wrong_tries(site: Site) -> None:
    with site.phone() as phone:
        sent = ask_code(phone)
        again = phone.post(
            "/my/join/phone", data={"csrf": csrf(sent), "phone": PHONE, "resend": "1"}
        )
        assert again.status_code == 429 and "запросите снова через 60 с" in again.text
        code = site.code()
        wrong = "000000" if code != "000000" else "111111"
        for left in (4, 3, 2, 1, 0):
            r = confirm(phone, sent, wrong)
            assert r.status_code == 400 and f"осталось попыток {left}" in r.text
        r = confirm(phone, sent, code)
        assert r.status_code == 400 and "5 неверных попыток: запросите новый код" in r.text
        assert "kassa_my" not in phone.cookies
        bad = phone.post("/my/join/phone", data={"csrf": csrf(sent), "phone": "12"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text


def test_csrf_and_signed_out_pages(site: Site) -> None:
    with site.phone() as phone:
        phone.get("/my/join")
        r = phone.post("/my/join/phone", data={"csrf": "forged", "phone": PHONE})
        assert r.status_code == 403 and site.sms.read_last(PHONE) is None
        assert phone.get("/my/card").headers["location"] == "/my/join"
        assert phone.get("/my/tokens").status_code == 401
        assert phone.get("/my/join/profile").headers["location"] == "/my/join"


def test_cookies_are_secure_over_https(site: Site) -> None:
    with httpx.Client(
        transport=Addressed(site.transport, "10.0.0.9"), base_url="https://kassa.test"
    ) as phone:
        sent = ask_code(phone)
        r = confirm(phone, sent, site.code())
    cookie = r.headers["set-cookie"].split(", kassa_my_pre")[0]
    assert cookie.startswith("kassa_my=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Path=/my" in cookie


def test_english_and_the_consent_documents(site: Site) -> None:
    with site.phone() as phone:
        page = phone.get("/my/join")
        assert "Получить код" in page.text
        phone.post("/my/lang", data={"csrf": csrf(page), "lang": "en", "next": "/my/join"})
        assert "Get a code" in phone.get("/my/join").text
        doc = phone.get("/my/consent/marketing")
        assert "marketing-2026-01" in doc.text and "withdrawn at any time" in doc.text
        rules = site.cluster.bo.rules()
        assert rules is not None
        assert rules.consent_text_version in phone.get("/my/consent/programme").text


def test_marketing_withdrawn_and_erase_requested(site: Site) -> None:
    with site.phone() as phone:
        card = sign_up(site, phone)
        ((member_id, _),) = member_of(site)
        site.cluster.clock.advance(hours=1)
        r = phone.post("/my/consent/marketing/withdraw", data={"csrf": csrf(card)})
        assert r.status_code == 303
        card = phone.get("/my/card")
        assert 'id="withdraw-marketing"' not in card.text
        assert 'data-consent="marketing" data-granted="no" data-state="withdrawn"' in card.text
        r = phone.post("/my/erase", data={"csrf": csrf(card)})
        assert r.status_code == 303
        card = phone.get("/my/card")
        assert 'id="erase-requested"' in card.text
    events = site.cluster.ledger("SELECT type FROM outbox WHERE member_id = ?", (member_id,))
    assert [e[0] for e in events] == ["member.registered", "consent.changed"]
    newest = site.cluster.bo.member_consents(member_id)[0]
    assert (newest.kind, newest.granted) == ("marketing", False)
    assert newest.at == site.cluster.clock.now().isoformat()
    assert site.cluster.ledger(
        "SELECT consent_marketing, erased_at FROM members WHERE member_id = ?", (member_id,)
    ) == [(0, None)]  # requested, not erased
    profile = site.cluster.bo.member_profile(member_id)
    assert "erase_requested" in {f.kind for f in profile.flags}


def test_tokens_for_the_windows_and_the_till_offline(site: Site) -> None:
    till = site.cluster.till()
    with site.phone() as phone:
        sign_up(site, phone)
        got = phone.get("/my/tokens").json()
    ((member_id, code),) = member_of(site)
    tokens = got["tokens"]
    assert len(tokens) == 3 and got["now"] == int(site.cluster.clock.now().timestamp())
    assert tokens[0]["valid_from"] <= got["now"] < tokens[0]["expires_at"]
    for a, b in itertools.pairwise(tokens):
        assert b["valid_from"] == a["expires_at"] == a["valid_from"] + 300
    verifier = TokenVerifier(
        {1: load_ed25519_public_key(site.cluster.bo.setting("token_public_key"))}
    )
    for w in tokens:
        at = datetime.fromtimestamp(w["valid_from"], UTC)
        assert verify_member_token(verifier, w["token"], at).member_code == code
        assert "<svg" in w["svg"]
    till.client.pull_all()  # the till learns the new card from the feed

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    till.client.http = httpx.Client(transport=httpx.MockTransport(unreachable))
    assert till.agent.identify(tokens[0]["token"]).member_id == member_id
    site.cluster.clock.current = datetime.fromtimestamp(tokens[0]["expires_at"] + 61, UTC)
    with pytest.raises(AgentError) as e:
        till.agent.identify(tokens[0]["token"])
    assert "обновить код" in e.value.message_ru


def test_console_poster_and_sign_ups(site: Site) -> None:
    users.add_user(site.cluster.bo.context, "owner", "correct horse 1", "owner")
    with site.phone() as phone:
        sign_up(site, phone)
    with site.phone("10.9.9.9") as console:
        page = console.get("/console/signin")
        console.post(
            "/console/signin",
            data={"csrf": csrf(page), "login": "owner", "password": "correct horse 1"},
        )
        stores = console.get("/console/stores")
        assert 'data-signups="s1/door"><td>s1</td><td>door</td><td>1<' in stores.text
        pdf = console.get("/console/stores/poster.pdf", params={"store": "s1", "poster": "door"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert "Станьте участником программы" in text and "Тверская" in text
        bad = console.get("/console/stores/poster.pdf", params={"store": "s1", "poster": "a b"})
        assert bad.status_code == 400 and "плакат" in bad.text
        unknown = console.get("/console/stores/poster.pdf", params={"store": "zz", "poster": "x"})
        assert unknown.status_code == 400
