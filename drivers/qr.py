"""QR codes for members: the matrix, and its renderings for paper, cards and terminals.

- :func:`matrix`: the module matrix of a payload (a member code, an app link), built with
  the ``qrcode`` package's encoder only, never its PIL image layer.
- :func:`raster_rows`: 1-bit rows for the slip (``GS v 0``), quiet zone included.
- :func:`png` / :func:`svg`: files for printed cards (``kassa member qr``); the PNG writer
  is a few lines of zlib, so no imaging library is needed at run time.
- :func:`text`: Unicode half blocks for the terminal (two module rows per text line).

Why the mask is chosen here and not by ``qrcode``: its ``best_mask_pattern`` rebuilds the
symbol eight times and scores each one module by module (8-10 ms per slip measured here,
more than the whole slip budget of 5 ms). Here the symbol is built once with mask 0, the
mask is taken off again, and the eight candidates are scored on the whole symbol at once
as one big integer (ISO/IEC 18004 penalty rules N1-N4, ~20 us per candidate; checked
against a module-by-module reference in the tests). Any mask decodes; the penalty only
keeps finder-like and large same-colour areas out of the data, which helps worn thermal
paper scan.

Importing ``qrcode`` costs ~35 ms (it imports PIL for its image drawers), so it happens
on first use, not at import of this module: the cashier UI starts without it.
"""

from __future__ import annotations

import importlib
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType, SimpleNamespace
from typing import Any

LEVELS = {"L": 1, "M": 0, "Q": 3, "H": 2}
"""QR error-correction level -> ``qrcode.constants.ERROR_CORRECT_*`` value (spec order)."""

QUIET_MODULES = 4
"""Light margin around a symbol, in modules (ISO/IEC 18004 asks for 4)."""


class QrTooLong(ValueError):
    """The payload does not fit in the largest QR version at the chosen level."""


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR symbol without quiet zone: ``size`` x ``size`` modules.

    ``rows[r]`` holds row ``r`` as an integer whose bit ``size - 1 - c`` is set when module
    ``(r, c)`` is dark, so ``format(rows[r], f"0{size}b")`` reads left to right.
    """

    size: int
    rows: tuple[int, ...]
    version: int
    mask: int

    def dark(self, r: int, c: int) -> bool:
        return bool(self.rows[r] >> (self.size - 1 - c) & 1)

    def bits(self, r: int) -> str:
        """Row ``r`` as '0'/'1' characters, left to right."""
        return format(self.rows[r], f"0{self.size}b")


def _qrcode() -> tuple[ModuleType, ModuleType]:
    return importlib.import_module("qrcode.main"), importlib.import_module("qrcode.util")


def warm_up() -> None:
    """Import the QR encoder now (e.g. in a worker while the UI starts), not on the first slip."""
    _qrcode()


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def _to_int(cells: list[bool]) -> int:
    """A row of booleans as an integer, first cell = most significant bit."""
    return int(bytes(cells).translate(_DIGITS), 2)


@lru_cache(maxsize=64)
def _masks(size: int, mask: int) -> int:
    """Mask pattern ``mask`` over the whole symbol, packed in its :class:`_Layout`."""
    _, util = _qrcode()
    fn = util.mask_func(mask)
    return _layout(size).pack([_to_int([fn(r, c) for c in range(size)]) for r in range(size)])


@lru_cache(maxsize=256)
def _formats(size: int, ec: int, mask: int) -> tuple[int, int]:
    """(cells, values) of the format information for ``ec``/``mask``, packed.

    Written by ``qrcode``'s own ``setup_type_info`` into an empty grid, so the bit layout
    is the encoder's, not a copy of it.
    """
    main, _ = _qrcode()
    grid: list[list[bool | None]] = [[None] * size for _ in range(size)]
    fake = SimpleNamespace(modules=grid, modules_count=size, error_correction=ec)
    main.QRCode.setup_type_info(fake, False, mask)
    lay = _layout(size)
    cells = lay.pack([_to_int([v is not None for v in row]) for row in grid])
    values = lay.pack([_to_int([v is True for v in row]) for row in grid])
    return cells, values


@dataclass(frozen=True, slots=True)
class _Layout:
    """All modules of one symbol size in a single integer, for whole-symbol bit operations.

    Row ``r`` sits at bit ``stride * (r + 4) + 4``: four light rows above and below and
    four light columns left and right, which is the "outside counts as light" of the N3
    rule; ``stride = size + 8``. Shifting by 1 compares horizontal neighbours, by
    ``stride`` vertical ones.
    """

    size: int
    stride: int
    pair_h: int  # bits whose right-hand neighbour is also a module of the symbol
    pair_v: int  # bits whose lower neighbour is also a module of the symbol
    total: int  # every bit of the layout

    def pack(self, rows: list[int] | tuple[int, ...]) -> int:
        out = 0
        for r, row in enumerate(rows):
            out |= row << (self.stride * (r + 4) + 4)
        return out

    def unpack(self, packed: int) -> tuple[int, ...]:
        full = (1 << self.size) - 1
        return tuple(packed >> (self.stride * (r + 4) + 4) & full for r in range(self.size))


@lru_cache(maxsize=64)
def _layout(size: int) -> _Layout:
    stride = size + 8
    real = (1 << size) - 1
    row_pairs = (real >> 1) << 4  # every column but the last, within one row
    pair_h = sum(row_pairs << (stride * (r + 4)) for r in range(size))
    pair_v = sum((real << 4) << (stride * (r + 4)) for r in range(size - 1))
    return _Layout(size, stride, pair_h, pair_v, (1 << (stride * stride)) - 1)


_FINDER = (0b10111010000, 0b00001011101)
"""1:1:3:1:1 finder-like pattern with four light modules on one side (11 modules)."""


def _matches(packed: int, pattern: int, step: int, total: int) -> int:
    """Positions where the 11 modules from there on (every ``step`` bits) equal ``pattern``."""
    hit = total
    for j in range(11):
        shifted = packed >> (j * step)
        hit &= shifted if pattern >> j & 1 else ~shifted
    return hit & total


def _penalty(packed: int, lay: _Layout) -> int:
    s = lay.stride
    # N1: runs of >= 5 same-colour modules score 3 + (length - 5) = windows + 2 per run.
    n1 = 0
    for step, pairs in ((1, lay.pair_h), (s, lay.pair_v)):
        same = ~(packed ^ (packed >> step)) & pairs
        windows = same & (same >> step) & (same >> 2 * step) & (same >> 3 * step)
        n1 += windows.bit_count() + 2 * (windows & ~(windows >> step)).bit_count()
    # N2: 2x2 blocks of one colour, 3 each.
    same_h = ~(packed ^ (packed >> 1)) & lay.pair_h
    same_v = ~(packed ^ (packed >> s)) & lay.pair_v
    n2 = (same_h & same_v & (same_v >> 1)).bit_count()
    # N3: finder-like patterns in rows and columns, 40 each.
    n3 = sum(
        _matches(packed, pattern, step, lay.total).bit_count()
        for pattern in _FINDER
        for step in (1, s)
    )
    # N4: 10 per 5 % the dark share strays from 50 %.
    total = lay.size * lay.size
    dark = packed.bit_count()
    n4 = abs(dark * 100 - 50 * total) // (5 * total) * 10
    return n1 + 3 * n2 + 40 * n3 + n4


def penalty(rows: list[int] | tuple[int, ...], size: int) -> int:
    """ISO/IEC 18004 mask penalty of a symbol: N1 runs, N2 blocks, N3 finder-like, N4 balance.

    The area outside the symbol counts as light for N3, as the standard says.
    """
    lay = _layout(size)
    return _penalty(lay.pack(rows), lay)


@lru_cache(maxsize=128)
def matrix(payload: str, level: str = "M") -> QrMatrix:
    """The QR symbol for ``payload`` (UTF-8; digits use numeric mode), smallest version.

    Raises ``ValueError`` for an empty payload or an unknown level, :class:`QrTooLong`
    (a ``ValueError``) if the payload does not fit in version 40.
    Cached: a reprint or the same member's next slip costs nothing.
    """
    if not payload:
        raise ValueError("QR payload is empty")
    if level not in LEVELS:
        raise ValueError(f"QR level must be one of {sorted(LEVELS)}")
    main, _ = _qrcode()
    ec = LEVELS[level]
    qr = main.QRCode(error_correction=ec, border=0, mask_pattern=0)
    qr.add_data(payload)
    data_cells: list[int] = []
    original = qr.map_data

    def recording(data: Any, mask: int) -> None:
        # Modules still unset when data is mapped are exactly the data area.
        data_cells.extend(_to_int([m is None for m in row]) for row in qr.modules)
        original(data, mask)

    qr.map_data = recording
    try:
        qr.make(fit=True)  # one build, with mask 0
    except (main.exceptions.DataOverflowError, ValueError):  # 8.2 raises either
        raise QrTooLong(f"{len(payload)} characters do not fit in a QR code") from None
    size: int = qr.modules_count
    lay = _layout(size)
    built = lay.pack([_to_int(row) for row in qr.modules])  # every module is set now
    data = lay.pack(data_cells)
    # Unmasked data and the function patterns, without the (mask-dependent) format bits.
    base = (built ^ (_masks(size, 0) & data)) & ~_formats(size, ec, 0)[0]
    best: tuple[int, int, int] | None = None
    for mask in range(8):
        candidate = base ^ (_masks(size, mask) & data) | _formats(size, ec, mask)[1]
        score = _penalty(candidate, lay)
        if best is None or score < best[0]:
            best = (score, mask, candidate)
    assert best is not None
    return QrMatrix(size=size, rows=lay.unpack(best[2]), version=int(qr.version), mask=best[1])


# ----------------------------------------------------------------------------- renderings
def raster_rows(
    m: QrMatrix, module_dots: int, *, left_dots: int = 0, quiet: int = QUIET_MODULES
) -> tuple[int, list[bytes]]:
    """The symbol as 1-bit raster rows for ``GS v 0``: ``(width_bytes, rows)``.

    Each module is ``module_dots`` x ``module_dots`` printer dots; ``quiet`` light modules
    surround it (inside the image, so it never depends on the text around it), and
    ``left_dots`` blank dots before it centre it on the paper without relying on
    ``ESC a`` (which not every model applies to raster images). MSB = leftmost dot.
    """
    if module_dots < 1 or left_dots < 0 or quiet < 0:
        raise ValueError("module_dots must be >= 1, left_dots and quiet >= 0")
    margin = quiet * module_dots
    width_dots = left_dots + 2 * margin + m.size * module_dots
    width_bytes = (width_dots + 7) // 8
    right = width_bytes * 8 - width_dots + margin
    scale = {48: "0" * module_dots, 49: "1" * module_dots}
    blank = bytes(width_bytes)
    rows = [blank] * margin
    for r in range(m.size):
        bits = m.bits(r).translate(scale)
        line = (int(bits, 2) << right).to_bytes(width_bytes, "big")
        rows.extend([line] * module_dots)
    rows.extend([blank] * margin)
    return width_bytes, rows


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(m: QrMatrix, *, scale: int = 10, quiet: int = QUIET_MODULES) -> bytes:
    """A 1-bit greyscale PNG: ``scale`` pixels per module, ``quiet`` modules of margin.

    At the default 10 px a 13-digit member code (21 modules + margin) is 290 px square,
    which prints at about 25 mm at 300 dpi: enough for a phone and a till scanner.
    """
    if scale < 1 or quiet < 0:
        raise ValueError("scale must be >= 1 and quiet >= 0")
    n = m.size + 2 * quiet
    side = n * scale
    row_bytes = (side + 7) // 8
    pad = row_bytes * 8 - side
    widen = {48: "1" * scale, 49: "0" * scale}  # PNG greyscale: 1 = white, 0 = black
    light = "1" * (quiet * scale)
    raw = bytearray()
    blank = b"\x00" + int("1" * side + "0" * pad, 2).to_bytes(row_bytes, "big")
    for _ in range(quiet * scale):
        raw += blank
    for r in range(m.size):
        bits = light + m.bits(r).translate(widen) + light + "0" * pad
        line = b"\x00" + int(bits, 2).to_bytes(row_bytes, "big")  # filter type 0 per row
        raw += line * scale
    for _ in range(quiet * scale):
        raw += blank
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + _png_chunk(b"IEND", b"")
    )


def svg(m: QrMatrix, *, module_mm: float = 0.5, quiet: int = QUIET_MODULES) -> str:
    """An SVG for printed cards: one path of dark runs, sized ``module_mm`` mm per module.

    0.5 mm per module puts a member code at 14.5 mm with its margin; a print shop can
    scale the vector freely.
    """
    if module_mm <= 0 or quiet < 0:
        raise ValueError("module_mm must be > 0 and quiet >= 0")
    n = m.size + 2 * quiet
    parts = []
    for r in range(m.size):
        for run in re.finditer("1+", m.bits(r)):
            x, y, w = run.start() + quiet, r + quiet, len(run.group())
            parts.append(f"M{x},{y}h{w}v1h-{w}z")
    side = f"{n * module_mm:g}mm"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
        f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges">\n'
        f'<rect width="{n}" height="{n}" fill="#fff"/>\n'
        f'<path fill="#000" d="{"".join(parts)}"/>\n'
        "</svg>\n"
    )


_HALF = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def text(m: QrMatrix, *, dark_background: bool = True, quiet: int = QUIET_MODULES) -> str:
    """The symbol in Unicode half blocks, two module rows per line, for a terminal.

    A block character is drawn in the terminal's foreground colour. On a dark background
    (the default for terminals and the cashier UI) the blocks must be the *light* modules
    so the code reads dark-on-light as scanners expect; pass ``dark_background=False`` for
    a light terminal.
    """
    n = m.size + 2 * quiet
    grid = [[False] * n for _ in range(quiet)]
    for r in range(m.size):
        bits = m.bits(r)
        grid.append([False] * quiet + [b == "1" for b in bits] + [False] * quiet)
    grid.extend([False] * n for _ in range(quiet))
    if len(grid) % 2:
        grid.append([False] * n)
    ink = (lambda dark: not dark) if dark_background else (lambda dark: dark)
    lines = []
    for top, bottom in zip(grid[::2], grid[1::2], strict=True):
        lines.append("".join(_HALF[ink(t), ink(b)] for t, b in zip(top, bottom, strict=True)))
    return "\n".join(lines) + "\n"
