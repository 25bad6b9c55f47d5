"""The status bar: one line at the top of every screen, always visible.

Shows (left to right): training mode, online/offline (or no back office), events waiting
and the oldest one's time, last contact, quarantined events, printer state and its queue,
the cashier. It only renders a ``StatusSnapshot`` it is given (``update_snapshot``): the
App polls the core from a worker and hands the snapshot to every screen's bar.
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


def status_text(
    snap: StatusSnapshot | None, lang: str, cashier: str | None, printer_message: str | None
) -> Text:
    """The bar's content as styled text (pure: snapshot tests and the bar share it)."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if snap is None:
        out.append("…")
        return out
    if snap.training:
        out.append(f" {t(lang, 'status.training')} ", style="bold black on yellow")
        out.append(" ")
    if snap.online is None:
        out.append(t(lang, "status.no_backoffice"), style="dim")
    elif snap.online:
        out.append(f"● {t(lang, 'status.online')}", style="bold green")
    else:
        out.append(f"○ {t(lang, 'status.offline')}", style="bold white on red")
    out.append(" │ ")
    waiting = t(lang, "status.waiting", n=snap.events_waiting)
    if snap.events_waiting and snap.oldest_waiting:
        waiting += " " + t(lang, "status.oldest", t=_hm(snap.oldest_waiting, snap.now))
    out.append(waiting, style="yellow" if snap.events_waiting else "")
    if snap.online is not None:
        contact = _hm(snap.last_contact, snap.now) or t(lang, "status.never")
        out.append(" │ " + t(lang, "status.contact", t=contact))
    if snap.quarantined:
        out.append(" │ ")
        out.append(t(lang, "status.quarantine", n=snap.quarantined), style="bold red")
    out.append(" │ ")
    if printer_message:
        out.append(t(lang, "status.printer.fault", m=printer_message), style="bold white on red")
    elif snap.printer_preview:
        out.append(t(lang, "status.printer.preview"))
    elif snap.printer_fault == "ok":
        out.append(t(lang, "status.printer.ok"), style="green")
    else:
        out.append(t(lang, "status.printer.unknown"))
    if snap.print_queue:
        out.append(" " + t(lang, "status.printer.queue", n=snap.print_queue), style="yellow")
    if cashier:
        out.append(" │ " + cashier)
    return out


class StatusBar(Static):
    """Renders the App's latest status; see module docstring."""

    DEFAULT_CLASSES = "status-bar"

    def on_mount(self) -> None:
        self.refresh_from_app()

    def refresh_from_app(self) -> None:
        app = self.app
        snap = getattr(app, "last_status", None)
        lang = getattr(app, "lang", "ru")
        cashier = getattr(app, "cashier_name", None)
        printer = getattr(app, "printer_problem", None)
        self.update(status_text(snap, lang, cashier, printer))
        offline = snap is not None and snap.online is False
        self.set_class(offline, "-offline")
        self.set_class(snap is not None and snap.training, "-training")
