"""A batch of coupons as a printable PDF sheet of QR codes, and as CSV.

The PDF is written by hand (no image library: pillow is not a runtime dependency): A4
pages of 3 x 4 cells, each a QR code drawn as vector squares (one filled rectangle per
run of dark modules in a row, ``qrcode`` giving the matrix, error correction M) with the
coupon's number, kind and terms (value, minimum cheque), validity (the programme's local
days, both included) and member under it, in Russian or English, set in the embedded
Liberation Sans (``pdffont``: the standard PDF fonts carry no Cyrillic). Page streams are
Flate-compressed (zlib). Units: PDF points (1/72 inch); a module is about 0.8 mm.

The QR payload is the coupon's token text (``KC1:...``, base32: QR alphanumeric mode),
exactly what a till's scanner reads.
"""

from __future__ import annotations

import csv
import functools
import importlib
import io
from collections.abc import Sequence

from agent.money import format_points, format_rub
from agent.tokens import COUPON_CODEC
from sync.backoffice import pdffont
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


TEXTS = {
    "ru": {
        "percent": "Скидка",
        "fixed": "Скидка",
        "points": "Бонусы",
        "min_from": "от чека {sum}",
        "number": "№ {n}",
        "valid": "действует {first} — {last}",
        "member": "участник {code}",
        "revoked": "ОТОЗВАН",
        "title": "Купоны Kassa {batch}",
        "page": "лист {p} из {n}",
        "rouble": "руб.",
    },
    "en": {
        "percent": "Discount",
        "fixed": "Discount",
        "points": "Points",
        "min_from": "on cheques from {sum}",
        "number": "No. {n}",
        "valid": "valid {first} — {last}",
        "member": "member {code}",
        "revoked": "REVOKED",
        "title": "Kassa coupons {batch}",
        "page": "sheet {p} of {n}",
        "rouble": "RUB",
    },
}
"""The sheet's words by language (``ru`` unless ``en``), the console's language."""
TEXT_SIZE = 8.0  # points, a cell's lines
LINE = 10.0  # points between a cell's baselines


def _lang(lang: str) -> str:
    return "en" if lang == "en" else "ru"


def terms_text(b: Batch, lang: str = "ru", rouble: str = "₽") -> str:
    """An issue's terms as the console and the sheet show them: ``−10 %``,
    ``−500,00 ₽``, ``+300 бонусов`` (``lang`` ``en``: ``−10 %``, ``−500.00 ₽``,
    ``+300 points``), with the minimum cheque (``, от чека 1 000,00 ₽``); ``rouble``
    stands for the sign (the sheet's font has no ``₽``: it prints ``руб.``/``RUB``)."""
    t, lang = b.terms, _lang(lang)

    def rub(kop: int) -> str:
        return format_rub(kop, lang=lang).replace("₽", rouble)

    if t.kind == "percent":
        whole, frac = divmod(t.value, 100)
        sep = "," if lang == "ru" else "."
        out = f"−{whole}" + (f"{sep}{frac:02d}".rstrip("0") if frac else "") + " %"
    elif t.kind == "fixed":
        out = "−" + rub(t.value)
    else:
        out = format_points(t.value, lang, sign=True)
    if t.min_cheque_kop:
        out += ", " + TEXTS[lang]["min_from"].format(sum=rub(t.min_cheque_kop))
    return out


def _cell(
    ops: list[str],
    face: pdffont.Face,
    x0: float,
    y0: float,
    cell_w: float,
    coupon: Issued,
    b: Batch,
    lang: str,
) -> None:
    words = TEXTS[lang]
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
    first, last = b.days()
    lines = [
        f"{words['number'].format(n=coupon.n)}  {coupon.coupon_id[:8]}",
        f"{words[b.terms.kind]} {terms_text(b, lang, words['rouble'])}",
        words["valid"].format(first=first.isoformat(), last=last.isoformat()),
    ]
    if coupon.member_code:
        lines.append(words["member"].format(code=coupon.member_code))
    if coupon.revoked_at is not None:
        lines.append(words["revoked"])
    width = cell_w - 8
    for i, line in enumerate(lines):
        fitted = face.fitted(line, TEXT_SIZE, width)
        ops.append(face.show(line, fitted, x0 + 4, top - QR_SIZE - 12 - i * LINE))


def pdf(b: Batch, coupons: Sequence[Issued], lang: str = "ru") -> bytes:
    """The batch's sheet: 12 coupons a page, in their order, its words in ``lang``
    (``ru`` unless ``en``)."""
    lang = _lang(lang)
    words = TEXTS[lang]
    face = pdffont.Face.of("F1")
    per_page = COLS * ROWS
    cell_w = (PAGE_W - 2 * MARGIN) / COLS
    cell_h = (PAGE_H - 2 * MARGIN - 20) / ROWS
    streams: list[str] = []
    pages = [coupons[i : i + per_page] for i in range(0, len(coupons), per_page)] or [[]]
    for p, chunk in enumerate(pages, 1):
        title = "   ".join(
            (
                words["title"].format(batch=b.batch_id),
                terms_text(b, lang, words["rouble"]),
                words["page"].format(p=p, n=len(pages)),
            )
        )
        size = face.fitted(title, 9, PAGE_W - 2 * MARGIN)
        ops = ["0 g", face.show(title, size, MARGIN, PAGE_H - MARGIN + 6)]
        for i, coupon in enumerate(chunk):
            col, row = i % COLS, i // COLS
            x0 = MARGIN + col * cell_w
            y0 = PAGE_H - MARGIN - 20 - row * cell_h
            _cell(ops, face, x0, y0, cell_w, coupon, b, lang)
        streams.append("\n".join(ops))
    return pdffont.document(streams, [face], PAGE_W, PAGE_H)


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
