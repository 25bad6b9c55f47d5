"""Byte transports to receipt printers, each with explicit timeouts and explicit open/close.

Why our own layer and not python-escpos's printers: they open lazily when ``.device`` is
read, a USB write has no timeout by default (an open cover blocks the till forever),
network errors surface as three unrelated exception types, and importing ``escpos.printer``
writes a pickle to a new temp dir and installs a root log handler (notes/drivers.md). The
library is not a runtime dependency at all: USB goes through pyusb directly. Every
transport here:

- is opened by ``open()`` and released by ``close()`` (idempotent), or used as a context
  manager; nothing opens as a side effect;
- bounds every operation in seconds (connect, write, read), so a dead printer costs the
  print worker a known time, never the cashier's screen;
- raises only :class:`drivers.status.PrinterError`, whose ``fault`` is what the cashier
  sees and whose ``reason`` tells the installer what happened;
- ``read(n, timeout_s)`` returns at most ``n`` bytes, ``b""`` when nothing arrived in
  ``timeout_s`` seconds; ``can_read`` is False where there is no back channel (spooler,
  write-only device file), so status is "unknown" there, never "OK".

URLs (:func:`transport_from_url`)::

    tcp://192.168.1.50:9100?timeout=10        raw TCP (JetDirect / port 9100)
    serial:///dev/ttyUSB0?baud=19200&rtscts=1 serial (COM3: serial://COM3?baud=9600)
    file:///dev/usb/lp0                       a device file (Linux usblp, a FIFO): it must
                                              exist (opened, never created: a missing one
                                              is OFFLINE); a regular file would be
                                              overwritten from its start on every open
    usb://0x04b8:0x0202?in_ep=0x82&out_ep=0x01 USB through pyusb (libusb-1.0)
    spooler://EPSON TM-T20II                  Windows spooler, RAW datatype
    capture:///var/tmp/slips.bin              no printer: append to a file, created with
                                              its directory (demo, preview); capture://
                                              keeps the bytes in memory only

Common query options: ``timeout`` (write timeout, seconds), ``connect_timeout`` (seconds).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

import serial

from agent.errors import InputError
from agent.private import create_private
from drivers.status import PrinterError, PrinterFault

__all__ = [
    "CaptureTransport",
    "DeviceFileTransport",
    "PyUsbPrinter",
    "SerialTransport",
    "TcpTransport",
    "Transport",
    "TransportConfigError",
    "UsbLibraryMissing",
    "UsbTransport",
    "WindowsSpoolerTransport",
    "transport_from_url",
]

DEFAULT_WRITE_TIMEOUT_S = 10.0
"""A 42-column slip with a raster QR is 5-20 kB; at 9600 baud 20 kB takes ~21 s, so serial
users with slow links raise it in the URL. Network and USB printers take it in < 1 s."""

DEFAULT_CONNECT_TIMEOUT_S = 3.0


class TransportConfigError(InputError):
    """A printer URL or option is wrong, or the transport cannot work on this system."""

    code = "bad_printer_url"
    title_ru = "Настройка принтера"
    title_en = "Printer settings"


@runtime_checkable
class Transport(Protocol):
    """Bytes to one printer. See the module docstring for the contract."""

    @property
    def description(self) -> str:
        """Where the bytes go (a URL), for logs and error messages."""
        ...

    @property
    def can_read(self) -> bool:
        """True if ``read`` can ever return printer replies (DLE EOT status)."""
        ...

    def open(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def read(self, n: int, timeout_s: float) -> bytes: ...

    def close(self) -> None: ...


class _Base:
    """Context-manager plumbing shared by the transports."""

    description = ""
    can_read = True

    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

    def _error(self, fault: PrinterFault, reason: str, detail: object) -> PrinterError:
        return PrinterError(fault, reason, str(detail), target=self.description)


_ERRNO_FAULTS: dict[int, tuple[PrinterFault, str]] = {
    errno.EACCES: (PrinterFault.PERMISSION, "permission"),
    errno.EPERM: (PrinterFault.PERMISSION, "permission"),
    errno.EBUSY: (PrinterFault.BUSY, "busy"),
    errno.EAGAIN: (PrinterFault.BUSY, "busy"),  # flock on a port another process holds
    errno.ENOENT: (PrinterFault.OFFLINE, "not_found"),
    errno.ENODEV: (PrinterFault.OFFLINE, "not_found"),
    errno.ENXIO: (PrinterFault.OFFLINE, "not_found"),
    errno.EIO: (PrinterFault.OFFLINE, "io_error"),
    errno.EPIPE: (PrinterFault.OFFLINE, "reset"),
    errno.ETIMEDOUT: (PrinterFault.TIMEOUT, "write_timeout"),
}


def _errno_fault(err: int | None) -> tuple[PrinterFault, str]:
    return _ERRNO_FAULTS.get(err or 0, (PrinterFault.OFFLINE, "io_error"))


# ---------------------------------------------------------------------------- capture


class CaptureTransport(_Base):
    """Keeps every written byte (``data``) and optionally appends it to ``path``.

    Used by the demo, the TUI preview and tests. ``responder`` (optional) is called with
    each write and returns bytes the "printer" answers (a fake DLE EOT reply), which
    ``read`` then returns; without it ``read`` returns ``b""`` at once (no printer, status
    unknown) and ``can_read`` is False.
    """

    def __init__(
        self, path: str | Path | None = None, *, responder: Callable[[bytes], bytes] | None = None
    ) -> None:
        self.path = Path(path) if path else None
        self.responder = responder
        self.description = f"capture://{self.path}" if self.path else "capture://"
        self.can_read = responder is not None
        self.writes: list[bytes] = []
        self.opened = 0
        self.is_open = False
        self._pending = bytearray()

    @property
    def data(self) -> bytes:
        """Everything written since construction (bytes)."""
        return b"".join(self.writes)

    def open(self) -> None:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # 0600 like every file Kassa makes (a slip may show a member's card). An
                # append-only log of what was "printed", not renamed into place: a kill
                # mid-write cuts the last slip short, as paper would be.
                create_private(self.path)
            except OSError as e:
                raise self._error(*_errno_fault(e.errno), e) from e
        self.opened += 1
        self.is_open = True

    def write(self, data: bytes) -> None:
        if not self.is_open:
            raise self._error(PrinterFault.OFFLINE, "closed", "write on a closed transport")
        self.writes.append(bytes(data))
        if self.path is not None:
            try:
                with self.path.open("ab") as f:
                    f.write(data)
            except OSError as e:
                raise self._error(*_errno_fault(e.errno), e) from e
        if self.responder is not None:
            self._pending += self.responder(bytes(data))

    def read(self, n: int, timeout_s: float) -> bytes:
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def close(self) -> None:
        self.is_open = False


# ---------------------------------------------------------------------------- TCP 9100


class TcpTransport(_Base):
    """Raw TCP to port 9100 (JetDirect), the usual network receipt printer.

    Failures are told apart because they mean different things at the till:

    - connection refused -> OFFLINE/``refused``: nothing listens (printer off, wrong IP);
    - connect timeout -> OFFLINE/``connect_timeout``: the host does not answer at all;
    - a peer that accepts but never reads -> TIMEOUT/``send_timeout`` after
      ``write_timeout_s``: buffer full because the printer is stuck (cover, paper) or
      another till holds its single connection;
    - reset / broken pipe / closed -> OFFLINE/``reset`` or ``closed``: power cycle.

    ``send_buffer_bytes`` (optional) shrinks SO_SNDBUF so less data sits in the kernel
    when a printer stops reading; a stuck printer is then noticed within one timeout.
    """

    def __init__(
        self,
        host: str,
        port: int = 9100,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        send_buffer_bytes: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.write_timeout_s = write_timeout_s
        self.send_buffer_bytes = send_buffer_bytes
        self.description = f"tcp://{host}:{port}"
        self._sock: socket.socket | None = None

    def open(self) -> None:
        self.close()
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise self._error(PrinterFault.OFFLINE, "unknown_host", e) from e
        family, kind, proto, _, address = info[0]
        try:
            sock = socket.socket(family, kind, proto)
            try:
                if self.send_buffer_bytes:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.connect_timeout_s)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        except ConnectionRefusedError as e:
            raise self._error(PrinterFault.OFFLINE, "refused", e) from e
        except TimeoutError as e:
            raise self._error(PrinterFault.OFFLINE, "connect_timeout", e) from e
        except PermissionError as e:
            raise self._error(PrinterFault.PERMISSION, "permission", e) from e
        except OSError as e:
            raise self._error(PrinterFault.OFFLINE, "unreachable", e) from e
        self._sock = sock

    def _connected(self) -> socket.socket:
        if self._sock is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        return self._sock

    def write(self, data: bytes) -> None:
        """Send all of ``data`` within ``write_timeout_s`` seconds in total (CPython's
        ``sendall`` deadline covers the whole call). After a failure the connection is
        dropped: how much the printer got is unknown, so the job is resent whole."""
        sock = self._connected()
        try:
            self._check_peer(sock)
            sock.settimeout(self.write_timeout_s)
            sock.sendall(data)
        except TimeoutError as e:
            self.close()
            raise self._error(PrinterFault.TIMEOUT, "send_timeout", e) from e
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "reset", e) from e
        except PrinterError:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "io_error", e) from e

    def _check_peer(self, sock: socket.socket) -> None:
        """Fail before sending if the printer already closed or reset the connection (a
        send into a reset socket can succeed once and lose the data)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return
        sock.settimeout(0)
        try:
            peek = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except (ConnectionResetError, ConnectionAbortedError) as e:
            raise self._error(PrinterFault.OFFLINE, "reset", e) from e
        if not peek:
            raise self._error(PrinterFault.OFFLINE, "closed", "printer closed the connection")

    def read(self, n: int, timeout_s: float) -> bytes:
        sock = self._connected()
        try:
            sock.settimeout(max(timeout_s, 0.0))
            got = sock.recv(n)
        except (TimeoutError, BlockingIOError):
            return b""
        except (ConnectionResetError, ConnectionAbortedError) as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "reset", e) from e
        except OSError as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "io_error", e) from e
        if not got:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "closed", "printer closed the connection")
        return got

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


# ---------------------------------------------------------------------------- serial


class SerialTransport(_Base):
    """A serial printer through pyserial (``/dev/ttyUSB0``, ``COM3``, or any pyserial URL
    such as ``loop://`` or ``socket://``).

    ``write_timeout_s`` bounds each write (pyserial ``write_timeout``): with hardware flow
    control a printer with its cover open drops CTS and the write would otherwise wait
    forever. We never call ``flush()`` (tcdrain has no timeout). The port is locked
    exclusively (``exclusive=True``), so a second program gets BUSY instead of interleaving
    bytes. ``serial_for_url`` is injectable for tests.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 19200,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        rtscts: bool = False,
        dsrdtr: bool = False,
        xonxoff: bool = False,
        exclusive: bool = True,
        serial_for_url: Callable[..., Any] | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.write_timeout_s = write_timeout_s
        self.options = {"rtscts": rtscts, "dsrdtr": dsrdtr, "xonxoff": xonxoff}
        self.exclusive = exclusive
        self._factory = serial_for_url
        self.description = f"serial://{port}?baud={baudrate}"
        self._ser: Any = None

    def open(self) -> None:
        self.close()
        factory = self._factory or serial.serial_for_url
        kwargs: dict[str, Any] = dict(
            baudrate=self.baudrate, timeout=0, write_timeout=self.write_timeout_s, **self.options
        )
        if self.exclusive and "://" not in self.port:
            kwargs["exclusive"] = True
        try:
            self._ser = factory(self.port, **kwargs)
        except serial.SerialException as e:
            raise self._error(*_errno_fault(getattr(e, "errno", None)), e) from e
        except (OSError, ValueError) as e:
            raise self._error(*_errno_fault(getattr(e, "errno", None)), e) from e

    def _port(self) -> Any:
        if self._ser is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        return self._ser

    def write(self, data: bytes) -> None:
        ser = self._port()
        try:
            ser.write(data)
        except serial.SerialTimeoutException as e:
            raise self._error(PrinterFault.TIMEOUT, "write_timeout", e) from e
        except (serial.SerialException, OSError) as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "io_error", e) from e

    def read(self, n: int, timeout_s: float) -> bytes:
        ser = self._port()
        try:
            ser.timeout = max(timeout_s, 0.0)
            return bytes(ser.read(n))
        except (serial.SerialException, OSError) as e:
            self.close()
            raise self._error(PrinterFault.OFFLINE, "io_error", e) from e

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()


# ---------------------------------------------------------------------------- device file


class DeviceFileTransport(_Base):
    """A printer device file (Linux ``/dev/usb/lp0``) opened ``O_WRONLY | O_NONBLOCK``.

    A blocking write to usblp with the cover open waits forever; non-blocking writes with
    ``poll()`` give a bound of ``write_timeout_s`` seconds. Write-only, so ``can_read`` is
    False and status is unknown (profiles for such printers say status is unsupported).
    A FIFO works too (tests; a printer daemon that reads a pipe).
    """

    can_read = False

    def __init__(
        self, path: str | Path, *, write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S
    ) -> None:
        self.path = str(path)
        self.write_timeout_s = write_timeout_s
        self.description = f"file://{self.path}"
        self._fd: int | None = None

    def open(self) -> None:
        self.close()
        if not hasattr(select, "poll"):
            raise TransportConfigError(
                f"device-file printers need poll(), not available on {sys.platform}",
                "Печать в файл устройства не поддерживается в этой системе",
                url=self.description,
            )
        flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        try:
            self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise self._error(*_errno_fault(e.errno), e) from e

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        fd = self._fd
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + self.write_timeout_s
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._error(
                    PrinterFault.TIMEOUT,
                    "write_timeout",
                    f"{len(view)} of {len(data)} bytes not accepted in {self.write_timeout_s} s",
                )
            events = poller.poll(max(1, int(left * 1000)))
            if not events:
                continue
            if any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in events):
                self.close()
                raise self._error(PrinterFault.OFFLINE, "io_error", "device reports an error")
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except OSError as e:
                self.close()
                raise self._error(*_errno_fault(e.errno), e) from e
            view = view[written:]

    def read(self, n: int, timeout_s: float) -> bytes:
        """No back channel: always ``b""`` (status unknown), at once."""
        return b""

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


# ---------------------------------------------------------------------------- USB


class UsbLibraryMissing(Exception):
    """pyusb or a libusb back end (libusb-1.0 on Linux, libusb-1.0.dll on Windows) is absent."""


class PyUsbPrinter:
    """Finds and claims a USB printer with pyusb, as python-escpos 3.1's ``Usb.open`` did,
    without that library (it pulls Pillow, PyYAML and python-barcode in for nothing: our
    renderer makes the bytes) and without its import side effects.

    Opening: ``usb.core.find`` by vendor/product id; with the libusb-1.0 back end the
    kernel's usblp driver is detached from interface 0 (it would hold the device); then
    the default configuration is set. No USB reset after it (python-escpos resets, which
    re-enumerates the device and can hand it back to usblp). ``device`` is the pyusb
    device; ``timeout`` is in milliseconds, given to every write and read by the caller.
    """

    def __init__(
        self, vendor_id: int, product_id: int, *, timeout: int, in_ep: int, out_ep: int
    ) -> None:
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.timeout = timeout
        self.in_ep = in_ep
        self.out_ep = out_ep
        self.device: Any = None

    def open(self, raise_not_found: bool = True) -> None:
        try:
            core = importlib.import_module("usb.core")
        except ImportError as e:
            raise UsbLibraryMissing("pyusb is not installed (pip install pyusb)") from e
        try:
            device = core.find(idVendor=self.vendor_id, idProduct=self.product_id)
        except core.NoBackendError as e:
            raise UsbLibraryMissing(
                "no libusb back end for pyusb (libusb-1.0 on Linux, libusb-1.0.dll on Windows)"
            ) from e
        if device is None:
            if raise_not_found:
                raise OSError(
                    errno.ENODEV,
                    f"USB device {self.vendor_id:04x}:{self.product_id:04x} not found",
                )
            return
        try:
            if device.backend.__module__.endswith("libusb1"):
                with contextlib.suppress(NotImplementedError):
                    if device.is_kernel_driver_active(0):
                        device.detach_kernel_driver(0)
            device.set_configuration()
        except core.USBError as e:
            with contextlib.suppress(Exception):
                importlib.import_module("usb.util").dispose_resources(device)
            raise OSError(e.errno, f"cannot claim the USB printer: {e}") from e
        self.device = device

    def close(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            importlib.import_module("usb.util").dispose_resources(device)


class UsbTransport(_Base):
    """A USB printer through pyusb (:class:`PyUsbPrinter`).

    pyusb is imported inside ``open()``, so the TUI starts without it. Writes and reads go
    to the pyusb device with an explicit timeout (pyusb's default is none). Without pyusb or
    libusb ``open()`` raises ``PrinterError`` with reason ``usb_library_missing``.
    ``usb_class`` (same constructor and ``open``/``device``/``close`` as
    :class:`PyUsbPrinter`) is injectable for tests.
    """

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        in_ep: int = 0x82,
        out_ep: int = 0x01,
        usb_class: Any = None,
    ) -> None:
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.write_timeout_s = write_timeout_s
        self.in_ep = in_ep
        self.out_ep = out_ep
        self._usb_class = usb_class if usb_class is not None else PyUsbPrinter
        self.description = f"usb://0x{vendor_id:04x}:0x{product_id:04x}"
        self._printer: Any = None
        self._device: Any = None

    def open(self) -> None:
        self.close()
        ms = max(1, int(self.write_timeout_s * 1000))
        printer = self._usb_class(
            self.vendor_id, self.product_id, timeout=ms, in_ep=self.in_ep, out_ep=self.out_ep
        )
        try:
            printer.open(raise_not_found=True)
        except UsbLibraryMissing as e:
            raise self._error(PrinterFault.UNKNOWN, "usb_library_missing", e) from e
        except Exception as e:
            cause = e.__context__ if e.__context__ is not None else e
            fault, reason = _errno_fault(getattr(cause, "errno", None) or getattr(e, "errno", None))
            if reason == "io_error":
                fault, reason = PrinterFault.OFFLINE, "not_found"
            raise self._error(fault, reason, e) from e
        self._printer = printer
        self._device = printer.device

    def _usb_error(self, e: Exception) -> PrinterError:
        err = getattr(e, "errno", None)
        if type(e).__name__ == "USBTimeoutError" or err == errno.ETIMEDOUT:
            return self._error(PrinterFault.TIMEOUT, "write_timeout", e)
        return self._error(*_errno_fault(err), e)

    def write(self, data: bytes) -> None:
        if self._device is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        ms = max(1, int(self.write_timeout_s * 1000))
        try:
            self._device.write(self.out_ep, data, ms)
        except Exception as e:
            raise self._usb_error(e) from e

    def read(self, n: int, timeout_s: float) -> bytes:
        if self._device is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        try:
            return bytes(self._device.read(self.in_ep, n, max(1, int(timeout_s * 1000))))
        except Exception as e:
            err = self._usb_error(e)
            if err.fault is PrinterFault.TIMEOUT:
                return b""
            raise err from e

    def close(self) -> None:
        printer, self._printer, self._device = self._printer, None, None
        if printer is not None:
            with contextlib.suppress(Exception):
                printer.close()


# ---------------------------------------------------------------------------- spooler


class WindowsSpoolerTransport(_Base):
    """A printer installed in Windows, fed RAW bytes through the spooler (win32print).

    Each ``write`` is one spooler document (StartDocPrinter ... EndDocPrinter) with the RAW
    datatype, so the driver does not rasterise our ESC/POS. The spooler accepts the job at
    once; faults surface in the Windows queue, not here, hence ``can_read`` is False. On
    other systems ``open()`` raises ``TransportConfigError``.
    """

    can_read = False

    def __init__(self, printer_name: str, *, document_name: str = "Kassa slip") -> None:
        self.printer_name = printer_name
        self.document_name = document_name
        self.description = f"spooler://{printer_name}"
        self._handle: Any = None
        self._win32print: Any = None

    def open(self) -> None:
        self.close()
        if sys.platform != "win32":
            raise TransportConfigError(
                f"spooler:// printers work only on Windows (this is {sys.platform})",
                "Печать через диспетчер печати Windows доступна только в Windows",
                url=self.description,
            )
        try:  # pragma: no cover - Windows tills
            self._win32print = importlib.import_module("win32print")
        except ImportError as e:  # pragma: no cover
            raise TransportConfigError(
                "spooler:// needs pywin32 (pip install pywin32)",
                "Для печати через диспетчер Windows нужен пакет pywin32",
                url=self.description,
            ) from e
        try:  # pragma: no cover
            self._handle = self._win32print.OpenPrinter(self.printer_name)
        except Exception as e:  # pragma: no cover - pywintypes.error
            raise self._error(PrinterFault.OFFLINE, "not_found", e) from e

    def write(self, data: bytes) -> None:  # pragma: no cover - Windows tills
        if self._handle is None:
            raise self._error(PrinterFault.OFFLINE, "closed", "transport is not open")
        w = self._win32print
        try:
            w.StartDocPrinter(self._handle, 1, (self.document_name, None, "RAW"))
            try:
                w.StartPagePrinter(self._handle)
                w.WritePrinter(self._handle, data)
                w.EndPagePrinter(self._handle)
            finally:
                w.EndDocPrinter(self._handle)
        except Exception as e:
            code = getattr(e, "winerror", None)
            if code == 5:  # ERROR_ACCESS_DENIED
                raise self._error(PrinterFault.PERMISSION, "permission", e) from e
            raise self._error(PrinterFault.OFFLINE, "io_error", e) from e

    def read(self, n: int, timeout_s: float) -> bytes:
        return b""

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and self._win32print is not None:  # pragma: no cover
            with contextlib.suppress(Exception):
                self._win32print.ClosePrinter(handle)


# ---------------------------------------------------------------------------- URLs

_SCHEMES = ("tcp", "serial", "file", "usb", "capture", "spooler")


def _bad(url: str, en: str, ru: str) -> TransportConfigError:
    return TransportConfigError(
        f"printer URL {url!r}: {en}", f"Неверный адрес принтера {url!r}: {ru}", url=url
    )


def _number(url: str, query: dict[str, str], key: str, default: float) -> float:
    raw = query.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(url, f"{key}={raw!r} is not a number", f"{key}={raw!r} не число") from None
    if not 0 < value <= 3600:
        raise _bad(url, f"{key} must be in (0, 3600] seconds", f"{key}: от 0 до 3600 секунд")
    return value


def _int(url: str, raw: str, what: str) -> int:
    try:
        return int(raw, 0)
    except ValueError:
        raise _bad(url, f"{what} {raw!r} is not a number", f"{what} {raw!r} не число") from None


def _flag(query: dict[str, str], key: str) -> bool:
    return query.get(key, "0").lower() in ("1", "true", "yes", "on")


def transport_from_url(url: str) -> Transport:
    """Build (not open) the transport a printer URL names; see the module docstring.

    Raises ``TransportConfigError`` (an ``InputError``, ru/en message) naming what is wrong:
    unknown scheme, missing host or path, a non-numeric port, baud rate or USB id, an
    unknown option.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise _bad(url, f"unknown scheme, use one of {known}", f"неизвестная схема; можно {known}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    allowed = {
        "tcp": {"timeout", "connect_timeout", "sndbuf"},
        "serial": {"timeout", "baud", "rtscts", "dsrdtr", "xonxoff"},
        "file": {"timeout"},
        "usb": {"timeout", "in_ep", "out_ep"},
        "capture": set(),
        "spooler": set(),
    }[scheme]
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise _bad(
            url,
            f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or '-'}",
            f"неизвестные параметры: {', '.join(unknown)}",
        )
    timeout = _number(url, query, "timeout", DEFAULT_WRITE_TIMEOUT_S)
    netloc = unquote(parts.netloc)
    path = unquote(parts.path)

    if scheme == "tcp":
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise _bad(url, "port is not a number", "порт не число") from None
        if not host:
            raise _bad(url, "no host (tcp://192.168.1.50:9100)", "не указан адрес принтера")
        sndbuf = query.get("sndbuf")
        return TcpTransport(
            host,
            port or 9100,
            connect_timeout_s=_number(url, query, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S),
            write_timeout_s=timeout,
            send_buffer_bytes=_int(url, sndbuf, "sndbuf") if sndbuf else None,
        )
    if scheme == "serial":
        device = path if not netloc else netloc + path
        if not device:
            raise _bad(url, "no port (serial:///dev/ttyUSB0, serial://COM3)", "не указан порт")
        baud = _int(url, query.get("baud", "19200"), "baud")
        if baud not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400):
            raise _bad(url, f"unusual baud rate {baud}", f"необычная скорость порта {baud}")
        return SerialTransport(
            device,
            baudrate=baud,
            write_timeout_s=timeout,
            rtscts=_flag(query, "rtscts"),
            dsrdtr=_flag(query, "dsrdtr"),
            xonxoff=_flag(query, "xonxoff"),
        )
    if scheme == "file":
        if netloc or not path:
            raise _bad(url, "use an absolute path: file:///dev/usb/lp0", "нужен путь: file:///...")
        return DeviceFileTransport(path, write_timeout_s=timeout)
    if scheme == "usb":
        ids = (netloc + path).strip("/").split(":")
        if len(ids) != 2 or not all(ids):
            raise _bad(url, "use usb://0xVID:0xPID", "нужен формат usb://0xVID:0xPID")
        vid, pid = (_int(url, x, "USB id") for x in ids)
        if not (0 <= vid <= 0xFFFF and 0 <= pid <= 0xFFFF):
            raise _bad(url, "USB ids are 16-bit", "код USB — 16 бит")
        return UsbTransport(
            vid,
            pid,
            write_timeout_s=timeout,
            in_ep=_int(url, query.get("in_ep", "0x82"), "in_ep"),
            out_ep=_int(url, query.get("out_ep", "0x01"), "out_ep"),
        )
    if scheme == "capture":
        return CaptureTransport((netloc + path) or None)
    name = (netloc + path).strip("/")
    if not name:
        raise _bad(url, "no printer name (spooler://EPSON TM-T20II)", "не указано имя принтера")
    return WindowsSpoolerTransport(name)
