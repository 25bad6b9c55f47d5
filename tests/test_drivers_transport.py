"""Printer transports and status against fake printers at the edges we cannot own.

- Serial: a socat pty pair; a fake printer thread on one end answers DLE EOT as a healthy
  printer, with paper low, paper out, cover open, a cutter jam, not at all, or too late.
- TCP 9100 on loopback: a port that refuses, a printer that never reads (small buffers, a
  big job: the send times out), one that resets the connection, and a healthy one.
- Device file: a FIFO with no reader, a reader that never reads, and one that reads.
- USB: pyusb alone (python-escpos never imported, checked in a subprocess) over a fake
  pyusb bus: usblp detached, a busy or missing device and a missing libusb classified.

Each fault ends in the right ``PrinterFault`` within its timeout, and with the print worker
the slip prints exactly once after the printer recovers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from agent import printq
from agent.identify import make_member_code
from agent.results import CheckoutRequest
from agent.slip import Slip, slip_text
from drivers.printq import PrinterEvent, PrintWorker
from drivers.status import (
    PrinterError,
    PrinterFault,
    decode_status,
    dle_eot,
    query_status,
    valid_reply,
)
from drivers.transport import (
    CaptureTransport,
    DeviceFileTransport,
    SerialTransport,
    TcpTransport,
    Transport,
    TransportConfigError,
    UsbTransport,
    WindowsSpoolerTransport,
    transport_from_url,
)
from tests.conftest import make_cart

INIT = b"\x1b@\x1bt\x11"
STATUS_TIMEOUT_S = 0.3

# DLE EOT replies (n -> byte) of an Epson-compatible printer in each state.
REPLIES: dict[str, dict[int, int]] = {
    "healthy": {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12},
    "paper_low": {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E},
    "paper_out": {1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x72},
    "cover_open": {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12},
    "cutter": {1: 0x1A, 2: 0x52, 3: 0x1A, 4: 0x12},
}


def render(slip: Slip) -> bytes:
    """Stand-in renderer: preview text as CP866 after ESC @ ESC t 17."""
    return INIT + slip_text(slip).encode("cp866", errors="replace") + b"\n\n\n"


def split_status(data: bytes) -> tuple[bytes, list[int]]:
    """Separate DLE EOT n requests from print data (the fake printers' parser)."""
    out, asked, i = bytearray(), [], 0
    while i < len(data):
        if data[i : i + 2] == b"\x10\x04" and i + 2 < len(data):
            asked.append(data[i + 2])
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out), asked


# ----------------------------------------------------------------------------- fakes


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys from socat: (till side, printer side)."""
    if shutil.which("socat") is None:
        pytest.skip("socat not installed")
    host, dev = tmp_path / "till-tty", tmp_path / "printer-tty"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={host}", f"pty,raw,echo=0,link={dev}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (host.exists() and dev.exists()):
            assert time.monotonic() < deadline, "socat did not create the ptys"
            time.sleep(0.01)
        yield str(host), str(dev)
    finally:
        proc.terminate()
        proc.wait(5)


class FakeSerialPrinter:
    """A printer on a pty: answers DLE EOT per ``mode``; keeps what it was sent.

    Data received while faulted is held (a real printer prints its buffer once the cover
    closes) and moves to ``printed`` when the mode becomes healthy again, so a slip sent
    into a faulted printer would show up twice.
    """

    def __init__(self, path: str, mode: str = "healthy", slow_s: float = 0.6) -> None:
        self.mode = mode
        self.slow_s = slow_s
        self.printed = bytearray()
        self.held = bytearray()
        self.asked: list[int] = []
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._due: list[tuple[float, bytes]] = []
        self._buf = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode in ("healthy", "paper_low"):
            self.printed += self.held
            self.held.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.01)
            now = time.monotonic()
            for due, reply in [d for d in self._due if d[0] <= now]:
                self._due.remove((due, reply))
                os.write(self._fd, reply)
            if not ready:
                continue
            try:
                self._buf += os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            keep = b""
            if self._buf.endswith(b"\x10") or self._buf.endswith(b"\x10\x04"):
                cut = self._buf.rindex(b"\x10")
                self._buf, keep = self._buf[:cut], self._buf[cut:]
            data, asked = split_status(self._buf)
            self._buf = keep
            (self.printed if self.mode in ("healthy", "paper_low") else self.held).extend(data)
            for n in asked:
                self.asked.append(n)
                self._answer(n, now)

    def _answer(self, n: int, now: float) -> None:
        if self.mode == "silent":
            return
        if self.mode == "slow":
            self._due.append((now + self.slow_s, bytes([REPLIES["healthy"][n]])))
            return
        os.write(self._fd, bytes([REPLIES[self.mode][n]]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._fd)


@pytest.fixture
def serial_printer(pty_pair) -> Iterator[tuple[str, FakeSerialPrinter]]:
    host, dev = pty_pair
    printer = FakeSerialPrinter(dev)
    yield host, printer
    printer.close()


class FakeTcpPrinter:
    """A port-9100 printer on loopback whose behaviour can change between connections.

    Modes: ``healthy`` (reads everything, answers DLE EOT), ``never_reads`` (the listener
    stops accepting: the kernel completes connections and buffers up to a small SO_RCVBUF,
    then the sender blocks), ``reset`` (reads once, then RST), ``refuse`` (no listener).
    """

    def __init__(self, mode: str = "healthy") -> None:
        self.mode = mode
        self.port = 0
        self.printed = bytearray()
        self.connections = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._listen()
        self.set_mode(mode)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        self.port = s.getsockname()[1]
        self._listener = s

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
            elif mode != "refuse" and self._listener is None:
                self._listen()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            conn, mode = None, self.mode
            with self._lock:  # set_mode may close the listener: never race it
                listening = self._listener is not None and mode != "never_reads"
                if listening and select.select([self._listener], [], [], 0.01)[0]:
                    conn, _ = self._listener.accept()
            if conn is None:
                time.sleep(0.005)
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn, mode), daemon=True)
            self._workers.append(t)
            t.start()

    def _serve(self, conn: socket.socket, mode: str) -> None:
        conn.settimeout(2.0)
        with conn:
            if mode == "reset":
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    break
                buf += chunk
                keep = b""
                if buf.endswith(b"\x10") or buf.endswith(b"\x10\x04"):
                    cut = buf.rindex(b"\x10")
                    buf, keep = buf[:cut], buf[cut:]
                data, asked = split_status(buf)
                buf = keep
                self.printed += data
                for _ in asked:
                    conn.sendall(b"\x12")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for t in self._workers:
            t.join(2)
        if self._listener is not None:
            self._listener.close()


@pytest.fixture
def tcp_printer() -> Iterator[FakeTcpPrinter]:
    printer = FakeTcpPrinter()
    yield printer
    printer.close()


def commit_sale(till, receipt: str = "R-1") -> int:
    card = till.agent.identify(make_member_code(100_000_001))
    cart = make_cart(receipt, ("DR-1001", 1), ("SH-2001", 2))
    return till.agent.commit(CheckoutRequest(card.member_id, cart, 0, None)).print_job_id


# ----------------------------------------------------------------------------- status


def test_status_reply_validation_and_decoding():
    assert dle_eot(1) == b"\x10\x04\x01" and dle_eot(4) == b"\x10\x04\x04"
    with pytest.raises(ValueError):
        dle_eot(5)
    assert valid_reply(0x12) and valid_reply(0x1E) and valid_reply(0x72)
    assert not valid_reply(0x00) and not valid_reply(0xFF) and not valid_reply(0x10)
    for mode, fault in [
        ("healthy", PrinterFault.OK),
        ("paper_low", PrinterFault.PAPER_LOW),
        ("paper_out", PrinterFault.PAPER_OUT),
        ("cover_open", PrinterFault.COVER_OPEN),
        ("cutter", PrinterFault.CUTTER_ERROR),
    ]:
        assert decode_status(REPLIES[mode]).fault is fault, mode
    assert decode_status({1: 0x1A, 2: 0x12, 3: 0x12, 4: 0x12}).fault is PrinterFault.OFFLINE
    # cover open and paper low at once: the blocking fault wins, both are reported
    both = decode_status({1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x1E})
    assert both.fault is PrinterFault.COVER_OPEN
    assert both.faults == {PrinterFault.COVER_OPEN, PrinterFault.PAPER_LOW}
    # never "OK" without the printer saying so
    assert decode_status({}).fault is PrinterFault.UNKNOWN
    assert decode_status({1: None}).fault is PrinterFault.TIMEOUT
    assert decode_status({1: 0x00}).fault is PrinterFault.UNKNOWN
    assert decode_status({1: 0x12, 2: 0xFF}).fault is PrinterFault.UNKNOWN


def test_every_fault_has_russian_and_english_text():
    ru = {f.message_ru for f in PrinterFault}
    en = {f.message("en") for f in PrinterFault}
    assert len(ru) == len(en) == len(PrinterFault)
    assert all(any("а" <= ch <= "я" for ch in m.lower()) for m in ru)
    assert [f for f in PrinterFault if not f.blocks_printing] == [
        PrinterFault.OK,
        PrinterFault.PAPER_LOW,
    ]
    err = PrinterError(PrinterFault.COVER_OPEN, "status", "cover", target="tcp://x:9100")
    assert err.message_ru == PrinterFault.COVER_OPEN.message_ru
    assert err.to_dict()["details"]["fault"] == "cover_open"


@pytest.mark.parametrize(
    ("mode", "fault", "asked"),
    [
        ("healthy", PrinterFault.OK, [1, 2, 3, 4]),
        ("paper_low", PrinterFault.PAPER_LOW, [1, 2, 3, 4]),
        ("paper_out", PrinterFault.PAPER_OUT, [1, 2, 3, 4]),
        ("cover_open", PrinterFault.COVER_OPEN, [1, 2, 3, 4]),
        ("cutter", PrinterFault.CUTTER_ERROR, [1, 2, 3, 4]),
        ("silent", PrinterFault.TIMEOUT, [1]),
        ("slow", PrinterFault.TIMEOUT, [1]),
    ],
)
def test_serial_status_over_socat(serial_printer, mode, fault, asked):
    host, printer = serial_printer
    printer.set_mode(mode)
    with SerialTransport(host, write_timeout_s=1.0) as port:
        waits: list[float] = []  # the wait of each one-byte status reply read
        read = port.read

        def timed_read(n: int, timeout_s: float) -> bytes:
            if n == 1:
                waits.append(timeout_s)
            return read(n, timeout_s)

        port.read = timed_read  # type: ignore[method-assign]
        report = query_status(port, timeout_s=STATUS_TIMEOUT_S)
    assert report.fault is fault, report
    assert printer.asked == asked  # a silent printer is asked once, not four times
    # every wait for a reply is bounded by the status timeout, handed to the port
    assert waits == [STATUS_TIMEOUT_S] * len(asked)
    if fault is PrinterFault.TIMEOUT:
        assert report.replies == {1: None}


def test_slow_reply_within_the_timeout_is_waited_for(serial_printer):
    host, printer = serial_printer
    printer.slow_s = 0.05
    printer.set_mode("slow")
    with SerialTransport(host) as port:
        assert query_status(port, timeout_s=0.5).fault is PrinterFault.OK


def test_serial_open_errors_are_classified(pty_pair, tmp_path):
    host, _ = pty_pair
    with pytest.raises(PrinterError) as missing:
        SerialTransport(str(tmp_path / "ttyNOPE")).open()
    assert missing.value.fault is PrinterFault.OFFLINE and missing.value.reason == "not_found"
    with SerialTransport(host), pytest.raises(PrinterError) as busy:
        SerialTransport(host).open()  # another program holds the port
    assert busy.value.fault is PrinterFault.BUSY


def test_serial_write_timeout_is_a_timeout_fault():
    class Stuck:
        timeout = 0

        def write(self, data: bytes) -> int:
            raise serial.SerialTimeoutException("Write timeout")

        def close(self) -> None:
            pass

    t = SerialTransport("stuck://", serial_for_url=lambda *a, **k: Stuck())
    t.open()
    with pytest.raises(PrinterError) as e:
        t.write(b"x" * 100)
    assert e.value.fault is PrinterFault.TIMEOUT and e.value.reason == "write_timeout"
    t.close()
    with pytest.raises(PrinterError) as closed:
        t.write(b"x")
    assert closed.value.reason == "closed"


def test_serial_worker_prints_exactly_once_after_recovery(till, serial_printer):
    host, printer = serial_printer
    job_id = commit_sale(till)
    events: list[PrinterEvent] = []
    worker = PrintWorker(
        till.store,
        SerialTransport(host, write_timeout_s=2.0),
        render,
        status_supported=True,
        on_event=events.append,
        status_timeout_s=STATUS_TIMEOUT_S,
        wall_clock=till.clock.now,
    )
    for mode, fault in [
        ("cover_open", PrinterFault.COVER_OPEN),
        ("paper_out", PrinterFault.PAPER_OUT),
        ("silent", PrinterFault.TIMEOUT),
        ("slow", PrinterFault.TIMEOUT),
        ("cutter", PrinterFault.CUTTER_ERROR),
    ]:
        printer.set_mode(mode)
        outcome = worker.run_once()
        assert outcome is not None and outcome.fault is fault, mode
        job = printq.get_job(till.store, job_id)
        assert job.status == "queued" and fault.value in (job.last_error or "")
        assert events[-1].kind == "fault" and events[-1].fault is fault
        assert events[-1].message_ru.startswith(fault.message_ru)
        assert not printer.held and not printer.printed  # nothing sent to a faulted printer
    printer.slow_s = 0.6
    printer.set_mode("paper_low")  # paper low still prints, with a warning
    outcome = worker.run_once()
    assert outcome is not None and outcome.printed
    assert worker.run_once() is None
    time.sleep(0.05)  # let the fake printer take the last bytes off the pty
    assert printer.printed.count(INIT) == 1
    assert "R-1" in printer.printed.decode("cp866")
    job = printq.get_job(till.store, job_id)
    assert (job.status, job.attempts) == ("printed", 6)
    assert [e.kind for e in events[-3:]] == ["warning", "recovered", "printed"]
    assert events[-3].fault is PrinterFault.PAPER_LOW and worker.state is PrinterFault.PAPER_LOW


# ----------------------------------------------------------------------------- TCP


def test_tcp_refused_is_offline_at_once(tcp_printer):
    tcp_printer.set_mode("refuse")
    t = TcpTransport("127.0.0.1", tcp_printer.port, connect_timeout_s=2.0)
    with pytest.raises(PrinterError) as e:
        t.open()
    assert e.value.fault is PrinterFault.OFFLINE and e.value.reason == "refused"
    assert "Принтер не в сети" in e.value.message_ru


def test_tcp_printer_that_never_reads_times_out_the_send(tcp_printer, monkeypatch):
    tcp_printer.set_mode("never_reads")
    timeouts: list[float | None] = []
    settimeout = socket.socket.settimeout

    def spy(self: socket.socket, value: float | None) -> None:
        timeouts.append(value)
        settimeout(self, value)

    monkeypatch.setattr(socket.socket, "settimeout", spy)
    t = TcpTransport("127.0.0.1", tcp_printer.port, write_timeout_s=0.5, send_buffer_bytes=4096)
    t.open()
    with pytest.raises(PrinterError) as e:
        t.write(b"\x00" * 4_000_000)
    assert e.value.fault is PrinterFault.TIMEOUT and e.value.reason == "send_timeout"
    assert 0.5 in timeouts  # the send is bounded by the write timeout, never blocking
    with pytest.raises(PrinterError):  # the connection is dropped: state unknown
        t.write(b"x")


def test_tcp_reset_is_offline(tcp_printer):
    tcp_printer.set_mode("reset")
    t = TcpTransport("127.0.0.1", tcp_printer.port, write_timeout_s=2.0, send_buffer_bytes=4096)
    t.open()
    with pytest.raises(PrinterError) as e:
        for _ in range(50):  # the first chunk may land before the RST
            t.write(b"\x00" * 100_000)
            t.read(1, 0.05)
    assert e.value.fault is PrinterFault.OFFLINE and e.value.reason in ("reset", "closed")


def test_tcp_status_and_read_timeout(tcp_printer):
    with TcpTransport("127.0.0.1", tcp_printer.port) as t:
        assert query_status(t, timeout_s=1.0).fault is PrinterFault.OK
        assert t.read(1, 0.1) == b""


def test_tcp_worker_prints_exactly_once_after_recovery(till, tcp_printer):
    job_id = commit_sale(till)
    events: list[PrinterEvent] = []
    transport = TcpTransport(
        "127.0.0.1",
        tcp_printer.port,
        connect_timeout_s=1.0,
        write_timeout_s=1.0,
        send_buffer_bytes=4096,
    )
    worker = PrintWorker(
        till.store,
        transport,
        render,
        status_supported=True,
        on_event=events.append,
        status_timeout_s=STATUS_TIMEOUT_S,
        wall_clock=till.clock.now,
    )
    for mode, fault, reasons in [
        ("refuse", PrinterFault.OFFLINE, {"refused"}),
        ("never_reads", PrinterFault.TIMEOUT, {"status", "send_timeout"}),
        ("reset", PrinterFault.OFFLINE, {"reset", "closed"}),
    ]:
        tcp_printer.set_mode(mode)
        outcome = worker.run_once()
        assert outcome is not None and outcome.fault is fault, (mode, outcome)
        assert outcome.reason in reasons, (mode, outcome)
        assert printq.get_job(till.store, job_id).status == "queued"
        assert events[-1].kind == "fault" and "Чек сохранён" in events[-1].message_ru
    tcp_printer.set_mode("healthy")
    outcome = worker.run_once()
    assert outcome is not None and outcome.printed, outcome
    assert worker.run_once() is None
    deadline = time.monotonic() + 2
    while tcp_printer.printed.count(INIT) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert tcp_printer.printed.count(INIT) == 1
    assert printq.get_job(till.store, job_id).status == "printed"
    assert [e.kind for e in events[-2:]] == ["recovered", "printed"]


# ----------------------------------------------------------------------------- device file


def test_device_file_with_no_reader_is_offline(tmp_path):
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    with pytest.raises(PrinterError) as e:
        DeviceFileTransport(fifo).open()
    assert e.value.fault is PrinterFault.OFFLINE and e.value.reason == "not_found"
    with pytest.raises(PrinterError) as gone:
        DeviceFileTransport(tmp_path / "nope").open()
    assert gone.value.fault is PrinterFault.OFFLINE


def test_device_file_write_times_out_when_nobody_reads(tmp_path):
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened, never read: buffer fills
    try:
        with DeviceFileTransport(fifo, write_timeout_s=0.3) as t:
            assert not t.can_read and t.read(1, 5.0) == b""  # no back channel, no wait
            with pytest.raises(PrinterError) as e:
                t.write(b"\x00" * 1_000_000)
            assert e.value.fault is PrinterFault.TIMEOUT
    finally:
        os.close(reader)


def test_device_file_delivers_the_bytes(tmp_path):
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got = bytearray()
    stop = threading.Event()

    def drain() -> None:
        while True:
            if not select.select([reader], [], [], 0.01)[0]:
                if stop.is_set():
                    return
                continue
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                continue
            if not chunk and stop.is_set():
                return  # writer closed and everything read
            got.extend(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    payload = INIT + bytes(range(256)) * 1000
    try:
        with DeviceFileTransport(fifo, write_timeout_s=2.0) as t:
            t.write(payload)
    finally:
        stop.set()
        thread.join(2)
        os.close(reader)
    assert bytes(got) == payload


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores modes")
def test_device_file_permission(tmp_path):
    dev = tmp_path / "lp0"
    dev.write_bytes(b"")
    dev.chmod(stat.S_IRUSR)
    with pytest.raises(PrinterError) as e:
        DeviceFileTransport(dev).open()
    assert e.value.fault is PrinterFault.PERMISSION


# ----------------------------------------------------------------------------- USB, spooler


def test_usb_opens_without_python_escpos_and_leaves_no_side_effects(tmp_path):
    """A usb:// printer is opened with pyusb alone: python-escpos (not installed on a till)
    is never imported, the root logger gets no handler (it would draw over the TUI) and no
    temp dir is left behind; with no device or no libusb the error is a PrinterError."""
    tmp, cache = tmp_path / "tmp", tmp_path / "cache"
    tmp.mkdir()
    code = """
import json, logging, os, sys
class _NoEscpos:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "escpos":
            raise ModuleNotFoundError("No module named 'escpos'", name=name)
sys.meta_path.insert(0, _NoEscpos())
root = logging.getLogger()
root.setLevel(logging.ERROR)
import drivers.transport as t
lazy = "usb" not in sys.modules
try:
    t.transport_from_url("usb://0x04b8:0x0202?timeout=1").open()
    error = None
except Exception as e:
    error = [type(e).__name__, getattr(e, "reason", None)]
print(json.dumps({
    "lazy": lazy,
    "escpos": any(m.split(".")[0] == "escpos" for m in sys.modules),
    "handlers": [type(h).__name__ for h in root.handlers],
    "level": root.level,
    "error": error,
}))
"""
    env = {k: v for k, v in os.environ.items() if k != "KASSA_CACHE_DIR"}
    env |= {"TMPDIR": str(tmp), "XDG_CACHE_HOME": str(cache), "PYTHONWARNINGS": "error"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert result["lazy"] and not result["escpos"]
    assert result["handlers"] == [] and result["level"] == 40  # root logger untouched
    assert result["error"][0] == "PrinterError"
    assert result["error"][1] in ("usb_library_missing", "not_found", "permission")
    assert list(tmp.iterdir()) == []  # no mkdtemp() litter
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr


class FakeUsbDevice:
    """A pyusb device as libusb-1.0 gives it, with the kernel's usblp bound to it."""

    def __init__(self, busy: OSError | None = None) -> None:
        self.backend = type("Backend", (), {"__module__": "usb.backend.libusb1"})()
        self.kernel_driver = True
        self.configured = False
        self.disposed = False
        self.busy = busy

    def is_kernel_driver_active(self, interface: int) -> bool:
        return self.kernel_driver

    def detach_kernel_driver(self, interface: int) -> None:
        self.kernel_driver = False

    def set_configuration(self) -> None:
        if self.busy is not None:
            raise self.busy
        self.configured = True


@pytest.fixture
def fake_pyusb(monkeypatch):
    """pyusb's ``usb.core``/``usb.util`` with a bus the test fills (pyusb is the hardware
    edge: there is no USB printer here)."""
    import types

    class USBError(OSError):
        pass

    class NoBackendError(ValueError):
        pass

    bus: dict[tuple[int, int], FakeUsbDevice] = {}
    state = {"backend": True}

    def find(idVendor: int, idProduct: int) -> FakeUsbDevice | None:  # noqa: N803 (pyusb)
        if not state["backend"]:
            raise NoBackendError("No backend available")
        return bus.get((idVendor, idProduct))

    core = types.ModuleType("usb.core")
    core.find = find
    core.USBError = USBError
    core.NoBackendError = NoBackendError
    util = types.ModuleType("usb.util")
    util.dispose_resources = lambda device: setattr(device, "disposed", True)
    pkg = types.ModuleType("usb")
    pkg.core, pkg.util = core, util
    monkeypatch.setitem(sys.modules, "usb", pkg)
    monkeypatch.setitem(sys.modules, "usb.core", core)
    monkeypatch.setitem(sys.modules, "usb.util", util)
    return types.SimpleNamespace(bus=bus, state=state, USBError=USBError)


def test_pyusb_printer_detaches_usblp_and_configures(fake_pyusb):
    device = fake_pyusb.bus[(0x04B8, 0x0202)] = FakeUsbDevice()
    t = UsbTransport(0x04B8, 0x0202)
    t.open()
    assert not device.kernel_driver and device.configured
    t.close()
    assert device.disposed


def test_pyusb_printer_faults_are_classified(fake_pyusb):
    with pytest.raises(PrinterError) as e:
        UsbTransport(0x04B8, 0x0202).open()  # nothing on the bus
    assert (e.value.fault, e.value.reason) == (PrinterFault.OFFLINE, "not_found")
    fake_pyusb.bus[(0x04B8, 0x0202)] = FakeUsbDevice(
        busy=fake_pyusb.USBError(errno.EBUSY, "Resource busy")
    )
    with pytest.raises(PrinterError) as e:
        UsbTransport(0x04B8, 0x0202).open()
    assert (e.value.fault, e.value.reason) == (PrinterFault.BUSY, "busy")
    assert fake_pyusb.bus[(0x04B8, 0x0202)].disposed
    fake_pyusb.state["backend"] = False
    with pytest.raises(PrinterError) as e:
        UsbTransport(0x04B8, 0x0202).open()
    assert e.value.reason == "usb_library_missing"
    assert "libusb" in str(e.value)


class FakeUsbError(OSError):
    pass


class USBTimeoutError(FakeUsbError):
    pass


class FakeUsb:
    """Stands in for drivers.transport.PyUsbPrinter (there is no USB device here)."""

    fail_open: OSError | None = None

    def __init__(self, vid: int, pid: int, **kwargs: object) -> None:
        self.kwargs = kwargs
        self.device = self
        self.sent = bytearray()
        self.write_error: Exception | None = None

    def open(self, raise_not_found: bool = True) -> None:
        if FakeUsb.fail_open is not None:
            try:
                raise FakeUsb.fail_open
            except OSError:
                raise RuntimeError("Unable to open USB printer") from None

    def write(self, ep: int, data: bytes, timeout: int) -> int:
        if self.write_error is not None:
            raise self.write_error
        self.sent += data
        return len(data)

    def read(self, ep: int, n: int, timeout: int) -> bytes:
        raise USBTimeoutError(errno.ETIMEDOUT, "Operation timed out")

    def close(self) -> None:
        pass


def test_usb_errors_are_classified():
    t = UsbTransport(0x04B8, 0x0202, write_timeout_s=0.5, usb_class=FakeUsb)
    t.open()
    fake = t._device
    assert fake.kwargs["timeout"] == 500  # explicit write timeout in ms, never "forever"
    t.write(b"abc")
    assert bytes(fake.sent) == b"abc"
    assert t.read(1, 0.1) == b""  # a read timeout is "no reply", not an error
    fake.write_error = USBTimeoutError(errno.ETIMEDOUT, "Operation timed out")
    with pytest.raises(PrinterError) as e:
        t.write(b"x")
    assert e.value.fault is PrinterFault.TIMEOUT
    fake.write_error = FakeUsbError(errno.ENODEV, "No such device")
    with pytest.raises(PrinterError) as e:
        t.write(b"x")
    assert e.value.fault is PrinterFault.OFFLINE
    t.close()
    FakeUsb.fail_open = FakeUsbError(errno.EACCES, "Access denied")
    try:
        with pytest.raises(PrinterError) as e:
            t.open()
        assert e.value.fault is PrinterFault.PERMISSION
    finally:
        FakeUsb.fail_open = None


def test_spooler_is_windows_only():
    t = transport_from_url("spooler://EPSON TM-T20II")
    assert isinstance(t, WindowsSpoolerTransport) and t.printer_name == "EPSON TM-T20II"
    if sys.platform != "win32":
        with pytest.raises(TransportConfigError) as e:
            t.open()
        assert "только в Windows" in e.value.message_ru


# ----------------------------------------------------------------------------- URLs, capture


def test_transport_urls():
    tcp = transport_from_url("tcp://192.168.1.50?timeout=4&connect_timeout=1.5")
    assert isinstance(tcp, TcpTransport)
    assert (tcp.host, tcp.port, tcp.write_timeout_s, tcp.connect_timeout_s) == (
        "192.168.1.50",
        9100,
        4.0,
        1.5,
    )
    ser = transport_from_url("serial:///dev/ttyUSB0?baud=9600&rtscts=1")
    assert isinstance(ser, SerialTransport)
    assert (ser.port, ser.baudrate, ser.options["rtscts"]) == ("/dev/ttyUSB0", 9600, True)
    com = transport_from_url("serial://COM3")
    assert isinstance(com, SerialTransport) and (com.port, com.baudrate) == ("COM3", 19200)
    dev = transport_from_url("file:///dev/usb/lp0")
    assert isinstance(dev, DeviceFileTransport) and dev.path == "/dev/usb/lp0"
    usb = transport_from_url("usb://0x04b8:0x0202?out_ep=0x02")
    assert isinstance(usb, UsbTransport)
    assert (usb.vendor_id, usb.product_id, usb.out_ep) == (0x04B8, 0x0202, 2)
    cap = transport_from_url("capture:///tmp/slips.bin")
    assert isinstance(cap, CaptureTransport) and str(cap.path) == "/tmp/slips.bin"
    mem = transport_from_url("capture://")
    assert isinstance(mem, CaptureTransport) and mem.path is None
    for t in (tcp, ser, dev, usb, cap, mem, transport_from_url("spooler://P")):
        assert isinstance(t, Transport), t


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("lpt://1", "unknown scheme"),
        ("/dev/usb/lp0", "unknown scheme"),
        ("tcp://:9100", "no host"),
        ("tcp://printer:http", "port"),
        ("tcp://printer?timeout=soon", "not a number"),
        ("tcp://printer?timeout=0", "(0, 3600]"),
        ("tcp://printer?colour=1", "unknown option"),
        ("serial://", "no port"),
        ("serial:///dev/ttyS0?baud=12345", "baud"),
        ("file://", "absolute path"),
        ("usb://04b8", "0xVID:0xPID"),
        ("usb://0xZZ:0x1", "not a number"),
        ("usb://0x10000:0x1", "16-bit"),
        ("spooler://", "printer name"),
    ],
)
def test_bad_transport_urls_say_what_is_wrong(url, words):
    with pytest.raises(TransportConfigError) as e:
        transport_from_url(url)
    assert words in str(e.value)
    assert e.value.message_ru.startswith("Неверный адрес принтера")


def test_capture_file_appends_and_responder_answers(tmp_path):
    out = tmp_path / "preview" / "slips.bin"
    with CaptureTransport(out) as cap:
        cap.write(b"one")
        assert cap.read(1, 1.0) == b"" and not cap.can_read
    with CaptureTransport(out, responder=lambda d: b"\x12" * d.count(b"\x10\x04")) as cap:
        cap.write(b"two")
        assert query_status(cap).fault is PrinterFault.OK
    assert out.read_bytes().startswith(b"onetwo")
    with pytest.raises(PrinterError):
        cap.write(b"closed")
