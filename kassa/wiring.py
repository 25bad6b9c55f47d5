"""One till built from the configuration: what ``kassa agent serve``, ``kassa tui`` and
``kassa demo`` run on.

``build_till(cfg)`` opens the till store named by ``store.path`` and returns a ``Till``
holding the till service (``agent.service.Agent``), the HTTP client to the back office
and the sync client over it, the print worker on its transport (or the on-screen
preview), the serial scanners and the printer's status. Nothing starts in
``build_till``: the agent calls ``start_printer``/``start_scanners``/``start_sync``
when it serves, the cashier app from a worker after its first screen (the scoring
engine, the crypto and the network stack load after the sign-in list: ``Till.agent`` and
``Till.sync`` are built on first use). ``close()`` stops every worker and releases the
store, whoever started what.

The printer and scanner stacks are imported inside the methods that need them, so a
till without a printer never loads them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from kassa.config import Config

if TYPE_CHECKING:
    import httpx

    from agent.clock import Clock
    from agent.service import Agent
    from agent.store import Store
    from drivers.printq import PrinterEvent, PrintWorker
    from drivers.scanner import Frame, ScannerStatus, SerialScanner
    from drivers.transport import CaptureTransport, Transport
    from sync.client import SyncClient, SyncRunner
    from tui.services import Services

PREVIEW = "capture://"
"""Printer URL of the on-screen preview: slips rendered to memory, shown by the app."""

PREVIEW_PROFILE = "epson-tm-42"
"""Printer profile of the preview when none is configured (its columns: the slip width)."""


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """The print worker as the POS API's ``/v1/status`` and the cashier's status bar see it.

    ``state``: a ``drivers.status.PrinterFault`` value (``ok``, ``unknown``, ``no_paper``
    ...); ``failures``: consecutive failed attempts; ``preview``: the on-screen preview
    (nothing is printed); ``file``: a capture file (``capture:///path``), whose state is
    known without a reply from a printer."""

    configured: bool
    state: str = "unknown"
    failures: int = 0
    preview: bool = False
    file: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The POS API's ``printer`` object: ``{"configured": false}`` without a printer."""
        if not self.configured:
            return {"configured": False}
        return {"configured": True, "state": self.state, "failures": self.failures}


class Till:
    """One till store with its service and devices (see the module docstring).

    ``printer_url``: empty (no printer), ``capture://`` (the preview) or a transport URL
    (``drivers.transport``); ``profile``: preset name or profile file. ``http``: the
    client to the back office (its base URL), or None: no sync. ``owns_http``: ``close()``
    closes it (False for a client the caller made and closes itself)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        owns_http: bool = True,
        printer_url: str = "",
        profile: str = PREVIEW_PROFILE,
        scanner_ports: tuple[str, ...] = (),
        scanner_baudrate: int = 9600,
    ) -> None:
        self.store = store
        self._home = store
        self.clock = clock
        self.http = http
        self.owns_http = owns_http
        self.printer_url = printer_url
        self.profile = profile
        self.scanner_ports = scanner_ports
        self.scanner_baudrate = scanner_baudrate
        self.printer: PrintWorker | None = None
        self.transport: Transport | None = None
        self.preview: CaptureTransport | None = None
        self.slip_width = 42
        """Slip width in characters (32/42/48): the printer profile's, once it is built."""
        self.scanners: list[SerialScanner] = []
        self.runner: SyncRunner | None = None
        self._agent: Agent | None = None
        self._sync: SyncClient | None = None
        self._lock = threading.RLock()
        self._closed = False

    # ------------------------------------------------------------------ core
    @property
    def agent(self) -> Agent:
        """The till service on the store (built on first use: it loads the engine)."""
        with self._lock:
            if self._agent is None:
                from agent.service import Agent

                self._agent = Agent(self.store, self.clock)
            return self._agent

    @property
    def sync(self) -> SyncClient | None:
        """The sync client over ``http`` (None without a back office), bound to the store
        the till had when it was first asked for (the real one, also in training)."""
        with self._lock:
            if self._sync is None and self.http is not None:
                from sync.client import SyncClient

                self._sync = SyncClient(self.agent, self.http)
            return self._sync

    def use_store(self, store: Store) -> None:
        """Run the service and the print worker on ``store`` from now on (the cashier app's
        training copy and back); the sync client keeps the store it was bound to."""
        with self._lock:
            self.store = store
            self._agent = None
        if self.printer is not None:
            self.printer.stop()
            self.printer.store = store
            self.printer.start()

    # ------------------------------------------------------------------ printer
    def build_printer(self) -> PrintWorker | None:
        """Make the print worker for ``printer_url`` (once; a worker a test put in first is
        kept). Not started: ``start_printer``."""
        if self.printer is not None or not self.printer_url:
            return self.printer
        from drivers.printq import PrintWorker
        from drivers.profiles import load_profile
        from drivers.render import render
        from drivers.transport import CaptureTransport, transport_from_url

        profile = load_profile(self.profile)
        self.slip_width = profile.columns
        transport: Transport
        if self.printer_url == PREVIEW:
            # No printer to ask for a status; the preview looks at its queue every 0.5 s.
            transport = self.preview = CaptureTransport()
            status, idle_poll_s = False, 0.5
        else:
            transport = transport_from_url(self.printer_url)
            status, idle_poll_s = profile.status and transport.can_read, 5.0
        self.transport = transport
        self.printer = PrintWorker(
            self.store,
            transport,
            lambda slip: render(slip, profile),
            status_supported=status,
            idle_poll_s=idle_poll_s,
        )
        return self.printer

    def start_printer(self, on_event: Callable[[PrinterEvent], None] | None = None) -> None:
        """Build the print worker if there is a printer, and start it; its faults and
        recoveries go to ``on_event`` (on the worker's thread)."""
        printer = self.build_printer()
        if printer is not None:
            printer.on_event = on_event
            printer.start()

    def notify_printer(self) -> None:
        """A slip was queued: wake the print worker (nothing without one)."""
        if self.printer is not None:
            self.printer.notify()

    def printer_status(self) -> PrinterStatus:
        if self.printer is None:
            return PrinterStatus(False, preview=self.preview is not None)
        url = self.printer_url
        return PrinterStatus(
            True,
            str(self.printer.state.value),
            self.printer.failures,
            preview=self.preview is not None,
            file=self.preview is None and url.startswith(PREVIEW) and len(url) > len(PREVIEW),
        )

    # ------------------------------------------------------------------ scanners, sync
    def start_scanners(
        self,
        on_scan: Callable[[Frame], None],
        on_status: Callable[[ScannerStatus], None] | None = None,
    ) -> None:
        """A reader thread per configured serial scanner; frames go to ``on_scan``."""
        if not self.scanner_ports or self.scanners:
            return
        from drivers.scanner import SerialScanner

        for port in self.scanner_ports:
            scanner = SerialScanner(
                port, on_scan, baudrate=self.scanner_baudrate, on_status=on_status
            )
            scanner.start()
            self.scanners.append(scanner)

    def start_sync(self, interval_s: float) -> bool:
        """Run the sync loop every ``interval_s`` seconds; False without a back office."""
        sync = self.sync
        if sync is None or self.runner is not None:
            return sync is not None
        from sync.client import SyncRunner

        self.runner = SyncRunner(sync, interval_s=interval_s)
        self.runner.start()
        return True

    # ------------------------------------------------------------------ stop
    def stop_workers(self) -> None:
        """Stop the scanners, the print worker and the sync loop (the store stays open)."""
        for scanner in self.scanners:
            scanner.stop()
        self.scanners = []
        if self.printer is not None:
            self.printer.stop()
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def close(self) -> None:
        """Stop every worker, close the HTTP client (when ours) and the store the till was
        built on (idempotent; a store given to ``use_store`` is its giver's to close)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_workers()
        if self.http is not None and self.owns_http:
            with contextlib.suppress(Exception):
                self.http.close()
        self._home.close()


def sync_url(agent: Agent, url: str | None = None) -> str:
    """The back office a manual exchange (``sync_now``) talks to: ``url``, else the one
    saved at enrolment. ``InputError`` when there is none, or when the store is a
    training one (its journal is never sent as real)."""
    from agent.errors import InputError

    url = url or agent.sync_status().backoffice_url
    if not url:
        raise InputError(
            "no back office URL (enroll the till or pass --url)",
            "не задан адрес бэк-офиса (kassa enroll или --url)",
            field="url",
        )
    if agent.training:
        raise InputError(
            "this is a training store: its journal is never sent",
            "это учебная база: её события никогда не отправляются в бэк-офис",
            store=str(agent.store.path),
        )
    return url


def sync_now(
    agent: Agent, url: str, *, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """One exchange of ``agent``'s journal with the back office at ``url`` (from
    ``sync_url``) over a client of its own (``SyncClient.sync_now``: its figures; a failure
    is recorded on the journal and raised)."""
    from sync.client import SyncClient, backoffice_http

    with backoffice_http(url) as http:
        return SyncClient(agent, http).sync_now(progress=progress)


def backoffice_client(cfg: Config, store: Store) -> httpx.Client | None:
    """The HTTP client to the back office (``sync.url``, else the URL saved at enrolment),
    or None when sync is off or the till is not enrolled (no URL or token)."""
    if not cfg.sync.enabled:
        return None
    url = cfg.sync.url or store.meta("backoffice_url")
    if not url or not store.meta("sync_token"):
        return None
    from sync.client import backoffice_http

    return backoffice_http(url, timeout_s=cfg.sync.timeout_s)


def open_store(cfg: Config) -> Store:
    """The till store of ``cfg`` (an initialised one): ``StoreError`` when the file is
    missing or was never initialised (``kassa init`` / ``kassa enroll``)."""
    from agent.store import Store

    path = Path(cfg.store.path)
    if not path.exists():
        raise StoreError(
            f"no till store at {path} (run `kassa init` or `kassa enroll`)",
            f"база кассы {path} не найдена (kassa init или kassa enroll)",
            path=str(path),
        )
    store = Store(path)
    try:
        if not store.meta("terminal_id"):
            raise StoreError(
                "till store is not initialised (run `kassa init` or `kassa enroll`)",
                "База кассы не инициализирована (выполните kassa init или kassa enroll)",
                path=str(path),
            )
    except BaseException:
        store.close()
        raise
    return store


def build_till(
    cfg: Config,
    *,
    clock: Clock | None = None,
    http: httpx.Client | None = None,
    printer_url: str | None = None,
) -> Till:
    """The till of ``cfg``: its store opened (taking ownership), nothing started.

    ``http``: a client to the back office the caller made (the demo's, a test's over an
    in-process transport; the caller closes it), else ``backoffice_client(cfg)``.
    ``printer_url``: instead of ``printer.url`` (the cashier app's on-screen preview when
    none is configured)."""
    store = open_store(cfg)
    try:
        own = http is None
        if own:
            http = backoffice_client(cfg, store)
        return Till(
            store,
            clock=clock,
            http=http,
            owns_http=own,
            printer_url=cfg.printer.url if printer_url is None else printer_url,
            profile=cfg.printer.profile,
            scanner_ports=tuple(cfg.scanner.ports),
            scanner_baudrate=cfg.scanner.baudrate,
        )
    except BaseException:
        store.close()
        raise


# ---------------------------------------------------------------------- the cashier app
def app_services(
    cfg: Config,
    *,
    clock: Clock | None = None,
    http: httpx.Client | None = None,
    printer_url: str | None = None,
    sync_interval_s: float | None = None,
    lang: str = "ru",
    training: bool = False,
) -> Services:
    """The cashier app's services on the till of ``cfg`` (nothing heavy starts here).

    The app prints on ``printer.url``; when none is configured it shows slips on screen
    (``capture://``, the preview, with ``PREVIEW_PROFILE`` unless ``printer.profile`` was
    set). ``printer_url`` replaces both (``""``: no printer at all). The sync loop runs
    every ``sync.interval_s`` seconds unless ``sync_interval_s`` says otherwise."""
    from kassa.config import PrinterConfig
    from tui.services import Services

    if printer_url is None and not cfg.printer.url:
        printer_url = PREVIEW
        if cfg.printer.profile == PrinterConfig().profile:
            cfg = replace(cfg, printer=replace(cfg.printer, profile=PREVIEW_PROFILE))
    till = build_till(cfg, clock=clock, http=http, printer_url=printer_url)
    return Services(
        till,
        sync_interval_s=cfg.sync.interval_s if sync_interval_s is None else sync_interval_s,
        lang=lang,
        training=training,
    )


def open_services(
    store_path: Path,
    *,
    clock: Clock | None = None,
    printer_url: str | None = PREVIEW,
    profile: str = PREVIEW_PROFILE,
    http: httpx.Client | None = None,
    backoffice_url: str | None = None,
    sync_interval_s: float | None = 5.0,
    lang: str = "ru",
    training: bool = False,
    scanner_port: str | None = None,
) -> Services:
    """``app_services`` from explicit values instead of a config file (tests, benches).

    ``printer_url``: ``capture://`` (on-screen preview), a transport URL, or None (no
    printer); ``http``: a client to the back office (tests pass one over an in-process
    transport), else ``backoffice_url`` or the URL saved at enrolment."""
    from kassa.config import PrinterConfig, ScannerConfig, StoreConfig, SyncConfig

    cfg = Config(
        store=StoreConfig(str(store_path)),
        sync=SyncConfig(url=backoffice_url or ""),
        printer=PrinterConfig(url=printer_url or "", profile=profile),
        scanner=ScannerConfig(ports=[scanner_port] if scanner_port else []),
    )
    services = app_services(
        cfg, clock=clock, http=http, printer_url=printer_url or "", lang=lang, training=training
    )
    services.sync_interval_s = sync_interval_s
    return services
