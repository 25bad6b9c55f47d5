"""The cashier app: routes between screens, owns the workers, holds the language.

``KassaApp(services)`` gets everything it runs on from the wiring (``kassa.wiring``:
``app_services``, or a test fixture); it starts the services' threads once the first
screen is up and stops them on exit. Screens
ask for core work with ``CoreRequested`` messages; ``_run_core`` runs them in thread
workers and posts the answer back. Key events pass through ``on_event`` first, where the
keyboard-wedge classifier turns scanner bursts into ``Scanned`` messages on any screen: a
key that may belong to a scan is held there until the App knows (no newer key queued, or
the burst is typing), so a burst delivered at once reaches no widget, and the keys after
a scan wait until the screen has taken it.

Routing: ``FLOWS`` maps a key to a screen class path; see ``tui/__init__.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import constants, events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input

from agent.errors import AgentError
from tui.i18n import LANGS, register_strings, t
from tui.keys import key_twins, with_layout_twins
from tui.messages import (
    CashiersListed,
    CoreFailed,
    CoreRequested,
    PrinterChanged,
    Scanned,
    ShiftClosed,
    ShiftOpened,
    StatusUpdated,
)
from tui.services import Services, StatusSnapshot

if TYPE_CHECKING:
    from textual.driver import Driver

    from drivers.wedge import WedgeClassifier

log = logging.getLogger("kassa.tui")

register_strings(
    {
        "quit.ask": (
            "Выйти из кассы? Не сохранится: {what}. Ctrl+Q или Enter — да, Esc — нет",
            "Quit the till? Not kept: {what}. Ctrl+Q or Enter - yes, Esc - no",
        ),
        "quit.ask_typed": (
            "Выйти из кассы? Не сохранится: {what}. Ctrl+Q — да, Esc — нет",
            "Quit the till? Not kept: {what}. Ctrl+Q - yes, Esc - no",
        ),
        "quit.kept": ("Выход отменён: всё на месте", "Not quitting: everything kept"),
    }
)


_QUIT_KEYS = frozenset({"ctrl+q", *key_twins("ctrl+q")})
"""Ctrl+Q as any layout reports it: pressed again it answers "quit?" with yes."""


@dataclass(frozen=True, slots=True)
class Flow:
    """One routed screen: ``key`` opens ``screen`` ("module:Class"); ``label`` is an i18n
    key; ``needs_shift``: only for a signed-in cashier."""

    key: str
    name: str
    label: str
    screen: str
    needs_shift: bool = True


FLOWS: tuple[Flow, ...] = (
    # Reserved keys (tui/__init__.py): F2 register, F3 refund, F4 lookup, F5 sync screen,
    # F9 training mode. Add one line per flow here.
    Flow("f2", "register", "bind.register", "tui.screens.register:RegisterScreen"),
    Flow("f3", "refund", "bind.refund", "tui.screens.refund:RefundScreen"),
    Flow("f4", "lookup", "bind.lookup", "tui.screens.lookup:LookupScreen"),
    Flow("f5", "sync", "bind.sync", "tui.screens.sync:SyncScreen"),
    Flow("f9", "training", "bind.training", "tui.screens.training:TrainingScreen"),
    Flow("f11", "shift", "bind.shift", "tui.screens.shift:ShiftScreen"),
)


def _flow_bindings() -> list[BindingType]:
    return [Binding(f.key, f"open_flow('{f.name}')", f.label, id=f.name) for f in FLOWS]


def _may_scan(key: events.Key) -> bool:
    """A key the wedge classifier counts as a character of a scan."""
    char = key.character
    return char is not None and len(char) == 1 and char.isprintable()


class KassaApp(App[int]):
    """The Textual cashier app; see the module docstring."""

    CSS_PATH = str(Path(__file__).with_name("kassa.tcss"))  # absolute: subclasses elsewhere
    TITLE = "Kassa"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = with_layout_twins(  # letters: both layouts
        [
            Binding("f1", "help", "bind.help", id="help"),
            *_flow_bindings(),
            Binding("f10", "toggle_language", "bind.language", id="language"),
            Binding("ctrl+q", "quit", "bind.quit", id="quit", priority=True),
        ]
    )
    STATUS_PERIOD_S = 1.0
    """How often the status bar is refreshed from the store (seconds)."""
    SCAN_TAKE_MAX_S = 0.5
    """The longest the keys after a scan wait for the screen to take it (seconds): the
    screen's widgets report back well before, unless the screen closed meanwhile."""

    def __init__(
        self,
        services: Services,
        *,
        wedge: WedgeClassifier | None = None,
        key_clock: Callable[[events.Key], float] | None = None,
        poll_status: bool = True,
    ) -> None:
        super().__init__()
        self.services = services
        self.lang = services.lang if services.lang in LANGS else "ru"
        self.wedge: WedgeClassifier | None = wedge
        """Built by the warm-up after the first screen; until then keys pass as typed."""
        self.key_clock = key_clock or (lambda e: e.time)
        """Seconds for the wedge classifier; tests inject a clock (Pilot adds ~80 ms/key)."""
        self.poll_status = poll_status
        self.last_status: StatusSnapshot | None = None
        self._printer_fault: PrinterChanged | None = None
        self.cashier_name: str | None = None
        self._before_burst: str | None = None
        self._held: list[events.Key] = []
        """Keys kept back from the widgets while they may be a scan (``on_event``)."""
        self._held_at = 0
        """How many keys have been held so far: a flush acts only for the newest one."""
        self._burst_held = 0
        """How many of the held keys (the newest) belong to the burst in progress."""
        self._scans_taken: set[int] = set()
        """Scans posted to the screen and not yet taken (their numbers): keys wait."""
        self._scan_seq = 0
        self._warming = False
        self._quit_asked = False
        """Ctrl+Q asked "quit?": the next key answers it (``_answer_quit``)."""

    def t(self, key: str, **fields: object) -> str:
        return t(self.lang, key, **fields)

    @property
    def printer_problem(self) -> str | None:
        """The printer's fault in the current language (kept as the worker's message, so
        a language switch re-labels it), or None."""
        fault = self._printer_fault
        if fault is None:
            return None
        return fault.message_en if self.lang == "en" else fault.message_ru

    @property
    def hints(self) -> list[str]:
        """Help lines for the sign-in screen (the demo's PINs and sample codes)."""
        return list(self.services.hints)

    # ------------------------------------------------------------------ life cycle
    def on_mount(self) -> None:
        from tui.screens.signin import SignInScreen

        self._exit_on_signals()
        self.push_screen(SignInScreen())
        # Fallback if the sign-in list never arrives (the store failed): warm up anyway.
        self.set_timer(2.0, self.warm_up)

    def on_cashiers_listed(self, message: CashiersListed) -> None:
        """The first usable screen is up: now load the rest and start the devices."""
        self.warm_up()

    def warm_up(self) -> None:
        if not self._warming:
            self._warming = True
            self._warm_up()

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        """Off the main thread: the scoring engine, the checkout screen, the wedge
        classifier, then the print worker, serial scanner and sync loop."""
        try:
            import tui.ops
            import tui.screens.checkout  # noqa: F401
            from drivers.wedge import WedgeClassifier

            if self.wedge is None:
                self.wedge = WedgeClassifier()
            self.services.start(self.post_message)
        except Exception:
            log.exception("starting the till's services failed")
        self.call_from_thread(self._warmed_up)

    def _warmed_up(self) -> None:
        self.refresh_status()
        if self.poll_status:
            self.set_interval(self.STATUS_PERIOD_S, self.refresh_status)

    def on_unmount(self) -> None:
        self.services.stop()

    def get_driver_class(self) -> type[Driver]:
        """On Linux, a driver that survives its terminal closing under it."""
        if sys.platform.startswith("linux") and constants.DRIVER is None:
            from tui.hangup import HangupSafeDriver

            return HangupSafeDriver
        return super().get_driver_class()

    STOP_SIGNALS = ("SIGTERM", "SIGHUP")
    """``kill``, a service manager's stop, the terminal window closed: each ends the app
    as Ctrl+Q does (terminal restored, services stopped), never by dying mid-screen."""

    def _exit_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for name in self.STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is None:  # Windows has no SIGHUP
                continue
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                # the loop's own handler: runs on the loop, safe to end the app from
                loop.add_signal_handler(number, self._stop_on_signal, number)

    def _stop_on_signal(self, number: int) -> None:
        log.warning("signal %s: closing the cashier app", signal.Signals(number).name)
        self.exit(return_code=128 + number)

    # ------------------------------------------------------------------ routing
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Flows that need a shift are hidden from the key bar until one is open."""
        if action == "open_flow" and parameters:
            flow = next((f for f in FLOWS if f.name == parameters[0]), None)
            if flow is not None and flow.needs_shift and self.services.shift is None:
                return None
        return True

    def signed_in(self, message: ShiftOpened) -> None:
        from tui.screens.checkout import CheckoutScreen

        self.cashier_name = message.cashier.name
        self.push_screen(CheckoutScreen())

    def signed_out(self, message: ShiftClosed) -> None:
        """Shift closed: back to sign-in (the report stays on the printer/preview)."""
        from tui.screens.signin import SignInScreen

        self.cashier_name = None
        while len(self.screen_stack) > 2:
            self.pop_screen()
        top = self.screen
        if isinstance(top, SignInScreen):
            top.say_t("shift.closed")
            top.refresh_chrome()

    def action_open_flow(self, name: str) -> None:
        flow = next(f for f in FLOWS if f.name == name)
        if flow.needs_shift and self.services.shift is None:
            self.bell()
            return
        module, _, cls = flow.screen.partition(":")
        screen_cls = getattr(importlib.import_module(module), cls)
        if type(self.screen) is screen_cls:
            return
        self.push_screen(screen_cls())

    def action_help(self) -> None:
        """F1: help over the current screen (its keys, what to do there); Esc closes it."""
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.screen))

    # ------------------------------------------------------------------ core workers
    def on_core_requested(self, message: CoreRequested) -> None:
        message.stop()
        target = message.reply_to if message.reply_to is not None else self.screen
        self._run_core(message.op, message.args, target)

    @work(thread=True, group="core", exit_on_error=False)
    def _run_core(self, op: Callable[..., Message], args: tuple[Any, ...], target: Any) -> None:
        name = getattr(op, "__name__", "op")
        reply: Message
        try:
            reply = op(self.services, *args)
        except AgentError as e:
            reply = CoreFailed(
                name, e.code, e.title_ru, e.message_ru, e.message_en, e.title_en, dict(e.details)
            )
        except Exception as e:  # a bug: show it, keep the till running
            log.exception("core operation %s failed", name)
            reply = CoreFailed(
                name,
                "unexpected",
                t("ru", "err.title"),
                f"{type(e).__name__}: {e}",
                str(e),
                t("en", "err.title"),
            )
        target.post_message(reply)

    # ------------------------------------------------------------------ status
    def refresh_status(self) -> None:
        self._read_status()

    @work(thread=True, group="status", exclusive=True, exit_on_error=False)
    def _read_status(self) -> None:
        try:
            snap = self.services.status()
        except Exception:
            log.exception("status read failed")
            return
        self.post_message(StatusUpdated(snap))

    def on_status_updated(self, message: StatusUpdated) -> None:
        before, now = self.last_status, message.snapshot
        self.last_status = now
        if not self.screen_stack:  # a late status while the app closes: nothing to show
            return
        self._refresh_bars()
        if before is not None and (before.events_waiting, before.last_contact) != (
            now.events_waiting,
            now.last_contact,
        ):  # the back office may have counted a shown member's events: re-read the card
            from tui.widgets.member import MemberCardView

            for view in self.screen.query(MemberCardView):
                view.sync_moved()

    def on_printer_changed(self, message: PrinterChanged) -> None:
        if message.kind == "fault":
            self._printer_fault = message
        elif message.kind in ("recovered", "printed"):
            self._printer_fault = None
        self._refresh_bars()
        self.refresh_status()

    def _refresh_bars(self) -> None:
        """Redraw the status bars of the screen shown; none while the app closes (a status
        read or printer event can land after the last screen left)."""
        from tui.widgets.status import StatusBar

        if not self.screen_stack:
            return
        for bar in self.screen.query(StatusBar):
            bar.refresh_from_app()

    # ------------------------------------------------------------------ language
    def action_toggle_language(self) -> None:
        self.lang = "en" if self.lang == "ru" else "ru"
        self.services.lang = self.lang
        for screen in self.screen_stack:
            relabel = getattr(screen, "relabel", None)
            if relabel is not None and screen.is_mounted:
                relabel()

    # ------------------------------------------------------------------ quitting
    def open_work(self) -> list[str]:
        """What quitting now would throw away: the i18n keys that screens with work open
        (a cheque, a half-filled form) give from ``open_work()``, bottom screen first."""
        found: list[str] = []
        for screen in self.screen_stack:
            ask = getattr(screen, "open_work", None)
            key = ask() if callable(ask) else None
            if isinstance(key, str) and key not in found:
                found.append(key)
        return found

    async def action_quit(self) -> None:
        """Ctrl+Q: quit at once with nothing open; with work open, ask first in F8's
        style: Ctrl+Q again or an empty Enter quits, Esc stays, any other key stays and
        is taken as the key it is (``_answer_quit``)."""
        work = self.open_work()
        if not work or self._quit_asked:
            self.exit()
            return
        while isinstance(self.screen, ModalScreen):  # F1 help: the question goes below
            await self.pop_screen()
        say = getattr(self.screen, "say", None)
        if not callable(say):
            self.exit()
            return
        self._quit_asked = True

        # Enter answers yes only on an empty field (a typed line's Enter is that line's):
        # the question names Enter only when it would quit.
        focused = self.focused
        key = (
            "quit.ask_typed" if isinstance(focused, Input) and focused.value.strip() else "quit.ask"
        )

        def text() -> str:
            return self.t(key, what=", ".join(self.t(k) for k in work))

        say(text, error=True)

    def _answer_quit(self, event: events.Key) -> bool:
        """The key after Ctrl+Q's question; True when it was the answer (used up)."""
        self._quit_asked = False
        say = getattr(self.screen, "say", None)
        if event.key == "escape":
            event.prevent_default()
            event.stop()
            if callable(say):
                say(lambda: self.t("quit.kept"))
            return True
        focused = self.focused
        if event.key == "enter" and not (isinstance(focused, Input) and focused.value.strip()):
            event.prevent_default()
            event.stop()
            self.exit()
            return True
        if callable(say):
            say("")  # the question is closed; the key goes on to do what it does
        return False

    # ------------------------------------------------------------------ devices
    def on_scanned(self, message: Scanned) -> None:
        """A serial scan arrives at the App (posted from the reader thread): hand it to
        the active screen. It answers Ctrl+Q's question as any other input: no."""
        self._quit_asked = False
        self.screen.post_message(Scanned(message.text, message.source))

    async def on_event(self, event: events.Event) -> None:
        """Keys enter here before any widget sees them. With the wedge classifier up, a
        printable key that may belong to a scan is held (``_hold``) until the App's queue
        has no newer key or the burst turns out to be typing; a scan's held keys are
        dropped, so a burst delivered at once (a fast scanner, a driver's whole read, a
        paste) reaches no widget. While a scan is being taken by the screen, every key
        that follows waits (``_scans_taken``) and then goes, in order, to the widget the
        scan left the focus on."""
        key = event if isinstance(event, events.Key) else None
        if key is None or key.is_forwarded:
            # Not a key, or a key bubbling back up: Textual checks the focused widget's
            # bindings now (Enter on a list), so it must reach the App's handler.
            await super().on_event(event)
            return
        if self._quit_asked and key.key not in _QUIT_KEYS and self._answer_quit(key):
            return
        if self.wedge is None:
            await super().on_event(key)
            return
        d = self.wedge.feed(key.key, key.character, self.key_clock(key), event_id=key)
        if d.kind == "duplicate":
            await super().on_event(key)
            return
        if d.burst_start:
            self._burst_held = 0
            focused = self.focused
            self._before_burst = focused.value if isinstance(focused, Input) else None
        if d.kind == "scan":
            key.prevent_default()
            key.stop()
            held = min(self._burst_held, d.erase)
            if held:
                del self._held[-held:]
            self._burst_held = 0
            focused = self.focused
            if held < d.erase and isinstance(focused, Input) and self._before_burst is not None:
                # Some of the burst's characters went on to the field and may still sit
                # in its queue: restore its value after them, not now.
                focused.call_later(setattr, focused, "value", self._before_burst)
            self._before_burst = None
            self._scan_seq += 1
            token = self._scan_seq
            self._scans_taken.add(token)
            scanned = Scanned(d.text, "wedge", d.layout_repaired, d.raw)
            passed_on = held < d.erase and focused is not None
            self._post_scan(focused if passed_on else self.screen, self.screen, scanned, token)
            # A screen closed under the scan never runs the chain: the keys go on anyway.
            self.set_timer(self.SCAN_TAKE_MAX_S, partial(self._scan_done, token))
            return
        if _may_scan(key) and d.kind == "key":
            self._burst_held += 1
        else:
            self._burst_held = 0
            if not self._scans_taken:
                await self._flush_held()
                await super().on_event(key)
                return
        self._hold(key)

    def _hold(self, key: events.Key) -> None:
        """Keep ``key`` back; it is passed on once no newer key is queued behind it (the
        callback is queued after every key already waiting) and no scan is being taken."""
        self._held.append(key)
        self._held_at += 1
        self.call_later(self._flush_if_last, self._held_at)

    async def _flush_if_last(self, at: int) -> None:
        if at == self._held_at and not self._scans_taken:
            await self._flush_held()

    async def _flush_held(self) -> None:
        """Pass the held keys on, in order, as if each had just arrived."""
        held, self._held = self._held, []
        self._burst_held = 0
        for key in held:
            await super().on_event(key)

    def _post_scan(self, node: Any, screen: Any, scanned: Scanned, token: int) -> None:
        """Post ``scanned`` to ``screen`` once ``node`` and each parent up to the screen
        have handled what they had queued: a key of the burst passed on to the focused
        widget bubbles up that way (a list hands a digit to its screen), so the screen
        takes the scan after those keys, never before."""
        if node is None or node is screen or not node.is_attached:
            screen.post_message(scanned)
            screen.call_later(self._after_scan_handled, screen, token)
        elif not node.call_later(self._post_scan, node.parent, screen, scanned, token):
            self._post_scan(node.parent, screen, scanned, token)

    def _after_scan_handled(self, screen: Any, token: int) -> None:
        """Runs on ``screen`` after it handled the ``Scanned`` message: each of its widgets
        runs what that handler queued for it (a field filled, the focus moved: the focus
        change is queued on the App), then ``_scan_done`` runs on the App after those."""
        widgets = [w for w in screen.walk_children() if w.is_attached]
        left = [len(widgets)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                self.call_later(self._scan_done, token)

        sent = sum(1 for w in widgets if w.call_later(one_done))
        left[0] -= len(widgets) - sent
        if not sent:
            self.call_later(self._scan_done, token)

    async def _scan_done(self, token: int) -> None:
        if token not in self._scans_taken:
            return
        self._scans_taken.discard(token)
        if not self._scans_taken:
            await self._flush_held()

    def push_screen(self, screen: Any, *args: Any, **kw: Any) -> Any:
        if self.wedge is not None:
            self.wedge.reset()
        return super().push_screen(screen, *args, **kw)
