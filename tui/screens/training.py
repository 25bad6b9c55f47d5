"""Training mode (F9): switch the till to a training copy and back.

On: ``agent.training.open_training_store`` makes a fresh copy of the till's store; the
cashier app then runs on it (the Agent, the print queue) while the real store stays as
it was. The sync client keeps its own reference to the real store, so the real journal
still drains in the background and nothing from the copy can reach it; the copy's
journal is never pending and its slips are marked «УЧЕБНЫЙ РЕЖИМ» (see agent/training.py).
Training has a shift of its own, opened in the copy as training starts
(``agent.training.start_training_shift``): the X report (F11) shows the training cheques
from that time, and F12 there is not offered (the shift screen says so): the real shift
can be neither reported on nor closed from training, and the training shift ends with it.
Off: back to the real store and the real shift; the copy is closed and deleted with all
its files (also when the app closes while training).

The status bar shows the training mark on every screen while it is on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from agent.errors import InputError
from agent.training import discard_training_store, open_training_store, start_training_shift
from tui.i18n import register_strings
from tui.messages import CoreFailed, Scanned
from tui.screens.base import KassaScreen
from tui.screens.checkout import CheckoutScreen
from tui.services import Services

register_strings(
    {
        "training.title": ("Учебный режим", "Training mode"),
        "training.is_on": ("Сейчас: УЧЕБНЫЙ РЕЖИМ", "Now: TRAINING MODE"),
        "training.is_off": ("Сейчас: рабочий режим", "Now: live mode"),
        "training.explain": (
            "В учебном режиме всё работает, но ничего не уходит в программу: продажи, "
            "возвраты и регистрации пишутся в учебную копию кассы, не в журнал; "
            "балансы покупателей не меняются; на слипах — «УЧЕБНЫЙ РЕЖИМ».",
            "In training everything works but nothing reaches the programme: sales, "
            "refunds and registrations go to a training copy of the till, not the "
            "journal; members' balances do not change; slips say «УЧЕБНЫЙ РЕЖИМ».",
        ),
        "training.on_hint": ("Enter — включить учебный режим", "Enter: switch training on"),
        "training.off_hint": (
            "Enter — выйти из учебного режима (учебные данные будут удалены)",
            "Enter: leave training (training data is discarded)",
        ),
        "training.off": ("Учебный режим выключен", "Training mode off"),
        "bind.training_toggle": ("Вкл/выкл", "On/off"),
        "training.shift_note": (
            "Учебная смена: отчёт — только учебные чеки с её открытия; закрывать не нужно — "
            "она закроется при выходе из учебного режима (F9)",
            "Training shift: the report shows only training cheques since it opened; no "
            "need to close it: it closes when you leave training (F9)",
        ),
        "training.shift_help": (
            "Учебная смена закроется сама при выходе из учебного режима (F9)",
            "The training shift closes by itself when you leave training (F9)",
        ),
        "training.drop_ask": (
            "Открыт чек — он будет отменён. Enter — переключить режим, Esc — вернуться к чеку",
            "A cheque is open and will be cancelled. Enter: switch mode, Esc: keep the cheque",
        ),
        "training.drop_kept": (
            "Режим не переключён, чек сохранён: Esc — к чеку",
            "Mode not switched, the cheque is kept: Esc to return to it",
        ),
        "training.drop_ask_work": (
            "Не сохранится: {what}. Enter — переключить режим, Esc — вернуться",
            "Will be lost: {what}. Enter: switch mode, Esc: go back",
        ),
        "training.work_kept": (
            "Режим не переключён, всё на месте: Esc — назад",
            "Mode not switched, nothing is lost: Esc to go back",
        ),
        "training.working": (
            "Готовлю учебную копию кассы…",
            "Preparing the training copy of the till…",
        ),
    }
)


@dataclass
class TrainingToggled(Message):
    on: bool


_REAL = "_training_real"
"""Attribute on ``Services`` holding the real store, cashier and shift while training."""


_CLOSER = "_training_closer"


def _discard_current(s: Services) -> None:
    if getattr(s, _REAL, None) is not None:
        discard_training_store(s.agent.store)


def switch_training(s: Services, on: bool) -> TrainingToggled:
    """Switch training on or off (worker). Needs an open shift: a cashier trains signed in.

    The till's service and print worker move to the training copy and back
    (``Till.use_store``); the sync client stays bound to the real store."""
    real: tuple[Any, Any, Any] | None = getattr(s, _REAL, None)
    if on == (real is not None):
        return TrainingToggled(on)
    if on:
        if s.shift is None:
            raise InputError("no shift is open", "смена не открыта: войдите в систему")
        s.sync  # noqa: B018 - bind the sync client to the real store before the swap
        live = s.agent
        copy = open_training_store(live.store, live.clock.now())
        try:
            training_shift = start_training_shift(copy, s.shift.cashier_id, live.clock.now())
        except BaseException:
            discard_training_store(copy)
            raise
        setattr(s, _REAL, (live.store, s.cashier, s.shift))
        if not getattr(s, _CLOSER, False):  # app exit while training: drop the copy
            s.on_close.insert(0, lambda: _discard_current(s))
            setattr(s, _CLOSER, True)
        s.till.use_store(copy)
        s.training = True
        s.shift = training_shift
        return TrainingToggled(True)
    assert real is not None
    copy = s.agent.store
    store, cashier, shift = real
    s.till.use_store(store)
    setattr(s, _REAL, None)
    s.training = False
    discard_training_store(copy)
    # The training shift (or any shift opened in the copy) ended with it: the real one
    # (still open: training never closes it) is the cashier's shift again.
    s.cashier, s.shift = cashier, shift
    return TrainingToggled(False)


@dataclass
class TrainingState(Message):
    on: bool


def training_state(s: Services) -> TrainingState:
    return TrainingState(bool(s.training))


class TrainingScreen(KassaScreen):
    DEFAULT_CSS = """
    #training-box { height: 1fr; }
    """
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.training.1", "help.training.2")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "switch", "bind.training_toggle", id="training_toggle"),
        Binding("f9", "switch", "bind.training_toggle", id="training_toggle_f9", show=False),
    ]

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="training-box", classes="panel") as box:
            box.border_title = self.t("training.title")
            yield Static("", id="training-body")

    def __init__(self) -> None:
        super().__init__()
        self.on: bool | None = None  # unknown until the worker answers
        self.busy = False  # a switch is under way: another Enter must not switch back
        self.drop_asked = False  # a cheque is open underneath: Enter again drops it

    def on_mount(self) -> None:
        self.request(training_state)

    def on_training_state(self, message: TrainingState) -> None:
        self.on = message.on
        self.render_all()

    def render_all(self) -> None:
        self.query_one("#training-box", VerticalScroll).border_title = self.t("training.title")
        body = Text()
        if self.on is None:
            return
        if self.on:
            body.append(self.t("training.is_on") + "\n\n", style="bold black on yellow")
        else:
            body.append(self.t("training.is_off") + "\n\n", style="bold")
        body.append(self.t("training.explain") + "\n\n")
        body.append(self.t("training.off_hint" if self.on else "training.on_hint"), style="bold")
        self.query_one("#training-body", Static).update(body)

    def _open_work(self) -> list[str]:
        """What switching would throw away (i18n keys): a cheque in progress or a
        half-filled form on any screen under this one (F9 pressed over F11 or F2 too),
        as Ctrl+Q and F12 name it. Switching starts a new cheque on the other store."""
        return [key for key in self.kassa.open_work() if key]

    def action_switch(self) -> None:
        if self.on is None or self.busy:
            return
        work = self._open_work()
        if work and not self.drop_asked:
            self.drop_asked = True
            if work == ["quit.what.cheque"]:
                self.say_t("training.drop_ask", error=True)
            else:
                what = ", ".join(self.t(key) for key in work)
                self.say(lambda: self.t("training.drop_ask_work", what=what), error=True)
            return
        self.drop_asked = False
        self.busy = True
        if not self.on:
            self.say_t("training.working")
        self.request(switch_training, not self.on)

    def action_back(self) -> None:
        """Esc: keep the open cheque the switch asked about, else back to checkout."""
        if self.drop_asked:
            self.drop_asked = False
            work = self._open_work()
            self.say_t(
                "training.drop_kept" if work == ["quit.what.cheque"] else "training.work_kept"
            )
            return
        super().action_back()

    def on_core_failed(self, message: CoreFailed) -> None:
        self.busy = False
        super().on_core_failed(message)

    def on_scanned(self, message: Scanned) -> None:
        """A scan is for the cheque: back to checkout with it (training unchanged)."""
        message.stop()
        if self.busy:
            return
        stack = self.app.screen_stack
        under = stack[-2] if len(stack) > 1 else None
        self.app.pop_screen()
        if under is not None:
            under.post_message(Scanned(message.text, message.source, message.layout_repaired))

    def on_training_toggled(self, message: TrainingToggled) -> None:
        self.busy = False
        self.kassa.refresh_status()
        # Back to checkout with a new cheque: nothing half-built crosses the switch. The
        # screens opened over the checkout (an X report, a refund, a form) showed the other
        # store, so they close too; the checkout's cheque number is the other store's.
        self.app.pop_screen()
        stack = self.app.screen_stack
        if any(isinstance(screen, CheckoutScreen) for screen in stack):
            while not isinstance(self.app.screen_stack[-1], CheckoutScreen):
                self.app.pop_screen()
        top: Any = self.app.screen_stack[-1]
        reset = getattr(top, "reset", None)
        if callable(reset):
            reset()
        say_t = getattr(top, "say_t", None)
        if callable(say_t):  # re-labelled on a language switch; after the screen's resume
            # (which sets its own message line), so the switch is what the line says
            top.call_later(say_t, "training.on" if message.on else "training.off")

    def relabel(self) -> None:
        super().relabel()
        self.render_all()
