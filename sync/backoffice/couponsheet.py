"""A batch of coupons as a printable PDF sheet of QR codes, and as CSV.

The PDF is written by hand (no image library: pillow is not a runtime dependency): A4
pages of 3 x 4 cells, each a QR code drawn as vector squares (one filled rectangle per
run of dark modules in a row, ``qrcode`` giving the matrix, error correction M) with the
coupon's number, terms and validity under it in Helvetica (ASCII: the standard fonts
carry no Cyrillic, so the cell's text is numbers and ISO dates). Page streams are
Flate-compressed (zlib). Units: PDF points (1/72 inch); a module is about 0.8 mm.

The QR payload is the coupon's token text (``KC1:...``, base32: QR alphanumeric mode),
exactly what a till's scanner reads.
"""

from __future__ import annotations

import csv
import functools
import importlib
import io
import zlib
from collections.abc import Sequence

from agent.tokens import COUPON_CODEC
from sync.backoffice.coupons import Batch, Issued

PAGE_W, PAGE_H = 595, 842  # A4 in points
COLS, ROWS = 3, 4
MARGIN = 36
QR_SIZE = 132.0  # points across the QR's modules (the quiet zone is the cell's white)
MASK = 2
"""The QR mask pattern, fixed: every mask is valid (scanners read any), and ``qrcode``'s
search for the best one cost five times the rest of a code (~25 ms each: 50 s for a
batch of 2000)."""


@functools.lru_cache(maxsize=8)
def _version(length: int) -> int | None:
    """The QR version of a coupon token of ``length`` characters (every KC1 token has the
    same length, so the fit is searched once), or None for other texts (searched each)."""
    if length != COUPON_CODEC.text_size:
        return None
    main = importlib.import_module("qrcode.main")
    level = importlib.import_module("qrcode.constants").ERROR_CORRECT_M
    qr = main.QRCode(error_correction=level, border=0, mask_pattern=MASK)
    qr.add_data("K" * length)
    qr.make(fit=True)
    return int(qr.version)


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text`` as rows of modules (True: dark), no quiet zone."""
    # imported by name, as drivers.qr does: qrcode ships no type information
    main = importlib.import_module("qrcode.main")
    level = importlib.import_module("qrcode.constants").ERROR_CORRECT_M
    version = _version(len(text))
    qr = main.QRCode(version=version, error_correction=level, border=0, mask_pattern=MASK)
    qr.add_data(text)
    qr.make(fit=version is None)
    return [[bool(m) for m in row] for row in qr.get_matrix()]


def terms_text(b: Batch) -> str:
    """The cell's terms line: ``-10%``, ``-500.00 RUB``, ``+300 pts``, and the minimum."""
    t = b.terms
    if t.kind == "percent":
        whole, frac = divmod(t.value, 100)
        out = f"-{whole}" + (f".{frac:02d}".rstrip("0") if frac else "") + "%"
    elif t.kind == "fixed":
        out = f"-{t.value // 100}.{t.value % 100:02d} RUB"
    else:
        out = f"+{t.value} pts"
    if t.min_cheque_kop:
        out += f"  from {t.min_cheque_kop // 100}.{t.min_cheque_kop % 100:02d} RUB"
    return out


def _pdf_text(s: str) -> str:
    """An ASCII PDF string literal's content (parentheses and backslashes escaped)."""
    s = s.encode("ascii", "replace").decode("ascii")
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _cell(ops: list[str], x0: float, y0: float, cell_w: float, coupon: Issued, b: Batch) -> None:
    matrix = qr_matrix(coupon.token)
    size = len(matrix)
    m = QR_SIZE / size
    left = x0 + (cell_w - QR_SIZE) / 2
    top = y0  # top edge of the QR, in PDF coordinates (y grows upwards)
    for r, row in enumerate(matrix):
        c = 0
        while c < size:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < size and row[c]:
                c += 1
            x = left + start * m
            y = top - (r + 1) * m
            ops.append(f"{x:.3f} {y:.3f} {(c - start) * m:.3f} {m:.3f} re")
    ops.append("f")
    lines = [
        f"No {coupon.n}  {coupon.coupon_id[:8]}",
        terms_text(b),
        f"{b.terms.valid_from.date().isoformat()} - {b.terms.valid_until.date().isoformat()}",
    ]
    if coupon.member_code:
        lines.append(f"member {coupon.member_code}")
    if coupon.revoked_at is not None:
        lines.append("REVOKED")
    for i, line in enumerate(lines):
        ops.append(
            f"BT /F1 8 Tf {left:.3f} {top - QR_SIZE - 12 - i * 10:.3f} Td ({_pdf_text(line)}) Tj ET"
        )


def pdf(b: Batch, coupons: Sequence[Issued]) -> bytes:
    """The batch's sheet: 12 coupons a page, in their order."""
    per_page = COLS * ROWS
    cell_w = (PAGE_W - 2 * MARGIN) / COLS
    cell_h = (PAGE_H - 2 * MARGIN - 20) / ROWS
    streams: list[bytes] = []
    pages = [coupons[i : i + per_page] for i in range(0, len(coupons), per_page)] or [[]]
    for p, chunk in enumerate(pages, 1):
        ops = [
            "0 g",
            f"BT /F1 9 Tf {MARGIN} {PAGE_H - MARGIN + 6} Td "
            f"({_pdf_text(f'Kassa coupons {b.batch_id}  {terms_text(b)}  page {p}/{len(pages)}')})"
            " Tj ET",
        ]
        for i, coupon in enumerate(chunk):
            col, row = i % COLS, i // COLS
            x0 = MARGIN + col * cell_w
            y0 = PAGE_H - MARGIN - 20 - row * cell_h
            _cell(ops, x0, y0, cell_w, coupon, b)
        streams.append(zlib.compress("\n".join(ops).encode("ascii"), 6))
    return _assemble(streams)


def _assemble(streams: list[bytes]) -> bytes:
    """The PDF file: catalog, page tree, font, then a page and its content per stream."""
    n_pages = len(streams)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{i} 0 R" for i in page_ids)
            + f"] /Count {n_pages} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, stream in enumerate(streams):
        content_id = page_ids[i] + 1
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        objects.append(
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
            + stream
            + b"\nendstream"
        )
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


CSV_HEADER = (
    "n",
    "coupon_id",
    "token",
    "kind",
    "value",
    "min_cheque_kop",
    "valid_from",
    "valid_until",
    "member_code",
    "revoked_at",
)


def csv_text(b: Batch, coupons: Sequence[Issued]) -> str:
    """The batch as CSV (UTF-8, comma-separated, a header row): one coupon a row with its
    token, terms (value in the token's units: basis points, kopecks or points), validity
    (ISO 8601 UTC) and revocation."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    t = b.terms
    for c in coupons:
        w.writerow(
            (
                c.n,
                c.coupon_id,
                c.token,
                t.kind,
                t.value,
                t.min_cheque_kop,
                t.valid_from.isoformat(),
                t.valid_until.isoformat(),
                c.member_code or "",
                c.revoked_at.isoformat() if c.revoked_at else "",
            )
        )
    return out.getvalue()
