"""Register a member at the till (F2): phone, first name, birthday (optional), the two
consents read out and ticked, then the welcome bonus and a QR for the customer.

Works offline: ``Agent.register`` writes the member to the local cache as provisional and
journals the registration (consent text version, time, cashier); the back office merges
a phone registered twice offline. The QR on screen carries the new member code: the
member app's "add card" scan reads it to finish the profile, and any till identifies the
member by it. Tab moves between fields, Space ticks a box, F12 registers.

Nothing typed is thrown away without a word: Esc on a form with anything in it asks first
(Enter leaves, Esc or any other key stays, and that key does what it does); so does Ctrl+Q
(``open_work``). A scan or a fast paste (the keyboard wedge takes a burst ending in Tab or
Enter as a scan) fills a field: a phone goes into the phone field, other text into the
field that has the focus, as it was typed (no layout repair); a member card or app QR is
someone already in the programme, and Enter opens them at the checkout. A phone that is
already registered offers the same. After a registration Enter takes the new member to
the checkout (the first purchase may spend the welcome bonus), and typing starts the next
form with what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Literal

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Static

from agent.errors import InputError
from agent.identify import TOKEN_PREFIX_RE, looks_like_member_code
from agent.results import Registration
from drivers import qr
from tui.entry import parse_entry
from tui.i18n import points, register_strings
from tui.messages import CoreFailed, MemberIdentified, Scanned
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
        "register.welcome_now": ("можно списать сразу", "spendable at once"),
        "register.welcome_now_offline": (
            "можно списать сразу, без связи — в пределах офлайн-лимитов",
            "spendable at once; offline within the offline limits",
        ),
        "register.welcome_after_sync": (
            "списать можно после подтверждения регистрации бэк-офисом",
            "spendable once the back office confirms the registration",
        ),
        "register.provisional": (
            "Без связи: карта предварительная, бэк-офис подтвердит позже",
            "Offline: provisional card, the back office confirms it later",
        ),
        "register.qr": (
            "Покажите покупателю: QR для приложения и профиля",
            "Show the customer: QR for the app and the profile",
        ),
        "register.again": (
            "Enter — к покупке с участником, F12 — следующая регистрация, Esc — на кассу",
            "Enter: to a purchase with the member, F12: next registration, Esc: to the till",
        ),
        "register.leave_ask": (
            "Бросить анкету? Введённое не сохранится. Enter — да, Esc — нет",
            "Drop this form? What was entered is lost. Enter - yes, Esc - no",
        ),
        "register.kept": ("Анкета на месте", "The form is kept"),
        "register.busy": (
            "Идёт регистрация: дождитесь ответа",
            "Registering: wait for the answer",
        ),
        "register.member_scanned": (
            "Это карта участника {name} ({code}): он уже в программе. "
            "Enter — открыть его на кассе, Esc — остаться",
            "This is the card of member {name} ({code}), already in the programme. "
            "Enter - open them at the till, Esc - stay",
        ),
        "register.phone_taken": (
            "Телефон уже зарегистрирован: участник {code}. "
            "Enter — открыть его на кассе, Esc — исправить телефон",
            "This phone is already registered: member {code}. "
            "Enter - open them at the till, Esc - correct the phone",
        ),
        "register.coupon_scanned": (
            "Это купон, а не карта: отсканируйте его на кассе, в чеке",
            "This is a coupon, not a card: scan it at the till, on the cheque",
        ),
        "register.scan_no_field": (
            "Считано «{text}»: встаньте в поле анкеты (Tab) и повторите",
            'Read "{text}": move to a form field (Tab) and scan again',
        ),
        "register.scan_filled": ("Считано в поле: {field}", "Read into the field: {field}"),
        "register.what.form": ("незаконченная анкета участника", "the unfinished member form"),
        "bind.register_submit": ("Зарегистрировать", "Register"),
        "how.registration": ("регистрация", "registration"),
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


_LAYOUT_DOTS = str.maketrans(dict.fromkeys("юЮбБ,", "."))
"""The full stop's key and its neighbour typed under the Russian layout (``ю``, ``б``), and
that layout's own Shift+/ comma: read as the date's dots."""


def parse_birthday(text: str) -> date | None:
    """``DD.MM.YYYY`` (also with ``/`` or ``-``; the dots typed under the Russian layout,
    ``05ю03ю1990``, are dots too) -> date; empty -> None. A date in the right format that
    is not on the calendar (31.02.1990) is named as such, not as a format error."""
    raw = text.strip()
    if not raw:
        return None
    for pattern in _BIRTHDAY:
        m = pattern.fullmatch(raw.translate(_LAYOUT_DOTS))
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
    done = s.agent.register_at_till(
        phone=form.phone,
        first_name=form.first_name,
        birthday=parse_birthday(form.birthday),
        consent_programme=form.consent_programme,
        consent_marketing=form.consent_marketing,
        cashier_id=s.cashier.cashier_id if s.cashier else None,
    )
    return MemberRegistered(done.registration, done.offline, done.consent_text_version)


@dataclass
class ConsentVersion(Message):
    version: str


def consent_version(s: Services) -> ConsentVersion:
    return ConsentVersion(s.agent.programme().consent_text_version)


class TickBox(Checkbox):
    """A consent box whose mark says ticked or not without colour: ``[x]`` / ``[ ]``
    (Textual's box draws the same X both ways, only its colour changes)."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.styled("[x]" if self.value else "[ ]", style)


class FormInput(Input):
    """A form field that tells its screen of each typed character first: a character is an
    answer too ("no" to a pending question), and ``Input`` stops it before the screen."""

    def __init__(self, *, placeholder: str, id: str) -> None:
        # No select-all on focus: a field re-entered with Tab (or after a scan moved on)
        # is edited, not replaced by the first character typed.
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)

    async def _on_key(self, event: events.Key) -> None:
        screen = self.screen
        if event.is_printable and isinstance(screen, RegisterScreen):
            screen.typed_over_question()
        await super()._on_key(event)


ScanKind = Literal["member", "coupon", "phone", "text"]

FIELDS: tuple[str, ...] = ("#phone", "#first-name", "#birthday")
"""The form's text fields, in Tab order."""

_LABEL_OF = {
    "#phone": "register.phone",
    "#first-name": "register.name",
    "#birthday": "register.birthday",
}
"""A text field -> the i18n key of its label."""

_FIELD_OF = {"phone": "#phone", "first_name": "#first-name", "birthday": "#birthday"}
"""An error's ``field`` (or its code) -> the widget that holds the value at fault."""


def scan_kind(text: str) -> ScanKind:
    """What a scan (or a fast paste) on the form is: a member card or app QR (``member``),
    a coupon, a phone number (10+ digits, phone punctuation only), or other ``text``."""
    body = text.strip()
    upper = body.upper()
    if upper.startswith("KC1:"):
        return "coupon"
    if upper.startswith("]Q") or TOKEN_PREFIX_RE.match(body) or looks_like_member_code(body):
        return "member"
    if parse_entry(body).kind == "identify":
        return "phone"
    return "text"


def find_member(s: Services, text: str, source: str) -> MemberIdentified:
    """A member card scanned on the form: who it is (``NotFoundError`` if no one)."""
    return MemberIdentified(s.agent.identify(text), source)


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
    KEEP_QUESTION: ClassVar[frozenset[str]] = frozenset({"f1", "f10"})
    """Keys that leave a pending question open (help, the language switch)."""

    def __init__(self) -> None:
        super().__init__()
        self.version = ""
        self.done: MemberRegistered | None = None
        self.busy = False
        self.leave_asked = False
        """Esc asked "drop this form?": the next key answers it (``on_key``)."""
        self.offer: str | None = None
        """A member code Enter would open at the checkout (a card scanned, a phone taken)."""
        self.offer_how = "typed"
        """How the offered member was found (the scan's source, or "phone")."""
        self._question: Callable[[], str] | None = None
        """The pending question's renderer, as given to ``say`` (``question_shown``)."""

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="register-form", classes="panel") as form:
            form.border_title = self.t("register.title")
            yield FormInput(placeholder=self.t("register.phone"), id="phone")
            yield FormInput(placeholder=self.t("register.name"), id="first-name")
            yield FormInput(placeholder=self.t("register.birthday"), id="birthday")
            yield Static("", id="consent-version", classes="dim-line")
            yield TickBox(self.t("register.consent_rules"), id="consent-rules")
            yield TickBox(self.t("register.consent_marketing"), id="consent-marketing")
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

    def open_work(self) -> str | None:
        """What leaving now would throw away (an i18n key), or None: a form with anything
        typed or ticked. A registration shown is done: nothing is lost."""
        if self.done is not None:
            return None
        f = self.form()
        typed = any(v.strip() for v in (f.phone, f.first_name, f.birthday))
        if typed or f.consent_programme or f.consent_marketing:
            return "register.what.form"
        return None

    # ------------------------------------------------------------------ keys
    def ask(
        self,
        text: Callable[[], str],
        *,
        leaving: bool = False,
        offer: str | None = None,
        how: str = "typed",
    ) -> None:
        """Put a question on the message line: Esc's "drop this form?" (``leaving``) or
        "open this member?" (``offer``, a member code); the next key answers it."""
        self.leave_asked, self.offer = leaving, offer
        self.offer_how = how
        self._question = text
        self.say(text, error=True)

    def question_shown(self) -> bool:
        """A question is pending and still on the line (another message over it, such as
        Ctrl+Q's question, has closed it: an Enter later must not answer it unseen)."""
        pending = self.leave_asked or self.offer is not None
        return pending and self._said is not None and self._said[0] is self._question

    def close_questions(self) -> None:
        self.leave_asked = False
        self.offer = None
        self._question = None

    def typed_over_question(self) -> None:
        """A character typed into a field: any question pending is answered no."""
        if self.question_shown():
            self.say("")
        self.close_questions()

    async def on_key(self, event: events.Key) -> None:
        """The key after a question (Esc's "drop this form?", a member to open): Enter is
        yes, Esc is no, any other key is no and does what it does. On the registration
        shown, Enter opens the new member at the checkout and a typed character starts the
        next form with it."""
        if event.key in self.KEEP_QUESTION:
            return
        if self.leave_asked or self.offer is not None:
            offer, leaving, shown = self.offer, self.leave_asked, self.question_shown()
            self.close_questions()
            if shown and event.key in ("enter", "escape"):
                event.stop()
                event.prevent_default()
                if event.key == "escape":
                    self.say_t("register.kept" if leaving else "register.hint")
                elif leaving:
                    self.app.pop_screen()
                elif offer is not None:
                    self.open_member(offer, self.offer_how)
                return
            if shown:
                self.say("")
        if self.done is None:
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.open_member(self.done.registration.card.code, "registration")
        elif event.is_printable and event.character and not event.character.isspace():
            event.stop()
            event.prevent_default()
            self.reset()
            self.query_one("#phone", Input).insert_text_at_cursor(event.character)

    def action_back(self) -> None:
        """Esc: back to the checkout; a form with something in it asks first."""
        if self.busy:
            self.say_t("register.busy")
            return
        if self.open_work() is None:
            self.app.pop_screen()
            return
        self.ask(lambda: self.t("register.leave_ask"), leaving=True)

    def open_member(self, code: str, how: str) -> None:
        """Back to the checkout with the member of ``code`` identified there, as a scan of
        their card would (whatever screens lie between are left too); ``how`` is the
        source the checkout shows and journals: the scan's, "phone" (a phone typed here
        that is registered already) or "registration"."""
        from tui.screens.checkout import CheckoutScreen

        app = self.app
        target = next(
            (s for s in reversed(app.screen_stack) if isinstance(s, CheckoutScreen)), None
        )
        if target is None:
            app.pop_screen()
            return
        while app.screen is not target and len(app.screen_stack) > 1:
            app.pop_screen()
        target.post_message(Scanned(code, how))

    # ------------------------------------------------------------------ scans
    def on_scanned(self, message: Scanned) -> None:
        """A scan or a burst of keys: the focused text field's value is restored by the
        App after the burst's keys, so the scan is placed after that (``call_later`` on
        the same widget)."""
        self.close_questions()
        focused = self.focused
        if isinstance(focused, Input):
            focused.call_later(self._take_scan, message)
        else:
            self._take_scan(message)

    def _take_scan(self, message: Scanned) -> None:
        kind = scan_kind(message.text)
        focused = self.focused
        if kind in ("member", "coupon"):
            if isinstance(focused, Input):
                _unburst(focused, message)
            if kind == "coupon":
                self.say_t("register.coupon_scanned", error=True)
            else:
                self.request(find_member, message.text, message.source)
            return
        if self.done is not None:
            self.reset()
            focused = self.query_one("#phone", Input)
        target: Input | None
        if kind == "phone":
            target = self.query_one("#phone", Input)
            text = message.text.strip()
        else:
            target = focused if isinstance(focused, Input) else None
            text = (message.raw or message.text).strip()
        if target is None:
            shown = text[:40]
            self.say(lambda: self.t("register.scan_no_field", text=shown), error=True)
            return
        if isinstance(focused, Input) and focused is not target:
            _unburst(focused, message)
        target.value = text
        target.cursor_position = len(text)
        chain = self.focus_chain  # on to the next field, as the burst's Tab or Enter would
        after = chain[(chain.index(target) + 1) % len(chain)] if target in chain else target
        after.focus()
        label = _LABEL_OF.get(f"#{target.id}", "register.phone")
        self.say(lambda: self.t("register.scan_filled", field=self.t(label)))

    def on_member_identified(self, message: MemberIdentified) -> None:
        card = message.card
        name = card.first_name or card.phone_masked or card.code
        self.ask(
            lambda: self.t("register.member_scanned", name=name, code=card.code),
            offer=card.code,
            how=message.source,
        )

    # ------------------------------------------------------------------ register
    def action_submit(self) -> None:
        self.close_questions()
        if self.done is not None:
            self.reset()
            return
        if self.busy:
            return
        self.busy = True
        self.request(register_member, self.form())

    def on_core_failed(self, message: CoreFailed) -> None:
        message.prevent_default()  # said here (Textual would run the base handler too)
        if message.op_name == "register_member":
            self.busy = False
        if message.op_name == "register_member" and message.code == "conflict":
            code = str(message.details.get("member_code", ""))
            self.query_one("#phone", Input).focus()
            self.ask(
                lambda: self.t("register.phone_taken", code=code),
                offer=code or None,
                how="phone",
            )
            return
        field = _FIELD_OF.get(str(message.details.get("field", "")))
        if message.code == "bad_phone":
            field = "#phone"
        if field is not None:
            self.query_one(field, Input).focus()
        elif message.code == "consent_required":
            self.query_one("#consent-rules", Checkbox).focus()
        super().on_core_failed(message)

    def on_member_registered(self, message: MemberRegistered) -> None:
        self.busy = False
        self.close_questions()
        self.done = message
        self.query_one("#register-form").display = False
        self.query_one("#register-done").display = True
        self.set_focus(None)
        self._render_done()
        self.say_t("register.again")

    def welcome_note(self) -> str:
        """Whether the welcome bonus may be spent now, as the checkout will allow it (the
        card's ``spendable_after_sync``: the programme's ``welcome.spend_before_sync``)."""
        if self.done is None:
            return ""
        card = self.done.registration.card
        if card.spendable_after_sync > 0:
            return self.t("register.welcome_after_sync")
        if card.provisional and self.done.offline:
            return self.t("register.welcome_now_offline")
        return self.t("register.welcome_now")

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
        body.append(f"+{points(self.lang, reg.welcome_points)}", style="bold green")
        if reg.welcome_points:
            waits = card.spendable_after_sync > 0
            body.append(f", {self.welcome_note()}", style="yellow" if waits else "green")
        body.append("\n")
        body.append(self.t("register.consent_version", v=self.done.consent_text_version) + "\n")
        if card.provisional and self.done.offline:
            body.append("\n" + self.t("register.provisional") + "\n", style="yellow")
        body.append("\n" + self.t("register.qr"), style="italic")
        self.query_one("#register-result", Static).update(body)
        symbol = qr.text(qr.matrix(reg.qr_payload)).rstrip("\n")
        self.query_one("#register-qr", Static).update(Text(symbol, style="bright_white on black"))

    def reset(self) -> None:
        self.done = None
        self.close_questions()
        for field in FIELDS:
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


def _unburst(box: Input, message: Scanned) -> None:
    """Take a scan's characters back out of a field they were typed into (a burst that
    began where nothing kept a restore point, e.g. the first key started a new form)."""
    raw = message.raw or message.text
    if raw and box.value.endswith(raw):
        box.value = box.value[: -len(raw)]
