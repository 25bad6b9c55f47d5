"""The slip as the screen shows it: the printer's own lines, QR drawn in half blocks.

Why not a second layout: the cashier must see the slip that prints, line for line. So the
preview is made from :func:`drivers.render.printed`, the content of the very layout run
that makes the ESC/POS bytes (wrapping, sanitising, the kind's title, the QR caption):
a line cannot be on paper and missing on screen, or the other way round.

How paper maps to characters (``profile.columns`` wide):

- a line keeps its justification (left, centred as ``ESC a 1`` centres, right);
- double width and height (``GS !``) cannot be drawn in a terminal cell: such a line (the
  «КОПИЯ» and «ПРЕДВАРИТЕЛЬНО» marks) keeps its text and justification at normal size;
- a QR is drawn with Unicode half blocks (two module rows per text line,
  :func:`drivers.qr.text`), light modules as blocks, so it reads dark-on-light once the
  screen draws it light on dark (``tui.widgets.slip``); its quiet zone is two modules
  (scanners read that; it keeps the symbol short enough for a 24-line terminal).
"""

from __future__ import annotations

from agent.slip import Slip
from drivers import escpos, qr
from drivers.profiles import Profile
from drivers.render import PrintedLine, printed

QR_QUIET_MODULES = 2
"""Light modules around the on-screen QR (paper gets the standard four)."""

QR_BLOCKS = frozenset(" ▀▄█")
"""The characters a drawn QR line is made of."""


def _place(text: str, align: int, columns: int) -> str:
    free = max(0, columns - len(text))
    if align == escpos.CENTER:
        text = " " * (free // 2) + text
    elif align == escpos.RIGHT:
        text = " " * free + text
    return text.rstrip()


def _line(line: PrintedLine, columns: int) -> str:
    return _place(line.text, line.align, columns)


def preview_lines(slip: Slip, profile: Profile) -> list[str]:
    """The slip's printed lines, ``profile.columns`` wide; a QR is several lines of blocks."""
    cols = profile.columns
    out: list[str] = []
    for item in printed(slip, profile):
        if isinstance(item, PrintedLine):
            out.append(_line(item, cols))
            continue
        drawn = qr.text(item.matrix, dark_background=True, quiet=QR_QUIET_MODULES)
        out.extend(_place(row, escpos.CENTER, cols) for row in drawn.splitlines())
    return out


def preview_text(slip: Slip, profile: Profile) -> str:
    """:func:`preview_lines` as one text, a line per row (what the cashier screen shows)."""
    return "\n".join(preview_lines(slip, profile))


def is_qr_row(line: str) -> bool:
    """Whether a preview line is a row of a drawn QR (blocks and spaces only)."""
    return bool(line.strip()) and set(line) <= QR_BLOCKS
