"""Slow and stalled clients against both real servers (uvicorn on loopback, the products'
own protocol and middleware): clients that send headers and ``{`` and then nothing hold no
request slot of the POS API and are answered 408; clients that never finish their headers
are disconnected; a trickled push to the back office is cut off too."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from kassa.demo_sync import LoopbackServer, _free_port
from kassa.posapi import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.httpserve import H11HeaderDeadline, HeaderDeadlineProtocol
from tests.conftest import Till

TOKEN = "slow-clients-token-0123456789"


class QuickHeaders(HeaderDeadlineProtocol):  # type: ignore[misc,valid-type]
    """The servers' protocol (httptools when installed) with a half-second deadline."""

    header_timeout_s = 0.5


class QuickH11(H11HeaderDeadline):
    header_timeout_s = 0.5


PROTOCOL: dict[str, Any] = {"http": QuickHeaders}


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=PROTOCOL["http"]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def stalled(url: str, path: str, *, token: str, headers_done: bool = True) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n"
    )
    s.sendall((head + "\r\n{").encode() if headers_done else head.encode())
    return s


def closed_by_server(s: socket.socket, within_s: float) -> bytes:
    """What the server sent before closing ``s`` (fails if it is still open)."""
    s.settimeout(within_s)
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk


@pytest.fixture
def pos(tmp_path, clock) -> Iterator[tuple[str, Till]]:
    till = Till(tmp_path / "till.db", clock)
    app = create_app(till.agent, token=TOKEN, max_concurrency=4, body_timeout_s=1.0)
    with served(app) as url:
        yield url, till
    till.store.close()


def test_stalled_bodies_hold_no_slot_of_the_pos_api_and_get_408(pos):
    url, _ = pos
    stuck = [stalled(url, "/v1/identify", token=TOKEN) for _ in range(12)]  # 3x the slots
    time.sleep(0.2)
    auth = {"authorization": f"Bearer {TOKEN}"}
    for _ in range(3):  # every other call is served meanwhile, none is "overloaded"
        r = httpx.get(f"{url}/v1/status", headers=auth, timeout=5)
        assert r.status_code == 200, r.text
    for s in stuck:
        answer = closed_by_server(s, within_s=5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"request_timeout" in answer
        s.close()


@pytest.fixture(params=["auto", "h11"])
def protocol(request, monkeypatch):
    """Both parsers uvicorn may run: the one it picks here and h11 (its fallback)."""
    monkeypatch.setitem(PROTOCOL, "http", QuickHeaders if request.param == "auto" else QuickH11)


def test_headers_that_never_end_are_disconnected(protocol, pos):
    url, _ = pos
    s = stalled(url, "/v1/identify", token=TOKEN, headers_done=False)
    started = time.monotonic()
    assert closed_by_server(s, within_s=5) == b""
    assert time.monotonic() - started < 4
    s.close()
    # A kept-alive connection gets the deadline again for its next request.
    host, port = url.removeprefix("http://").split(":")
    k = socket.create_connection((host, int(port)))
    k.sendall(b"GET /v1/live HTTP/1.1\r\nHost: x\r\n\r\n")
    k.settimeout(5)
    first = b""
    while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
        first += k.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    time.sleep(0.3)
    k.sendall(b"GET /v1/live HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    started = time.monotonic()
    assert closed_by_server(k, within_s=5) == b""
    assert time.monotonic() - started < 4
    k.close()


def test_a_trickled_push_to_the_back_office_is_cut_off(tmp_path, monkeypatch):
    import sync.backoffice.app as app_module

    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    bo.initialise()
    token = bo.enroll(bo.enroll_code("s1", store_name="Магазин"), "Касса")["token"]
    real = app_module.BodyFirst

    def quick(app: Any, **kw: Any) -> Any:
        return real(app, **{**kw, "idle_s": 0.5, "total_s": 1.0})

    monkeypatch.setattr(app_module, "BodyFirst", quick)
    with LoopbackServer(bo, verifier=False) as server:
        s = stalled(server.url, "/v1/events", token=token)
        for _ in range(3):  # a byte every 0.3 s: never idle for long, but never done
            time.sleep(0.3)
            with contextlib.suppress(OSError):
                s.sendall(b" ")
        answer = closed_by_server(s, within_s=5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        s.close()
    with bo.db.reading() as tx:
        assert tx.one("SELECT count(*) FROM events")[0] == 0
    bo.db.close()
