"""Member lookup for store staff (F4): by phone, member code (typed or scanned) or a
fragment of the first name; the member's card and their recent cheques on this till.

The till keeps only a keyed hash of each phone, so a phone is found exactly (as typed in
any usual form), never by a fragment. Names are searched in the members cache
(the till service's ``find_members``). The history is the till's own purchases and refunds:
the screen says "only this till's history", since other tills' cheques live at the back
office.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from agent.results import HistoryEntry, MemberCard, MemberMatch
from tui.i18n import money, points, register_strings
from tui.messages import Scanned
from tui.screens.base import KassaScreen
from tui.services import Services
from tui.widgets.member import MemberCardView

register_strings(
    {
        "lookup.title": ("Поиск участника", "Member lookup"),
        "lookup.entry": (
            "Телефон, номер участника или часть имени",
            "Phone, member code or part of the name",
        ),
        "lookup.matches": (
            "Найдено {n}: выберите (↑↓ Enter)",
            "{n} found: pick one (↑↓ Enter)",
        ),
        "lookup.more": (
            "Показаны первые {n}, есть и другие: уточните запрос или выберите (↑↓ Enter)",
            "The first {n} shown, there are more: refine the query or pick one (↑↓ Enter)",
        ),
        "lookup.none": ("Никого не найдено по «{q}»", "Nobody found for «{q}»"),
        "lookup.history": ("Чеки на этой кассе", "Cheques on this till"),
        "lookup.only_here": (
            "Только история этой кассы; полная — в бэк-офисе",
            "Only this till's history; the full one is at the back office",
        ),
        "lookup.no_history": ("На этой кассе чеков нет", "No cheques on this till"),
        "lookup.purchase": ("покупка", "purchase"),
        "lookup.refund": ("возврат", "refund"),
        "lookup.offline": ("без связи", "offline"),
        "lookup.card": ("Участник", "Member"),
    }
)


NAME_MATCH_LIMIT = 20
"""Name matches listed at most (the till service's ``find_members`` default too)."""


@dataclass
class MemberLooked(Message):
    card: MemberCard
    history: list[HistoryEntry]


@dataclass
class MembersMatched(Message):
    """Name matches; ``more``: there are others beyond these (the list is cut at
    ``NAME_MATCH_LIMIT``), so the count shown is a floor, not a total."""

    query: str
    matches: list[MemberMatch]
    more: bool = False


def look_up(s: Services, text: str) -> MemberLooked | MembersMatched:
    """A phone or member code (also a scan) finds one member; letters search names."""
    found = s.agent.look_up(text)
    if found.card is None:
        return MembersMatched(text.strip(), found.matches, more=found.more)
    return MemberLooked(found.card, found.history)


def open_member(s: Services, member_id: str) -> MemberLooked:
    page = s.agent.member_page(member_id)
    assert page.card is not None  # a member page always has its card
    return MemberLooked(page.card, page.history)


class LookupScreen(KassaScreen):
    DEFAULT_CSS = """
    #lookup-body { height: 1fr; }
    #lookup-card { width: 32; height: 100%; }
    #lookup-right { width: 1fr; height: 100%; }
    #lookup-matches { height: 1fr; border: none; }
    #lookup-history { height: 1fr; }
    """
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.lookup.1", "help.lookup.2")
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self) -> None:
        super().__init__()
        self.looked: MemberLooked | None = None
        self.matched: MembersMatched | None = None

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="lookup-body"):
            card = MemberCardView(id="lookup-card", classes="panel")
            card.border_title = self.t("lookup.card")
            yield card
            with Vertical(id="lookup-right", classes="panel") as right:
                right.border_title = self.t("lookup.title")
                yield OptionList(id="lookup-matches")
                yield Static("", id="lookup-history")
        # select_on_focus off: a character typed on the list and carried here must not be
        # selected (and replaced by the next one) when the focus comes back.
        yield Input(placeholder=self.t("lookup.entry"), id="lookup-entry", select_on_focus=False)

    def show_matches(self, on: bool) -> None:
        """The name matches take the whole panel (as many rows as fit) in place of the
        history; a picked member brings the history back."""
        self.query_one("#lookup-matches", OptionList).display = on
        self.query_one("#lookup-history", Static).display = not on

    def on_mount(self) -> None:
        self.show_matches(False)
        self.query_one("#lookup-entry", Input).focus()
        self.render_all()

    def render_all(self) -> None:
        self.query_one("#lookup-card", MemberCardView).show(
            self.looked.card if self.looked else None, self.lang
        )
        right = self.query_one("#lookup-right", Vertical)
        right.border_title = self.t("lookup.history" if self.looked else "lookup.title")
        body = self.query_one("#lookup-history", Static)
        if self.looked is None:
            body.update("")
            return
        body.update(self._history_view(self.looked.history))

    def _history_view(self, entries: list[HistoryEntry]) -> Group:
        """Two lines per cheque (date, number, amount; kind, points) in two columns: the
        figures on the right are never cut, and the cheque number (what a refund searches
        by) is never shortened: when it does not fit beside the date it goes onto a line
        of its own (80 columns, long training numbers)."""
        note = Text(self.t("lookup.only_here"), style="italic yellow")
        if not entries:
            return Group(note, Text(self.t("lookup.no_history"), style="dim"))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(ratio=1, overflow="fold")
        table.add_column(justify="right", no_wrap=True)
        for e in entries:
            kind = self.t(f"lookup.{e.kind}")
            if e.offline:
                kind += f" ({self.t('lookup.offline')})"
            amount = money(self.lang, e.amount_kop)
            if e.kind == "refund":
                amount = "-" + amount
            sign = "+" if e.points_delta > 0 else ""
            style = "green" if e.points_delta > 0 else "red" if e.points_delta < 0 else ""
            when = Text(e.at.strftime("%d.%m %H:%M"), style="dim")
            table.add_row(Text.assemble(when, "  ", (e.receipt_id, "bold")), amount)
            table.add_row(
                Text(f"  {kind}"), Text(sign + points(self.lang, e.points_delta), style=style)
            )
        return Group(note, table)

    # ------------------------------------------------------------------ input
    def on_key(self, event: events.Key) -> None:
        """Typing always reaches the entry line: after a name search the match list has
        the focus, and a character typed there (refining the query, as the message line
        asks) moves the focus back and is kept, so the next Enter searches again instead
        of opening the highlighted match. Down from the entry goes into the list."""
        entry = self.query_one("#lookup-entry", Input)
        matches = self.query_one("#lookup-matches", OptionList)
        if self.focused is entry:
            if event.key == "down" and matches.display and matches.option_count:
                event.stop()
                event.prevent_default()
                # After this key is done: focused now, the list would take it as its own
                # Down and skip the first match.
                self.call_later(matches.focus)
            return
        if event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            entry.focus()
            entry.insert_text_at_cursor(event.character)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value
        event.input.value = ""
        self.request(look_up, value)

    def on_scanned(self, message: Scanned) -> None:
        """A scan is the whole query. Begun on the match list, its characters were carried
        into the entry line (``on_key``): they are wiped after the keys still queued there,
        so the next Enter does not search the code again."""
        entry = self.query_one("#lookup-entry", Input)
        entry.call_later(setattr, entry, "value", "")
        self.request(look_up, message.text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.request(open_member, event.option.id)

    # ------------------------------------------------------------------ answers
    def on_member_looked(self, message: MemberLooked) -> None:
        self.looked = message
        self.show_matches(False)
        self.query_one("#lookup-entry", Input).focus()
        self.say("")
        self.render_all()

    def on_members_matched(self, message: MembersMatched) -> None:
        self.matched = message
        self.looked = None
        options = self.query_one("#lookup-matches", OptionList)
        options.clear_options()
        if not message.matches:
            self.show_matches(False)
            self.say_t("lookup.none", q=message.query, error=True)
            self.render_all()
            return
        for m in message.matches:
            label = f"{m.first_name or '?'}  {m.phone_masked or ''}  {m.code}"
            options.add_option(Option(label, id=m.member_id))
        self.show_matches(True)
        options.highlighted = 0
        options.focus()
        n = len(message.matches)
        self.say_t("lookup.more" if message.more else "lookup.matches", n=n)
        self.render_all()

    def relabel(self) -> None:
        super().relabel()
        self.query_one("#lookup-card", MemberCardView).border_title = self.t("lookup.card")
        self.query_one("#lookup-entry", Input).placeholder = self.t("lookup.entry")
        self.render_all()
