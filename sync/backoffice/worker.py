"""A background thread of a serving back office that works in rounds and yields to pushes.

The projector (``project``) and the verifier (``verify``) both run this way: a round
handles a chunk of their queue in one transaction; while tills are pushing (a push within
``BUSY_WINDOW_S``) rounds are small and followed by a pause, so acceptance keeps the
database and the GIL; when pushes stop they catch up at full speed. A failing round is
logged and retried after a pause; the thread never dies of it.

A worker given a ``lease.Lease`` works only while its node holds it: on several nodes
over one PostgreSQL database one of them runs the rounds, and another takes the lease
over (within ``idle_s``) when that node's session ends. Without one (and on SQLite, whose
lease is always held) every round runs.
"""

from __future__ import annotations

import logging
import threading
import time

from sync.backoffice.context import Context
from sync.backoffice.lease import Lease

log = logging.getLogger("kassa.backoffice")

BUSY_WINDOW_S = 1.0  # a push within this many seconds means "busy"


class RoundWorker:
    """Subclasses give ``name``, ``idle_s`` and ``round``; ``busy_pause`` says how long to
    wait after a round that did work while busy (``elapsed``: that round's seconds)."""

    name = "kassa-worker"
    idle_s = 1.0  # pause when the queue is empty

    def __init__(self, ctx: Context, lease: Lease | None = None) -> None:
        self.ctx = ctx
        self.lease = lease
        self.stop_event = threading.Event()
        self.done = 0  # items handled since start
        self._thread: threading.Thread | None = None

    def round(self, busy: bool) -> int:
        """Handle one chunk; returns how many items."""
        raise NotImplementedError

    def busy_pause(self, elapsed: float) -> float:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if self.lease is not None and not self.lease.held():
                self.stop_event.wait(self.idle_s)  # another node works; try again then
                continue
            busy = self.ctx.pushes.seconds_since() < BUSY_WINDOW_S
            began = time.monotonic()
            try:
                n = self.round(busy)
            except Exception:
                log.exception("%s round failed; retrying", self.name)
                n = 0
            self.done += n
            if n == 0:
                self.stop_event.wait(self.idle_s)
            elif busy:
                self.stop_event.wait(self.busy_pause(time.monotonic() - began))

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.lease is not None and not self.is_alive():
            self.lease.release()
