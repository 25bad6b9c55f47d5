"""A store's sign-up poster: an A4 PDF with one large QR code of the members' sign-up
address (``/my/join?store=<id>&poster=<id>``), drawn as vector squares like the coupon
sheet (``couponsheet``: ``qrcode``'s modules, its hand-written PDF), with the address and
the store under it. The standard PDF fonts carry no Cyrillic, so the poster's text is
ASCII (the store's id, the address); the heading is drawn in Latin letters.

Units: PDF points (1/72 inch); the QR is 360 points (about 12.7 cm) across.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from urllib.parse import urlencode

from sync.backoffice.couponsheet import PAGE_H, PAGE_W, _pdf_text, qr_matrix
from sync.backoffice.couponsheet import _assemble as assemble

QR_SIZE = 360.0
PATH = "/my/join"


def dark_runs(matrix: list[list[bool]]) -> Iterator[tuple[int, int, int]]:
    """The runs of dark modules of a QR matrix: (row, first column, length), row by row
    (one filled rectangle each, whatever draws them)."""
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            yield r, start, c - start


def join_url(base: str, store_id: str, poster_id: str) -> str:
    """The sign-up address a poster carries (``base``: the back office's public URL)."""
    return f"{base.rstrip('/')}{PATH}?{urlencode({'store': store_id, 'poster': poster_id})}"


def pdf(url: str, store_id: str, poster_id: str) -> bytes:
    """The one-page poster whose QR opens ``url``."""
    matrix = qr_matrix(url)
    m = QR_SIZE / len(matrix)
    left = (PAGE_W - QR_SIZE) / 2
    top = PAGE_H - 200
    ops = ["0 g"]
    for r, start, n in dark_runs(matrix):
        ops.append(f"{left + start * m:.3f} {top - (r + 1) * m:.3f} {n * m:.3f} {m:.3f} re")
    ops.append("f")
    lines = [
        (28, PAGE_H - 110, "Karta bez plastika  /  No plastic card"),
        (16, PAGE_H - 150, "Scan the code with your phone's camera"),
        (11, top - QR_SIZE - 40, url),
        (11, top - QR_SIZE - 60, f"store {store_id}   poster {poster_id}"),
    ]
    for size, y, line in lines:
        width = 0.5 * size * len(line)  # Helvetica's average advance, for centring
        ops.append(
            f"BT /F1 {size} Tf {max(36.0, (PAGE_W - width) / 2):.1f} {y:.1f} Td "
            f"({_pdf_text(line)}) Tj ET"
        )
    return assemble([zlib.compress("\n".join(ops).encode("ascii"), 6)])
