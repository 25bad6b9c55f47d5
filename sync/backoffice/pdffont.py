"""Cyrillic text in the back office's hand-written PDFs (the coupon sheet, the sign-up
poster): a TrueType font shipped in the package (``fonts/``: Liberation Sans, SIL OFL 1.1)
embedded as a Type0 font with a CIDFontType2 descendant, Identity-H encoding (two bytes a
glyph, the glyph id itself: ``/CIDToGIDMap /Identity``), a ``/W`` widths array and a
``/ToUnicode`` CMap, so viewers draw Russian text and copy or extract it as Unicode.

The PDF standard fonts (Helvetica...) have no Cyrillic, hence the embedding. The font file
is read here (no font library is a runtime dependency): glyph ids from the ``cmap``
table's format 4 subtable (Windows Unicode BMP), advance widths from ``hmtx``/``hhea``,
units per em and the bounding box from ``head``. Only the glyphs a document uses are kept
(glyph ids unchanged, other glyphs emptied, composite glyphs' parts kept; layout tables
dropped), so a poster carries some 20 KB of font instead of the whole 400 KB file.

Units: PDF points (1/72 inch) on the page; glyph widths in the PDF's thousandths of an em;
the font's own metrics in its units per em (2048 for Liberation Sans).

``document`` writes the PDF file itself (catalog, pages, their content streams, the fonts).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from importlib import resources

REGULAR = "LiberationSans-Regular.ttf"
BOLD = "LiberationSans-Bold.ttf"
KEEP = (b"head", b"hhea", b"maxp", b"hmtx", b"cmap", b"cvt ", b"fpgm", b"prep", b"OS/2", b"name")
"""The tables a subset keeps besides ``glyf`` and ``loca`` (which it rewrites): what a
CIDFontType2 program needs to be drawn and hinted, and ``cmap`` (1.5 KB: the PDF addresses
glyphs by id, but the subset stays a font any tool can read by character); the layout
tables (GPOS, GSUB, kern) are not used."""
_ARG_WORDS, _SCALE, _MORE, _XY_SCALE, _TWO_BY_TWO = 0x1, 0x8, 0x20, 0x40, 0x80


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _i16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big", signed=True)


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    return int(sum(struct.unpack(f">{len(padded) // 4}I", padded))) & 0xFFFFFFFF


class TrueType:
    """A TrueType font file's tables and the metrics a PDF needs (font units)."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.tables: dict[bytes, bytes] = {}
        for i in range(_u16(data, 4)):
            tag, _, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            self.tables[tag] = data[offset : offset + length]
        head, hhea = self.tables[b"head"], self.tables[b"hhea"]
        self.units_per_em = _u16(head, 18)
        self.bbox = tuple(_i16(head, 36 + 2 * k) for k in range(4))
        self.long_loca = _i16(head, 50) == 1
        self.ascent, self.descent = _i16(hhea, 4), _i16(hhea, 6)
        self.num_glyphs = _u16(self.tables[b"maxp"], 4)
        os2 = self.tables.get(b"OS/2", b"")
        self.cap_height = _i16(os2, 88) if len(os2) >= 90 else self.ascent
        hmtx, n_metrics = self.tables[b"hmtx"], _u16(hhea, 34)
        self.advances = [_u16(hmtx, 4 * g) for g in range(n_metrics)]
        self.advances += [self.advances[-1]] * (self.num_glyphs - n_metrics)
        self.cmap = self._cmap4()

    def _cmap4(self) -> dict[int, int]:
        """Code point -> glyph id, from the (3, 1) format 4 subtable (the BMP)."""
        cmap = self.tables[b"cmap"]
        for i in range(_u16(cmap, 2)):
            platform, encoding, offset = struct.unpack_from(">HHI", cmap, 4 + 8 * i)
            if (platform, encoding) == (3, 1) and _u16(cmap, offset) == 4:
                break
        else:
            raise ValueError(f"{self.name}: no Windows Unicode format 4 cmap")
        segs = _u16(cmap, offset + 6) // 2
        ends = offset + 14
        starts = ends + 2 * segs + 2
        deltas = starts + 2 * segs
        ranges = deltas + 2 * segs
        out: dict[int, int] = {}
        for s in range(segs):
            end, start = _u16(cmap, ends + 2 * s), _u16(cmap, starts + 2 * s)
            delta, range_at = _u16(cmap, deltas + 2 * s), ranges + 2 * s
            range_offset = _u16(cmap, range_at)
            for code in range(start, min(end, 0xFFFE) + 1):
                if range_offset == 0:
                    glyph = (code + delta) & 0xFFFF
                else:
                    glyph = _u16(cmap, range_at + range_offset + 2 * (code - start))
                    glyph = (glyph + delta) & 0xFFFF if glyph else 0
                if glyph:
                    out[code] = glyph
        return out

    def glyph(self, char: str) -> int:
        """The glyph id of one character (0, the font's .notdef box, when it has none)."""
        return self.cmap.get(ord(char), 0)

    def width(self, text: str, size: float) -> float:
        """The advance of ``text`` set at ``size`` points, in points (no kerning)."""
        units = sum(self.advances[self.glyph(c)] for c in text)
        return units * size / self.units_per_em

    def _outline(self, gid: int) -> bytes:
        loca, glyf = self.tables[b"loca"], self.tables[b"glyf"]
        if self.long_loca:
            a, b = _u32(loca, 4 * gid), _u32(loca, 4 * gid + 4)
        else:
            a, b = 2 * _u16(loca, 2 * gid), 2 * _u16(loca, 2 * gid + 2)
        return glyf[a:b]

    def _parts(self, outline: bytes) -> list[int]:
        """The glyph ids a composite glyph is made of (none for a simple one)."""
        if len(outline) < 10 or _i16(outline, 0) >= 0:
            return []
        parts, at = [], 10
        while True:
            flags, part = _u16(outline, at), _u16(outline, at + 2)
            parts.append(part)
            at += 4 + (4 if flags & _ARG_WORDS else 2)
            at += (
                2 if flags & _SCALE else 4 if flags & _XY_SCALE else 8 if flags & _TWO_BY_TWO else 0
            )
            if not flags & _MORE:
                return parts

    def subset(self, glyphs: set[int]) -> bytes:
        """A font file with only ``glyphs`` (and .notdef, and composite glyphs' parts)
        drawn: the other glyph ids stay, empty, so the PDF's glyph ids need no remapping."""
        keep, todo = {0}, [0, *glyphs]
        while todo:
            gid = todo.pop()
            keep.add(gid)
            todo.extend(p for p in self._parts(self._outline(gid)) if p not in keep)
        glyf = io.BytesIO()
        offsets = []
        for gid in range(self.num_glyphs):
            offsets.append(glyf.tell())
            if gid in keep:
                outline = self._outline(gid)
                glyf.write(outline + b"\0" * (-len(outline) % 4))
        offsets.append(glyf.tell())
        head = bytearray(self.tables[b"head"])
        head[8:12] = b"\0\0\0\0"  # checkSumAdjustment, set below
        head[50:52] = struct.pack(">h", 1)  # long offsets in the new loca
        tables = {t: self.tables[t] for t in KEEP if t in self.tables}
        tables[b"head"] = bytes(head)
        tables[b"glyf"] = glyf.getvalue()
        tables[b"loca"] = struct.pack(f">{len(offsets)}I", *offsets)
        tags = sorted(tables)
        power = 1 << (len(tags).bit_length() - 1)
        out = io.BytesIO()
        header = (
            0x00010000,
            len(tags),
            16 * power,
            power.bit_length() - 1,
            16 * (len(tags) - power),
        )
        out.write(struct.pack(">IHHHH", *header))
        at = 12 + 16 * len(tags)
        body = io.BytesIO()
        for tag in tags:
            data = tables[tag]
            out.write(struct.pack(">4sIII", tag, _checksum(data), at + body.tell(), len(data)))
            body.write(data + b"\0" * (-len(data) % 4))
        font = bytearray(out.getvalue() + body.getvalue())
        head_at = at + sum(
            len(tables[t]) + (-len(tables[t]) % 4) for t in tags[: tags.index(b"head")]
        )
        struct.pack_into(
            ">I", font, head_at + 8, (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF
        )
        return bytes(font)


@functools.cache
def font(name: str = REGULAR) -> TrueType:
    """A font shipped in ``sync/backoffice/fonts`` (read and parsed once a process)."""
    data = resources.files("sync.backoffice").joinpath("fonts", name).read_bytes()
    return TrueType(data, name)


@dataclass(slots=True)
class Face:
    """One font as one PDF document uses it: the resource name pages call it by (``F1``),
    and the glyphs its text used (glyph id -> the text it stands for), which decide the
    subset, the widths and the ToUnicode map written with the document. A character the
    font lacks (Liberation Sans 2.1 has no ``₽``: callers write ``руб.``) is drawn as the
    .notdef box and left out of the ToUnicode map, so extraction shows it missing."""

    resource: str
    font: TrueType
    used: dict[int, str]

    @classmethod
    def of(cls, resource: str, name: str = REGULAR) -> Face:
        return cls(resource, font(name), {})

    def show(self, text: str, size: float, x: float, y: float) -> str:
        """The content-stream operators that draw ``text`` at ``size`` points with its
        baseline's start at ``(x, y)`` (points)."""
        codes = []
        for char in text:
            gid = self.font.glyph(char)
            if gid:  # a missing character draws .notdef and extracts as nothing
                self.used.setdefault(gid, char)
            codes.append(f"{gid:04X}")
        return f"BT /{self.resource} {size:.2f} Tf {x:.2f} {y:.2f} Td <{''.join(codes)}> Tj ET"

    def fitted(self, text: str, size: float, width: float) -> float:
        """``size``, or the smaller size at which ``text`` is ``width`` points wide (a
        long store name or address shrinks to its line instead of running off the page)."""
        natural = self.font.width(text, size)
        return size if natural <= width else size * width / natural

    def centred(self, text: str, size: float, y: float, page_w: float, margin: float) -> str:
        """``show`` with the line centred across a page ``page_w`` points wide, shrunk to
        fit between margins of ``margin`` points."""
        size = self.fitted(text, size, page_w - 2 * margin)
        x = (page_w - self.font.width(text, size)) / 2
        return self.show(text, size, x, y)

    def objects(self, first: int) -> list[bytes]:
        """The PDF objects of the font, numbered from ``first``: the Type0 font (the one
        pages refer to), its CIDFontType2, the descriptor, the font file, the ToUnicode."""
        f = self.font
        glyphs = sorted({0, *self.used})
        program = f.subset(set(glyphs))
        tag = "".join(chr(65 + b % 26) for b in sha256(program).digest()[:6])
        base = f"{tag}+{f.name.removesuffix('.ttf')}"
        scale = 1000 / f.units_per_em
        widths = " ".join(f"{g} [{round(f.advances[g] * scale)}]" for g in glyphs)
        bbox = " ".join(str(round(v * scale)) for v in f.bbox)
        n = first
        packed = zlib.compress(program, 6)
        cmap = zlib.compress(_to_unicode(self.used).encode("ascii"), 6)
        return [
            (
                f"<< /Type /Font /Subtype /Type0 /BaseFont /{base} /Encoding /Identity-H "
                f"/DescendantFonts [{n + 1} 0 R] /ToUnicode {n + 4} 0 R >>"
            ).encode(),
            (
                f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{base} /CIDSystemInfo "
                "<< /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                f"/FontDescriptor {n + 2} 0 R /CIDToGIDMap /Identity /DW 0 /W [{widths}] >>"
            ).encode(),
            (
                f"<< /Type /FontDescriptor /FontName /{base} /Flags 32 /FontBBox [{bbox}] "
                f"/ItalicAngle 0 /Ascent {round(f.ascent * scale)} "
                f"/Descent {round(f.descent * scale)} /CapHeight {round(f.cap_height * scale)} "
                f"/StemV 80 /FontFile2 {n + 3} 0 R >>"
            ).encode(),
            _stream(packed, f"/Length1 {len(program)}"),
            _stream(cmap),
        ]


def _utf16(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def _to_unicode(used: dict[int, str]) -> str:
    """The ToUnicode CMap: each used glyph id back to its character (bfchar blocks of at
    most 100 entries, as the CMap format allows)."""
    items = sorted(used.items())
    blocks = []
    for i in range(0, len(items), 100):
        chunk = items[i : i + 100]
        lines = "\n".join(f"<{g:04X}> <{_utf16(t)}>" for g, t in chunk)
        blocks.append(f"{len(chunk)} beginbfchar\n{lines}\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


def _stream(data: bytes, extra: str = "") -> bytes:
    """A Flate-compressed stream object (``data`` already compressed)."""
    head = f"<< /Length {len(data)} /Filter /FlateDecode {extra}".rstrip() + " >>\nstream\n"
    return head.encode() + data + b"\nendstream"


def document(streams: Sequence[str], faces: Sequence[Face], page_w: int, page_h: int) -> bytes:
    """The PDF file: catalog, page tree, then a page and its content per stream (the
    content stream's operators, ASCII), then each face's objects. Every page may use
    every face (``/F1``, ``/F2``... by their resource names)."""
    n_pages = len(streams)
    page_ids = [3 + 2 * i for i in range(n_pages)]
    font_ids, at = [], 3 + 2 * n_pages
    for _ in faces:
        font_ids.append(at)
        at += 5
    fonts = " ".join(f"/{face.resource} {i} 0 R" for face, i in zip(faces, font_ids, strict=True))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{i} 0 R" for i in page_ids)
            + f"] /Count {n_pages} >>"
        ).encode(),
    ]
    for i, stream in enumerate(streams):
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w} {page_h}] "
                f"/Resources << /Font << {fonts} >> >> /Contents {page_ids[i] + 1} 0 R >>"
            ).encode()
        )
        objects.append(_stream(zlib.compress(stream.encode("ascii"), 6)))
    for face, first in zip(faces, font_ids, strict=True):
        objects.extend(face.objects(first))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()
