"""The status bar: one line at the top of every screen, always visible.

Shows (left to right): training mode, online/offline (or no back office), events waiting
and the oldest one's time, last contact, a full disk, quarantined events, printer state
and its queue, the cashier. It only renders a ``StatusSnapshot`` it is given
(``update_snapshot``): the App polls the core from a worker and hands the snapshot to
every screen's bar.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from tui.i18n import t
from tui.services import StatusSnapshot


def _hm(dt: datetime | None, now: datetime) -> str:
    """``HH:MM`` today, ``DD.MM HH:MM`` on another day (the till's local time)."""
    if dt is None:
        return ""
    local = dt.astimezone(now.tzinfo)
    return local.strftime("%H:%M" if local.date() == now.date() else "%d.%m %H:%M")


Part = tuple[str, str]
"""A piece of the bar: its text and its Rich style."""

SHRINK_ORDER = ("contact", "printer", "oldest", "cashier", "training", "print_queue")
"""What gives way first when the bar is wider than the screen (80 columns in training
mode, offline with a queue...): the last contact goes, then a quiet printer (one with a
fault or slips waiting stays), the oldest event's time, the cashier's surname (the
first name stays), the long training label (a short one stays), the count of slips
waiting beside a printer fault. The link state, the queue count, a full disk, the
quarantine and a printer fault are never dropped; only if even the shortest bar does not
fit (a very long name) is its end cut with an ellipsis."""


def status_text(
    snap: StatusSnapshot | None,
    lang: str,
    cashier: str | None,
    printer_message: str | None,
    width: int | None = None,
) -> Text:
    """The bar's content as styled text (pure: snapshot tests and the bar share it), at
    most ``width`` cells if it can be (see ``SHRINK_ORDER``)."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if snap is None:
        out.append("…")
        return out
    shrunk: set[str] = set()
    parts = _parts(snap, lang, cashier, printer_message, shrunk)
    for step in SHRINK_ORDER:
        if width is None or sum(len(text) for text, _ in parts) <= width:
            break
        shrunk.add(step)
        parts = _parts(snap, lang, cashier, printer_message, shrunk)
    for text, style in parts:
        out.append(text, style=style)
    return out


def _parts(
    snap: StatusSnapshot,
    lang: str,
    cashier: str | None,
    printer_message: str | None,
    shrunk: set[str],
) -> list[Part]:
    """The bar as pieces, with the ``shrunk`` steps of ``SHRINK_ORDER`` applied."""
    out: list[Part] = []
    if snap.training:
        key = "status.training_short" if "training" in shrunk else "status.training"
        out += [(f" {t(lang, key)} ", "bold black on yellow"), (" ", "")]
    if snap.online is None:
        out.append((t(lang, "status.no_backoffice"), "dim"))
    elif snap.online:
        out.append((f"● {t(lang, 'status.online')}", "bold green"))
    else:
        out.append((f"○ {t(lang, 'status.offline')}", "bold white on red"))
    waiting = t(lang, "status.waiting", n=snap.events_waiting)
    if snap.events_waiting and snap.oldest_waiting and "oldest" not in shrunk:
        waiting += " " + t(lang, "status.oldest", t=_hm(snap.oldest_waiting, snap.now))
    out += [(" │ ", ""), (waiting, "yellow" if snap.events_waiting else "")]
    if snap.online is not None and "contact" not in shrunk:
        contact = _hm(snap.last_contact, snap.now) or t(lang, "status.never")
        out.append((" │ " + t(lang, "status.contact", t=contact), ""))
    if snap.disk_full:
        out += [(" │ ", ""), (t(lang, "status.disk_full"), "bold white on red")]
    if snap.quarantined:
        out += [(" │ ", ""), (t(lang, "status.quarantine", n=snap.quarantined), "bold red")]
    printer: list[Part] = []
    queued = t(lang, "status.printer.queue", n=snap.print_queue)
    if printer_message:
        printer.append((t(lang, "status.printer.fault", m=printer_message), "bold white on red"))
        if snap.print_queue and "print_queue" not in shrunk:
            printer.append((" " + queued, "yellow"))
    elif "printer" in shrunk:  # nothing wrong with the printer: only slips still waiting
        if snap.print_queue:
            printer.append((t(lang, "status.printer.queue_only", n=snap.print_queue), "yellow"))
    else:
        if snap.printer_preview:
            printer.append((t(lang, "status.printer.preview"), ""))
        elif snap.printer_file:
            printer.append((t(lang, "status.printer.file"), "green"))
        elif snap.printer_fault == "ok":
            printer.append((t(lang, "status.printer.ok"), "green"))
        else:
            printer.append((t(lang, "status.printer.unknown"), ""))
        if snap.print_queue:
            printer.append((" " + queued, "yellow"))
    if printer:
        out += [(" │ ", ""), *printer]
    if cashier:
        name = cashier.split()[0] if "cashier" in shrunk and cashier.split() else cashier
        out.append((" │ " + name, ""))
    return out


class StatusBar(Static):
    """Renders the App's latest status; see module docstring."""

    DEFAULT_CLASSES = "status-bar"

    def on_mount(self) -> None:
        self.refresh_from_app()

    def on_resize(self) -> None:
        self.refresh_from_app()

    def refresh_from_app(self) -> None:
        app = self.app
        snap = getattr(app, "last_status", None)
        lang = getattr(app, "lang", "ru")
        cashier = getattr(app, "cashier_name", None)
        printer = getattr(app, "printer_problem", None)
        width = self.size.width or self.app.size.width or None
        self.update(status_text(snap, lang, cashier, printer, width))
        offline = snap is not None and snap.online is False
        self.set_class(offline, "-offline")
        self.set_class(snap is not None and snap.training, "-training")
