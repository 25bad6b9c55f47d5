"""A real webhook receiver for the tests: an HTTP server thread on 127.0.0.1 that the test
starts, stops (the port then refuses connections and the open keep-alive connections are
cut: an outage) and restarts on the same port.

Every request is kept (``Received``: webhook-id, headers, body, the status answered). The
answers are scripted: ``answer`` (a status, optionally with headers) for every request,
or ``script`` for the next ones in turn, 503 for the events of ``failing_subjects``
(members); ``verify_with`` checks each signature with the
Standard Webhooks ``verify`` of the back office (a bad one is answered 401 and counted).
``delay_s`` holds each answer that long (a slow receiver, seconds); ``most_in_flight`` is
the most requests it was serving at once."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sync.backoffice import webhooks


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int

    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.body)
        return out


@dataclass
class Receiver:
    port: int = 0
    answer: tuple[int, dict[str, str]] = (204, {})
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    verify_with: list[str] = field(default_factory=list)
    failing_subjects: set[str] = field(default_factory=set)
    got: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    delay_s: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: set[socket.socket] = field(default_factory=set)  # connections being served

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._open.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with receiver._lock:
                        receiver._open.discard(self.connection)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                got = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    if receiver.delay_s:
                        time.sleep(receiver.delay_s)  # outside the lock: others go on
                    status, extra = receiver._answer(got, body)
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        if self.port == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            cut, self._open = list(self._open), set()
        for conn in cut:  # a client's keep-alive connection must not outlive the outage
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _answer(self, got: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            status, extra = self.script.pop(0) if self.script else self.answer
            if self.failing_subjects and json.loads(body).get("subject") in self.failing_subjects:
                status, extra = 503, {}
            if self.verify_with:
                try:
                    for secret in self.verify_with:
                        webhooks.verify(
                            secret,
                            got,
                            body,
                            datetime.fromtimestamp(int(got.get("webhook-timestamp", "0")), UTC),
                        )
                except webhooks.SignatureError:
                    self.bad_signatures += 1
                    status, extra = 401, {}
            self.got.append(Received(got.get("webhook-id", ""), got, body, status))
            return status, extra

    def accepted(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.got if 200 <= r.status < 300]

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.accepted()]
