"""Text messages to members' phones (one-time sign-in codes) through a gateway.

Two providers: ``FileGateway`` appends each message as one JSON line to a file (0600) — the
demo's and the tests' provider, from which a code is read back (``read_last``) — and
``HttpGateway``, which POSTs ``{"to": "+7...", "text": "..."}`` as JSON to a provider's URL
with ``Authorization: Bearer <key>`` and treats any 2xx answer as sent. ``from_env`` picks
one: ``KASSA_SMS_URL`` + ``KASSA_SMS_KEY`` for the HTTP provider, else the file
``KASSA_SMS_FILE`` (default ``kassa-sms.log`` in the working directory).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

from agent.errors import AgentError

SEND_TIMEOUT_S = 10.0
"""Seconds the HTTP provider may take to answer one message."""


class SmsError(AgentError):
    """The gateway could not hand the message over (the member is asked to try later)."""

    code = "sms_failed"
    title_en = "Message not sent"
    title_ru = "Сообщение не отправлено"


class SmsGateway(Protocol):
    def send(self, phone: str, text: str) -> None:
        """Send ``text`` to ``phone`` (E.164); raises ``SmsError`` when it cannot."""


@dataclass(slots=True)
class FileGateway:
    """Writes each message to ``path`` as a JSON line: ``{"at", "to", "text"}``."""

    path: Path
    _lock: threading.Lock

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, phone: str, text: str) -> None:
        line = json.dumps(
            {"at": datetime.now(UTC).isoformat(), "to": phone, "text": text}, ensure_ascii=False
        )
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)

    def read_last(self, phone: str) -> str | None:
        """The text of the last message written for ``phone`` (None when none was)."""
        if not self.path.exists():
            return None
        last = None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            msg = json.loads(line)
            if msg["to"] == phone:
                last = str(msg["text"])
        return last


class HttpGateway:
    """A real provider's HTTP API at ``url`` with the account's ``key``."""

    def __init__(self, url: str, key: str, client: httpx.Client | None = None) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the SMS provider's URL must start with https:// or http://")
        if not key:
            raise ValueError("the SMS provider's key is empty")
        self.url = url
        self.key = key
        self.client = client or httpx.Client(timeout=SEND_TIMEOUT_S)

    def send(self, phone: str, text: str) -> None:
        try:
            r = self.client.post(
                self.url,
                json={"to": phone, "text": text},
                headers={"Authorization": f"Bearer {self.key}"},
            )
        except httpx.HTTPError as e:
            raise SmsError(
                f"the SMS provider did not answer: {type(e).__name__}",
                f"SMS-провайдер не ответил: {type(e).__name__}",
            ) from None
        if not r.is_success:
            raise SmsError(
                f"the SMS provider refused the message with HTTP {r.status_code}",
                f"SMS-провайдер отказал в отправке: HTTP {r.status_code}",
            )


def from_env() -> SmsGateway:
    """The gateway the environment names (see the module docstring)."""
    url, key = os.environ.get("KASSA_SMS_URL"), os.environ.get("KASSA_SMS_KEY")
    if url and key:
        return HttpGateway(url, key)
    return FileGateway(os.environ.get("KASSA_SMS_FILE", "kassa-sms.log"))
