"""A strict ESC/POS decoder for tests: it knows only the commands Kassa emits.

Printer output is checked by decoding it, not by comparing opaque bytes (notes/drivers.md):
``walk(data, slots)`` parses a job and returns its events: text lines decoded with the code
page in force (``ESC t n`` mapped through ``slots``), raster images as numpy arrays, native
QR payloads, feeds, cuts and drawer pulses. Anything else fails loudly with the offset and
the bytes around it: an unknown command, a control byte inside text, a byte >= 0x80 while
no code page is selected (the python-escpos 3.1 bug: ``ESC @`` without ``ESC t`` after it),
a native QR when the profile has none, a style change in the middle of a line, text left
unterminated at the end of the job.

Independent checks for the decoders: :func:`iconv_check` re-decodes every text run with
glibc ``iconv``; :func:`decode_qr` reads raster images with zxing-cpp.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import zxingcpp

ESC, GS, LF = 0x1B, 0x1D, 0x0A
LEVELS = {48: "L", 49: "M", 50: "Q", 51: "H"}


class WalkError(AssertionError):
    """The stream holds something Kassa never emits (or emits wrongly)."""


@dataclass(frozen=True)
class Reset:
    offset: int


@dataclass(frozen=True)
class CodePage:
    slot: int
    encoding: str


@dataclass(frozen=True)
class Line:
    """One printed line: decoded text and the style it was printed in."""

    text: str
    segments: tuple[tuple[str | None, bytes], ...]  # (encoding, raw bytes) runs
    align: int
    bold: bool
    width: int
    height: int


@dataclass(frozen=True, eq=False)
class Raster:
    image: np.ndarray  # bool, True = black dot, shape (height, width_bytes * 8)
    align: int = 0  # ESC a in force when it was sent


@dataclass(frozen=True)
class NativeQr:
    payload: bytes
    module_dots: int
    level: str


@dataclass(frozen=True)
class Feed:
    lines: int


@dataclass(frozen=True)
class Cut:
    partial: bool


@dataclass(frozen=True)
class Drawer:
    pin: int
    on_ms: int
    off_ms: int


@dataclass
class _Style:
    align: int = 0
    bold: bool = False
    width: int = 1
    height: int = 1


Event = Reset | CodePage | Line | Raster | NativeQr | Feed | Cut | Drawer


@dataclass
class Walk:
    events: list[Event] = field(default_factory=list)

    @property
    def lines(self) -> list[Line]:
        return [e for e in self.events if isinstance(e, Line)]

    @property
    def rasters(self) -> list[Raster]:
        return [e for e in self.events if isinstance(e, Raster)]

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def view(self, columns: int, qr_text: bool = True) -> str:
        """The job as the paper shows it, one text line per printed line.

        Alignment is applied within ``columns // width``; double-size lines are marked
        with a ``»`` gutter; a raster is replaced by its zxing-decoded content.
        """
        out = []
        for e in self.events:
            if isinstance(e, Line):
                cols = columns // e.width
                text = {0: e.text.ljust, 1: e.text.center, 2: e.text.rjust}[e.align](cols)
                out.append((text.rstrip() + (" »" if e.width > 1 else "")).rstrip())
            elif isinstance(e, Raster):
                found = decode_qr(e.image) if qr_text else []
                h, w = e.image.shape
                out.append(f"[QR image {w}x{h} dots: {' | '.join(found) or 'UNREADABLE'}]")
            elif isinstance(e, NativeQr):
                out.append(f"[QR native: {e.payload.decode('utf-8', 'replace')}]")
            elif isinstance(e, Feed):
                out.append(f"[feed {e.lines}]")
            elif isinstance(e, Cut):
                out.append("[cut partial]" if e.partial else "[cut full]")
            elif isinstance(e, Drawer):
                out.append(f"[drawer pin {e.pin}]")
        return "\n".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str, at: int | None = None) -> WalkError:
        at = self.pos if at is None else at
        around = self.data[max(0, at - 8) : at + 8].hex(" ")
        return WalkError(f"{what} at offset {at} (bytes around: {around})")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]


def walk(
    data: bytes,
    slots: Mapping[int, str],
    *,
    native_qr: bool = True,
    require_start: bool = True,
) -> Walk:
    """Decode ``data``; ``slots`` maps ``ESC t`` numbers to Python codec names.

    ``native_qr=False`` makes any ``GS ( k`` an error (the profile lacks it);
    ``require_start`` demands the job open with ``ESC @`` + ``ESC t``.
    """
    r = _Reader(data)
    result = Walk()
    if require_start and (len(data) < 5 or data[:4] != b"\x1b@\x1bt"):
        raise r.fail("job does not start with ESC @ + ESC t <slot>", 0)
    encoding: str | None = None
    style = _Style()
    segments: list[tuple[str | None, bytearray]] = []
    pending_qr: dict[str, bytes | int | str] = {}

    def line_open() -> bool:
        return any(seg for _, seg in segments)

    def no_text(what: str, at: int) -> None:
        if line_open():
            raise r.fail(f"{what} in the middle of a text line", at)

    def set_style(key: str, value: int | bool, at: int) -> None:
        if getattr(style, key) != value:
            no_text(f"style change ({key})", at)
        setattr(style, key, value)

    while r.pos < len(data):
        at = r.pos
        b = r.byte("byte")
        if b == LF:
            decoded = []
            for enc, raw in segments:
                try:
                    decoded.append(raw.decode(enc or "ascii"))
                except UnicodeDecodeError as e:
                    raise r.fail(f"text not decodable as {enc}: {e}", at) from None
            result.events.append(
                Line(
                    "".join(decoded),
                    tuple((enc, bytes(raw)) for enc, raw in segments),
                    style.align,
                    style.bold,
                    style.width,
                    style.height,
                )
            )
            segments = []
        elif b == ESC:
            cmd = r.byte("ESC command")
            if cmd == 0x40:  # ESC @
                no_text("ESC @", at)
                encoding = None
                style = _Style()
                result.events.append(Reset(at))
            elif cmd == 0x74:  # ESC t n
                slot = r.byte("ESC t slot")
                if slot not in slots:
                    raise r.fail(f"ESC t {slot}: slot not in the profile's table {dict(slots)}", at)
                encoding = slots[slot]
                result.events.append(CodePage(slot, encoding))
            elif cmd == 0x61:  # ESC a n
                n = r.byte("ESC a")
                if n not in (0, 1, 2):
                    raise r.fail(f"ESC a {n}: we emit 0-2 only", at)
                set_style("align", n, at)
            elif cmd == 0x45:  # ESC E n
                n = r.byte("ESC E")
                if n not in (0, 1):
                    raise r.fail(f"ESC E {n}: we emit 0/1 only", at)
                set_style("bold", bool(n), at)
            elif cmd == 0x64:  # ESC d n
                no_text("ESC d", at)
                result.events.append(Feed(r.byte("ESC d")))
            elif cmd == 0x70:  # ESC p m t1 t2
                no_text("ESC p", at)
                m, t1, t2 = r.take(3, "ESC p")
                if m not in (0, 1) or not t1 or not t2:
                    raise r.fail(f"ESC p {m} {t1} {t2}: bad drawer pulse", at)
                result.events.append(Drawer(2 if m == 0 else 5, t1 * 2, t2 * 2))
            else:
                raise r.fail(f"unknown command ESC 0x{cmd:02x}", at)
        elif b == GS:
            cmd = r.byte("GS command")
            if cmd == 0x21:  # GS ! n
                n = r.byte("GS !")
                set_style("width", (n >> 4) + 1, at)
                set_style("height", (n & 0x0F) + 1, at)
                if n & 0x88:
                    raise r.fail(f"GS ! 0x{n:02x}: size out of 1-8", at)
            elif cmd == 0x56:  # GS V m n
                no_text("GS V", at)
                m = r.byte("GS V mode")
                if m not in (65, 66):
                    raise r.fail(f"GS V {m}: we emit function B (65/66) only", at)
                r.byte("GS V feed")
                result.events.append(Cut(partial=m == 66))
            elif cmd == 0x76:  # GS v 0
                no_text("GS v 0", at)
                fn, mode = r.take(2, "GS v 0 header")
                if fn != 0x30 or mode != 0:
                    raise r.fail(f"GS v {fn} {mode}: we emit GS v 0 0 only", at)
                xl, xh, yl, yh = r.take(4, "GS v 0 size")
                wb, h = xl | xh << 8, yl | yh << 8
                if not wb or not h:
                    raise r.fail("empty raster", at)
                raw = np.frombuffer(r.take(wb * h, "raster data"), dtype=np.uint8)
                image = np.unpackbits(raw.reshape(h, wb), axis=1).astype(bool)
                result.events.append(Raster(image, style.align))
            elif cmd == 0x28:  # GS ( k
                if r.byte("GS ( function") != 0x6B:
                    raise r.fail("unknown GS ( function (we emit GS ( k only)", at)
                if not native_qr:
                    raise r.fail("native QR (GS ( k) sent to a profile without it", at)
                no_text("GS ( k", at)
                n = int.from_bytes(r.take(2, "GS ( k length"), "little")
                body = r.take(n, "GS ( k body")
                if len(body) < 2 or body[0] != 0x31:
                    raise r.fail("GS ( k for a symbol other than QR (cn != 49)", at)
                fn, args = body[1], body[2:]
                if fn == 0x41 and args == b"\x32\x00":
                    pending_qr["model"] = 2
                elif fn == 0x43 and len(args) == 1 and 1 <= args[0] <= 16:
                    pending_qr["size"] = args[0]
                elif fn == 0x45 and len(args) == 1 and args[0] in LEVELS:
                    pending_qr["level"] = LEVELS[args[0]]
                elif fn == 0x50 and len(args) > 1 and args[0] == 0x30:
                    pending_qr["data"] = bytes(args[1:])
                elif fn == 0x51 and args == b"\x30":
                    missing = {"model", "size", "level", "data"} - pending_qr.keys()
                    if missing:
                        raise r.fail(f"QR print without {sorted(missing)}", at)
                    result.events.append(
                        NativeQr(
                            bytes(pending_qr["data"]),  # type: ignore[arg-type]
                            int(pending_qr["size"]),
                            str(pending_qr["level"]),
                        )
                    )
                    pending_qr = {}
                else:
                    raise r.fail(f"GS ( k function {fn} with {args.hex(' ')}: not ours", at)
            else:
                raise r.fail(f"unknown command GS 0x{cmd:02x}", at)
        elif b < 0x20 or b == 0x7F:
            raise r.fail(f"control byte 0x{b:02x} in the stream", at)
        else:
            if b >= 0x80 and encoding is None:
                raise r.fail(
                    f"text byte 0x{b:02x} with no code page selected (ESC @ without ESC t)", at
                )
            if not segments or segments[-1][0] != encoding:
                segments.append((encoding, bytearray()))
            segments[-1][1].append(b)
    if line_open():
        raise r.fail("text without a final LF stays in the printer's buffer", len(data))
    if pending_qr:
        raise r.fail("native QR stored but never printed", len(data))
    return result


def iconv_check(result: Walk) -> int:
    """Decode every text run again with glibc ``iconv`` and compare; returns runs checked."""
    by_enc: dict[str, list[tuple[bytes, str]]] = {}
    for line in result.lines:
        for enc, raw in line.segments:
            if enc and raw:
                by_enc.setdefault(enc, []).append((raw, raw.decode(enc)))
    checked = 0
    for enc, runs in by_enc.items():
        joined = b"\n".join(raw for raw, _ in runs)
        out = subprocess.run(
            ["iconv", "-f", enc.upper(), "-t", "UTF-8"],
            input=joined,
            capture_output=True,
            check=False,
        )
        if out.returncode:
            raise WalkError(f"iconv {enc}: {out.stderr.decode(errors='replace')}")
        theirs = out.stdout.decode("utf-8").split("\n")
        ours = [text for _, text in runs]
        if theirs != ours:
            diff = [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b]
            raise WalkError(f"iconv {enc} decodes differently: {diff[:3]}")
        checked += len(runs)
    return checked


def decode_qr(image: np.ndarray) -> list[str]:
    """Read every QR code in a boolean dot image (True = black) with zxing-cpp."""
    pixels = np.where(image, 0, 255).astype(np.uint8)
    # No inverted or rotated retries: the polarity and orientation must be right as printed.
    found = zxingcpp.read_barcodes(
        pixels, formats=zxingcpp.BarcodeFormat.QRCode, try_invert=False, try_rotate=False
    )
    return [b.text for b in found]
