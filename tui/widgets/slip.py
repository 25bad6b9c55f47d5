"""The slip preview on the cashier's screens (checkout, refund, shift report).

The text is the printer's own lines (``drivers.preview``: the same layout run that makes
the ESC/POS bytes), so the screen holds exactly what the paper gets, and the box is as
wide as the printer's line (an 80 mm printer's 48 columns too: a wrapped or cut line would
not be the slip). Here it is only dressed for the terminal: the QR rows are drawn white on
black whatever the theme (so a phone or a scanner reads the symbol off the screen), and the
box's subtitle names the keys that scroll it (PageUp/PageDown: the focus stays on the entry
line; at 80x24 a slip with a QR is taller than the box).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from rich.style import Style
from rich.text import Text
from textual.containers import ScrollableContainer
from textual.widgets import Static

from tui.i18n import register_strings, t

if TYPE_CHECKING:
    from agent.slip import Slip
    from drivers.profiles import Profile
    from tui.services import Services

register_strings(
    {
        "slip.scroll": ("PgUp/PgDn — листать слип", "PgUp/PgDn - scroll the slip"),
    }
)

QR_STYLE = Style(color="#ffffff", bgcolor="#000000")
"""Blocks (light modules and quiet zone) white, the rest (dark modules) black."""

_QR_ROW: WeakKeyDictionary[ScrollableContainer, int] = WeakKeyDictionary()
"""The first QR row of the slip a box shows (where the scroll keys stop, see ``scroll_slip``)."""


@lru_cache(maxsize=8)
def _profile(name: str) -> Profile:
    from drivers.profiles import load_profile

    return load_profile(name)


def slip_preview(services: Services, slip: Slip) -> str:
    """The slip as the till's printer profile prints it, for the screen (worker thread)."""
    from drivers.preview import preview_text

    return preview_text(slip, _profile(services.profile))


def slip_renderable(text: str) -> Text:
    """The preview text with its QR rows in :data:`QR_STYLE` (the margin left plain)."""
    from drivers.preview import is_qr_row

    out = Text(no_wrap=True, overflow="crop")
    for i, line in enumerate(text.split("\n")):
        if i:
            out.append("\n")
        if is_qr_row(line):
            body = line.lstrip(" ")
            out.append(line[: len(line) - len(body)])
            out.append(body, style=QR_STYLE)
        else:
            out.append(line)
    return out


def show_slip(box: ScrollableContainer, body: Static, text: str, lang: str) -> None:
    """Put the slip ``text`` in ``body`` inside the scrolling ``box``, titled as the
    preview, its subtitle naming the scroll keys."""
    box.border_title = t(lang, "slip.preview")
    box.border_subtitle = t(lang, "slip.scroll")
    body.update(slip_renderable(text))
    from drivers.preview import is_qr_row

    rows = text.split("\n")
    qr = next((i for i, line in enumerate(rows) if is_qr_row(line)), None)
    if qr is None:
        _QR_ROW.pop(box, None)
    else:
        _QR_ROW[box] = qr
    styles = box.styles
    widest = max((len(line) for line in text.split("\n")), default=0)
    styles.width = widest + styles.gutter.width + styles.scrollbar_size_vertical
    if box.parent is not None:  # a panel beside it gives up the room (kassa.tcss: -slip)
        box.parent.add_class("-slip")


def hide_slip(box: ScrollableContainer) -> None:
    """The box shows something else again: no scroll hint under it, its usual width."""
    if box.parent is None or not box.parent.has_class("-slip"):
        return  # not showing a slip: nothing to undo (no relayout while a cheque is typed)
    box.border_subtitle = ""
    _QR_ROW.pop(box, None)
    box.styles.width = None  # the stylesheet's width again
    box.parent.remove_class("-slip")


def scroll_slip(box: ScrollableContainer, pages: int) -> None:
    """PageDown (``pages`` > 0) or PageUp: a page, except that a page crossing the QR's top
    row stops there, so the QR is drawn whole once (it is shorter than the box at 80x24)
    and a phone or scanner can read it off the screen."""
    y = round(box.scroll_y)
    page = max(1, box.scrollable_content_region.height)
    qr = _QR_ROW.get(box)
    if pages > 0:
        target = y + page
        if qr is not None and y < qr < target:
            target = qr
    else:
        target = y - page
        if qr is not None and target < qr < y:
            target = qr
    box.scroll_to(y=max(0, min(target, round(box.max_scroll_y))), animate=False)
