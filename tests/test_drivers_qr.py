"""QR codes: the matrix agrees with the qrcode encoder, and every rendering decodes.

Every rendering (slip raster, PNG, SVG, terminal half blocks) is read back with zxing-cpp,
an independent decoder, with inverted and rotated retries off: polarity and orientation
must be right as produced.
"""

from __future__ import annotations

import io
import itertools
import random
import re

import numpy as np
import pytest
import qrcode
from PIL import Image

from drivers import qr
from tests.escpos_walker import decode_qr

PAYLOADS = [
    "2000001234569",
    "0000001234566",
    "https://kassa.example/m/2000001234569",
    "https://app.example.ru/join?store=msk-12&ref=till-03&code=2000001234569",
    "Участник: Иванова Анна Сергеевна",
    "x",
]


def reference(payload: str, level: str, mask: int) -> tuple[int, ...]:
    """The same symbol from qrcode's own make() with the mask fixed."""
    code = qrcode.QRCode(error_correction=qr.LEVELS[level], border=0, mask_pattern=mask)
    code.add_data(payload)
    code.make(fit=True)
    return tuple(int("".join("1" if c else "0" for c in row), 2) for row in code.modules)


def bitmap(m: qr.QrMatrix, quiet: int = 4, scale: int = 4) -> np.ndarray:
    grid = np.array([[m.dark(r, c) for c in range(m.size)] for r in range(m.size)])
    grid = np.pad(grid, quiet, constant_values=False)
    return grid.repeat(scale, 0).repeat(scale, 1)


@pytest.mark.parametrize("level", ["L", "M", "Q", "H"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_matrix_is_qrcodes_symbol_with_the_chosen_mask(payload: str, level: str) -> None:
    qr.matrix.cache_clear()
    m = qr.matrix(payload, level)
    assert m.rows == reference(payload, level, m.mask)
    assert m.size == 17 + 4 * m.version
    assert decode_qr(bitmap(m)) == [payload]


def naive_penalty(rows: tuple[int, ...], n: int) -> int:
    """ISO/IEC 18004 mask penalty, module by module: the reference for the bit-parallel one."""
    grid = [[bool(row >> (n - 1 - c) & 1) for c in range(n)] for row in rows]
    lines = grid + [list(col) for col in zip(*grid, strict=True)]
    n1 = 0
    for line in lines:
        run = 1
        for a, b in itertools.pairwise(line):
            if a == b:
                run += 1
                continue
            n1 += run - 2 if run >= 5 else 0
            run = 1
        n1 += run - 2 if run >= 5 else 0
    n2 = sum(
        grid[i][j] == grid[i][j + 1] == grid[i + 1][j] == grid[i + 1][j + 1]
        for i in range(n - 1)
        for j in range(n - 1)
    )
    finders = ([1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1])
    n3 = 0
    for line in lines:
        padded = [0] * 4 + [int(x) for x in line] + [0] * 4  # outside counts as light
        n3 += sum(padded[k : k + 11] in finders for k in range(len(padded) - 10))
    dark = sum(map(sum, grid))
    n4 = abs(dark * 100 - 50 * n * n) // (5 * n * n) * 10
    return n1 + 3 * n2 + 40 * n3 + n4


def test_bit_parallel_penalty_equals_the_module_by_module_rules() -> None:
    rnd = random.Random(3)
    for n in (21, 25, 29, 45):
        for density in (0.1, 0.5, 0.9):
            rows = tuple(
                int("".join("1" if rnd.random() < density else "0" for _ in range(n)), 2)
                for _ in range(n)
            )
            assert qr.penalty(rows, n) == naive_penalty(rows, n)


def test_chosen_mask_has_the_lowest_penalty() -> None:
    rnd = random.Random(7)
    for _ in range(12):
        payload = "".join(rnd.choice("0123456789ABCDEFабв/:.") for _ in range(rnd.randint(5, 90)))
        qr.matrix.cache_clear()
        m = qr.matrix(payload)
        scores = [naive_penalty(reference(payload, "M", k), m.size) for k in range(8)]
        assert scores[m.mask] == min(scores)
        assert decode_qr(bitmap(m)) == [payload]


def test_large_versions_with_version_information_decode() -> None:
    payload = "https://kassa.example/" + "a1b2c3" * 40  # version >= 7 carries version info
    m = qr.matrix(payload, "M")
    assert m.version >= 7
    assert m.rows == reference(payload, "M", m.mask)
    assert decode_qr(bitmap(m, scale=3)) == [payload]


def test_bad_payloads_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        qr.matrix("")
    with pytest.raises(ValueError, match="level"):
        qr.matrix("1", "X")
    with pytest.raises(qr.QrTooLong):
        qr.matrix("9" * 8000)


def test_matrix_is_cached_for_reprints() -> None:
    assert qr.matrix("2000001234569") is qr.matrix("2000001234569")


@pytest.mark.parametrize("module_dots", [1, 2, 3, 6, 8])
@pytest.mark.parametrize("left_dots", [0, 5, 101])
def test_raster_rows_decode_and_are_byte_aligned(module_dots: int, left_dots: int) -> None:
    m = qr.matrix("https://kassa.example/m/2000001234569")
    width_bytes, rows = qr.raster_rows(m, module_dots, left_dots=left_dots)
    side = (m.size + 8) * module_dots
    assert width_bytes == (left_dots + side + 7) // 8
    assert len(rows) == side
    assert all(len(row) == width_bytes for row in rows)
    image = np.unpackbits(np.frombuffer(b"".join(rows), np.uint8).reshape(side, width_bytes), 1)
    image = image.astype(bool)
    assert not image[:, :left_dots].any()  # centring margin is blank
    if module_dots >= 2:
        assert decode_qr(image) == ["https://kassa.example/m/2000001234569"]
    else:  # one dot per module: upscale only to let the reader see it
        assert decode_qr(image.repeat(3, 0).repeat(3, 1)) == [
            "https://kassa.example/m/2000001234569"
        ]


@pytest.mark.parametrize("payload", PAYLOADS[:3])
def test_png_is_a_valid_one_bit_image_that_decodes(payload: str) -> None:
    m = qr.matrix(payload)
    data = qr.png(m, scale=7)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.mode == "1"
    assert image.size == ((m.size + 8) * 7, (m.size + 8) * 7)
    pixels = np.array(image.convert("L"))
    assert pixels[0, 0] == 255  # white quiet zone
    assert decode_qr(pixels < 128) == [payload]


def rasterise_svg(text: str, scale: int = 5) -> np.ndarray:
    """Paint the SVG's run path ("M x,y h w v1 h-w z" per run) onto a bitmap."""
    n = int(re.search(r'viewBox="0 0 (\d+) (\d+)"', text).group(1))
    image = np.zeros((n, n), bool)
    for x, y, w in re.findall(r"M(\d+),(\d+)h(\d+)v1h-\3z", text):
        image[int(y), int(x) : int(x) + int(w)] = True
    return image.repeat(scale, 0).repeat(scale, 1)


def test_svg_draws_every_dark_module_once_and_decodes() -> None:
    m = qr.matrix("2000001234569")
    text = qr.svg(m, module_mm=0.5)
    assert text.startswith("<?xml") and 'width="14.5mm"' in text
    image = rasterise_svg(text)
    dark = sum(r.bit_count() for r in m.rows)
    assert image.sum() == dark * 25
    assert decode_qr(image) == ["2000001234569"]


_HALF_BITS = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}


def terminal_bitmap(text: str, dark_background: bool) -> np.ndarray:
    """What the terminal shows: blocks are drawn in the foreground colour.

    On a dark background the foreground is light, so a block is a light pixel.
    """
    rows = []
    for line in text.rstrip("\n").split("\n"):
        top = [_HALF_BITS[ch][0] for ch in line]
        bottom = [_HALF_BITS[ch][1] for ch in line]
        rows += [top, bottom]
    ink = np.array(rows, bool)
    dark = ~ink if dark_background else ink
    return dark.repeat(4, 0).repeat(4, 1)


@pytest.mark.parametrize("dark_background", [True, False])
def test_terminal_half_blocks_decode_in_the_right_polarity(dark_background: bool) -> None:
    m = qr.matrix("2000001234569")
    text = qr.text(m, dark_background=dark_background)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == (m.size + 8 + 1) // 2  # two module rows per line
    assert all(len(line) == m.size + 8 for line in lines)
    assert set(text) <= {" ", "▀", "▄", "█", "\n"}
    assert decode_qr(terminal_bitmap(text, dark_background)) == ["2000001234569"]
    # Shown on the other background it is inverted: a strict reader refuses it.
    assert decode_qr(terminal_bitmap(text, not dark_background)) == []


def test_a_member_code_fits_an_80x24_terminal() -> None:
    lines = qr.text(qr.matrix("2000001234569")).rstrip("\n").split("\n")
    assert len(lines) <= 22 and max(map(len, lines)) <= 80
