"""What the cashier app runs on: the Agent, the sync client, the print queue, a clock.

``Services`` is built by a factory (``open_services``) that ``kassa tui``, ``kassa demo``
and the tests share; the App receives it and never builds its own. Background threads
(print worker, sync loop) start in ``start(post)``, where ``post`` is the App's thread-safe
``post_message``, and stop in ``stop()``; the App calls both. The printer and network
stacks are imported lazily inside the factory so the app starts fast (bench/tui.py).

Only workers touch ``Services``; screens never do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from agent.shifts import Cashier, Shift
from agent.store import Store

if TYPE_CHECKING:
    from textual.message import Message

    from agent.service import Agent, Clock
    from drivers.printq import PrintWorker
    from drivers.transport import CaptureTransport
    from sync.client import SyncClient, SyncRunner


class UtcClock:
    """The real clock (aware UTC); tests pass a fake with the same ``now()``."""

    def now(self) -> datetime:
        return datetime.now(UTC)


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


@dataclass
class Services:
    """The till's core and devices for one app run (see module docstring).

    ``agent`` and ``sync`` are built on first use (the scoring engine, the crypto and the
    network stack load after the first screen); ``start()`` builds the printer from
    ``printer_url``/``profile`` unless a test put its own ``printer`` in first.
    """

    store: Store
    clock: Clock
    http: Any = None
    """``httpx.Client`` with the back office as base URL, or None (no sync)."""
    printer_url: str | None = "capture://"
    profile: str = "epson-tm-42"
    printer: PrintWorker | None = None
    preview: CaptureTransport | None = None
    """Set when the printer is the on-screen preview (demo): slips are shown, not printed."""
    sync_interval_s: float | None = 5.0
    """Background sync loop period in seconds; None: no loop (tests drive sync by hand)."""
    training: bool = False
    lang: str = "ru"
    slip_width: int = 42
    """Preview width in characters (32/42/48, from the printer profile)."""
    scanner_port: str | None = None
    """Serial scanner port or pyserial URL (``/dev/ttyACM0``); None: keyboard wedge only."""
    hints: list[str] = field(default_factory=list)
    """Lines shown on the sign-in screen (the demo's PINs, phones, codes)."""
    cashier: Cashier | None = None
    shift: Shift | None = None
    on_close: list[Callable[[], None]] = field(default_factory=list)
    _agent: Agent | None = None
    _sync: SyncClient | None = None
    _runner: SyncRunner | None = None
    _started: bool = False
    _stopped: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def agent(self) -> Agent:
        with self._lock:
            if self._agent is None:
                from agent.service import Agent

                self._agent = Agent(self.store, self.clock)
            return self._agent

    @property
    def sync(self) -> SyncClient | None:
        with self._lock:
            if self._sync is None and self.http is not None:
                from sync.client import SyncClient

                self._sync = SyncClient(self.agent, self.http)
            return self._sync

    def _build_printer(self) -> None:
        if self.printer is not None or not self.printer_url:
            return
        from drivers.printq import PrintWorker
        from drivers.profiles import load_profile
        from drivers.render import render

        profile = load_profile(self.profile)
        self.slip_width = profile.columns
        if self.printer_url == "capture://":
            self.printer, self.preview = preview_printer(self.store, self.profile)
            return
        from drivers.transport import transport_from_url

        self.printer = PrintWorker(
            self.store,
            transport_from_url(self.printer_url),
            lambda slip: render(slip, profile),
            status_supported=profile.status,
        )

    def start(self, post: Callable[[Message], Any]) -> None:
        """Build and start the print worker, the serial scanner and the sync loop (once);
        their events go through ``post``. Runs in a worker thread after the first screen."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
        self.agent  # noqa: B018 - load the core now, not on the first scan
        self._build_printer()
        if self._stopped:  # the app quit while we were loading
            return
        if self.printer is not None:
            from tui.messages import PrinterChanged

            def on_event(e: Any) -> None:
                post(
                    PrinterChanged(e.kind, str(e.fault.value), e.message_ru, e.message_en, e.job_id)
                )

            self.printer.on_event = on_event
            self.printer.start()
        if self.scanner_port:
            from drivers.scanner import SerialScanner
            from tui.messages import Scanned

            scanner = SerialScanner(
                self.scanner_port, lambda frame: post(Scanned(frame.text, "serial"))
            )
            scanner.start()
            self.on_close.insert(0, scanner.stop)
        sync = self.sync
        if sync is not None and self.sync_interval_s is not None:
            from sync.client import SyncRunner

            self._runner = SyncRunner(sync, interval_s=self.sync_interval_s)
            self._runner.start()

    def stop(self) -> None:
        """Stop background threads and release everything (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self.printer is not None:
            self.printer.stop()
        while self.on_close:
            with contextlib.suppress(Exception):
                self.on_close.pop()()

    def status(self) -> StatusSnapshot:
        """One read of sync and printer state for the status bar (worker thread)."""
        from agent import journal, printq

        # The journal the uploader sends: in training the app runs on a copy of the store
        # (agent.training) while the sync client keeps the real one.
        live = self._sync.agent if self._sync is not None else self.agent
        st = journal.status(live.store)
        online: bool | None = None
        if self.http is not None:
            online = live.offline_status().online
        fault = "unknown"
        if self.printer is not None:
            fault = str(self.printer.state.value)
        return StatusSnapshot(
            online=online,
            events_waiting=st.events_waiting,
            oldest_waiting=datetime.fromisoformat(st.oldest_waiting) if st.oldest_waiting else None,
            last_contact=datetime.fromisoformat(st.last_contact) if st.last_contact else None,
            quarantined=st.quarantined,
            printer_fault=fault,
            printer_preview=self.preview is not None,
            print_queue=printq.queue_depth(self.store),
            training=self.training,
            now=self.clock.now().astimezone(self.agent.programme().tz),
            printer_file=self.preview is None
            and bool(self.printer_url)
            and str(self.printer_url).startswith("capture://")
            and len(str(self.printer_url)) > len("capture://"),
        )


def preview_printer(store: Store, profile_name: str) -> tuple[PrintWorker, CaptureTransport]:
    """A print worker writing ESC/POS bytes to memory: the demo's on-screen printer.

    The bytes are real (rendered with the printer profile) so a test can decode them; the
    cashier sees ``agent.slip.slip_text`` of the same slip.
    """
    from drivers.printq import PrintWorker
    from drivers.profiles import load_profile
    from drivers.render import render
    from drivers.transport import CaptureTransport

    profile = load_profile(profile_name)
    transport = CaptureTransport()
    worker = PrintWorker(
        store,
        transport,
        lambda slip: render(slip, profile),
        status_supported=False,
        idle_poll_s=0.5,
    )
    return worker, transport


def open_services(
    store_path: Path,
    *,
    clock: Clock | None = None,
    printer_url: str | None = "capture://",
    profile: str = "epson-tm-42",
    http: Any = None,
    backoffice_url: str | None = None,
    sync_interval_s: float | None = 5.0,
    lang: str = "ru",
    training: bool = False,
    scanner_port: str | None = None,
) -> Services:
    """Open the till store and describe the app's services (nothing heavy starts here).

    ``printer_url``: ``capture://`` (on-screen preview, the demo), a transport URL
    (``tcp://host:9100``...), or None (no printer); ``profile``: a printer profile preset
    or file (its columns are the on-screen slip width). ``http``: an ``httpx.Client`` whose
    base URL is the back office (tests pass one over ASGITransport); else
    ``backoffice_url`` or the URL saved at enrollment; no URL means no sync.
    """
    store = Store(store_path)
    try:
        if not store.meta("terminal_id"):
            raise StoreError(
                "till store is not initialised (run `kassa init` or `kassa enroll`)",
                "База кассы не инициализирована (выполните kassa init или kassa enroll)",
                path=str(store_path),
            )
        services = Services(
            store=store,
            clock=clock or UtcClock(),
            http=http,
            printer_url=printer_url,
            profile=profile,
            sync_interval_s=sync_interval_s,
            lang=lang,
            training=training,
            scanner_port=scanner_port,
        )
        services.on_close.append(store.close)
        url = backoffice_url or store.meta("backoffice_url")
        if http is None and url and store.meta("sync_token"):
            import httpx

            services.http = httpx.Client(base_url=url, timeout=httpx.Timeout(5.0, connect=2.0))
            services.on_close.insert(1, services.http.close)
        return services
    except BaseException:
        store.close()
        raise
