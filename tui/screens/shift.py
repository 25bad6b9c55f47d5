"""The shift: the X-report of the loyalty operations on screen; print it; close the shift.

F11 from checkout. P prints the X report (the receipt printer or the on-screen preview,
PageUp/PageDown scroll it); F12 asks to close the shift (Enter confirms, Esc cancels);
closing queues the Z report on the printer and the App returns to sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from tui import ops_shift as ops
from tui.i18n import register_strings
from tui.messages import ReportQueued, ShiftClosed, XReportReady
from tui.screens.base import KassaScreen
from tui.widgets.slip import hide_slip, scroll_slip, show_slip

register_strings(
    {
        "xr.number": ("Смена №", "Shift no."),
        "xr.coupons": ("Чеков с купоном", "Cheques with a coupon"),
        "xr.coupon_kop": ("  скидка по купонам", "  coupon discount"),
        "help.shift.3": ("PgUp/PgDn — листать отчёт", "PgUp/PgDn - scroll the report"),
    }
)

if TYPE_CHECKING:
    from agent.results import XReport


def report_table(report: XReport, lang: str) -> Table:
    """The X-report on screen: the shift and its sales on the left, refunds, points and
    coupons on the right, so the whole report fits a 24-line terminal (pure: the screen
    and the tests share it)."""
    from tui.i18n import money, points, t

    s = report.shift
    left = [
        ("xr.cashier", s.cashier_name),
        ("xr.number", str(s.number) if s.number else s.shift_id[:8]),
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
        ("xr.registrations", str(report.registrations)),
    ]
    right = [
        ("xr.earned", points(lang, report.points_earned)),
        ("xr.spent", points(lang, report.points_spent)),
        ("xr.refunds", str(report.refunds)),
        ("xr.refund_kop", money(lang, report.refund_kop)),
        ("xr.reversed", points(lang, report.points_reversed)),
        ("xr.returned", points(lang, report.points_returned)),
        ("xr.coupons", str(report.coupons)),
        ("xr.coupon_kop", money(lang, report.coupon_kop)),
    ]
    table = Table.grid(padding=(0, 1))
    table.add_column()
    table.add_column(justify="right")
    table.add_column(width=2)
    table.add_column()
    table.add_column(justify="right")
    for i in range(max(len(left), len(right))):
        lk, lv = left[i] if i < len(left) else ("", "")
        rk, rv = right[i] if i < len(right) else ("", "")
        table.add_row(t(lang, lk) if lk else "", lv, "", t(lang, rk) if rk else "", rv)
    return table


class ShiftScreen(KassaScreen):
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.shift.1", "help.shift.2", "help.shift.3")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "bind.back", id="back"),
        Binding("p", "print", "bind.print", id="print_x_report"),
        Binding("f12", "close_shift", "bind.close_shift", id="close_shift"),
        Binding("enter", "confirm", show=False),
        Binding("pageup", "scroll_report(-1)", show=False),
        Binding("pagedown", "scroll_report(1)", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: XReport | None = None
        self.confirming = False
        self.preview = ""

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="xreport", classes="panel") as panel:
            panel.border_title = self.t("shift.title")
            panel.can_focus = False  # PageUp/PageDown scroll it
            yield Static("…", id="xreport-body")

    def on_mount(self) -> None:
        if self.kassa.services.training:  # F1 help names no F12 there (``check_action``)
            lines = ("help.shift.1", "training.shift_help", "help.shift.3")
            setattr(self, "HELP_LINES", lines)  # noqa: B010
        self.request(ops.x_report)

    def on_xreport_ready(self, message: XReportReady) -> None:
        self.report = message.report
        self.query_one("#xreport-body", Static).update(report_table(message.report, self.lang))
        if self.kassa.services.training:  # the training shift: it ends with training
            self.say_t("training.shift_note")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In training F12 is not offered: the real shift is not closed from training,
        and the training shift ends when training does."""
        if action == "close_shift" and self.kassa.services.training:
            return None
        return True

    def action_print(self) -> None:
        self.confirming = False  # another key answers the close question with no
        self.request(ops.print_x_report)

    def on_report_queued(self, message: ReportQueued) -> None:
        if message.preview:  # the screen printer: show the report as the sale slip is shown
            self.preview = message.preview
            self.render_preview()
        self.say_t("shift.printed")

    def render_preview(self) -> None:
        panel = self.query_one("#xreport", VerticalScroll)
        show_slip(panel, self.query_one("#xreport-body", Static), self.preview, self.lang)

    def action_scroll_report(self, pages: int) -> None:
        scroll_slip(self.query_one("#xreport", VerticalScroll), pages)

    def action_close_shift(self) -> None:
        """F12 asks first (F12 again or Enter closes) and names what closing would throw
        away: a cheque or a half-filled form left open under this screen."""
        if self.confirming:
            self.action_confirm()
            return
        self.confirming = True
        work = [key for key in self.kassa.open_work() if key]
        if work:
            self.say(
                lambda: self.t(
                    "shift.close_confirm_work", what=", ".join(self.t(key) for key in work)
                ),
                error=True,
            )
        else:
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
        panel = self.query_one("#xreport", VerticalScroll)
        panel.border_title = self.t("shift.title")
        hide_slip(panel)
        if self.preview:
            self.render_preview()
        elif self.report is not None:
            self.query_one("#xreport-body", Static).update(report_table(self.report, self.lang))
        super().relabel()
