"""The ESC/POS commands we emit, as bytes builders; nothing else reaches the printer.

Why our own bytes and not python-escpos (notes/drivers.md): its 3.1 release forgets the
code page after ``ESC @``, sends native QR to printers without it, and passes control bytes
through. A short closed list of commands is also what the test-side walker
(``tests/escpos_walker.py``) checks byte for byte: a command added here must be added there.

Commands (Epson ESC/POS reference names):

====================  ==========================  =====================================
builder               bytes                       meaning
====================  ==========================  =====================================
``INIT``              ``ESC @``                   reset modes (and, on most models, the
                                                  code page: always re-send ``ESC t``)
``code_page(n)``      ``ESC t n``                 character table slot ``n``
``align(a)``          ``ESC a n``                 0 left, 1 centre, 2 right
``bold(on)``          ``ESC E n``                 emphasised
``size(w, h)``        ``GS ! n``                  character width/height multiplier 1-8
``feed(n)``           ``ESC d n``                 print and feed ``n`` lines
``cut(partial)``      ``GS V 65|66 0``            feed to the cutter, full/partial cut
``drawer_kick(...)``  ``ESC p m t1 t2``           pulse drawer pin 2 (m=0) or 5 (m=1)
``raster(...)``       ``GS v 0 0 xL xH yL yH d``  1-bit image, ``x`` bytes by ``y`` dots
``qr_native(...)``    ``GS ( k`` x 5              model 2, module size, error level,
                                                  store data, print
``LF``                ``0x0A``                    print the line buffer and feed a line
====================  ==========================  =====================================

python-escpos is not needed at run time (USB printers go through pyusb directly, see
``drivers.transport.PyUsbPrinter``); :func:`import_python_escpos` imports it, with its
import-time side effects contained, for tests and benchmarks that compare its bytes with ours
(it is in the ``dev`` extra only).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

ESC = 0x1B
GS = 0x1D
LF = b"\n"
INIT = b"\x1b@"

LEFT, CENTER, RIGHT = 0, 1, 2

QR_ERROR_LEVELS = {"L": 48, "M": 49, "Q": 50, "H": 51}
"""``GS ( k`` function 169 parameter per QR error-correction level."""

RASTER_MAX_HEIGHT = 2047
"""Rows per ``GS v 0`` command we allow; taller images are split (printer buffer limits)."""


def _byte(n: int, what: str, lo: int = 0, hi: int = 255) -> int:
    if isinstance(n, bool) or not lo <= n <= hi:
        raise ValueError(f"{what} must be in {lo}..{hi}, got {n!r}")
    return n


def code_page(slot: int) -> bytes:
    """``ESC t n``: select character table ``slot`` (the profile names it per model)."""
    return bytes((ESC, 0x74, _byte(slot, "code page slot")))


def start(slot: int) -> bytes:
    """The first bytes of every job: ``ESC @`` (known state) then ``ESC t <slot>``.

    The code page is sent after the reset because ``ESC @`` drops it on most models.
    """
    return INIT + code_page(slot)


def align(where: int) -> bytes:
    """``ESC a n``: justification of the following lines (LEFT, CENTER, RIGHT)."""
    return bytes((ESC, 0x61, _byte(where, "alignment", 0, 2)))


def bold(on: bool) -> bytes:
    """``ESC E n``: emphasised (bold) on or off."""
    return bytes((ESC, 0x45, 1 if on else 0))


def size(width: int = 1, height: int = 1) -> bytes:
    """``GS ! n``: character size as multipliers 1-8 (a line then holds columns/width)."""
    w = _byte(width, "width multiplier", 1, 8) - 1
    h = _byte(height, "height multiplier", 1, 8) - 1
    return bytes((GS, 0x21, w << 4 | h))


def feed(lines: int) -> bytes:
    """``ESC d n``: print the buffer and feed ``lines`` lines (0-255)."""
    return bytes((ESC, 0x64, _byte(lines, "feed lines")))


def cut(*, partial: bool) -> bytes:
    """``GS V m 0`` (function B): feed to the cutting position, then cut.

    Function B feeds the last printed line past the cutter first, so no text is cut.
    """
    return bytes((GS, 0x56, 66 if partial else 65, 0))


def drawer_kick(pin: int, on_ms: int, off_ms: int) -> bytes:
    """``ESC p m t1 t2``: pulse the cash-drawer ``pin`` (2 or 5); times in ms (2 ms units)."""
    if pin not in {2, 5}:
        raise ValueError(f"drawer pin must be 2 or 5, got {pin!r}")
    t1 = _byte(on_ms // 2, "drawer pulse on-time/2 ms", 1)
    t2 = _byte(off_ms // 2, "drawer pulse off-time/2 ms", 1)
    return bytes((ESC, 0x70, 0 if pin == 2 else 1, t1, t2))


def raster(width_bytes: int, rows: list[bytes]) -> bytes:
    """``GS v 0``: print a 1-bit image; each row ``width_bytes`` long, MSB = leftmost dot.

    A set bit is a black dot. Images taller than :data:`RASTER_MAX_HEIGHT` are split
    into several commands (some printers buffer a whole command before printing).
    """
    _byte(width_bytes, "raster width in bytes", 1, 0xFFFF)
    out = bytearray()
    for top in range(0, len(rows), RASTER_MAX_HEIGHT):
        band = rows[top : top + RASTER_MAX_HEIGHT]
        if any(len(r) != width_bytes for r in band):
            raise ValueError("every raster row must be width_bytes long")
        out += bytes((GS, 0x76, 0x30, 0))
        out += width_bytes.to_bytes(2, "little") + len(band).to_bytes(2, "little")
        out += b"".join(band)
    return bytes(out)


def _qr_fn(fn: int, params: bytes) -> bytes:
    body = bytes((0x31, fn)) + params  # cn = 49: the QR symbol
    return bytes((GS, 0x28, 0x6B)) + len(body).to_bytes(2, "little") + body


QR_NATIVE_MAX_BYTES = 7089 - 3
"""Largest payload ``GS ( k`` function 180 accepts (pL/pH count 3 header bytes)."""


def qr_native(payload: bytes, *, module_dots: int, level: str = "M") -> bytes:
    """``GS ( k``: a QR code drawn by the printer (model 2). Only for profiles with native QR.

    Sequence: function 165 (model 2), 167 (module size in dots, 1-16), 169 (error level),
    180 (store ``payload``), 181 (print). The payload bytes are data, not commands: the
    length prefix tells the printer where they end, so they may hold any byte.
    """
    if not payload or len(payload) > QR_NATIVE_MAX_BYTES:
        raise ValueError(f"QR payload must be 1..{QR_NATIVE_MAX_BYTES} bytes")
    if level not in QR_ERROR_LEVELS:
        raise ValueError(f"QR error level must be one of {sorted(QR_ERROR_LEVELS)}")
    return b"".join(
        (
            _qr_fn(0x41, bytes((0x32, 0))),  # fn 165: model 2
            _qr_fn(0x43, bytes((_byte(module_dots, "QR module size in dots", 1, 16),))),
            _qr_fn(0x45, bytes((QR_ERROR_LEVELS[level],))),
            _qr_fn(0x50, b"\x30" + payload),  # fn 180: store
            _qr_fn(0x51, b"\x30"),  # fn 181: print
        )
    )


# ----------------------------------------------------------------------------- python-escpos
def default_escpos_cache_dir() -> Path:
    """Where python-escpos may write its capabilities pickle: ``$XDG_CACHE_HOME/kassa/escpos``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kassa" / "escpos"


def import_python_escpos(cache_dir: Path | None = None) -> ModuleType:
    """Import ``escpos.printer`` (python-escpos 3.1) with its side effects contained.

    On import the library (a) writes a capabilities pickle to a fresh temp dir unless
    ``ESCPOS_CAPABILITIES_PICKLE_DIR`` is set, one per process, never cleaned up, and (b)
    calls ``logging.basicConfig()``, putting a stderr handler on the root logger that would
    draw over the Textual screen. Here the pickle goes to ``cache_dir`` (an operator's own
    ``ESCPOS_CAPABILITIES_PICKLE_DIR`` wins), the root logger gets back exactly its previous
    handlers and level, and the library's loggers get a ``NullHandler`` so its warnings do
    not fall back to Python's last-resort stderr handler (they still propagate to whatever
    handlers the application configured). Importing it costs tens of milliseconds.
    """
    import logging  # noqa: PLC0415 (only here: the renderer never needs logging)

    if "escpos.printer" in sys.modules:
        return importlib.import_module("escpos.printer")
    directory = cache_dir or default_escpos_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(directory))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        module = importlib.import_module("escpos.printer")
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    logging.getLogger("escpos").addHandler(logging.NullHandler())
    return module
