"""Printer status over ESC/POS real-time requests (DLE EOT n), mapped to cashier faults.

Why our own and not python-escpos: in 3.1 a printer that does not answer reports
``paper_status() == 2`` ("paper OK") and cover-open is not exposed at all (see
notes/drivers.md). Here a missing reply is ``PrinterFault.TIMEOUT`` ("status unknown") and a
reply that fails the fixed-bit check is ``PrinterFault.UNKNOWN``; neither is ever "OK".

The four requests (Epson ESC/POS; the fixed bits are the same in every reply: bit 0 = 0,
bit 1 = 1, bit 4 = 1, bit 7 = 0, hence the check ``(b & 0x93) == 0x12``):

====  ======================  ==========================================================
 n    status                   bits we read
====  ======================  ==========================================================
 1    printer                  3: offline
 2    offline cause            2: cover open, 5: stopped at paper end, 6: error occurred
 3    error cause              2: recoverable, 3: autocutter, 5: unrecoverable,
                               6: auto-recoverable (head temperature)
 4    roll paper sensor        2-3: near end, 5-6: paper end
====  ======================  ==========================================================

Real-time requests are answered even while the printer is offline or its buffer is full
(that is their point), so a silence really means "no printer there" or "the transport
cannot read" (a spooler, a write-only device file): the profile says whether status is
supported at all (cheap printers without a back channel).

``PrinterError`` is the one error the drivers raise for a printer problem; it carries a
``PrinterFault`` and a machine ``reason`` (``"refused"``, ``"send_timeout"``, ``"reset"``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from agent.errors import AgentError

__all__ = [
    "STATUS_REQUESTS",
    "PrinterError",
    "PrinterFault",
    "StatusPort",
    "StatusReport",
    "decode_status",
    "dle_eot",
    "query_status",
    "valid_reply",
]

DLE_EOT = b"\x10\x04"
STATUS_REQUESTS = (1, 2, 3, 4)
"""DLE EOT n values we ask, in order: printer, offline cause, error cause, paper sensor."""


class PrinterFault(StrEnum):
    """What the cashier needs to know about the printer, one value at a time.

    ``OK`` and ``PAPER_LOW`` let a slip print (paper low is a warning); every other value
    holds the queue until the printer answers healthy again.
    """

    OK = "ok"
    OFFLINE = "offline"
    COVER_OPEN = "cover_open"
    PAPER_OUT = "paper_out"
    PAPER_LOW = "paper_low"
    CUTTER_ERROR = "cutter_error"
    TIMEOUT = "timeout"
    PERMISSION = "permission"
    BUSY = "busy"
    UNKNOWN = "unknown"

    @property
    def message_ru(self) -> str:
        """The cashier-facing text (Russian, the till default)."""
        return _MESSAGES[self][0]

    @property
    def message_en(self) -> str:
        return _MESSAGES[self][1]

    def message(self, lang: str = "ru") -> str:
        return self.message_en if lang == "en" else self.message_ru

    @property
    def blocks_printing(self) -> bool:
        """True when a slip must not be sent now (it would be lost or half printed)."""
        return self not in (PrinterFault.OK, PrinterFault.PAPER_LOW)


_MESSAGES: dict[PrinterFault, tuple[str, str]] = {
    PrinterFault.OK: ("Принтер готов", "Printer ready"),
    PrinterFault.OFFLINE: (
        "Принтер не в сети: проверьте питание и кабель",
        "Printer offline: check the power and the cable",
    ),
    PrinterFault.COVER_OPEN: (
        "Открыта крышка принтера: закройте крышку",
        "Printer cover is open: close it",
    ),
    PrinterFault.PAPER_OUT: (
        "В принтере закончилась бумага: вставьте новый рулон",
        "Printer is out of paper: load a new roll",
    ),
    PrinterFault.PAPER_LOW: (
        "Бумага в принтере заканчивается: приготовьте новый рулон",
        "Paper is running low: have a new roll ready",
    ),
    PrinterFault.CUTTER_ERROR: (
        "Ошибка отрезчика: откройте крышку и уберите замятую бумагу",
        "Cutter error: open the cover and clear the paper jam",
    ),
    PrinterFault.TIMEOUT: (
        "Принтер не отвечает: состояние неизвестно",
        "Printer does not respond: status unknown",
    ),
    PrinterFault.PERMISSION: (
        "Нет доступа к принтеру: обратитесь к администратору (права на устройство)",
        "No permission to use the printer device (ask the administrator: lp/dialout group)",
    ),
    PrinterFault.BUSY: (
        "Принтер занят другой программой",
        "Printer is busy: another program holds it",
    ),
    PrinterFault.UNKNOWN: (
        "Ошибка принтера: состояние неизвестно",
        "Printer error: status unknown",
    ),
}


class PrinterError(AgentError):
    """A printer could not be opened, written or read; ``fault`` says what the cashier sees.

    ``reason`` is a stable machine word for logs and tests (``"refused"``, ``"connect_timeout"``,
    ``"send_timeout"``, ``"reset"``, ``"closed"``, ``"write_timeout"``, ``"not_found"``,
    ``"permission"``, ``"busy"``, ``"io_error"``, ``"status"``, ``"usb_library_missing"``,
    ``"unsupported_platform"``); ``target`` names the device (URL or path).
    """

    code = "printer_fault"
    title_ru = "Принтер"
    title_en = "Printer"

    def __init__(
        self, fault: PrinterFault, reason: str, detail: str, *, target: str = "", **extra: Any
    ) -> None:
        where = f" [{target}]" if target else ""
        super().__init__(
            f"{fault.message_en}: {detail}{where}",
            fault.message_ru,
            fault=fault.value,
            reason=reason,
            target=target,
            **extra,
        )
        self.fault = fault
        self.reason = reason


def dle_eot(n: int) -> bytes:
    """The real-time status request ``DLE EOT n`` (3 bytes), n = 1..4."""
    if n not in STATUS_REQUESTS:
        raise ValueError(f"DLE EOT n must be 1..4, got {n}")
    return DLE_EOT + bytes((n,))


def valid_reply(b: int) -> bool:
    """True if ``b`` has the fixed bits of every DLE EOT reply (bits 1 and 4 set, 0 and 7
    clear). Anything else is noise, an echo or another protocol, never a status."""
    return (b & 0x93) == 0x12


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The decoded answers. ``replies[n]`` is the byte received for DLE EOT n, None when the
    printer did not answer within the timeout (absent: not asked). ``fault`` is the one to
    show; ``faults`` holds everything detected (cover open and paper low at once, say)."""

    fault: PrinterFault
    faults: frozenset[PrinterFault]
    replies: Mapping[int, int | None]
    detail: str

    @property
    def ok_to_print(self) -> bool:
        return not self.fault.blocks_printing


_PRIORITY = (
    PrinterFault.TIMEOUT,
    PrinterFault.UNKNOWN,
    PrinterFault.COVER_OPEN,
    PrinterFault.PAPER_OUT,
    PrinterFault.CUTTER_ERROR,
    PrinterFault.OFFLINE,
    PrinterFault.PAPER_LOW,
)


def decode_status(replies: Mapping[int, int | None]) -> StatusReport:
    """Map DLE EOT replies (n -> byte or None) to faults. Pure; ``query_status`` feeds it.

    No reply to a request that was asked is TIMEOUT; a byte failing :func:`valid_reply` is
    UNKNOWN; an empty mapping (nothing asked) is UNKNOWN too: status is only OK when the
    printer said so.
    """
    if not replies:
        return StatusReport(
            PrinterFault.UNKNOWN, frozenset({PrinterFault.UNKNOWN}), {}, "no status"
        )
    found: set[PrinterFault] = set()
    notes: list[str] = []
    for n, b in sorted(replies.items()):
        if b is None:
            found.add(PrinterFault.TIMEOUT)
            notes.append(f"no reply to DLE EOT {n}")
        elif not valid_reply(b):
            found.add(PrinterFault.UNKNOWN)
            notes.append(f"invalid reply 0x{b:02x} to DLE EOT {n}")
    if not found:
        found |= _status_bits(replies, notes)
    primary = next((f for f in _PRIORITY if f in found), PrinterFault.OK)
    return StatusReport(
        primary, frozenset(found or {PrinterFault.OK}), dict(replies), "; ".join(notes)
    )


def _status_bits(replies: Mapping[int, int | None], notes: list[str]) -> set[PrinterFault]:
    found: set[PrinterFault] = set()
    printer = replies.get(1) or 0
    cause = replies.get(2) or 0
    error = replies.get(3) or 0
    paper = replies.get(4) or 0
    offline = bool(printer & 0x08)
    if cause & 0x04:
        found.add(PrinterFault.COVER_OPEN)
    if cause & 0x20 or paper & 0x60:
        found.add(PrinterFault.PAPER_OUT)
    if error & 0x08:
        found.add(PrinterFault.CUTTER_ERROR)
    if error & 0x24:
        found.add(PrinterFault.UNKNOWN)
        notes.append("printer reports a (un)recoverable error")
    if error & 0x40:
        found.add(PrinterFault.OFFLINE)
        notes.append("auto-recoverable error (head temperature)")
    if paper & 0x0C:
        found.add(PrinterFault.PAPER_LOW)
    if offline and not found - {PrinterFault.PAPER_LOW}:
        found.add(PrinterFault.OFFLINE)
    if offline:
        notes.append("printer reports offline")
    return found


class StatusPort(Protocol):
    """What a status query needs from a transport (``drivers.transport.Transport`` fits)."""

    def write(self, data: bytes) -> None: ...

    def read(self, n: int, timeout_s: float) -> bytes: ...


def query_status(
    port: StatusPort, *, timeout_s: float = 1.0, requests: Iterable[int] = STATUS_REQUESTS
) -> StatusReport:
    """Ask the printer ``DLE EOT n`` for each n and decode the answers.

    ``timeout_s`` (seconds) bounds the wait for each one-byte reply; the whole query takes at
    most ``timeout_s`` more than the round trips when the printer is silent, because the
    first unanswered request ends it (a printer that ignores n=1 will not answer n=2).
    Stale bytes (a late reply to an earlier query) are drained first so they cannot be read
    as this query's answer. Transport errors propagate as ``PrinterError``.
    """
    _drain(port)
    replies: dict[int, int | None] = {}
    for n in requests:
        port.write(dle_eot(n))
        got = port.read(1, timeout_s)
        if not got:
            replies[n] = None
            break
        replies[n] = got[0]
        if not valid_reply(got[0]):
            break
    return decode_status(replies)


def _drain(port: StatusPort, limit: int = 64) -> None:
    """Read and drop whatever is already waiting (at most ``limit`` reads of 256 bytes)."""
    for _ in range(limit):
        if not port.read(256, 0.0):
            return
