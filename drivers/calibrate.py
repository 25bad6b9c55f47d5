"""Installer jobs: the code-page calibration page and the full test slip.

Why a calibration page: the ``ESC t`` slot holding CP866 differs by model and firmware
(Epson 17, Rongta 7, Star 10, POS-58 clones 17 or 59; slot 17 is Greek on one Rongta), and
manuals are wrong often enough. The page prints a Russian pangram (every letter of the
alphabet) encoded in CP866, and again in CP1251, under each candidate slot. The installer
reads which slot prints clean Russian and writes it into the profile
(``[codepage] cp866 = N``). Headings are plain ASCII so they read under any slot.
"""

from __future__ import annotations

from datetime import date, datetime

from agent.money import format_rub
from agent.slip import Slip, sale_lines
from drivers import escpos
from drivers.profiles import Profile
from drivers.render import wrap
from drivers.text import ENCODINGS, NBSP, encode, sanitise

PANGRAMS = (
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "ЭХ, ЧУЖАК! ОБЩИЙ СЪЁМ ЦЕН ШЛЯП (ЮФТЬ) - ВДРЫЗГ!",
)
"""Lower- and upper-case pangrams: together every Russian letter in both cases, Ё too."""


def calibration_job(
    profile: Profile,
    *,
    encodings: tuple[str, ...] = ENCODINGS,
    slots: tuple[int, ...] | None = None,
) -> bytes:
    """Bytes of the calibration page: each pangram under each candidate slot.

    ``slots`` defaults to the profile's ``codepage.calibrate`` list (its own slot first).
    For every encoding and slot: an ASCII heading ``ESC t <slot> / <encoding>``, then the
    pangrams encoded strictly in that encoding while ``ESC t <slot>`` is in force. The page
    ends back on the profile's own slot with instructions in ASCII.
    """
    columns = profile.columns
    candidates = slots or profile.calibrate_slots
    out = bytearray(escpos.start(profile.slot))

    def ascii_lines(text: str) -> None:
        for line in wrap(text, columns):
            # ASCII only: the same bytes in every code page.
            out.extend(encode(line.replace(NBSP, " "), "cp866") + escpos.LF)

    out += escpos.bold(True)
    ascii_lines("KASSA: CODE PAGE CALIBRATION")
    out += escpos.bold(False)
    ascii_lines(f"Profile {profile.name}: {profile.encoding} in slot {profile.slot}")
    ascii_lines("-" * columns)
    for encoding in encodings:
        for slot in candidates:
            out += escpos.code_page(slot)
            out += escpos.bold(True)
            ascii_lines(f"ESC t {slot} / {encoding}:")
            out += escpos.bold(False)
            for pangram in PANGRAMS:
                for line in wrap(sanitise(pangram, encoding), columns):
                    out += encode(line.replace(NBSP, " "), encoding) + escpos.LF
            out += escpos.LF
    out += escpos.code_page(profile.slot)
    ascii_lines("-" * columns)
    ascii_lines(
        "Find the block whose lines read as clean Russian and put its slot number in "
        "the printer profile: [codepage] cp866 = N (or cp1251 = N)."
    )
    ascii_lines("Naidite blok s chitaemym russkim tekstom i ukazhite ego nomer v profile.")
    out += escpos.feed(profile.feed_lines)
    if profile.cut != "none":
        out += escpos.cut(partial=profile.cut == "partial")
    return bytes(out)


def sample_slip(printed_at: datetime | None = None) -> Slip:
    """A full sale slip with every block, for ``kassa printer test`` and the benchmark.

    Marked as training so nobody takes it for a real member's balance.
    """
    lines = sale_lines(
        balance_before=12_480,
        balance_after=13_145,
        earned=1_165,
        pending_until=date(2026, 6, 29),
        spent=500,
        discount_kop=50_000,
        expiring=1_200,
        expiring_on=date(2026, 7, 31),
        to_next_tier_kop=1_234_500,
        next_tier="Золото",
        collections=[("Коллекция «Лето»", 4, 5)],
        notes=["Акция «Джинсовая неделя» x2: +400", "Новый уровень: «Серебро»"],
    )
    return Slip(
        kind="sale",
        store_name="ТЦ «Европейский», Москва",
        terminal_id="demo-till-01",
        receipt_id="R-2026-000123",
        printed_at=printed_at or datetime(2026, 6, 15, 14, 5),  # noqa: DTZ001 (local time)
        member="+7 *** ***-45-67",
        tier="Серебро",
        lines=lines,
        qr_payload="2000001234569",
        provisional=True,
        training=True,
        promo=f"Купон −15 % на джинсы до 30.06 — скидка до {format_rub(300_000)}",
    )
