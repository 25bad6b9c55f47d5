"""The agent's HTTP protocol (``kassa.runtime.http_protocol``) over a real loopback socket:
each answer of the POS API leaves in one write to the socket, complete, and nothing that
must go out earlier (``100 Continue``) waits for the answer.

Real pieces: uvicorn's own HTTP protocol (the parser uvicorn picks: httptools when
installed, else h11), the real POS API app over a real store, asyncio sockets. The only
addition is a pass-through that records what reaches the socket's transport.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from kassa.posapi import create_app
from kassa.runtime import OneSendTransport, http_protocol, settle_for_serving

TOKEN = "test-token-0123456789abcdef"
DEADLINE_S = 10.0  # a hang guard only: no assertion is about time


class Recording:
    """Passes everything to the socket's transport and records each ``write``."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def serve(app: Any, writes: list[bytes]) -> tuple[asyncio.AbstractServer, int]:
    base = http_protocol()

    class Recorded(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(Recording(transport, writes))

    config = uvicorn.Config(app, http=Recorded, log_config=None, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Recorded(config=config, server_state=state, app_state={}),
        host="127.0.0.1",
        port=0,
    )
    return server, server.sockets[0].getsockname()[1]


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE_S)
    return status.encode(), headers, body


def request(
    method: str, path: str, body: bytes = b"", extra: str = "", token: str = TOKEN
) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nhost: pos\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_each_answer_is_one_complete_write_on_a_kept_alive_connection(till):
    app = create_app(till.agent, token=TOKEN)
    writes: list[bytes] = []

    async def main() -> list[tuple[bytes, dict[str, str], bytes]]:
        server, port = await serve(app, writes)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            quote = json.dumps(
                {"member_id": "m00000001", "receipt_id": "R1", "lines": [{"sku": "DR-1001"}]}
            ).encode()
            for raw in (
                request("GET", "/v1/scans/next"),
                request("POST", "/v1/quote", quote),
                request("GET", "/v1/scans/next", token="wrong-token-0123456789"),
                request("GET", "/v1/no-such-path"),
            ):
                writer.write(raw)
                answers.append(await read_response(reader))
            writer.close()
            await writer.wait_closed()
            return answers

    answers = asyncio.run(main())
    assert [a[0].split()[1] for a in answers] == [b"200", b"200", b"401", b"404"]
    # One write per answer, and that write is the whole answer: status line, headers, body.
    assert len(writes) == len(answers)
    for write, (status, headers, body) in zip(writes, answers, strict=True):
        assert write.startswith(status + b"\r\n")
        assert write.endswith(b"\r\n\r\n" + body)
        assert headers["content-type"] == "application/json"
    assert json.loads(answers[0][2]) == {"scan": None}
    assert json.loads(answers[1][2])["receipt_id"] == "R1"


def test_an_answer_with_connection_close_is_written_before_the_socket_closes(till):
    app = create_app(till.agent, token=TOKEN)
    writes: list[bytes] = []

    async def main() -> tuple[bytes, bytes]:
        server, port = await serve(app, writes)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("GET", "/v1/scans/next", extra="connection: close\r\n"))
            status, _headers, body = await read_response(reader)
            rest = await asyncio.wait_for(reader.read(), DEADLINE_S)  # b"" once closed
            writer.close()
            return status, body + rest

    status, body = asyncio.run(main())
    assert status.split()[1] == b"200"
    assert json.loads(body) == {"scan": None}
    assert len(writes) == 1


def test_100_continue_goes_out_before_the_answer(till):
    """A client sending ``Expect: 100-continue`` waits for the interim answer before it
    sends the body: that write must leave at once, not wait for the final answer (which
    cannot come before the body)."""
    app = create_app(till.agent, token=TOKEN)
    writes: list[bytes] = []
    body = json.dumps({"input": "no such member 1"}).encode()

    async def main() -> tuple[bytes, bytes]:
        server, port = await serve(app, writes)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = request("POST", "/v1/identify", body, extra="expect: 100-continue\r\n")
            writer.write(head[: -len(body)])
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
            writer.write(body)
            status, _headers, answer = await read_response(reader)
            writer.close()
            return interim, status + b" " + answer

    interim, final = asyncio.run(main())
    assert interim.startswith(b"HTTP/1.1 100")
    assert final.split()[1] == b"400"  # not a phone, code or token: named, nothing written
    assert writes[0].startswith(b"HTTP/1.1 100")
    assert len(writes) == 2


def test_one_send_transport_drops_on_abort_and_after_the_connection_is_gone():
    class Sink:
        def __init__(self) -> None:
            self.sent: list[bytes] = []
            self.closing = False
            self.events: list[str] = []

        def write(self, data: bytes) -> None:
            self.sent.append(data)
            self.events.append("write")

        def is_closing(self) -> bool:
            return self.closing

        def close(self) -> None:
            self.events.append("close")
            self.closing = True

        def abort(self) -> None:
            self.events.append("abort")
            self.closing = True

        def get_write_buffer_size(self) -> int:
            return 0

    loop = asyncio.new_event_loop()
    try:
        sink = Sink()
        t = OneSendTransport(sink, loop)  # type: ignore[arg-type]
        t.write(b"head")
        t.write(b"")
        t.write(memoryview(b"body"))
        assert sink.sent == [] and t.get_write_buffer_size() == 8
        t.flush()
        assert sink.sent == [b"headbody"]
        t.write(b"x")
        t.close()  # what was written goes out before the close
        assert sink.events == ["write", "write", "close"] and sink.sent[-1] == b"x"

        sink = Sink()
        t = OneSendTransport(sink, loop)  # type: ignore[arg-type]
        t.write(b"lost")
        t.abort()
        t.flush()
        assert sink.sent == [] and sink.events == ["abort"]

        sink = Sink()
        t = OneSendTransport(sink, loop)  # type: ignore[arg-type]
        t.write(b"late")
        sink.closing = True  # the peer went away before the loop turned
        loop.run_until_complete(asyncio.sleep(0))
        assert sink.sent == []
    finally:
        loop.close()


def test_unflushed_writes_leave_at_the_next_turn_of_the_loop():
    sent: list[bytes] = []

    class Sink:
        def write(self, data: bytes) -> None:
            sent.append(data)

        def is_closing(self) -> bool:
            return False

    async def main() -> list[bytes]:
        t = OneSendTransport(Sink(), asyncio.get_running_loop())  # type: ignore[arg-type]
        t.writelines([b"a", b"b"])
        before = list(sent)
        await asyncio.sleep(0)
        return before

    assert asyncio.run(main()) == []
    assert sent == [b"ab"]


def test_settle_for_serving_puts_start_up_objects_out_of_the_collectors_reach():
    gc.unfreeze()
    try:
        start_up = [[i] for i in range(1000)]  # tracked containers, alive from start-up
        settle_for_serving()
        assert gc.get_freeze_count() >= len(start_up)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in start_up)  # a full pass skips them
    finally:
        gc.unfreeze()


def test_the_agent_serves_with_the_one_send_protocol(tmp_path, monkeypatch):
    """``Runtime.serve`` hands uvicorn our protocol class, and settles before serving."""
    from kassa import runtime

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_server(config: Any) -> Any:
        seen["http"] = config.http

        class S:
            def run(self) -> None:
                seen["frozen"] = gc.get_freeze_count()
                raise Stop

        return S()

    store = tmp_path / "till.db"
    from kassa.setup import init_store

    init_store(store, demo=True, members=5, store_name="T")
    cfg_file = tmp_path / "kassa.toml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_file.write_text(
        f'[store]\npath = "{store}"\n[api]\nport = {port}\n[sync]\nenabled = false\n'
        f'[log]\ndir = "{tmp_path / "log"}"\n',
        encoding="utf-8",
    )
    from kassa.config import load_config

    monkeypatch.setattr(runtime, "_Server", fake_server)
    try:
        with pytest.raises(Stop):
            runtime.Runtime(load_config(cfg_file)).serve()
    finally:
        gc.unfreeze()
    assert isinstance(seen["http"], type)
    assert issubclass(seen["http"], asyncio.Protocol)
    assert seen["http"].__name__.startswith("OneSend")
    assert seen["frozen"] > 0
