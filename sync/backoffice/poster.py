"""A store's sign-up poster: an A4 PDF with one large QR code of the members' sign-up
address (``/my/join?store=<id>&poster=<id>``), drawn as vector squares like the coupon
sheet (``couponsheet``: ``qrcode``'s modules), under a heading and the store's name, with
what to do and the address under it; in Russian or English (the console's language), set
in the embedded Liberation Sans (``pdffont``: Cyrillic, copyable text).

Units: PDF points (1/72 inch); the QR is 360 points (about 12.7 cm) across.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

from sync.backoffice import pdffont
from sync.backoffice.couponsheet import PAGE_H, PAGE_W, qr_matrix

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


TEXTS = {
    "ru": {
        "heading": "Станьте участником программы",
        "card": "Карта в телефоне: без пластика, бонусы с каждой покупки",
        "scan": "Наведите камеру телефона на QR-код",
        "ids": "магазин {store}   плакат {poster}",
    },
    "en": {
        "heading": "Join the loyalty programme",
        "card": "A card on your phone: no plastic, points on every purchase",
        "scan": "Point your phone's camera at the QR code",
        "ids": "store {store}   poster {poster}",
    },
}
"""The poster's words by language (``ru`` unless ``en``)."""
MARGIN = 36.0


def pdf(url: str, store_id: str, store_name: str, poster_id: str, lang: str = "ru") -> bytes:
    """The one-page poster whose QR opens ``url``, for the store ``store_name`` (as the
    owners typed it, Cyrillic welcome), its words in ``lang`` (``ru`` unless ``en``)."""
    words = TEXTS["en" if lang == "en" else "ru"]
    regular, bold = pdffont.Face.of("F1"), pdffont.Face.of("F2", pdffont.BOLD)
    matrix = qr_matrix(url)
    m = QR_SIZE / len(matrix)
    left = (PAGE_W - QR_SIZE) / 2
    top = PAGE_H - 210
    ops = ["0 g"]
    for r, start, n in dark_runs(matrix):
        ops.append(f"{left + start * m:.3f} {top - (r + 1) * m:.3f} {n * m:.3f} {m:.3f} re")
    ops.append("f")
    lines = [
        (bold, 30, PAGE_H - 100, words["heading"]),
        (regular, 15, PAGE_H - 132, words["card"]),
        (bold, 22, PAGE_H - 180, store_name),
        (regular, 18, top - QR_SIZE - 40, words["scan"]),
        (regular, 11, top - QR_SIZE - 66, url),
        (regular, 10, top - QR_SIZE - 86, words["ids"].format(store=store_id, poster=poster_id)),
    ]
    for face, size, y, line in lines:
        ops.append(face.centred(line, size, y, PAGE_W, MARGIN))
    return pdffont.document(["\n".join(ops)], [regular, bold], PAGE_W, PAGE_H)
