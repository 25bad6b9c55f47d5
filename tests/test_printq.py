"""The print queue against a real till store: a committed sale prints from the queue through
the worker; a printer fault never touches the sale and keeps the job queued with its error;
reprint makes a «КОПИЯ»; jobs print once, in sale order."""

from __future__ import annotations

import pytest

from agent import printq
from agent.errors import NotFoundError
from agent.identify import make_member_code
from agent.results import CheckoutRequest
from agent.slip import Slip, slip_text
from drivers.printq import PrinterEvent, PrintWorker
from drivers.status import PrinterError, PrinterFault
from drivers.transport import CaptureTransport
from tests.conftest import make_cart

INIT = b"\x1b@\x1bt\x11"  # ESC @, ESC t 17 (CP866)
HEALTHY = bytes([0x12])


def render(slip: Slip) -> bytes:
    """Stand-in for drivers.render: the preview text in CP866 after ESC @ ESC t 17."""
    return INIT + slip_text(slip).encode("cp866", errors="replace") + b"\n\n\n"


def commit(till, receipt: str = "R-1", member: int = 1):
    card = till.agent.identify(make_member_code(100_000_000 + member))
    cart = make_cart(receipt, ("DR-1001", 1), ("SH-2001", 2))
    return till.agent.commit(CheckoutRequest(card.member_id, cart, 0, None))


def healthy_printer(data: bytes) -> bytes:
    """A CaptureTransport responder: every DLE EOT n gets a healthy reply."""
    return HEALTHY * data.count(b"\x10\x04")


class FailingTransport(CaptureTransport):
    """Opens fine, then every write fails as a printer with no paper would."""

    def __init__(self, fault: PrinterFault = PrinterFault.OFFLINE) -> None:
        super().__init__()
        self.fault = fault
        self.failing = True

    def write(self, data: bytes) -> None:
        if self.failing:
            raise PrinterError(self.fault, "io_error", "simulated", target="test://")
        super().write(data)


def worker_for(till, transport, events=None, **kw) -> PrintWorker:
    return PrintWorker(
        till.store,
        transport,
        render,
        status_supported=kw.pop("status_supported", False),
        on_event=(events.append if events is not None else None),
        wall_clock=till.clock.now,
        **kw,
    )


def test_sale_prints_from_the_queue_into_a_capture(till, tmp_path):
    result = commit(till)
    out = tmp_path / "slips.bin"
    cap = CaptureTransport(out, responder=healthy_printer)
    events: list[PrinterEvent] = []
    worker = worker_for(till, cap, events, status_supported=True)

    assert printq.queue_depth(till.store) == 1
    outcome = worker.run_once()
    assert outcome is not None and outcome.printed
    assert worker.run_once() is None  # printed once, queue empty

    job = printq.get_job(till.store, result.print_job_id)
    assert (job.status, job.attempts, job.last_error) == ("printed", 1, None)
    assert job.printed_at == till.clock.now().isoformat()
    assert out.read_bytes() == cap.data
    # status asked before and after the slip; the slip itself is there once, decodable
    body = cap.data.replace(b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04", b"")
    assert body.startswith(INIT) and body.count(INIT) == 1
    text = body[len(INIT) :].decode("cp866")
    assert "R-1" in text and "Программа лояльности" in text and "КОПИЯ" not in text
    assert [e.kind for e in events] == ["printed"]
    assert events[0].fault is PrinterFault.OK and "R-1" in events[0].message_ru
    assert worker.state is PrinterFault.OK
    assert cap.opened == 1 and not cap.is_open  # opened for the job, closed after


def test_failing_printer_leaves_sale_committed_and_job_queued(till):
    before = till.count("purchases")
    result = commit(till)
    transport = FailingTransport(PrinterFault.PAPER_OUT)
    events: list[PrinterEvent] = []
    worker = worker_for(till, transport, events, backoff_initial_s=2.0, clock=lambda: 100.0)

    outcome = worker.run_once()
    assert outcome is not None and not outcome.printed
    assert outcome.fault is PrinterFault.PAPER_OUT
    assert till.count("purchases") == before + 1  # the sale is untouched
    job = printq.get_job(till.store, result.print_job_id)
    assert job.status == "queued" and job.attempts == 1
    assert job.last_error is not None and "paper_out" in job.last_error
    assert worker.next_attempt_at == pytest.approx(102.0)  # backoff 2 s
    assert not transport.is_open

    (event,) = events
    assert event.kind == "fault" and event.fault is PrinterFault.PAPER_OUT
    assert event.message_ru.startswith("В принтере закончилась бумага")
    assert "Чек сохранён" in event.message_ru
    assert event.message("en").startswith("Printer is out of paper")
    assert event.job_id == result.print_job_id and event.receipt_id == "R-1"

    # a second sale while the printer is down commits fine and queues behind the first
    commit(till, "R-2", member=2)
    assert printq.queue_depth(till.store) == 2
    worker.run_once()
    assert events[-1].repeated and worker.next_attempt_at == pytest.approx(104.0)  # 2 s, 4 s

    transport.failing = False  # paper loaded
    outcomes = worker.drain()
    assert [o.printed for o in outcomes] == [True, True]
    printed = [j for j in printq.recent_jobs(till.store) if j.status == "printed"]
    assert [j.receipt_id for j in printed] == ["R-2", "R-1"]  # newest first
    assert transport.data.count(INIT) == 2  # each slip exactly once
    assert transport.data.index(b"R-1") < transport.data.index(b"R-2")  # sale order
    assert [e.kind for e in events[-3:]] == ["recovered", "printed", "printed"]
    assert worker.failures == 0 and worker.next_attempt_at == 0.0


def test_reprint_queues_a_copy_of_the_stored_slip(till):
    result = commit(till)
    cap = CaptureTransport()
    worker = worker_for(till, cap)
    worker.drain()
    till.clock.advance(minutes=5)

    copy_id = worker.reprint(result.print_job_id)
    copy = printq.get_job(till.store, copy_id)
    original = printq.get_job(till.store, result.print_job_id)
    assert copy.copy and copy.slip.copy and copy.status == "queued"
    assert copy.receipt_id == original.receipt_id and copy.kind == "sale"
    assert copy.slip.printed_at == original.slip.printed_at  # what the member got then
    assert copy.slip.lines == original.slip.lines
    assert copy.created_at == till.clock.now().isoformat()

    worker.drain()
    text = cap.data.decode("cp866")
    assert text.count("КОПИЯ") == 1 and text.index("КОПИЯ") > text.index("R-1")
    assert printq.get_job(till.store, copy_id).status == "printed"
    with pytest.raises(NotFoundError):
        worker.reprint(9999)


def test_render_bug_parks_the_job_and_does_not_block_the_queue(till):
    commit(till, "R-1")
    commit(till, "R-2", member=2)
    calls: list[str] = []

    def flaky(slip: Slip) -> bytes:
        calls.append(slip.receipt_id)
        if slip.receipt_id == "R-1":
            raise ValueError("boom")
        return render(slip)

    events: list[PrinterEvent] = []
    cap = CaptureTransport()
    worker = PrintWorker(till.store, cap, flaky, status_supported=False, on_event=events.append)
    first = worker.run_once()
    assert first is not None and not first.printed and first.reason == "render"
    second = worker.run_once()
    assert second is not None and second.printed
    statuses = {j.receipt_id: (j.status, j.last_error) for j in printq.recent_jobs(till.store)}
    assert statuses["R-1"][0] == "failed" and "boom" in (statuses["R-1"][1] or "")
    assert statuses["R-2"] == ("printed", None)
    assert events[0].kind == "fault" and "Чек сохранён" in events[0].message_ru
    assert cap.data.count(INIT) == 1


def test_crash_mid_print_is_requeued_and_mark_printed_needs_a_claim(till):
    result = commit(till)
    job = printq.claim_next(till.store)
    assert job is not None and job.status == "printing" and job.attempts == 1
    assert printq.claim_next(till.store) is None  # claimed jobs are not handed out twice
    assert printq.requeue_stale(till.store) == 1  # the worker restarts after a crash
    assert not printq.mark_printed(till.store, result.print_job_id, till.clock.now())
    job = printq.get_job(till.store, result.print_job_id)
    assert job.status == "queued" and job.last_error == "interrupted while printing"


def test_printer_event_handler_errors_do_not_stop_printing(till):
    commit(till)

    def broken(event: PrinterEvent) -> None:
        raise RuntimeError("ui gone")

    cap = CaptureTransport()
    worker = PrintWorker(till.store, cap, render, status_supported=False, on_event=broken)
    outcome = worker.run_once()
    assert outcome is not None and outcome.printed
    assert worker.state is PrinterFault.UNKNOWN  # no back channel: never claims "OK"


def test_worker_thread_prints_after_notify_and_retries_after_backoff(till):
    transport = FailingTransport(PrinterFault.COVER_OPEN)
    events: list[PrinterEvent] = []
    worker = worker_for(
        till, transport, events, backoff_initial_s=0.05, backoff_max_s=0.1, idle_poll_s=0.05
    )
    worker.start()
    try:
        commit(till)
        worker.notify()
        _wait(lambda: any(e.kind == "fault" for e in events))
        assert printq.queue_depth(till.store) == 1
        transport.failing = False  # cover closed: the backoff retry prints it
        _wait(lambda: any(e.kind == "printed" for e in events))
    finally:
        worker.stop()
    assert transport.data.count(INIT) == 1
    assert printq.queue_depth(till.store) == 0


def _wait(cond, timeout_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_misconfigured_printer_keeps_the_job_and_says_why(till):
    from drivers.transport import transport_from_url

    job_id = commit(till).print_job_id
    events: list[PrinterEvent] = []
    spooler = transport_from_url("spooler://Nope")  # Windows only: a config error here
    worker = worker_for(till, spooler, events)
    outcome = worker.run_once()
    assert outcome is not None and not outcome.printed
    assert printq.get_job(till.store, job_id).status == "queued"
    if outcome.reason == "bad_printer_url":  # not on Windows
        assert events[-1].message_ru.startswith("Печать через диспетчер печати Windows")


def test_a_stop_while_the_worker_is_starting_waits_for_the_start(till, monkeypatch):
    """The app starts the print worker from a worker thread and a quit stops it from the
    main one: a stop landing between the thread's creation and its start used to join a
    thread not yet started (RuntimeError) and leave the store open. Here the stop is made
    to land exactly there: it must wait for the start, then stop the running thread."""
    import threading

    from drivers import printq as worker_module

    worker = worker_for(till, CaptureTransport())
    errors: list[BaseException] = []
    stopper: list[threading.Thread] = []

    def stop_now() -> None:
        try:
            worker.stop(timeout_s=5.0)
        except BaseException as e:  # the failure this test is about
            errors.append(e)

    real_thread = threading.Thread

    class StopLandsHere(real_thread):
        def start(self) -> None:
            other = real_thread(target=stop_now)
            other.start()
            other.join(0.2)  # the stop runs (or waits) now, before this thread starts
            stopper.append(other)
            super().start()

    monkeypatch.setattr(worker_module.threading, "Thread", StopLandsHere)  # this start only
    worker.start()
    monkeypatch.undo()
    stopper[0].join(5.0)
    assert not stopper[0].is_alive()
    assert errors == []
    assert worker._thread is None
