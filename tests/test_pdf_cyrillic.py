"""The sign-up poster and the coupon sheet print Russian: the embedded Liberation Sans
(``sync.backoffice.pdffont``) read against FreeType (pillow) for its glyphs and advances,
its subset a font FreeType draws (the used glyphs inked, the rest empty), and the PDFs'
text extracted with pypdf through the ToUnicode map (the Russian heading, the store's
Cyrillic name, the address; English when asked), their QR codes still decoding with
zxing-cpp, and the files rendered by poppler's ``pdftoppm`` when it is installed. The
back office's calls run on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from cluster import Cluster
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader

from agent.money import NBSP
from sync.backoffice import pdffont, poster
from tests.test_console_coupons_rules_domain import _issue
from tests.test_console_coupons_rules_pages import decode_pdf_qr

BASE = "https://kassa.example/"
SAMPLE = "Станьте участником программы: «Тверская», №1, ёж — QR-код"


def _text(pdf: bytes) -> list[str]:
    """Each page's extracted text, spaces folded (NBSP included) to compare lines."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return [" ".join(p.extract_text().replace(NBSP, " ").split()) for p in pages]


def _renders(pdf: bytes, tmp_path: Path) -> None:
    """poppler renders every page without complaint (a broken font or xref fails it)."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        pytest.skip("poppler's pdftoppm is not installed (apt-get install poppler-utils)")
    (tmp_path / "doc.pdf").write_bytes(pdf)
    done = subprocess.run(
        [tool, "-r", "30", "-png", str(tmp_path / "doc.pdf"), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and all(Image.open(p).convert("L").getextrema()[0] == 0 for p in pages)


def _freetype(size: int) -> ImageFont.FreeTypeFont:
    path = resources.files("sync.backoffice").joinpath("fonts", pdffont.REGULAR)
    with resources.as_file(path) as f:
        return ImageFont.truetype(str(f), size, layout_engine=ImageFont.Layout.BASIC)


def test_glyphs_and_advances_agree_with_freetype() -> None:
    font = pdffont.font()
    ft = _freetype(font.units_per_em)  # one pixel a font unit
    assert font.units_per_em == 2048
    for char in SAMPLE:
        assert font.glyph(char) != 0, char  # every character has its glyph
        assert font.width(char, font.units_per_em) == ft.getlength(char), char
    assert font.glyph("\u4e2d") == 0  # no CJK: the .notdef box


def test_subset_draws_the_used_glyphs_only() -> None:
    font = pdffont.font()
    program = font.subset({font.glyph(c) for c in "Жё"})
    assert len(program) < len(font.data) // 10
    ft = ImageFont.truetype(io.BytesIO(program), 64, layout_engine=ImageFont.Layout.BASIC)

    def inked(char: str) -> bool:
        img = Image.new("L", (80, 80), 255)
        ImageDraw.Draw(img).text((8, 0), char, font=ft, fill=0)
        return img.getextrema()[0] < 128

    assert inked("Ж") and inked("ё")  # ё is composite: its parts are kept
    assert not inked("Щ") and not inked("A")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_poster_text_in_its_language_and_its_qr(cluster: Cluster, lang: str, tmp_path: Path):
    pdf = cluster.bo.member_poster("s1", "door", BASE, lang)
    (page,) = _text(pdf)
    url = poster.join_url(BASE, "s1", "door")
    words = poster.TEXTS[lang]
    for line in (words["heading"], words["scan"], "Тверская", url):
        assert line in page, (line, page)
    assert ("Станьте участником" in page) == (lang == "ru")
    assert decode_pdf_qr(pdf) == [url]
    assert len(pdf) < 60_000  # the subset, not the 400 KB font
    _renders(pdf, tmp_path)


def test_poster_fits_a_long_name() -> None:
    long = "Магазин у дома на Большой Садовой улице, вход со двора " * 2
    pdf = poster.pdf(poster.join_url(BASE, "s1", "x"), "s1", long.strip(), "x")
    reader = PdfReader(io.BytesIO(pdf))
    starts: list[float] = []

    def visit(text: str, cm: object, tm: list[float], *_: object) -> None:
        if text.strip():
            starts.append(tm[4])

    reader.pages[0].extract_text(visitor_text=visit)
    assert starts and min(starts) >= poster.MARGIN - 0.5  # nothing runs off the left edge
    assert " ".join(long.split()) in _text(pdf)[0]


def test_coupon_sheet_in_russian_and_english(cluster: Cluster, tmp_path: Path) -> None:
    batch = _issue(cluster, "batch", count="14", kind="fixed", value="500", min_cheque="2000")
    found = cluster.bo.coupon_batch(batch.batch_id)
    assert found is not None
    tokens = [c.token for c in found[1]]
    ru = cluster.bo.coupon_sheet(batch.batch_id, "pdf")
    assert ru is not None
    first, second = _text(ru)
    assert f"Купоны Kassa {batch.batch_id}" in first and "лист 1 из 2" in first
    assert "Скидка −500,00 руб., от чека 2 000,00 руб." in first
    assert "действует 2026-06-15 — 2026-06-30" in first and "№ 12" in first
    assert "№ 13" in second and "лист 2 из 2" in second
    assert decode_pdf_qr(ru) == tokens
    _renders(ru, tmp_path)
    en = cluster.bo.coupon_sheet(batch.batch_id, "pdf", "en")
    assert en is not None
    page = _text(en)[0]
    assert "Discount −500.00 RUB, on cheques from 2,000.00 RUB" in page
    assert "valid 2026-06-15 — 2026-06-30" in page and "Купоны" not in page
    points = _issue(cluster, "batch", count="1", kind="points", value="300")
    sheet = cluster.bo.coupon_sheet(points.batch_id, "pdf")
    assert sheet is not None and "Бонусы +300 бонусов" in _text(sheet)[0]
