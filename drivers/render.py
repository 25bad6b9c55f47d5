"""The pure slip renderer: ``render(slip, profile) -> bytes``, no I/O, no clock, no state.

The same ``Slip`` (stored with its print job) always gives the same bytes, so a reprint is
exactly the first print plus «КОПИЯ», and tests can decode a job without a printer.

Layout rules (``profile.columns`` = 32, 42 or 48 Font A characters per line):

- every field is sanitised for the profile's code page *before* layout, so widths count
  what is printed ("₽" is "руб." in CP866);
- text wraps at spaces only; NBSP (thousands separators, "1 250,00 руб.") never breaks,
  so a number or an amount is never split across lines; a word longer than a line is
  broken after punctuation or between letters, never between two digits;
- a label/value row puts the value flush right; when both do not fit, the label wraps
  and the value goes on the label's last line if it fits there, else on its own line;
- double-width text wraps at half the columns;
- centring uses ``ESC a 1``; the QR raster is centred by blank dots in the image itself
  and sent under ``ESC a 0`` (models differ on whether justification moves images).

Every job starts with ``ESC @`` + ``ESC t <slot>`` (the code page is lost on reset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.slip import KIND_TITLES, REPORT_TITLES, Slip, SlipLine, qr_caption
from drivers import escpos, qr
from drivers.profiles import Profile, ProfileError
from drivers.text import NBSP, encode, sanitise

QR_LEVEL = "M"
"""QR error correction on slips: M (15 %) survives thermal fade and a crease."""


_BREAK_AFTER = frozenset("-/.,:;_)]}+=&?")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# ----------------------------------------------------------------------------- layout
def _split_long(word: str, width: int) -> list[str]:
    """Break a word longer than ``width``: after punctuation if possible, else between any
    two characters that are not both digits; a digit run longer than a line is cut as a
    last resort (no real number on a slip is that long)."""
    pieces = []
    while len(word) > width:
        cut = 0
        for i in range(width, 0, -1):  # piece = word[:i]
            if word[i - 1] in _BREAK_AFTER:
                cut = i
                break
        if not cut:
            for i in range(width, 0, -1):
                if not (word[i - 1].isdigit() and word[i].isdigit()) and word[i - 1] != NBSP:
                    cut = i
                    break
        cut = cut or width
        pieces.append(word[:cut])
        word = word[cut:]
    pieces.append(word)
    return pieces


def _words(text: str) -> list[str]:
    """Words to wrap: split at plain spaces; a word with no letter or digit ("%", "-")
    stays with the word before it, so "15 %" or "Акция - x2" never start a line with it."""
    words: list[str] = []
    for word in text.split(" "):
        if not word:
            continue
        if words and not any(ch.isalnum() for ch in word):
            words[-1] += NBSP + word
        else:
            words.append(word)
    return words


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap at plain spaces (NBSP binds); always at least one line."""
    lines: list[str] = []
    current = ""
    for word in _words(text):
        for piece in _split_long(word, width) if len(word) > width else (word,):
            if not current:
                current = piece
            elif len(current) + 1 + len(piece) <= width:
                current += " " + piece
            else:
                lines.append(current)
                current = piece
    lines.append(current)
    return lines


def row(label: str, value: str, width: int) -> list[str]:
    """A label/value row: value flush right; the label wraps if both do not fit."""
    if not label:
        return [line.rjust(width) for line in wrap(value, width)]
    if not value:
        return wrap(label, width)
    if len(label) + 1 + len(value) <= width:
        return [label + " " * (width - len(label) - len(value)) + value]
    labels = wrap(label, width)
    values = wrap(value, width)
    last = labels[-1]
    if len(values) == 1 and len(last) + 1 + len(values[0]) <= width:
        return [*labels[:-1], last + " " * (width - len(last) - len(values[0])) + values[0]]
    return labels + [v.rjust(width) for v in values]


# ----------------------------------------------------------------------------- document
@dataclass(frozen=True, slots=True)
class PrintedLine:
    """One line as it lands on paper: sanitised text (NBSP printed as a space, trailing
    spaces dropped) and the style it is printed in. ``scale`` 2 is double width and height."""

    text: str
    align: int
    bold: bool
    scale: int


@dataclass(frozen=True, slots=True)
class PrintedQr:
    """A QR symbol as printed (raster image or the printer's own drawing of ``payload``)."""

    matrix: qr.QrMatrix
    payload: str


Printed = PrintedLine | PrintedQr
"""What :func:`printed` lists: the job's content in paper order, without the commands."""


@dataclass(slots=True)
class _Style:
    align: int = escpos.LEFT
    bold: bool = False
    width: int = 1
    height: int = 1


class _Job:
    """Accumulates one job's bytes, sending a style command only when the style changes."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.enc = profile.encoding
        self.out = bytearray(escpos.start(profile.slot))
        self.style = _Style()  # what ESC @ leaves
        self.printed: list[Printed] = []  # the same content, for the on-screen preview

    def clean(self, text: str) -> str:
        return sanitise(text, self.enc)

    def set(self, style: _Style) -> None:
        if style.align != self.style.align:
            self.out += escpos.align(style.align)
        if style.bold != self.style.bold:
            self.out += escpos.bold(style.bold)
        if (style.width, style.height) != (self.style.width, self.style.height):
            self.out += escpos.size(style.width, style.height)
        self.style = style

    def lines(self, lines: list[str], style: _Style | None = None) -> None:
        self.set(style or _Style())
        s = self.style
        for line in lines:
            text = line.replace(NBSP, " ").rstrip()
            self.out += encode(text, self.enc) + escpos.LF
            self.printed.append(PrintedLine(text, s.align, s.bold, s.width))

    def para(
        self, text: str, *, align: int = escpos.LEFT, bold: bool = False, big: bool = False
    ) -> None:
        """Sanitised, wrapped text; ``big`` = double width and height (half the columns)."""
        scale = 2 if big else 1
        width = self.profile.columns // scale
        self.lines(wrap(self.clean(text), width), _Style(align, bold, scale, scale))

    def row(self, label: str, value: str, *, bold: bool = False) -> None:
        cols = self.profile.columns
        self.lines(row(self.clean(label), self.clean(value), cols), _Style(bold=bold))

    def rule(self, char: str = "-") -> None:
        self.lines([char * self.profile.columns])

    def qr_code(self, payload: str) -> None:
        payload = _CONTROLS.sub("", payload)
        if not payload:
            return
        p = self.profile
        if p.qr_mode == "native" and not p.qr_native:
            raise ProfileError(f"{p.source or p.name}: native QR requested but the model lacks it")
        try:
            m = qr.matrix(payload, QR_LEVEL)
        except ValueError:  # too long for any QR version: print it as text instead
            self.para(payload, align=escpos.CENTER)
            return
        self.printed.append(PrintedQr(m, payload))
        dots = p.qr_module_dots
        while dots > 1 and (m.size + 2 * qr.QUIET_MODULES) * dots > p.dots:
            dots -= 1
        if p.qr_mode == "native":  # drawn by the printer: centred by ESC a
            self.set(_Style(align=escpos.CENTER))
            data = payload.encode("utf-8")
            self.out += escpos.qr_native(data, module_dots=dots, level=QR_LEVEL)
            self.out += escpos.LF
            return
        # The image carries its own centring margin; ESC a stays left so that a model which
        # applies justification to raster images does not shift it a second time.
        self.set(_Style())
        side = (m.size + 2 * qr.QUIET_MODULES) * dots
        width_bytes, rows = qr.raster_rows(m, dots, left_dots=max(0, (p.dots - side) // 2))
        self.out += escpos.raster(width_bytes, rows)

    def finish(self) -> bytes:
        self.set(_Style())
        p = self.profile
        if p.feed_lines:
            self.out += escpos.feed(p.feed_lines)
        if p.cut != "none":
            self.out += escpos.cut(partial=p.cut == "partial")
        return bytes(self.out)


def render(slip: Slip, profile: Profile) -> bytes:
    """The complete ESC/POS job for ``slip`` on ``profile``'s printer.

    Cheques (sale, refund, registration), top to bottom: training and copy marks, store,
    programme, kind; cheque number, date/time, member (masked phone or member code), tier;
    the body rows (balance before and after, earned with "доступны с", spent, expiring,
    tier and collection progress, notes); «ПРЕДВАРИТЕЛЬНО» for an offline-provisional
    balance; the campaign or coupon line; the QR with its caption; feed and cut as the
    profile says. Shift reports (``REPORT_TITLES``) have their own layout
    (:func:`_report`). Raises ``ProfileError`` if the profile asks for native QR its model
    lacks.
    """
    return _compose(slip, profile).finish()


def printed(slip: Slip, profile: Profile) -> tuple[Printed, ...]:
    """The lines and QR codes :func:`render` prints for ``slip``, in paper order.

    Built by the same layout run as the bytes, so an on-screen preview made from it
    (``drivers.preview``) holds exactly the printed lines.
    """
    return tuple(_compose(slip, profile).printed)


def _compose(slip: Slip, profile: Profile) -> _Job:
    job = _Job(profile)
    if slip.kind in REPORT_TITLES:
        _report(job, slip)
    else:
        _cheque(job, slip)
    return job


def _cheque(job: _Job, slip: Slip) -> None:
    center = escpos.CENTER
    if slip.training:
        job.para("*** УЧЕБНЫЙ РЕЖИМ ***", align=center, bold=True)
    if slip.copy:
        job.para("КОПИЯ", align=center, bold=True, big=True)
    job.para(slip.store_name, align=center, bold=True)
    job.para("Программа лояльности", align=center)
    if title := KIND_TITLES.get(slip.kind):
        job.para(title, align=center, bold=True)
    job.rule()
    job.row("Чек", slip.receipt_id)
    job.row("Дата", slip.printed_at.strftime("%d.%m.%Y %H:%M"))
    job.row("Участник", slip.member)
    job.row("Уровень", slip.tier)
    job.rule()
    for line in slip.lines:
        job.row(line.label, line.value, bold=line.label.startswith("Баланс после"))
    if slip.provisional:
        job.rule()
        job.para("ПРЕДВАРИТЕЛЬНО", align=center, bold=True, big=True)
        job.para("Баланс уточнится после связи с сервером", align=center)
    if slip.promo:
        job.rule("*")
        job.para(slip.promo, align=center, bold=True)
        job.rule("*")
    if slip.qr_payload:
        job.rule()
        job.para(qr_caption(slip.qr_payload), align=center)
        job.qr_code(slip.qr_payload)
        if not slip.qr_payload.startswith(("http://", "https://")):
            job.para(slip.qr_payload, align=center)
    if slip.copy:
        job.para("КОПИЯ", align=center, bold=True)
    if slip.training:
        job.para("*** УЧЕБНЫЙ РЕЖИМ: НЕ ЧЕК ***", align=center, bold=True)
    job.rule("=")


def _report_rows(job: _Job, lines: tuple[SlipLine, ...]) -> None:
    """Section headings (``style="heading"``) bold on their own line after a thin rule;
    ``style="total"`` rows bold; the rest label/value rows."""
    for line in lines:
        if line.style == "heading":
            job.rule()
            job.para(line.label, bold=True)
        else:
            job.row(line.label, line.value, bold=line.style == "total")


def _report(job: _Job, slip: Slip) -> None:
    """A shift report as Russian tills print it: the store, the report's title (X: "без
    гашения", Z: closing), the programme; the header (till, cashier, shift number, opened,
    closed or "report at"); the sections of the body; the end mark of a Z report."""
    center = escpos.CENTER
    if slip.training:
        job.para("*** УЧЕБНЫЙ РЕЖИМ ***", align=center, bold=True)
    if slip.copy:
        job.para("КОПИЯ", align=center, bold=True, big=True)
    job.para(slip.store_name, align=center, bold=True)
    job.para(REPORT_TITLES[slip.kind], align=center, bold=True)
    job.para("Программа лояльности", align=center)
    job.rule()
    for line in slip.header:
        job.row(line.label, line.value)
    _report_rows(job, slip.lines)
    job.rule("=")
    if slip.kind == "z_report":
        job.para("СМЕНА ЗАКРЫТА", align=center, bold=True)
    if slip.copy:
        job.para("КОПИЯ", align=center, bold=True)
    if slip.training:
        job.para("*** УЧЕБНЫЙ РЕЖИМ: НЕ ОТЧЁТ ***", align=center, bold=True)
    if slip.kind == "z_report" or slip.copy or slip.training:
        job.rule("=")
