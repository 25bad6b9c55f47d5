"""One-time sign-in codes (member_otp) on SQLite and PostgreSQL, through the file SMS
provider: the code read back is accepted once, stored only as a hash, expires after 5
minutes, dies after 5 wrong tries, and sending is limited per phone and per address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.backoffice.db import Database
from sync.backoffice.member_otp import CodeError, check_code, send_code
from sync.backoffice.schema import migrate
from sync.backoffice.sms import FileGateway

KEY = b"k" * 32
PHONE = "+79161234567"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    d = Database.open(db_url)
    migrate(d)
    yield d
    d.close()


def code_sent(g: FileGateway) -> str:
    text = g.read_last(PHONE)
    assert text is not None
    m = re.search(r"\b(\d{6})\b", text)
    assert m is not None
    return m.group(1)


def test_code_accepted_once_and_stored_hashed(db: Database, tmp_path: Path) -> None:
    g = FileGateway(tmp_path / "sms.log")
    sent = send_code(db, KEY, g, "8 (916) 123-45-67", "1.2.3.4", T0)
    assert sent.phone == PHONE and sent.expires_at == T0 + timedelta(minutes=5)
    code = code_sent(g)
    with db.reading() as tx:
        stored = tx.all("SELECT code_hash FROM member_otp")
    assert len(stored) == 1 and code not in stored[0][0]
    assert check_code(db, KEY, PHONE, code, T0 + timedelta(seconds=30)) == sent.phone_hash
    with pytest.raises(CodeError, match="expired or was not asked"):
        check_code(db, KEY, PHONE, code, T0 + timedelta(seconds=31))


def test_code_expires_after_five_minutes(db: Database, tmp_path: Path) -> None:
    g = FileGateway(tmp_path / "sms.log")
    send_code(db, KEY, g, PHONE, "1.2.3.4", T0)
    with pytest.raises(CodeError, match="expired"):
        check_code(db, KEY, PHONE, code_sent(g), T0 + timedelta(minutes=5))


def test_five_wrong_tries_kill_the_code(db: Database, tmp_path: Path) -> None:
    g = FileGateway(tmp_path / "sms.log")
    send_code(db, KEY, g, PHONE, "1.2.3.4", T0)
    code = code_sent(g)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(CodeError) as e:
            check_code(db, KEY, PHONE, wrong, T0)
        assert e.value.details["left"] == left
    with pytest.raises(CodeError, match="5 wrong tries"):
        check_code(db, KEY, PHONE, code, T0)


def test_limits_per_phone_and_per_address(db: Database, tmp_path: Path) -> None:
    g = FileGateway(tmp_path / "sms.log")
    send_code(db, KEY, g, PHONE, "1.2.3.4", T0)
    with pytest.raises(CodeError, match="ask again in 50 s") as e:
        send_code(db, KEY, g, PHONE, "5.6.7.8", T0 + timedelta(seconds=10))
    assert "через 50 с" in e.value.message_ru
    for i in range(1, 5):
        send_code(db, KEY, g, PHONE, "1.2.3.4", T0 + timedelta(minutes=2 * i))
    with pytest.raises(CodeError, match="5 codes an hour"):
        send_code(db, KEY, g, PHONE, "1.2.3.4", T0 + timedelta(minutes=20))
    # Another address: 20 an hour whatever the phones (5 used above).
    for i in range(15):
        send_code(db, KEY, g, f"+7916000{i:04d}", "1.2.3.4", T0 + timedelta(minutes=21))
    with pytest.raises(CodeError, match="from one address"):
        send_code(db, KEY, g, "+79169990000", "1.2.3.4", T0 + timedelta(minutes=22))
    send_code(db, KEY, g, "+79169990000", "9.9.9.9", T0 + timedelta(minutes=22))


def test_through_the_back_office_service(db_url: str, tmp_path: Path) -> None:
    """The service's delegations: the hash a code proves is the one the tills look up."""
    from agent.identify import phone_hash
    from sync.backoffice.service import Backoffice
    from tests.conftest import FakeClock

    clock = FakeClock()
    bo = Backoffice(Database.open(db_url), clock)
    try:
        bo.initialise()
        g = FileGateway(tmp_path / "sms.log")
        bo.member_send_code(g, "+7 916 123-45-67", "127.0.0.1")
        clock.advance(seconds=20)
        got = bo.member_check_code(PHONE, code_sent(g))
        assert got == phone_hash(PHONE, bytes.fromhex(bo.setting("phone_hash_key")))
    finally:
        bo.db.close()
