"""Register a member at the till (F2): phone, first name, birthday (optional), the two
consents read out and ticked, then the welcome bonus and a QR for the customer.

Works offline: ``Agent.register`` writes the member to the local cache as provisional and
journals the registration (consent text version, time, cashier); the back office merges
a phone registered twice offline. The QR on screen carries the new member code: the
member app's "add card" scan reads it to finish the profile, and any till identifies the
member by it. Tab moves between fields, Space ticks a box, F12 registers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Static

from agent.errors import InputError
from agent.service import Registration
from drivers import qr
from tui.i18n import points, register_strings
from tui.messages import CoreFailed
from tui.screens.base import KassaScreen
from tui.services import Services

register_strings(
    {
        "register.title": ("Регистрация участника", "Member registration"),
        "register.phone": ("Телефон (+7 …)", "Phone (+7 …)"),
        "register.name": ("Имя", "First name"),
        "register.birthday": ("День рождения ДД.ММ.ГГГГ (необяз.)", "Birthday DD.MM.YYYY (opt.)"),
        "register.consent_rules": (
            "Согласен(на) с правилами программы (прочитаны вслух)",
            "Agrees to the programme rules (read out)",
        ),
        "register.consent_marketing": (
            "Согласен(на) получать рекламные сообщения",
            "Agrees to receive marketing messages",
        ),
        "register.consent_version": (
            "Текст согласия, редакция {v}",
            "Consent text, version {v}",
        ),
        "register.hint": (
            "Tab — поле, Пробел — отметить, F12 — зарегистрировать",
            "Tab: next field, Space: tick, F12: register",
        ),
        "register.done": ("Участник зарегистрирован", "Member registered"),
        "register.code": ("Номер участника", "Member code"),
        "register.welcome": ("Приветственный бонус", "Welcome bonus"),
        "register.provisional": (
            "Без связи: карта предварительная, бэк-офис подтвердит позже",
            "Offline: provisional card, the back office confirms it later",
        ),
        "register.qr": (
            "Покажите покупателю: QR для приложения и профиля",
            "Show the customer: QR for the app and the profile",
        ),
        "register.again": ("F12 — следующая регистрация", "F12: next registration"),
        "bind.register_submit": ("Зарегистрировать", "Register"),
    }
)


@dataclass(frozen=True, slots=True)
class RegisterForm:
    """What the cashier entered, as plain data for the worker."""

    phone: str
    first_name: str
    birthday: str
    consent_programme: bool
    consent_marketing: bool


@dataclass
class MemberRegistered(Message):
    registration: Registration
    offline: bool
    consent_text_version: str


_BIRTHDAY = (
    re.compile(r"(?P<d>\d{1,2})([./-])(?P<m>\d{1,2})\2(?P<y>\d{4})"),
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
)
"""``DD.MM.YYYY`` (also with ``/`` or ``-``) and ISO ``YYYY-MM-DD``."""


def parse_birthday(text: str) -> date | None:
    """``DD.MM.YYYY`` (also with ``/`` or ``-``) -> date; empty -> None. A date in the
    right format that is not on the calendar (31.02.1990) is named as such, not as a
    format error."""
    raw = text.strip()
    if not raw:
        return None
    for pattern in _BIRTHDAY:
        m = pattern.fullmatch(raw)
        if m is None:
            continue
        try:
            return date(int(m["y"]), int(m["m"]), int(m["d"]))
        except ValueError:
            raise InputError(
                f"birthday {raw!r}: there is no such date",
                f"дата рождения «{raw}»: такой даты нет",
                field="birthday",
            ) from None
    raise InputError(
        f"birthday {raw!r} is not DD.MM.YYYY",
        f"дата рождения «{raw}»: нужен формат ДД.ММ.ГГГГ",
        field="birthday",
    )


def register_member(s: Services, form: RegisterForm) -> MemberRegistered:
    """Register (worker). Every check happens before anything is written."""
    birthday = parse_birthday(form.birthday)
    version = s.agent.programme().consent_text_version
    reg = s.agent.register(
        phone=form.phone,
        first_name=form.first_name,
        birthday=birthday,
        consent_programme=form.consent_programme,
        consent_marketing=form.consent_marketing,
        cashier_id=s.cashier.cashier_id if s.cashier else None,
        consent_text_version=version,
    )
    return MemberRegistered(reg, not s.agent.offline_status().online, version)


@dataclass
class ConsentVersion(Message):
    version: str


def consent_version(s: Services) -> ConsentVersion:
    return ConsentVersion(s.agent.programme().consent_text_version)


class RegisterScreen(KassaScreen):
    DEFAULT_CSS = """
    #register-form { height: 1fr; }
    #register-form Input { width: 60; }
    #register-form Checkbox { border: none; padding: 0; }
    #consent-version { color: $text-muted; padding: 0 1; }
    #register-done { height: 1fr; }
    #register-result { width: 1fr; }
    #register-qr { width: auto; }
    """
    HELP_LINES: ClassVar[tuple[str, ...]] = (
        "help.register.1",
        "help.register.2",
        "help.register.3",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "submit", "bind.register_submit", id="register_submit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.version = ""
        self.done: MemberRegistered | None = None
        self.busy = False

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="register-form", classes="panel") as form:
            form.border_title = self.t("register.title")
            yield Input(placeholder=self.t("register.phone"), id="phone")
            yield Input(placeholder=self.t("register.name"), id="first-name")
            yield Input(placeholder=self.t("register.birthday"), id="birthday")
            yield Static("", id="consent-version", classes="dim-line")
            yield Checkbox(self.t("register.consent_rules"), id="consent-rules")
            yield Checkbox(self.t("register.consent_marketing"), id="consent-marketing")
        with Horizontal(id="register-done", classes="panel"):
            yield Static("", id="register-result")
            yield Static("", id="register-qr")

    def on_mount(self) -> None:
        self.query_one("#register-done").display = False
        self.request(consent_version)
        self.query_one("#phone", Input).focus()
        self.say_t("register.hint")

    def on_consent_version(self, message: ConsentVersion) -> None:
        self.version = message.version
        self._render_version()

    def _render_version(self) -> None:
        self.query_one("#consent-version", Static).update(
            self.t("register.consent_version", v=self.version) if self.version else ""
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def form(self) -> RegisterForm:
        return RegisterForm(
            self.query_one("#phone", Input).value,
            self.query_one("#first-name", Input).value,
            self.query_one("#birthday", Input).value,
            self.query_one("#consent-rules", Checkbox).value,
            self.query_one("#consent-marketing", Checkbox).value,
        )

    def action_submit(self) -> None:
        if self.done is not None:
            self.reset()
            return
        if self.busy:
            return
        self.busy = True
        self.request(register_member, self.form())

    def on_core_failed(self, message: CoreFailed) -> None:
        self.busy = False
        super().on_core_failed(message)

    def on_member_registered(self, message: MemberRegistered) -> None:
        self.busy = False
        self.done = message
        self.query_one("#register-form").display = False
        self.query_one("#register-done").display = True
        self._render_done()
        self.say_t("register.again")

    def _render_done(self) -> None:
        if self.done is None:
            return
        reg = self.done.registration
        card = reg.card
        body = Text()
        body.append(self.t("register.done") + "\n", style="bold green")
        body.append(f"{card.first_name}  {card.phone_masked or ''}\n")
        body.append(f"{self.t('register.code')}: ", style="dim")
        body.append(f"{card.code}\n", style="bold")
        body.append(f"{self.t('register.welcome')}: ", style="dim")
        body.append(f"+{points(self.lang, reg.welcome_points)}\n", style="bold green")
        body.append(self.t("register.consent_version", v=self.done.consent_text_version) + "\n")
        if card.provisional and self.done.offline:
            body.append("\n" + self.t("register.provisional") + "\n", style="yellow")
        body.append("\n" + self.t("register.qr"), style="italic")
        self.query_one("#register-result", Static).update(body)
        symbol = qr.text(qr.matrix(reg.qr_payload)).rstrip("\n")
        self.query_one("#register-qr", Static).update(Text(symbol, style="bright_white on black"))

    def reset(self) -> None:
        self.done = None
        for field in ("#phone", "#first-name", "#birthday"):
            self.query_one(field, Input).value = ""
        for box in ("#consent-rules", "#consent-marketing"):
            self.query_one(box, Checkbox).value = False
        self.query_one("#register-form").display = True
        self.query_one("#register-done").display = False
        self.query_one("#phone", Input).focus()
        self.say_t("register.hint")

    def relabel(self) -> None:
        super().relabel()
        self.query_one("#register-form").border_title = self.t("register.title")
        self.query_one("#phone", Input).placeholder = self.t("register.phone")
        self.query_one("#first-name", Input).placeholder = self.t("register.name")
        self.query_one("#birthday", Input).placeholder = self.t("register.birthday")
        self.query_one("#consent-rules", Checkbox).label = self.t("register.consent_rules")
        self.query_one("#consent-marketing", Checkbox).label = self.t("register.consent_marketing")
        self._render_version()
        self._render_done()
