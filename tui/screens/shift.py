"""The shift: the X-report of the loyalty operations on screen; print it; close the shift.

F11 from checkout. P prints the report (the receipt printer or the on-screen preview);
F12 asks to close the shift (Enter confirms, Esc cancels); after closing, the App returns
to sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Static

from tui import ops_shift as ops
from tui.messages import ReportQueued, ShiftClosed, XReportReady
from tui.screens.base import KassaScreen

if TYPE_CHECKING:
    from agent.shifts import XReport


def report_table(report: XReport, lang: str) -> Table:
    """The X-report as a two-column table (pure: the screen and the tests share it)."""
    from tui.i18n import money, points, t

    s = report.shift
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(justify="right")
    rows = [
        ("xr.cashier", s.cashier_name),
        ("xr.opened", s.opened_at.strftime("%d.%m %H:%M")),
        (
            "xr.closed" if s.closed_at else "xr.at",
            (s.closed_at or report.generated_at).strftime("%d.%m %H:%M"),
        ),
        ("xr.cheques", str(report.cheques)),
        ("xr.by_scan", str(report.by_scan)),
        ("xr.by_phone", str(report.by_phone)),
        ("xr.offline", str(report.offline_cheques)),
        ("xr.sales", money(lang, report.sales_kop)),
        ("xr.discount", money(lang, report.discount_kop)),
        ("xr.earned", points(lang, report.points_earned)),
        ("xr.spent", points(lang, report.points_spent)),
        ("xr.registrations", str(report.registrations)),
        ("xr.refunds", str(report.refunds)),
        ("xr.refund_kop", money(lang, report.refund_kop)),
        ("xr.reversed", points(lang, report.points_reversed)),
        ("xr.returned", points(lang, report.points_returned)),
    ]
    for key, value in rows:
        table.add_row(t(lang, key), value)
    return table


class ShiftScreen(KassaScreen):
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.shift.1", "help.shift.2")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "bind.back", id="back"),
        Binding("p", "print", "bind.print", id="print_x_report"),
        Binding("f12", "close_shift", "bind.close_shift", id="close_shift"),
        Binding("enter", "confirm", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: XReport | None = None
        self.confirming = False
        self.preview = ""

    def compose_body(self) -> Iterable[Widget]:
        panel = Static("…", id="xreport", classes="panel")
        panel.border_title = self.t("shift.title")
        yield panel

    def on_mount(self) -> None:
        if self.kassa.services.training:  # F1 help names no F12 there (``check_action``)
            setattr(self, "HELP_LINES", ("help.shift.1", "training.shift_help"))  # noqa: B010
        self.request(ops.x_report)

    def on_xreport_ready(self, message: XReportReady) -> None:
        self.report = message.report
        self.query_one("#xreport", Static).update(report_table(message.report, self.lang))
        if self.kassa.services.training:  # the training shift: it ends with training
            self.say_t("training.shift_note")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In training F12 is not offered: the real shift is not closed from training,
        and the training shift ends when training does."""
        if action == "close_shift" and self.kassa.services.training:
            return None
        return True

    def action_print(self) -> None:
        self.request(ops.print_x_report)

    def on_report_queued(self, message: ReportQueued) -> None:
        if message.preview:  # the screen printer: show the report as the sale slip is shown
            self.preview = message.preview
            self.render_preview()
        self.say_t("shift.printed")

    def render_preview(self) -> None:
        panel = self.query_one("#xreport", Static)
        panel.border_title = self.t("slip.preview")
        panel.update(Text(self.preview))

    def action_close_shift(self) -> None:
        self.confirming = True
        self.say_t("shift.close_confirm")

    def action_confirm(self) -> None:
        if self.confirming:
            self.confirming = False
            self.request(ops.close_shift)

    def action_back(self) -> None:
        if self.confirming:
            self.confirming = False
            self.say("")
            return
        super().action_back()

    def on_shift_closed(self, message: ShiftClosed) -> None:
        self.kassa.signed_out(message)

    def relabel(self) -> None:
        panel = self.query_one("#xreport", Static)
        panel.border_title = self.t("shift.title")
        if self.preview:
            self.render_preview()
        elif self.report is not None:
            panel.update(report_table(self.report, self.lang))
        super().relabel()
