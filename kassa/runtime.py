"""The headless agent (``kassa agent serve``): one process per till store running the POS
API, the sync loop, the print queue worker, serial scanners and hold housekeeping.

One owner per store: the store's exclusive lock is taken when the runtime opens it, so a
second agent (or a CLI command that writes) on the same store is refused with the pid of
the owner. Shutdown is clean on SIGTERM/SIGINT: uvicorn stops accepting, finishes the
requests in flight, then the workers stop (each bounded by its timeouts) and the store
closes (WAL checkpointed by SQLite on the last close).

Logs are JSON lines, rotated by size, and carry no personal data: our log calls never
pass phones, names or tokens, and a filter masks any run of 7+ digits (a phone or member
code that slipped into an exception text) before the record is written.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import logging.handlers
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from kassa.config import Config, ensure_token

if TYPE_CHECKING:
    from kassa.wiring import Till

log = logging.getLogger("kassa.agent")

MAX_CONCURRENCY = 64
"""POS API requests in progress beyond which the app answers a JSON 503 at once."""

HOUSEKEEPING_S = 30.0
"""How often expired holds are swept, seconds (reading code never depends on it)."""

DISK_RETRY_S = 0.5
"""While the store's disk is full, how often the agent tries to open the store again,
seconds: it comes up within this long of space being freed."""

DISK_LOG_EVERY_S = 60.0
"""While waiting for disk space, a warning is logged at most this often, seconds."""

_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{7,}(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\d[\d ()\-]{8,}\d(?![0-9A-Za-z])")


def scrub(text: str) -> str:
    """Mask phone-like and long digit runs (member codes, phones) in a log text."""
    return _DIGITS.sub("<digits>", _PHONE.sub("<phone>", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if rid := getattr(record, "request_id", None):
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(cfg: Config, *, stderr: bool = True) -> Path:
    """Rotating JSON log in ``cfg.log_dir()``, and stderr: JSON lines on a terminal or a
    pipe, or journal lines (priority prefix, no timestamp) when stderr is systemd's
    journal stream, which it then is whatever ``stderr`` says (under the service manager
    stderr is the log: ``--quiet`` must not leave ``journalctl`` with the banner alone).
    Every line carries the POS call's request id when there is one. Returns the file."""
    from kassa.logs import JournalFormatter, RequestIdFilter, RotatingFile, stderr_is_journal

    directory = cfg.log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kassa-agent.log"
    handler = RotatingFile(
        path, maxBytes=cfg.log.max_bytes, backupCount=cfg.log.backups, encoding="utf-8"
    )
    handler.setFormatter(JsonFormatter())
    handlers: list[logging.Handler] = [handler]
    if stderr_is_journal():
        journal = logging.StreamHandler()
        journal.setFormatter(JournalFormatter(scrub))
        handlers.append(journal)
    elif stderr:
        handlers.append(logging.StreamHandler())
        handlers[-1].setFormatter(JsonFormatter())
    for h in handlers:
        h.addFilter(RequestIdFilter())
    # uvicorn's own lines (start-up, shutdown, protocol warnings) go through the same JSON
    # handlers: no plain-text line in the JSON log. ``serve`` passes ``log_config=None``
    # so uvicorn does not install its own handlers over these.
    for name in ("kassa", *UVICORN_LOGGERS):
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
            if name == "kassa":
                h.close()
        if name in ("kassa", "uvicorn"):
            for h in handlers:
                logger.addHandler(h)
            logger.propagate = False
        else:
            logger.propagate = True  # uvicorn.error, uvicorn.access -> "uvicorn"
    logging.getLogger("kassa").setLevel(cfg.log.level.upper())
    logging.getLogger("uvicorn").setLevel(max(logging.WARNING, _level(cfg.log.level)))
    return path


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


def _server_class() -> Any:
    import uvicorn

    from kassa.sdnotify import Supervision

    class Server(uvicorn.Server):
        """uvicorn re-raises a captured SIGTERM/SIGINT after its graceful shutdown, which
        would kill the process before our workers stop and the store closes. We take the
        signal as "shut down cleanly" and return normally instead (exit code 0).

        Under systemd (``Type=notify``) it says ``READY=1`` once the sockets are bound
        (the store is ours already: ``Runtime.open`` ran first) and pings the watchdog
        from its event loop until shutdown begins (``kassa.sdnotify``)."""

        async def startup(self, sockets: Any = None) -> None:
            self.supervision = Supervision()
            await super().startup(sockets)
            if self.started:
                cfg = self.config
                self.supervision.ready(f"listening on http://{cfg.host}:{cfg.port}")

        async def shutdown(self, sockets: Any = None) -> None:
            await self.supervision.stopping()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    if self._captured_signals:
                        log.info("signal %s: shutting down", self._captured_signals[0])
                    self._captured_signals.clear()

    return Server


def _Server(config: Any) -> Any:  # noqa: N802 - a factory standing in for the class
    return _server_class()(config)


def _owner_only(path: Path) -> None:
    """The store holds the phone-hash key and the sync token: owner-only files (POSIX)."""
    import os

    if os.name != "posix":
        return
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))):
        if p.exists() and p.stat().st_mode & 0o077:
            try:
                p.chmod(0o600)
            except OSError as e:
                log.warning("cannot make %s owner-only: %s", p.name, e.strerror)


def _log_printer_event(event: Any) -> None:
    if event.kind in ("fault", "recovered", "warning") and not event.repeated:
        log.warning("printer %s: %s (%s)", event.kind, event.message_en, event.reason)


def _log_scanner_status(status: Any) -> None:
    log.info("scanner %s connected=%s", status.port, status.connected)


def settle_for_serving() -> None:
    """Once start-up is done, before the first request: keep the collector's full passes
    out of the POS's wait.

    ``gc.freeze()`` moves every object alive now (modules, the app, the rules, the
    catalogue: ~55,000 tracked objects in an agent with the demo store) out of the
    collector's reach, so a later full collection scans only what was made since. Measured
    on the bench VM: a full pass over them took ~26 ms, paused the event loop (and every POS
    call waiting on it) for that long; after the freeze it is under 0.1 ms. Objects made
    at start-up live as long as the process anyway, so nothing collectable is kept."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` for the block (main thread only; elsewhere the
    block runs as it is): the agent waiting for disk space is stopped cleanly (exit 0),
    before uvicorn, which takes the signals over once it runs, has started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class Runtime:
    """Owns the till (``kassa.wiring.Till``: store, service, workers) of one headless agent."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.till: Till | None = None
        self.agent: Any = None
        self.scans: deque[dict[str, Any]] = deque(maxlen=16)
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None

    # ------------------------------------------------------------------ start
    def open(self) -> bool:
        """Open the store (taking ownership) and start the workers. On a full disk it waits
        (``open_when_space``); False when told to stop meanwhile (nothing was started)."""
        till = self.open_when_space()
        if till is None:
            return False
        self.till = till
        self.agent = till.agent
        _owner_only(Path(self.cfg.store.path))
        try:
            if self.cfg.sync.enabled and till.http is None:
                log.warning("sync off: the till is not enrolled (kassa enroll)")
            till.start_sync(self.cfg.sync.interval_s)
            till.start_printer(_log_printer_event)
            till.start_scanners(self._on_scan, _log_scanner_status)
            self._housekeeper = threading.Thread(
                target=self._housekeeping, name="kassa-holds", daemon=True
            )
            self._housekeeper.start()
        except BaseException:
            self.close()
            raise
        log.info(
            "agent started: terminal %s, store %s, sync %s, printer %s, scanners %d",
            self.agent.terminal_id,
            self.cfg.store.path,
            "on" if till.runner else "off",
            "on" if till.printer else "off",
            len(till.scanners),
        )
        return True

    def open_when_space(self) -> Till | None:
        """``build_till``, tried again every ``DISK_RETRY_S`` while the store's disk is
        full (``StoreFullError``), so the agent comes up by itself as soon as space is
        freed instead of exiting (exit 3 would stop systemd's restarts: a locked store
        is exit 3 too, and that one does not fix itself). Says "disk full" plainly in
        the log, on stderr and in systemd's status line, and keeps extending systemd's
        start timeout meanwhile. None when SIGTERM/SIGINT (or ``close``) came first."""
        from agent.errors import StoreFullError
        from kassa.sdnotify import notify
        from kassa.wiring import build_till

        told_at: float | None = None
        with _stop_on_signals(self._stop):
            while True:
                try:
                    return build_till(self.cfg)
                except StoreFullError as e:
                    now = time.monotonic()
                    if told_at is None or now - told_at >= DISK_LOG_EVERY_S:
                        told_at = now
                        log.warning("disk full: %s; trying again every %s s", e, DISK_RETRY_S)
                        sys.stderr.write(
                            f"kassa agent: {e.title_ru}: {e.message_ru} / {e.title_en}: "
                            f"{e.message_en}\n"
                        )
                        sys.stderr.flush()
                    wait_us = int((DISK_RETRY_S + 30) * 1_000_000)
                    notify(f"STATUS=disk full: {e.message_en}\nEXTEND_TIMEOUT_USEC={wait_us}")
                if self._stop.wait(DISK_RETRY_S):
                    log.info("stopped while waiting for disk space")
                    return None

    def _on_scan(self, frame: Any) -> None:
        self.scans.append({"text": frame.text, "complete": frame.complete, "at": datetime.now(UTC)})

    def _housekeeping(self) -> None:
        while not self._stop.wait(HOUSEKEEPING_S):
            try:
                n = self.agent.expire_holds()
                if n:
                    log.info("holds expired: %d", n)
            except StoreError as e:  # a full disk: said once per sweep, no traceback
                log.warning("hold housekeeping failed, will retry: %s", e)
            except Exception:
                log.exception("hold housekeeping failed; will retry")

    # ------------------------------------------------------------------ API
    def printer_status(self) -> dict[str, Any]:
        if self.till is None:
            return {"configured": False}
        return self.till.printer_status().to_dict()

    def take_scan(self) -> dict[str, Any] | None:
        """The oldest scan from a serial scanner not yet taken by the POS, or None."""
        try:
            return self.scans.popleft()
        except IndexError:
            return None

    def app(self) -> Any:
        from kassa.posapi import create_app
        from kassa.requestid import RequestId

        api = self.cfg.api
        app = create_app(
            self.agent,
            token=ensure_token(self.cfg),
            max_body_bytes=api.max_body_bytes,
            rate_per_s=api.rate_per_s,
            rate_burst=api.rate_burst,
            hold_ttl_s=api.hold_ttl_s,
            max_concurrency=MAX_CONCURRENCY,
            metrics=api.metrics,
            printer_status=self.printer_status,
            on_print=self.till.notify_printer if self.till else None,
            take_scan=self.take_scan,
        )
        return RequestId(app)

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT (uvicorn handles the signals), then close."""
        import uvicorn

        from sync.httpserve import HeaderDeadlineProtocol

        if not self.open():
            return
        try:
            app = self.app()
            config = uvicorn.Config(
                app,
                host=self.cfg.api.host,
                port=self.cfg.api.port,
                log_level="warning",
                log_config=None,  # uvicorn's loggers use our JSON handlers (setup_logging)
                access_log=False,
                timeout_graceful_shutdown=5,
                http=HeaderDeadlineProtocol,  # slow headers: the connection closed
                # No limit_concurrency: its 503 is plain text. The app's ConcurrencyLimit
                # answers overload with the documented JSON error and Retry-After.
            )
            server = _Server(config)
            settle_for_serving()
            log.info("POS API on http://%s:%d/v1", self.cfg.api.host, self.cfg.api.port)
            server.run()
        finally:
            self.close()

    # ------------------------------------------------------------------ stop
    def close(self) -> None:
        """Stop every worker, then release the store (idempotent)."""
        self._stop.set()
        if self._housekeeper is not None:
            self._housekeeper.join(2.0)
            self._housekeeper = None
        if self.till is not None:
            self.till.close()
            self.till = None
            log.info("agent stopped; store closed")
        self.agent = None
