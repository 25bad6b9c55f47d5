"""The slip renderer, printer profiles, sanitising encoder, calibration page and CLI.

Printer output is decoded, never compared as opaque bytes: ``escpos_walker.walk`` parses
each job strictly (it fails on any command we do not emit), decodes text with the code
page in force (cross-checked with glibc iconv) and every raster QR with zxing-cpp.
"""

from __future__ import annotations

import argparse
import io
import string
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.money import format_points, format_rub
from agent.slip import Slip, SlipLine
from drivers import escpos
from drivers.calibrate import PANGRAMS, calibration_job, sample_slip
from drivers.profiles import (
    PRESETS_DIR,
    Profile,
    ProfileError,
    load_profile,
    parse_profile,
    presets,
)
from drivers.render import render, row, wrap
from drivers.text import ENCODINGS, NBSP, UnprintableText, encode, printable_text, sanitise
from tests.escpos_walker import (
    CodePage,
    Cut,
    Drawer,
    Feed,
    NativeQr,
    Reset,
    Walk,
    WalkError,
    decode_qr,
    iconv_check,
    walk,
)

ROOT = Path(__file__).resolve().parent.parent
CYRILLIC = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"


def slots_of(profile: Profile) -> dict[int, str]:
    return {slot: enc for enc, slot in profile.slots.items()}


def decode(data: bytes, profile: Profile) -> Walk:
    return walk(data, slots_of(profile), native_qr=profile.qr_native)


def assert_fits(w: Walk, profile: Profile) -> None:
    for line in w.lines:
        assert len(line.text) * line.width <= profile.columns, line.text
    for raster in w.rasters:
        assert raster.image.shape[1] <= profile.dots


def slip_with(**changes: object) -> Slip:
    return replace(sample_slip(), training=False, **changes)


# ----------------------------------------------------------------------------- golden slips
GOLDEN_58 = """
     КОПИЯ »
    ТЦ "Европейский", Москва
      Программа лояльности
       БОНУСЫ ЗА ПОКУПКУ
--------------------------------
Чек                R-2026-000123
Дата            15.06.2026 14:05
Участник        +7 *** ***-45-67
Уровень                  Серебро
--------------------------------
Баланс до         12 480 бонусов
Списано             -500 бонусов
Скидка бонусами      500,00 руб.
Начислено         +1 165 бонусов
                доступны с 29.06
Баланс после      13 145 бонусов
      1 200 бонусов сгорят 31.07
            до "Золото" осталось
                  12 345,00 руб.
Коллекция "Лето"  собрано 4 из 5
    Акция "Джинсовая неделя" x2:
                            +400
        Новый уровень: "Серебро"
--------------------------------
 ПРЕДВАРИТЕЛЬНО »
 Баланс уточнится после связи с
            сервером
********************************
Купон -15 % на джинсы до 30.06 -
    скидка до 3 000,00 руб.
********************************
--------------------------------
   Покажите этот код на кассе
[QR image 280x174 dots: 2000001234569]
         2000001234569
             КОПИЯ
================================
[feed 4]
"""

GOLDEN_80 = """
         КОПИЯ »
            ТЦ "Европейский", Москва
              Программа лояльности
               БОНУСЫ ЗА ПОКУПКУ
------------------------------------------------
Чек                                R-2026-000123
Дата                            15.06.2026 14:05
Участник                        +7 *** ***-45-67
Уровень                                  Серебро
------------------------------------------------
Баланс до                         12 480 бонусов
Списано                             -500 бонусов
Скидка бонусами                      500,00 руб.
Начислено                         +1 165 бонусов
                                доступны с 29.06
Баланс после                      13 145 бонусов
                      1 200 бонусов сгорят 31.07
             до "Золото" осталось 12 345,00 руб.
Коллекция "Лето"                  собрано 4 из 5
               Акция "Джинсовая неделя" x2: +400
                        Новый уровень: "Серебро"
------------------------------------------------
     ПРЕДВАРИТЕЛЬНО »
    Баланс уточнится после связи с сервером
************************************************
   Купон -15 % на джинсы до 30.06 - скидка до
                 3 000,00 руб.
************************************************
------------------------------------------------
           Покажите этот код на кассе
[QR image 376x174 dots: 2000001234569]
                 2000001234569
                     КОПИЯ
================================================
[feed 1]
[cut partial]
"""


@pytest.mark.parametrize(
    ("preset", "golden"), [("generic-58", GOLDEN_58), ("epson-tm-80", GOLDEN_80)]
)
def test_golden_slip(preset: str, golden: str) -> None:
    profile = load_profile(preset)
    w = decode(render(slip_with(copy=True), profile), profile)
    assert w.view(profile.columns) == golden.strip("\n")
    assert iconv_check(w) > 20
    assert_fits(w, profile)
    # The job opens with a reset and the profile's code page, and selects it only once.
    assert w.events[:2] == [Reset(0), CodePage(profile.slot, "cp866")]
    assert len(w.of(CodePage)) == 1 and len(w.of(Reset)) == 1
    bold = {line.text.strip() for line in w.lines if line.bold}
    assert {"КОПИЯ", "ПРЕДВАРИТЕЛЬНО", 'ТЦ "Европейский", Москва'} <= bold
    assert any(line.text.startswith("Баланс после") for line in w.lines if line.bold)


@pytest.mark.parametrize("preset", presets())
def test_every_preset_prints_every_block_decodably(preset: str) -> None:
    profile = load_profile(preset)
    slip = sample_slip()  # training + provisional + promo + QR + pending + expiring
    w = decode(render(slip, profile), profile)
    iconv_check(w)
    assert_fits(w, profile)
    text = "\n".join(line.text for line in w.lines)
    for needle in (
        "УЧЕБНЫЙ РЕЖИМ",
        'ТЦ "Европейский", Москва',
        "R-2026-000123",
        "15.06.2026 14:05",
        "+7 *** ***-45-67",
        "Серебро",
        "12 480 бонусов",
        "13 145 бонусов",
        "+1 165 бонусов",
        "доступны с 29.06",
        "-500 бонусов",
        "1 200 бонусов сгорят 31.07",
        "12 345,00 руб.",
        "собрано 4 из 5",
        "ПРЕДВАРИТЕЛЬНО",
        "3 000,00 руб.",
    ):
        assert needle in text, needle
    [raster] = w.rasters
    assert decode_qr(raster.image) == ["2000001234569"]
    assert raster.align == 0  # centred by its own margin, not by ESC a
    width = raster.image.shape[1]
    dark_columns = np.flatnonzero(raster.image.any(axis=0))
    left, right = dark_columns[0], profile.dots - 1 - dark_columns[-1]
    assert abs(left - right) <= 8 and width <= profile.dots  # centred on the paper
    cuts = w.of(Cut)
    assert cuts == ([] if profile.cut == "none" else [Cut(partial=profile.cut == "partial")])
    assert w.of(Feed) == [Feed(profile.feed_lines)]
    assert not w.of(Drawer)  # a loyalty slip never opens the drawer


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_refund_and_registration_slips_fit(columns: int) -> None:
    profile = replace(load_profile("epson-tm-80"), columns=columns)
    refund = slip_with(
        kind="refund",
        lines=(
            SlipLine("Возврат на сумму", format_rub(1_234_500)),
            SlipLine("Начисление отменено", format_points(-1_234)),
            SlipLine("Возвращено бонусов на счёт участника программы", format_points(500)),
        ),
        qr_payload=None,
        provisional=False,
        promo=None,
    )
    w = decode(render(refund, profile), profile)
    assert_fits(w, profile)
    text = "\n".join(line.text for line in w.lines)
    assert "ВОЗВРАТ" in text and "12 345,00 руб." in text and not w.rasters
    welcome = slip_with(kind="registration", qr_payload="https://kassa.example/app", copy=False)
    w = decode(render(welcome, profile), profile)
    assert "ДОБРО ПОЖАЛОВАТЬ!" in w.view(columns)
    assert decode_qr(w.rasters[0].image) == ["https://kassa.example/app"]


def test_reprint_differs_only_by_the_copy_marks() -> None:
    profile = load_profile("generic-58")
    first = decode(render(slip_with(), profile), profile)
    again = decode(render(slip_with(copy=True), profile), profile)
    copies = [line for line in again.lines if line.text == "КОПИЯ"]
    assert len(copies) == 2 and copies[0].width == 2
    assert [line.text for line in again.lines if line.text != "КОПИЯ"] == [
        line.text for line in first.lines
    ]
    assert render(slip_with(), profile) == render(slip_with(), profile)  # pure


# ----------------------------------------------------------------------------- layout
def test_label_value_rows() -> None:
    assert row("Баланс до", "1 250 бонусов", 32) == ["Баланс до" + " " * 10 + "1 250 бонусов"]
    assert row("", "доступны с 29.06", 20) == ["    доступны с 29.06"]
    long_label = "Возвращено бонусов на счёт участника"
    assert row(long_label, "500 бонусов", 32) == [
        "Возвращено бонусов на счёт",
        "участника" + " " * 12 + "500 бонусов",
    ]
    # The value does not fit beside the last label line: it gets its own line, flush right.
    assert row("Скидка бонусами по акции", "1 000 000,00 руб.", 32) == [
        "Скидка бонусами по акции",
        "               1 000 000,00 руб.",
    ]


def test_wrap_never_splits_digits_and_keeps_punctuation_with_its_word() -> None:
    assert wrap("Купон -15 % до 30.06", 12) == ["Купон -15\u00a0%", "до 30.06"]
    # A word longer than the line breaks after punctuation, never between digits.
    assert wrap("https://kassa.example/r/2000001234569", 16) == [
        "https://kassa.",
        "example/r/",
        "2000001234569",
    ]
    assert wrap("ДлинноеСловоБезПробелов", 10) == ["ДлинноеСло", "воБезПробе", "лов"]
    assert wrap("", 10) == [""]


WORDS = st.sampled_from(
    [
        *("Баланс", "бонусов", "Коллекция", "«Лето»", "—", "сгорят", "Акция", "x2:", "%"),
        *("ёлка", "Джинсовая", "неделя", "Новый", "уровень", "Золото", "R-2026-000123", "+7"),
    ]
)
AMOUNTS = st.one_of(
    st.integers(-(10**11), 10**11).map(format_rub),
    st.integers(-(10**9), 10**9).map(format_points),
    st.integers(-(10**9), 10**9).map(lambda n: format_points(n, sign=True)),
)
PHRASES = st.lists(st.one_of(WORDS, AMOUNTS), min_size=0, max_size=9).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(
    store=PHRASES,
    rows=st.lists(st.tuples(PHRASES, PHRASES), max_size=8),
    promo=st.one_of(st.none(), PHRASES),
    columns=st.sampled_from([32, 42, 48]),
    encoding=st.sampled_from(ENCODINGS),
)
def test_any_slip_fits_without_splitting_words_or_numbers(
    store: str, rows: list[tuple[str, str]], promo: str | None, columns: int, encoding: str
) -> None:
    base = load_profile("epson-tm-80")
    profile = replace(base, columns=columns, encoding=encoding, slots={"cp866": 17, "cp1251": 46})
    slip = Slip(
        kind="sale",
        store_name=store,
        terminal_id="t",
        receipt_id="R-1",
        printed_at=datetime(2026, 6, 15, 14, 5),
        member="+7 *** ***-45-67",
        tier="Серебро",
        lines=tuple(SlipLine(label, value) for label, value in rows),
        promo=promo,
    )
    w = decode(render(slip, profile), profile)
    assert_fits(w, profile)
    printed = [line.text for line in w.lines]
    for field in [store, promo or "", *(f for pair in rows for f in pair)]:
        for token in sanitise(field, encoding).split(" "):
            if token:  # every word and every amount ("12 345,00 руб.") on one line
                shown = token.replace(NBSP, " ")
                assert any(shown in line for line in printed), (token, printed)


# ----------------------------------------------------------------------------- text
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=CYRILLIC + string.ascii_letters + string.digits + " .,:;!?()+-/%\"'"))
def test_cyrillic_round_trips_through_both_code_pages(text: str) -> None:
    for encoding in ENCODINGS:
        clean = sanitise(text, encoding)
        assert clean == text  # nothing to substitute in plain Russian
        data = encode(clean, encoding)
        assert len(data) == len(text) and data.decode(encoding) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(), encoding=st.sampled_from(ENCODINGS))
def test_any_text_sanitises_to_printable_bytes(text: str, encoding: str) -> None:
    clean = sanitise(text, encoding)
    assert sanitise(clean, encoding) == clean  # idempotent
    data = printable_text(text, encoding)
    assert not any(b < 0x20 or b == 0x7F for b in data)
    assert data.decode(encoding) == clean.replace(NBSP, " ")


def test_every_cyrillic_letter_agrees_with_glibc_iconv() -> None:
    for encoding in ENCODINGS:
        data = encode(CYRILLIC + " №", encoding)
        out = subprocess.run(
            ["iconv", "-f", encoding.upper(), "-t", "UTF-8"],
            input=data,
            capture_output=True,
            check=False,
        )
        assert out.returncode == 0 and out.stdout.decode() == CYRILLIC + " №"


def test_substitutions_for_characters_outside_the_page() -> None:
    assert sanitise("1 250,00\u00a0₽ «Лето» — скидка…", "cp866") == (
        '1 250,00\u00a0руб. "Лето" - скидка...'
    )
    # CP1251 has «», — and … itself; only the rouble sign is substituted.
    assert sanitise("«Лето» — 5 ₽", "cp1251") == "«Лето» — 5 руб."
    assert sanitise("Café Ünïcode і ґ", "cp866") == "Cafe Unicode i г"
    assert sanitise("Ли 李 🙂", "cp866") == "Ли ? ?"
    assert sanitise("й", "cp866") == "й"  # decomposed й is one letter


def test_strict_encode_refuses_unsanitised_text() -> None:
    with pytest.raises(UnprintableText, match="₽"):
        encode("5 ₽", "cp866")
    with pytest.raises(UnprintableText, match="control byte 0x1b"):
        encode("\x1bp", "cp866")
    with pytest.raises(ValueError, match="unsupported code page"):
        sanitise("x", "cp437")


INJECTIONS = [
    "\x1bp\x00\x19\xfa",  # ESC p: drawer kick
    "\x1dV\x00",  # GS V: cut
    "\x1b@",  # reset (would drop the code page)
    "\x1bt\x00",  # back to PC437
    "\x1d(k\x03\x001Q0",  # native QR print
    "\x10\x04\x01",  # DLE EOT status request
    "\x9b\x85\u202e\u200b\x00\x7f",  # C1, bidi override, zero width, NUL, DEL
]


@pytest.mark.parametrize("preset", ["generic-58", "epson-tm-80"])
def test_control_bytes_in_data_never_reach_the_printer(preset: str) -> None:
    profile = load_profile(preset)
    evil = "Анна" + "".join(INJECTIONS) + "Ли\nИванова\tМ."
    slip = slip_with(
        store_name=evil,
        member=evil,
        receipt_id=evil,
        tier=evil,
        lines=(SlipLine(evil, evil),),
        promo=evil,
    )
    w = decode(render(slip, profile), profile)  # strict: any stray command fails here
    assert len(w.of(Reset)) == 1 and len(w.of(CodePage)) == 1
    assert not w.of(Drawer) and not w.of(NativeQr)
    assert len(w.of(Cut)) == (profile.cut != "none")
    text = "\n".join(line.text for line in w.lines)
    assert "Анна" in text and "Иванова М." in text
    iconv_check(w)


def test_a_cjk_character_in_a_name_keeps_the_line_in_the_code_page() -> None:
    profile = load_profile("generic-58")
    w = decode(
        render(slip_with(member="Ли 李 Анна", store_name="Магазин 東京 Москва"), profile), profile
    )
    assert len(w.of(CodePage)) == 1  # no hop to GB18030 or any other page
    lines = [line.text for line in w.lines]
    assert "Участник" + " " * 15 + "Ли ? Анна" in lines
    assert any(line.strip() == "Магазин ?? Москва" for line in lines)
    for line in w.lines:
        assert {enc for enc, _ in line.segments} <= {"cp866"}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cp1251_profiles_print_in_cp1251(encoding: str) -> None:
    profile = replace(load_profile("epson-tm-80"), encoding=encoding)
    w = decode(render(slip_with(store_name="Бутик «Ёлка» — 5 ₽"), profile), profile)
    assert w.events[1] == CodePage(profile.slots[encoding], encoding)
    expected = "Бутик «Ёлка» — 5 руб." if encoding == "cp1251" else 'Бутик "Ёлка" - 5 руб.'
    assert any(line.text == expected for line in w.lines)
    iconv_check(w)


# ----------------------------------------------------------------------------- code page resets
def test_every_job_re_sends_the_code_page_after_its_reset() -> None:
    profile = load_profile("rongta-80")  # slot 7: an Epson-numbered default would be wrong
    queue = render(slip_with(), profile) + render(slip_with(copy=True), profile)
    w = decode(queue, profile)
    resets = [i for i, e in enumerate(w.events) if isinstance(e, Reset)]
    assert len(resets) == 2
    for i in resets:
        assert w.events[i + 1] == CodePage(7, "cp866")
    second = w.events[resets[1] :]
    assert any(getattr(e, "text", "") == "Программа лояльности" for e in second)


def test_walker_catches_text_after_a_reset_without_a_code_page() -> None:
    # What python-escpos 3.1 sends: ESC @ drops the page and it is not re-sent.
    job = b"\x1b@\x1bt\x11" + "Привет".encode("cp866") + b"\n\x1b@" + "Привет".encode("cp866")
    with pytest.raises(WalkError, match="no code page selected"):
        walk(job + b"\n", {17: "cp866"})


@pytest.mark.parametrize(
    ("job", "error"),
    [
        (b"\x1bt\x11A\n", "does not start"),
        (b"\x1b@\x1bt\x11\x1b!\x00A\n", "unknown command ESC 0x21"),
        (b"\x1b@\x1bt\x11A\x07\n", "control byte 0x07"),
        (b"\x1b@\x1bt\x11A", "final LF"),
        (b"\x1b@\x1bt\x11A\x1bE\x01B\n", "middle of a text line"),
        (b"\x1b@\x1bt\x05A\n", "slot not in the profile"),
        (b"\x1b@\x1bt\x11\x1dV\x00", "function B"),
        (b"\x1b@\x1bt\x11\x1dv0\x00\x01\x00\x05", "truncated"),
    ],
)
def test_walker_fails_loudly_on_anything_we_do_not_emit(job: bytes, error: str) -> None:
    with pytest.raises(WalkError, match=error):
        walk(job, {17: "cp866"})


# ----------------------------------------------------------------------------- native QR
def test_native_qr_framing() -> None:
    data = escpos.qr_native(b"2000001234569", module_dots=6, level="M")
    assert (
        data
        == (
            b"\x1d(k\x04\x001A2\x00"  # fn 165: model 2
            b"\x1d(k\x03\x001C\x06"  # fn 167: module 6 dots
            b"\x1d(k\x03\x001E1"  # fn 169: level M (49)
            b"\x1d(k\x10\x001P0" + b"2000001234569"  # fn 180: pL = 13 + 3
            b"\x1d(k\x03\x001Q0"  # fn 181: print
        )
    )
    profile = replace(load_profile("epson-tm-80"), qr_mode="native")
    payload = "https://kassa.example/m/" + "9" * 300  # > 255 bytes: two-byte length
    w = decode(render(slip_with(qr_payload=payload), profile), profile)
    [qr] = w.of(NativeQr)
    assert qr == NativeQr(payload.encode(), 6 if len(payload) < 100 else qr.module_dots, "M")
    assert not w.rasters
    with pytest.raises(ValueError, match="payload"):
        escpos.qr_native(b"", module_dots=6)


def test_native_qr_is_refused_when_the_profile_lacks_it(tmp_path: Path) -> None:
    base = load_profile("generic-58")
    with pytest.raises(ProfileError, match="native QR"):
        render(slip_with(), replace(base, qr_mode="native"))
    text = (
        (PRESETS_DIR / "generic-58.toml").read_text().replace('mode = "image"', 'mode = "native"')
    )
    site = tmp_path / "site.toml"
    site.write_text(text)
    with pytest.raises(ProfileError, match=r"site\.toml: key 'qr\.mode'.*native"):
        load_profile(str(site))
    # And the walker refuses GS ( k on a profile without it.
    epson_native = replace(load_profile("epson-tm-80"), qr_mode="native")
    with pytest.raises(WalkError, match="without it"):
        walk(render(slip_with(), epson_native), {17: "cp866"}, native_qr=False)


# ----------------------------------------------------------------------------- profiles
def test_presets_cover_the_printer_classes() -> None:
    names = presets()
    assert {"epson-tm-80", "epson-tm-42", "generic-58", "rongta-80", "star-80"} <= set(names)
    assert {"xprinter-58", "xprinter-80"} <= set(names)
    columns = {load_profile(n).columns for n in names}
    assert columns == {32, 42, 48}
    assert load_profile("rongta-80").slots == {"cp866": 7, "cp1251": 6}
    assert load_profile("star-80").slots == {"cp866": 10, "cp1251": 34}
    assert not load_profile("xprinter-58").qr_native
    assert load_profile(None).name == "generic-58"


GOOD = """
title = "Site"
columns = 32
dots = 384
[codepage]
encoding = "cp866"
cp866 = 17
"""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("colums = 3\n" + GOOD, "key 'colums': unknown key"),
        (GOOD + "[qr]\nmodul_dots = 3\n", "key 'qr.modul_dots': unknown key in \\[qr\\]"),
        (GOOD.replace("columns = 32", "columns = true"), "key 'columns': must be int"),
        (GOOD.replace("columns = 32", "columns = 48"), "key 'columns': 48 Font A columns"),
        (GOOD.replace("dots = 384", "dots = 380"), "key 'dots': must be a multiple of 8"),
        (GOOD.replace('encoding = "cp866"', 'encoding = "cp1251"'), "key 'codepage.cp1251'"),
        (GOOD.replace("cp866 = 17", "cp866 = 0"), "key 'codepage.cp866': must be in 1..255"),
        (GOOD.replace('encoding = "cp866"', 'encoding = "cp437"'), "codepage.encoding"),
        (GOOD.replace('title = "Site"\n', ""), "key 'title': is required"),
        (GOOD + "[cut]\nmode = 'sometimes'\n", "key 'cut.mode': must be one of"),
        (GOOD + "[drawer]\npin = 3\n", "key 'drawer.pin': must be 2 or 5"),
        ("qr = 1\n" + GOOD, "key 'qr': must be a table"),
        (GOOD + "[codepage.x]\n", "codepage.x"),
        ("title = ", "not valid TOML"),
    ],
)
def test_profile_errors_name_file_and_key(text: str, error: str) -> None:
    with pytest.raises(ProfileError, match=f"^site.toml: .*{error}"):
        parse_profile(text, name="site", source="site.toml")


def test_profile_loading_errors() -> None:
    assert parse_profile(GOOD, name="site", source="site.toml").slot == 17
    with pytest.raises(ProfileError, match="no printer profile named 'nope'; presets: epson"):
        load_profile("nope")
    with pytest.raises(ProfileError, match=r"missing\.toml: cannot read"):
        load_profile("missing.toml")


# ----------------------------------------------------------------------------- other jobs
def test_calibration_page_prints_the_pangrams_under_each_slot() -> None:
    profile = load_profile("xprinter-58")
    slots = profile.calibrate_slots
    w = walk(calibration_job(profile, encodings=("cp866",)), dict.fromkeys(slots, "cp866"))
    assert [e.slot for e in w.of(CodePage)] == [17, *slots, 17]
    headings = [line.text for line in w.lines if line.text.startswith("ESC t ")]
    assert headings == [f"ESC t {s} / cp866:" for s in slots]
    joined = " ".join(line.text for line in w.lines)
    assert joined.count(PANGRAMS[0]) == len(slots) and joined.count(PANGRAMS[1]) == len(slots)
    iconv_check(w)
    # Both code pages: the same slots again for CP1251 bytes; headings stay ASCII, so
    # read the whole page byte-transparently and look for both pangram encodings.
    both = calibration_job(profile)
    w = walk(both, dict.fromkeys(slots, "latin-1"))
    raw = b" ".join(line.text.encode("latin-1") for line in w.lines)
    for encoding in ENCODINGS:
        assert raw.count(PANGRAMS[1].encode(encoding)) == len(slots)
        assert sum(f"/ {encoding}:" in line.text for line in w.lines) == len(slots)
    assert all(len(line.text) <= profile.columns for line in w.lines)


def test_drawer_kick_builder_decodes() -> None:
    job = escpos.start(17) + escpos.drawer_kick(5, 100, 200)
    assert walk(job, {17: "cp866"}).of(Drawer) == [Drawer(5, 100, 200)]
    with pytest.raises(ValueError, match="pin"):
        escpos.drawer_kick(3, 100, 200)


# ----------------------------------------------------------------------------- imports
def test_importing_the_printer_stack_loads_no_device_library() -> None:
    code = (
        "import logging, sys\n"
        "import drivers.render, drivers.profiles, drivers.calibrate, drivers.qr, drivers.escpos\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & "
        "{'escpos', 'qrcode', 'PIL', 'serial', 'usb', 'numpy', 'textual'})\n"
        "print(','.join(bad), len(logging.getLogger().handlers))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["0"]


def test_python_escpos_import_is_contained(tmp_path: Path) -> None:
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from drivers.escpos import import_python_escpos\n"
        "root = logging.getLogger(); mine = logging.NullHandler(); root.addHandler(mine)\n"
        "root.setLevel(logging.ERROR)\n"
        f"printer = import_python_escpos(Path({str(tmp_path)!r}))\n"
        "import escpos.capabilities as caps\n"
        "print(root.handlers == [mine], root.level == logging.ERROR, caps.pickle_dir)\n"
        "logging.getLogger('escpos.printer').warning('must not reach stderr')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert out.stdout.split() == ["True", "True", str(tmp_path)]
    assert out.stderr == ""
    assert list(tmp_path.glob("*.capabilities.pickle"))


# ----------------------------------------------------------------------------- CLI
def run_cli(argv: list[str]) -> int:
    from kassa.cli.drivers import add_commands

    parser = argparse.ArgumentParser(prog="kassa")
    add_commands(parser.add_subparsers(dest="command", required=True), "till.db")
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except AgentError as e:
        sys.stderr.write(f"kassa: {e.message_ru}\n")
        return 2
    return code


def test_cli_printer_test_and_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "test.bin"
    assert run_cli(["printer", "test", "--profile", "xprinter-80", "--out", str(out)]) == 0
    profile = load_profile("xprinter-80")
    w = decode(out.read_bytes(), profile)
    assert "УЧЕБНЫЙ РЕЖИМ" in w.view(48) and decode_qr(w.rasters[0].image) == ["2000001234569"]
    assert run_cli(["printer", "test"]) == 1
    assert "no printer given" in capsys.readouterr().err
    # --printer URL: the same job over TCP 9100 to a fake printer on loopback
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    got = bytearray()

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                got.extend(chunk)

    t = threading.Thread(target=accept)
    t.start()
    port = server.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    assert run_cli(["printer", "test", "--profile", "xprinter-80", "--printer", url]) == 0
    t.join(10)
    server.close()
    assert bytes(got) == out.read_bytes()
    cal = tmp_path / "cal.bin"
    assert run_cli(["printer", "calibrate", "--out", str(cal), "--encoding", "cp866"]) == 0
    w = walk(cal.read_bytes(), dict.fromkeys(range(256), "cp866"))
    joined = " ".join(line.text for line in w.lines)
    assert joined.count(PANGRAMS[0]) == len(load_profile("generic-58").calibrate_slots)
    assert run_cli(["printer", "test", "--profile", "nope", "--out", str(out)]) == 2
    assert "профиль принтера" in capsys.readouterr().err
    assert run_cli(["printer", "profiles"]) == 0
    assert "rongta-80" in capsys.readouterr().out


def test_cli_member_qr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    png = tmp_path / "card.png"
    assert run_cli(["member", "qr", "2000 0012 3456 9", "--png", str(png)]) == 0
    pixels = np.array(Image.open(io.BytesIO(png.read_bytes())).convert("L"))
    assert decode_qr(pixels < 128) == ["2000001234569"]
    svg = tmp_path / "card.svg"
    assert run_cli(["member", "qr", "2000001234569", "--svg", str(svg)]) == 0
    assert svg.read_text().startswith("<?xml")
    assert run_cli(["member", "qr", "2000001234569", "--text"]) == 0
    shown = capsys.readouterr().out
    assert "█" in shown and shown.rstrip().endswith("2000001234569")
    assert run_cli(["member", "qr", "2000001234560", "--text"]) == 2  # bad check digit
    assert "ошибк" in capsys.readouterr().err  # the check-digit error, in Russian


# ----------------------------------------------------------------------------- preview, reports
def _preview_qr_image(rows: list[str]) -> np.ndarray:
    """Half-block rows as the screen draws them (blocks light, the rest dark), 4 px/module."""
    top = {"█": False, "▀": False, "▄": True, " ": True}
    bottom = {"█": False, "▀": True, "▄": False, " ": True}
    width = max(len(r) for r in rows)
    grid = []
    for row_text in rows:
        cells = row_text.ljust(width)
        grid.append([top[c] for c in cells])
        grid.append([bottom[c] for c in cells])
    return np.kron(np.array(grid, dtype=bool), np.ones((4, 4), dtype=bool))


@pytest.mark.parametrize("name", presets())
def test_preview_is_the_printed_job_line_for_line(name: str) -> None:
    """Every line the printer gets is on screen, in order and with the same text (also the
    kind's title, the QR caption, the copy and training marks), and the drawn QR reads as
    the printed one."""
    from drivers.preview import is_qr_row, preview_lines

    profile = load_profile(name)
    slip = replace(sample_slip(), copy=True, training=True, provisional=True)
    w = decode(render(slip, profile), profile)
    screen = preview_lines(slip, profile)
    text = [ln for ln in screen if not is_qr_row(ln)]
    assert [ln.strip() for ln in text] == [ln.text.strip() for ln in w.lines]
    for shown, line in zip(text, w.lines, strict=True):  # left-aligned rows keep their columns
        if line.align == escpos.LEFT:
            assert shown == line.text.rstrip()
    assert all(len(ln) <= profile.columns for ln in screen)
    qr_rows = [ln.strip() for ln in screen if is_qr_row(ln)]
    printed = [t for r in w.rasters for t in decode_qr(r.image)]
    printed += [q.payload.decode() for q in w.of(NativeQr)]  # type: ignore[attr-defined]
    assert printed == [slip.qr_payload]
    assert decode_qr(_preview_qr_image(qr_rows)) == [slip.qr_payload]


def _report(kind: str) -> Slip:
    header = (
        SlipLine("Касса", "till-1"),
        SlipLine("Кассир", "Анна Петрова"),
        SlipLine("Смена №", "12"),
        SlipLine("Открыта", "15.06.2026 09:00"),
        SlipLine("Закрыта" if kind == "z_report" else "Отчёт на", "15.06.2026 21:00"),
    )
    lines = (
        SlipLine("Продажи", "", "heading"),
        SlipLine("Чеков с картой", "41"),
        SlipLine("Сумма чеков", format_rub(123_456_700), "total"),
        SlipLine("Бонусы", "", "heading"),
        SlipLine("Начислено", format_points(12_345)),
        SlipLine("Купоны", "", "heading"),
        SlipLine("Чеков с купоном", "3"),
    )
    return Slip(
        kind=kind,
        store_name='ТЦ "Европейский", Москва',
        terminal_id="till-1",
        receipt_id="Z-1234abcd",
        printed_at=datetime(2026, 6, 15, 21, 0),
        member="",
        tier="",
        lines=lines,
        header=header,
    )


@pytest.mark.parametrize("name", ["generic-58", "epson-tm-42", "epson-tm-80"])
def test_x_and_z_reports_have_their_own_layout(name: str) -> None:
    profile = load_profile(name)
    for kind, title in (
        ("x_report", "Сменный отчёт без гашения"),
        ("z_report", "Отчёт о закрытии смены"),
    ):
        w = decode(render(_report(kind), profile), profile)
        assert_fits(w, profile)
        text = [ln.text for ln in w.lines]
        assert text[1] == title and w.lines[1].bold and w.lines[1].align == escpos.CENTER
        labels = [t.split("  ")[0] for t in text]
        assert not {"Чек", "Участник", "Уровень"} & set(labels)  # not the cheque's template
        assert labels.index("Касса") < labels.index("Смена №") < labels.index("Продажи")
        headings = [ln for ln in w.lines if ln.text in ("Продажи", "Бонусы", "Купоны")]
        assert len(headings) == 3 and all(h.bold for h in headings)
        total = next(ln for ln in w.lines if ln.text.startswith("Сумма чеков"))
        assert total.bold and total.text.endswith("1 234 567,00 руб.")
        assert ("СМЕНА ЗАКРЫТА" in text) == (kind == "z_report")
        assert not w.rasters and not w.of(NativeQr)
