"""The print worker: takes queued slips from the store and prints them, one at a time.

Why a queue and a worker: the sale is committed with its print job in one transaction
(``Agent.commit``); printing happens afterwards, here, so a printer with its cover open,
out of paper or unplugged never rolls back or blocks a sale. The job stays queued with
``last_error`` and is retried with a growing backoff until the printer answers healthy.

Exactly once across faults: a job is marked printed only after the whole slip was written
and, where the printer can report status, a status check after the write came back
healthy. Before writing, status is checked too, so nothing is sent to a printer that says
its cover is open or its paper is out (it would be lost or half printed). A write that
times out is not marked printed, and the transport is closed (what the printer got is
unknown), so the slip is resent whole after recovery. Across a crash it is at least once
(``agent.printq.requeue_stale``).

Faults reach the UI through ``on_event(PrinterEvent)`` with a Russian message (English in
``message_en``); the callback runs on the worker thread, so the TUI should only
``post_message`` from it.

Usage::

    worker = PrintWorker(store, transport_from_url(url), render, status_supported=True,
                         on_event=lambda e: app.post_message(PrinterChanged(e)))
    worker.start()          # background thread; worker.notify() after each commit
    worker.reprint(job_id)  # queue a «КОПИЯ» of any recent slip
    worker.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agent import printq
from agent.errors import AgentError, StoreError
from agent.printq import PrintJob
from agent.slip import Slip
from agent.store import Store
from drivers.status import PrinterError, PrinterFault, StatusReport, query_status
from drivers.transport import Transport

__all__ = ["PrintOutcome", "PrintWorker", "PrinterEvent"]

log = logging.getLogger("kassa.printer")

EventKind = Literal["fault", "warning", "recovered", "printed"]


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    """Something the cashier should see about the printer.

    ``kind``: ``fault`` (a slip could not be printed; it stays queued), ``warning`` (paper
    low: printing goes on), ``recovered`` (the printer works again after a fault),
    ``printed`` (a slip went out). ``message_ru`` is the cashier's text; ``reason`` and
    ``detail`` (English) are for logs. ``retry_in_s``: seconds until the next automatic
    try, for a fault. ``repeated``: the same fault as the previous event (the UI may keep
    one notice up instead of stacking them).
    """

    kind: EventKind
    fault: PrinterFault
    message_ru: str
    message_en: str
    job_id: int | None = None
    receipt_id: str | None = None
    reason: str = ""
    detail: str = ""
    retry_in_s: float | None = None
    repeated: bool = False

    def message(self, lang: str = "ru") -> str:
        return self.message_en if lang == "en" else self.message_ru


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    """What one attempt did: ``printed``, or the ``fault`` that kept the slip queued."""

    job_id: int
    printed: bool
    fault: PrinterFault
    reason: str = ""


_SAFE_RU = "Чек сохранён, слип напечатается после устранения неисправности"
_SAFE_EN = "the sale is saved; the slip prints once the printer is fixed"


class PrintWorker:
    """Prints queued slips through one ``Transport``; see the module docstring.

    ``render`` turns a ``Slip`` into printer bytes (``drivers.render`` in production).
    ``status_supported`` comes from the printer profile: with it (and a transport that can
    read) every job is framed by DLE EOT status checks; without it a successful write is
    all we can know. The transport is opened for each job and always closed after it.

    Timing (seconds): ``status_timeout_s`` per status reply; after a fault the next try is
    ``backoff_initial_s`` later, doubling up to ``backoff_max_s``; when the queue is empty
    the thread looks again every ``idle_poll_s`` (``notify()`` wakes it at once). When
    the store itself cannot be written (a full disk: the job cannot even be claimed), the
    thread tries again every ``store_retry_s``, and ``notify()`` (a new job: the store took
    a sale, so it can be written again) ends that wait at once.
    ``clock`` (monotonic seconds) and ``wall_clock`` (aware datetime for ``printed_at``)
    are injectable for tests.
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        render: Callable[[Slip], bytes],
        *,
        status_supported: bool,
        on_event: Callable[[PrinterEvent], None] | None = None,
        status_timeout_s: float = 1.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        idle_poll_s: float = 5.0,
        store_retry_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.transport = transport
        self.render = render
        self.status_supported = status_supported
        self.on_event = on_event
        self.status_timeout_s = status_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.idle_poll_s = idle_poll_s
        self.store_retry_s = store_retry_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.state: PrinterFault = PrinterFault.UNKNOWN
        """Last known printer state (UNKNOWN until the first job), for the status bar."""
        self.failures = 0
        """Consecutive failed attempts; 0 after a slip printed."""
        self.next_attempt_at = 0.0
        self.store_error: StoreError | None = None
        """Why the last try could not use the store (a full disk), None once it could."""
        self._owed: Callable[[], object] | None = None
        self._last_fault: PrinterFault | None = None
        self._busy = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # start() and stop() come from different threads (the app starts the worker from
        # a worker thread, a quit stops it from the main one): the thread is published
        # only once started, and stop() waits for a start in progress.
        self._lifecycle = threading.Lock()

    # ------------------------------------------------------------------ one attempt
    def run_once(self) -> PrintOutcome | None:
        """Claim the oldest queued job and try to print it once (ignores the backoff).

        Returns None when the queue is empty. Never raises for a printer problem: the job
        goes back to the queue with ``last_error`` and an event is emitted.
        """
        with self._busy:
            if self._owed is not None:
                self._owed()
                self._owed = None
            job = printq.claim_next(self.store)
            if job is None:
                return None
            try:
                data = self.render(job.slip)
            except Exception as e:  # a renderer bug must not wedge the queue
                log.exception("cannot render slip of job %s", job.job_id)
                printq.mark_failed(self.store, job.job_id, f"render: {e!r}", permanent=True)
                self._emit(
                    "fault",
                    PrinterFault.UNKNOWN,
                    job,
                    reason="render",
                    detail=repr(e),
                    ru="Слип не удалось подготовить к печати. Чек сохранён",
                    en=f"the slip could not be rendered ({e!r}); the sale is saved",
                )
                return PrintOutcome(job.job_id, False, PrinterFault.UNKNOWN, "render")
            try:
                state = self._print(data)
            except PrinterError as e:
                return self._failed(job, e.fault, e.reason, e.message_en)
            except AgentError as e:  # a configuration problem (TransportConfigError)
                return self._failed(job, PrinterFault.UNKNOWN, e.code, e.message_en, e.message_ru)
            except Exception as e:  # an unexpected driver error: keep the job, keep going
                log.exception("unexpected error printing job %s", job.job_id)
                return self._failed(job, PrinterFault.UNKNOWN, "unexpected", repr(e))
            printed_at = self.wall_clock()
            self._owe(lambda: printq.mark_printed(self.store, job.job_id, printed_at))
            return self._printed(job, state)

    def _owe(self, write: Callable[[], object]) -> None:
        """Run the store write ``write`` (a job's outcome). Should the store refuse it (a
        full disk: ``StoreError`` goes up to the thread), it is kept and run first on the
        next try: a slip that went out is not printed again while this worker runs, and a
        failed one goes back to the queue instead of staying ``printing``."""
        self._owed = write
        write()
        self._owed = None

    def _print(self, data: bytes) -> PrinterFault:
        """Open, check, write, check, close. Returns the state to show after a success:
        OK, PAPER_LOW, or UNKNOWN when the printer cannot report status."""
        checks = self.status_supported and self.transport.can_read
        self.transport.open()
        try:
            if checks:
                self._check(query_status(self.transport, timeout_s=self.status_timeout_s))
            self.transport.write(data)
            if checks:
                return self._check(query_status(self.transport, timeout_s=self.status_timeout_s))
            return PrinterFault.UNKNOWN
        finally:
            self.transport.close()

    def _check(self, report: StatusReport) -> PrinterFault:
        if report.fault.blocks_printing:
            raise PrinterError(
                report.fault,
                "status",
                report.detail or report.fault.value,
                target=self.transport.description,
            )
        if report.fault is PrinterFault.PAPER_LOW and self.state is not PrinterFault.PAPER_LOW:
            self.state = PrinterFault.PAPER_LOW
            self._emit("warning", PrinterFault.PAPER_LOW, None, reason="status")
        return report.fault

    def _failed(
        self,
        job: PrintJob,
        fault: PrinterFault,
        reason: str,
        detail: str,
        message_ru: str | None = None,
    ) -> PrintOutcome:
        log.warning("job %s not printed: %s (%s)", job.job_id, detail, reason)
        error = f"{fault.value}/{reason}: {detail}"
        self._owe(lambda: printq.mark_failed(self.store, job.job_id, error))
        self.failures += 1
        delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self.failures - 1))
        self.next_attempt_at = self.clock() + delay
        repeated = self._last_fault is fault
        self.state = self._last_fault = fault
        self._emit(
            "fault",
            fault,
            job,
            reason=reason,
            detail=detail,
            retry_in_s=delay,
            repeated=repeated,
            ru=f"{message_ru or fault.message_ru}. {_SAFE_RU}",
            en=f"{fault.message_en}; {_SAFE_EN}",
        )
        return PrintOutcome(job.job_id, False, fault, reason)

    def _printed(self, job: PrintJob, state: PrinterFault) -> PrintOutcome:
        if self._last_fault is not None:
            self._emit(
                "recovered",
                PrinterFault.OK,
                job,
                ru="Принтер снова работает",
                en="the printer works again",
            )
        self.failures = 0
        self.next_attempt_at = 0.0
        self._last_fault = None
        self.state = state
        copy = " (копия)" if job.copy else ""
        self._emit(
            "printed",
            self.state,
            job,
            ru=f"Слип по чеку {job.receipt_id}{copy} напечатан",
            en=f"slip for receipt {job.receipt_id}{' (copy)' if job.copy else ''} printed",
        )
        return PrintOutcome(job.job_id, True, PrinterFault.OK)

    def _emit(
        self,
        kind: EventKind,
        fault: PrinterFault,
        job: PrintJob | None,
        *,
        reason: str = "",
        detail: str = "",
        retry_in_s: float | None = None,
        repeated: bool = False,
        ru: str | None = None,
        en: str | None = None,
    ) -> None:
        if self.on_event is None:
            return
        event = PrinterEvent(
            kind=kind,
            fault=fault,
            message_ru=ru or fault.message_ru,
            message_en=en or fault.message_en,
            job_id=None if job is None else job.job_id,
            receipt_id=None if job is None else job.receipt_id,
            reason=reason,
            detail=detail,
            retry_in_s=retry_in_s,
            repeated=repeated,
        )
        try:
            self.on_event(event)
        except Exception:  # the UI's problem must not stop printing
            log.exception("printer event handler failed")

    # ------------------------------------------------------------------ batch and thread
    def drain(self, max_jobs: int | None = None) -> list[PrintOutcome]:
        """Print queued jobs now until the queue is empty, a job fails, or ``max_jobs``."""
        outcomes: list[PrintOutcome] = []
        while max_jobs is None or len(outcomes) < max_jobs:
            outcome = self.run_once()
            if outcome is None:
                break
            outcomes.append(outcome)
            if not outcome.printed:
                break
        return outcomes

    def reprint(self, job_id: int) -> int:
        """Queue a copy of job ``job_id`` (marked «КОПИЯ»), wake the worker; new job id."""
        new_id = printq.enqueue_copy(self.store, job_id, self.wall_clock())
        self.notify()
        return new_id

    def notify(self) -> None:
        """A job was queued: look at the queue now. The backoff after a printer fault still
        holds; a wait for the store (a full disk) ends, since the new job was written."""
        if self.store_error is not None:
            self.next_attempt_at = 0.0
        self._wake.set()

    def retry_now(self) -> None:
        """The cashier fixed the printer ("Повторить печать"): skip the backoff."""
        self.next_attempt_at = 0.0
        self._wake.set()

    def start(self) -> None:
        """Put back jobs a crash left half-done, then print in a daemon thread. On a store
        that cannot be written (a full disk) the putting back is the thread's first try,
        so the worker (and the agent) starts all the same."""
        with self._lifecycle:
            if self._thread is not None:
                return
            try:
                printq.requeue_stale(self.store)
            except StoreError as e:
                log.warning("print queue: jobs left printing are put back later: %s", e)
                self._owed = lambda: printq.requeue_stale(self.store)
            self._stop.clear()
            thread = threading.Thread(target=self._run, name="kassa-print", daemon=True)
            thread.start()
            self._thread = thread

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; waits at most ``timeout_s`` seconds (an attempt in progress is
        bounded by the transport timeouts)."""
        self._stop.set()
        self._wake.set()
        with self._lifecycle:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.next_attempt_at - self.clock()
            if wait > 0:
                self._wake.wait(min(wait, self.idle_poll_s))
                self._wake.clear()
                continue
            self._wake.clear()
            try:
                outcome = self.run_once()
            except StoreError as e:  # the store cannot be written (disk full): soon again
                if self.store_error is None:
                    log.warning(
                        "print queue unavailable, trying every %ss: %s", self.store_retry_s, e
                    )
                self.store_error = e
                self.next_attempt_at = self.clock() + self.store_retry_s
                continue
            except Exception:  # a bug: log it, back off, go on
                log.exception("print queue unavailable")
                self.next_attempt_at = self.clock() + self.backoff_max_s
                continue
            if self.store_error is not None:
                log.info("print queue available again")
                self.store_error = None
            if outcome is None:
                self._wake.wait(self.idle_poll_s)
