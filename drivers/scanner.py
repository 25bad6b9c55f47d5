"""Serial barcode/QR scanners: a frame assembler and a reader thread that reconnects.

Why an assembler: a serial read returns whatever bytes arrived, not one scan. Measured
with pyserial ``loop://`` and socat pty pairs: one scan arrives split across reads
(``b'7700123'`` then ``b'456789\\r'``), two quick scans arrive in one read, a CRLF suffix
can be split between reads, and a scanner configured without a suffix never sends a
terminator at all. :class:`FrameAssembler` is pure (bytes and a time in, frames out), so
all of that is tested without hardware.

Frame rules:

- a frame ends at CR, LF, Tab or ETX; CRLF is one terminator (empty frames are dropped);
- STX starts a frame: anything buffered before it is noise and is dropped;
- an AIM symbology identifier (``]Q1`` QR, ``]C0`` Code 128, ``]E0`` EAN-13) at the start
  is removed from the text and kept as ``Frame.symbology``;
- bytes with no terminator become a frame when nothing more arrived for ``timeout_s``
  seconds (``flush_partial``), so suffix-less scanners work; ``partial="drop"`` discards
  them instead;
- a frame longer than ``max_bytes`` without a terminator is dropped (line noise);
- text is decoded as UTF-8 (undecodable bytes replaced), NUL and other C0 controls
  removed (a scanner's GS in GS1 codes becomes nothing, not a control byte on screen).

:class:`SerialScanner` runs the port in a daemon thread: it opens the port (any pyserial
URL, ``/dev/ttyACM0``, ``COM4``, ``loop://``), reads, assembles, calls ``on_scan`` per
frame and, when the port fails or vanishes (a USB scanner unplugged), reports it through
``on_status`` and reopens it with a growing delay. Callbacks run on the reader thread: a
TUI should only ``post_message`` from them. Linux notes: ModemManager probes
``/dev/ttyACM*`` for ~10 s after plug-in (udev ``ID_MM_DEVICE_IGNORE=1``); the user needs
the ``dialout`` group.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import serial

__all__ = ["Frame", "FrameAssembler", "ScannerStatus", "SerialScanner"]

log = logging.getLogger("kassa.scanner")

STX = 0x02
ETX = 0x03
_TERMINATORS = frozenset(b"\r\n\t\x03")
_AIM_RE = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_CONTROLS_RE = re.compile("[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Frame:
    """One scan: ``text`` without prefix or suffix; ``symbology`` the AIM id (``"]Q1"``) or
    None; ``complete`` False when it ended by timeout rather than by a terminator."""

    text: str
    symbology: str | None = None
    complete: bool = True


class FrameAssembler:
    """Turns a byte stream from a scanner into frames. Pure: the caller passes the time.

    ``timeout_s`` (seconds): a partial frame older than this is emitted (or dropped) by
    ``flush_partial`` and by the next ``feed``. ``max_bytes``: frames longer than this are
    line noise and dropped. ``strip_aim``: remove a leading AIM identifier.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 0.2,
        max_bytes: int = 4096,
        strip_aim: bool = True,
        partial: Literal["emit", "drop"] = "emit",
        encoding: str = "utf-8",
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.strip_aim = strip_aim
        self.partial = partial
        self.encoding = encoding
        self._buf = bytearray()
        self._discarding = False
        self._last_rx: float | None = None
        self.dropped = 0
        """Frames dropped as noise (too long, or partial with ``partial="drop"``)."""

    @property
    def pending(self) -> bytes:
        """Bytes of the frame being assembled (no terminator yet)."""
        return bytes(self._buf)

    def feed_frames(self, data: bytes, now: float) -> list[Frame]:
        """Add bytes received at ``now`` (seconds, any monotonic clock); return the frames
        they completed, in order. A stale partial frame is flushed first."""
        out = self.flush_partial_frames(now)
        if data:
            self._last_rx = now
        for b in data:
            if b == STX:
                if self._buf:
                    self.dropped += 1
                self._buf.clear()
                self._discarding = False
            elif b in _TERMINATORS:
                if self._discarding:
                    self._discarding = False
                    continue
                frame = self._take(complete=True)
                if frame is not None:
                    out.append(frame)
            elif not self._discarding:
                self._buf.append(b)
                if len(self._buf) > self.max_bytes:  # noise: skip to the next terminator
                    self._buf.clear()
                    self._discarding = True
                    self.dropped += 1
        return out

    def feed(self, data: bytes, now: float) -> list[str]:
        """Like :meth:`feed_frames`, texts only."""
        return [f.text for f in self.feed_frames(data, now)]

    def flush_partial_frames(self, now: float) -> list[Frame]:
        """If bytes without a terminator have waited ``timeout_s`` since the last byte,
        emit them as one incomplete frame (or drop them); else nothing."""
        if not self._buf or self._last_rx is None or now - self._last_rx < self.timeout_s:
            return []
        if self.partial == "drop":
            self._buf.clear()
            self.dropped += 1
            return []
        frame = self._take(complete=False)
        return [] if frame is None else [frame]

    def flush_partial(self, now: float) -> list[str]:
        """Like :meth:`flush_partial_frames`, texts only."""
        return [f.text for f in self.flush_partial_frames(now)]

    def _take(self, *, complete: bool) -> Frame | None:
        raw = bytes(self._buf)
        self._buf.clear()
        text = _CONTROLS_RE.sub("", raw.decode(self.encoding, errors="replace")).strip()
        symbology = None
        if self.strip_aim:
            aim = _AIM_RE.match(text)
            if aim:
                symbology = aim.group(0)
                text = text[aim.end() :].strip()
        if not text:
            return None
        return Frame(text, symbology, complete)


@dataclass(frozen=True, slots=True)
class ScannerStatus:
    """The reader's connection state: ``connected`` True/False, with the error (English)
    and the Russian text for the cashier when it is down."""

    connected: bool
    port: str
    error: str = ""
    message_ru: str = ""


class SerialScanner:
    """Reads a serial scanner in a daemon thread, reconnecting when the port fails.

    ``on_scan(Frame)`` is called for each scan; ``on_status(ScannerStatus)`` when the port
    opens or fails. ``read_timeout_s`` (seconds) is the longest one read blocks, which is
    also how quickly ``stop()`` and partial-frame flushing react. Reconnect delay starts
    at ``reconnect_initial_s`` and doubles up to ``reconnect_max_s`` (seconds).
    ``serial_for_url`` (pyserial's by default) and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        port: str,
        on_scan: Callable[[Frame], None],
        *,
        baudrate: int = 9600,
        on_status: Callable[[ScannerStatus], None] | None = None,
        assembler: FrameAssembler | None = None,
        read_timeout_s: float = 0.05,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 5.0,
        serial_for_url: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.on_scan = on_scan
        self.on_status = on_status
        self.baudrate = baudrate
        self.assembler = assembler or FrameAssembler()
        self.read_timeout_s = read_timeout_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self._serial_for_url = serial_for_url or serial.serial_for_url
        self.clock = clock
        self.connected = False
        self._reported: bool | None = None
        self.opens = 0
        """How many times the port was opened (1 + reconnects)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kassa-scanner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reading and close the port (waits at most ``timeout_s`` seconds)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def __enter__(self) -> SerialScanner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        delay = self.reconnect_initial_s
        while not self._stop.is_set():
            try:
                port = self._serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=self.read_timeout_s
                )
            except (serial.SerialException, OSError, ValueError) as e:
                self._status(False, e)
                self._stop.wait(delay)
                delay = min(self.reconnect_max_s, delay * 2)
                continue
            self.opens += 1
            delay = self.reconnect_initial_s
            self._status(True, None)
            try:
                self._read_loop(port)
            except (serial.SerialException, OSError) as e:
                self._status(False, e)
                self._stop.wait(delay)
            finally:
                try:
                    port.close()
                except Exception:  # a vanished device may fail to close; nothing to do
                    log.debug("closing %s failed", self.port, exc_info=True)
        self.connected = False

    def _read_loop(self, port: Any) -> None:
        while not self._stop.is_set():
            waiting = port.in_waiting
            data = bytes(port.read(max(1, min(waiting, 4096))))
            for frame in self.assembler.feed_frames(data, self.clock()):
                self._deliver(frame)
            if not data:
                for frame in self.assembler.flush_partial_frames(self.clock()):
                    self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        try:
            self.on_scan(frame)
        except Exception:  # the consumer's bug must not kill the reader
            log.exception("scan handler failed")

    def _status(self, connected: bool, error: BaseException | None) -> None:
        if connected == self._reported:
            return
        self.connected = self._reported = connected
        if not connected:
            log.warning("scanner %s unavailable: %s", self.port, error)
        status = ScannerStatus(
            connected=connected,
            port=self.port,
            error="" if error is None else str(error),
            message_ru="" if connected else f"Сканер не подключён ({self.port}): проверьте кабель",
        )
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("scanner status handler failed")
