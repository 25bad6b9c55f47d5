"""What the cashier app holds: the till the wiring built, and the app's own state.

The till (the till service, the sync client, the print worker, the scanners) is built
from the configuration by ``kassa.wiring`` and handed in as a ``Till``; the app never
builds one. ``Services`` adds what belongs to one app run: the signed-in cashier and
shift, the language, training, the sign-in hints. Background threads start in
``start(post)``, where ``post`` is the App's thread-safe ``post_message``, and stop in
``stop()``; the App calls both.

Only workers touch ``Services``; screens never do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from textual.message import Message

    from agent.results import Cashier, Shift
    from agent.service import Agent
    from drivers.printq import PrinterEvent, PrintWorker
    from drivers.scanner import Frame
    from drivers.transport import CaptureTransport
    from sync.client import SyncClient


class PrinterState(Protocol):
    """The print worker's state as the status bar shows it (``kassa.wiring.PrinterStatus``)."""

    @property
    def configured(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def preview(self) -> bool: ...
    @property
    def file(self) -> bool: ...


class Till(Protocol):
    """The till as the cashier app uses it (``kassa.wiring.Till``)."""

    http: Any
    printer: PrintWorker | None
    preview: CaptureTransport | None
    profile: str
    slip_width: int

    @property
    def agent(self) -> Agent: ...
    @property
    def sync(self) -> SyncClient | None: ...
    def start_printer(self, on_event: Callable[[PrinterEvent], None] | None = None) -> None: ...
    def start_scanners(self, on_scan: Callable[[Frame], None]) -> None: ...
    def start_sync(self, interval_s: float) -> bool: ...
    def notify_printer(self) -> None: ...
    def printer_status(self) -> PrinterState: ...
    def use_store(self, store: Any) -> None: ...
    def stop_workers(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the status bar shows, read in one worker call.

    ``online`` is None when the till has no back office configured. Times are aware
    datetimes (``now`` in the store's time zone, the programme's); ``printer_fault`` is a
    ``PrinterFault`` value ("ok", "unknown", ...).
    """

    online: bool | None
    events_waiting: int
    oldest_waiting: datetime | None
    last_contact: datetime | None
    quarantined: int
    printer_fault: str
    printer_preview: bool
    print_queue: int
    training: bool
    now: datetime
    printer_file: bool = False
    """The printer is a capture file (``capture:///path``): slips are written to it, so
    its state is known without a reply (a write failure shows as a fault)."""
    disk_full: bool = False
    """The store's disk is full: no sale can be saved and sync cannot settle (the sync
    loop keeps its error: ``SyncView.last_error``)."""


@dataclass
class Services:
    """The till and the app's state for one app run (see the module docstring)."""

    till: Till
    sync_interval_s: float | None = 5.0
    """Background sync loop period in seconds; None: no loop (tests drive sync by hand)."""
    training: bool = False
    lang: str = "ru"
    hints: list[str] = field(default_factory=list)
    """Lines shown on the sign-in screen (the demo's PINs, phones, codes)."""
    cashier: Cashier | None = None
    shift: Shift | None = None
    on_close: list[Callable[[], None]] = field(default_factory=list)
    """Run first by ``stop()``, last added first (training drops its copy here)."""
    _started: bool = False
    _stopped: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------------ the till's parts
    @property
    def agent(self) -> Agent:
        """The till service (built on first use: it loads the scoring engine)."""
        return self.till.agent

    @property
    def sync(self) -> SyncClient | None:
        return self.till.sync

    @property
    def store(self) -> Any:
        """The store the service runs on (tests read it; the app goes through ``agent``)."""
        return self.till.agent.store

    @property
    def printer(self) -> PrintWorker | None:
        return self.till.printer

    @printer.setter
    def printer(self, worker: PrintWorker | None) -> None:
        self.till.printer = worker

    @property
    def preview(self) -> CaptureTransport | None:
        """The on-screen printer's bytes (the demo's preview), or None: a real printer."""
        return self.till.preview

    @property
    def profile(self) -> str:
        return self.till.profile

    @property
    def slip_width(self) -> int:
        return self.till.slip_width

    def notify_printer(self) -> None:
        """A slip was queued: wake the print worker."""
        self.till.notify_printer()

    # ------------------------------------------------------------------ life cycle
    def start(self, post: Callable[[Message], Any]) -> None:
        """Start the print worker, the serial scanners and the sync loop (once); their
        events go through ``post``. Runs in a worker thread after the first screen."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
        self.agent  # noqa: B018 - load the core now, not on the first scan
        from tui.messages import PrinterChanged, Scanned

        def on_event(e: PrinterEvent) -> None:
            post(PrinterChanged(e.kind, str(e.fault.value), e.message_ru, e.message_en, e.job_id))

        if self._stopped:  # the app quit while we were loading
            return
        self.till.start_printer(on_event)
        self.till.start_scanners(lambda frame: post(Scanned(frame.text, "serial")))
        if self.sync_interval_s is not None:
            self.till.start_sync(self.sync_interval_s)

    def stop(self) -> None:
        """Stop background threads and release everything (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.till.stop_workers()  # nothing prints or syncs from a store about to close
        while self.on_close:
            with contextlib.suppress(Exception):
                self.on_close.pop()()
        self.till.close()

    def status(self) -> StatusSnapshot:
        """One read of sync and printer state for the status bar (worker thread)."""
        # The journal the uploader sends: in training the app runs on a copy of the store
        # (agent.training) while the sync client keeps the real one.
        sync = self.till.sync
        live = sync.agent if sync is not None else self.agent
        st = live.sync_status()
        online = st.online if self.till.http is not None else None
        printer = self.till.printer_status()
        return StatusSnapshot(
            online=online,
            events_waiting=st.events_waiting,
            oldest_waiting=datetime.fromisoformat(st.oldest_waiting) if st.oldest_waiting else None,
            last_contact=datetime.fromisoformat(st.last_contact) if st.last_contact else None,
            quarantined=st.quarantined,
            printer_fault=printer.state if printer.configured else "unknown",
            printer_preview=printer.preview,
            print_queue=self.agent.print_queue_depth(),
            training=self.training,
            now=self.agent.clock.now().astimezone(self.agent.programme().tz),
            printer_file=printer.file,
            disk_full=st.disk_full,
        )
