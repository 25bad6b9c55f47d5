"""One-time sign-in codes for the members' pages, sent by SMS (``sms.SmsGateway``).

A code is 6 digits, valid 5 minutes (``CODE_TTL_S``), at most 5 tries (``MAX_ATTEMPTS``).
The table ``member_otp`` keeps only its HMAC-SHA256 (keyed with the programme's phone hash
key, bound to the phone's hash), never the digits. Sending is limited per phone (one a
minute, 5 an hour) and per client address (20 an hour), counted whatever the phone, so the
answers are the same for a member and a stranger: a code is sent to any valid number and
nothing here says whether the phone belongs to a member.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.errors import AgentError
from agent.identify import normalize_phone, phone_hash
from sync.backoffice.db import Database
from sync.backoffice.sms import SmsGateway

CODE_TTL_S = 300
MAX_ATTEMPTS = 5
PHONE_GAP_S = 60
"""Seconds between two codes to one phone."""
PHONE_PER_HOUR = 5
CLIENT_PER_HOUR = 20


class CodeError(AgentError):
    code = "member_code_refused"
    title_en = "Code refused"
    title_ru = "Код не принят"


@dataclass(frozen=True, slots=True)
class Sent:
    phone: str  # E.164
    phone_hash: str
    expires_at: datetime


def _digest(key: bytes, hashed: str, code: str) -> str:
    return hmac.new(key, f"otp:{hashed}:{code}".encode(), hashlib.sha256).hexdigest()


def send_code(
    db: Database, key: bytes, gateway: SmsGateway, phone_text: str, client: str, now: datetime
) -> Sent:
    """Send a new code to ``phone_text`` (any typed form), within the limits."""
    e164 = normalize_phone(phone_text)
    hashed = phone_hash(e164, key)
    hour_ago = (now - timedelta(hours=1)).isoformat()
    code = f"{secrets.randbelow(10**6):06d}"
    expires = now + timedelta(seconds=CODE_TTL_S)
    with db.transaction() as tx:
        mine = tx.all(
            "SELECT created_at FROM member_otp WHERE phone_hash = ? AND created_at > ? "
            "ORDER BY created_at DESC",
            (hashed, hour_ago),
        )
        if mine and datetime.fromisoformat(mine[0][0]) > now - timedelta(seconds=PHONE_GAP_S):
            wait = PHONE_GAP_S - int((now - datetime.fromisoformat(mine[0][0])).total_seconds())
            raise CodeError(
                f"a code was sent a moment ago: ask again in {wait} s",
                f"код только что отправлен: запросите снова через {wait} с",
                field="phone",
                retry_after=wait,
            )
        if len(mine) >= PHONE_PER_HOUR:
            raise CodeError(
                f"{PHONE_PER_HOUR} codes an hour at most for one phone: try again later",
                f"на один телефон не больше {PHONE_PER_HOUR} кодов в час: попробуйте позже",
                field="phone",
            )
        theirs = tx.one(
            "SELECT count(*) FROM member_otp WHERE client = ? AND created_at > ?",
            (client, hour_ago),
        )
        if int(theirs[0]) >= CLIENT_PER_HOUR:
            raise CodeError(
                f"{CLIENT_PER_HOUR} codes an hour at most from one address: try again later",
                f"с одного адреса не больше {CLIENT_PER_HOUR} кодов в час: попробуйте позже",
                field="phone",
            )
        tx.execute(
            "INSERT INTO member_otp(phone_hash, client, code_hash, created_at, expires_at, "
            "attempts, used) VALUES (?,?,?,?,?,0,0)",
            (hashed, client, _digest(key, hashed, code), now.isoformat(), expires.isoformat()),
        )
        # Sent inside the transaction: a message that could not go leaves no code behind.
        gateway.send(e164, f"Код для карты: {code} / Card code: {code}")
    return Sent(e164, hashed, expires)


def check_code(db: Database, key: bytes, phone_text: str, code: str, now: datetime) -> str:
    """The phone's hash when ``code`` is its latest live code (then used up)."""
    hashed = phone_hash(normalize_phone(phone_text), key)
    code = code.strip()
    with db.transaction() as tx:
        row = tx.one(
            "SELECT id, code_hash, expires_at, attempts FROM member_otp "
            "WHERE phone_hash = ? AND used = 0 ORDER BY created_at DESC, id DESC LIMIT 1",
            (hashed,),
        )
        if row is None or datetime.fromisoformat(row[2]) <= now:
            raise CodeError(
                "the code has expired or was not asked for: ask for a new one",
                "срок кода истёк или код не запрошен: запросите новый",
                field="code",
            )
        if int(row[3]) >= MAX_ATTEMPTS:
            raise CodeError(
                f"{MAX_ATTEMPTS} wrong tries: ask for a new code",
                f"{MAX_ATTEMPTS} неверных попыток: запросите новый код",
                field="code",
            )
        if not (len(code) == 6 and code.isdigit()) or not hmac.compare_digest(
            row[1], _digest(key, hashed, code)
        ):
            tx.execute("UPDATE member_otp SET attempts = attempts + 1 WHERE id = ?", (row[0],))
            left = MAX_ATTEMPTS - int(row[3]) - 1
            wrong = CodeError(
                f"wrong code: {left} tries left",
                f"неверный код: осталось попыток {left}",
                field="code",
                left=left,
            )
        else:
            tx.execute("UPDATE member_otp SET used = 1 WHERE id = ?", (row[0],))
            return hashed
    raise wrong
