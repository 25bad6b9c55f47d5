"""The SMS gateways: the file provider (messages read back, file 0600) and the HTTP
provider against a fake provider at the edge (httpx.MockTransport): the request it sends,
a refusal and a provider that does not answer."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from sync.backoffice import sms


def test_file_gateway_writes_private_lines_and_reads_back(tmp_path: Path) -> None:
    g = sms.FileGateway(tmp_path / "sms.log")
    g.send("+79161234567", "Код: 123456")
    g.send("+79160000000", "Код: 654321")
    g.send("+79161234567", "Код: 111222")
    assert stat.S_IMODE((tmp_path / "sms.log").stat().st_mode) == 0o600
    assert g.read_last("+79161234567") == "Код: 111222"
    assert g.read_last("+79160000000") == "Код: 654321"
    assert g.read_last("+79169999999") is None
    lines = [json.loads(x) for x in (tmp_path / "sms.log").read_text().splitlines()]
    assert [x["to"] for x in lines] == ["+79161234567", "+79160000000", "+79161234567"]


def test_http_gateway_posts_json_with_the_key() -> None:
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "m1"})

    g = sms.HttpGateway(
        "https://sms.example/send", "k-1", httpx.Client(transport=httpx.MockTransport(provider))
    )
    g.send("+79161234567", "Код: 123456")
    assert len(seen) == 1
    assert seen[0].headers["authorization"] == "Bearer k-1"
    assert json.loads(seen[0].content) == {"to": "+79161234567", "text": "Код: 123456"}


def test_http_gateway_refused_and_unreachable() -> None:
    refusing = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(402)))
    with pytest.raises(sms.SmsError) as e:
        sms.HttpGateway("https://sms.example/send", "k", refusing).send("+79161234567", "x")
    assert "402" in e.value.message_en and "402" in e.value.message_ru

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    silent = httpx.Client(transport=httpx.MockTransport(down))
    with pytest.raises(sms.SmsError) as e:
        sms.HttpGateway("https://sms.example/send", "k", silent).send("+79161234567", "x")
    assert "ConnectError" in e.value.message_en


def test_http_gateway_bad_configuration() -> None:
    with pytest.raises(ValueError, match="URL"):
        sms.HttpGateway("ftp://x", "k")
    with pytest.raises(ValueError, match="key"):
        sms.HttpGateway("https://x", "")


def test_from_env_picks_the_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KASSA_SMS_URL", raising=False)
    monkeypatch.setenv("KASSA_SMS_FILE", str(tmp_path / "f.log"))
    g = sms.from_env()
    assert isinstance(g, sms.FileGateway) and g.path == tmp_path / "f.log"
    monkeypatch.setenv("KASSA_SMS_URL", "https://sms.example/send")
    monkeypatch.setenv("KASSA_SMS_KEY", "k")
    assert isinstance(sms.from_env(), sms.HttpGateway)
