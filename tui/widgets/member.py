"""The member card: who the customer is and what their points do (checkout, lookup).

Shows name, masked phone, tier, balance, available and pending points, points expiring
soon with the date, a birthday today, progress to the next tier and in collections, the
marketing-consent state and the provisional marker. ``card_text`` is pure (the widget and
the snapshot tests share it).

The provisional marker says what is true: this member has events the back office has not
counted yet (a registration or cheques still in the queue or awaiting its verdict), so the
balance shown may still move. It goes once the card is read again after the back office
counted them (``MemberCardView.sync_moved``, called when the queue or the last contact
changes). In training nothing is ever sent, so the card says training instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import Static

from tui.i18n import money, points, register_strings, t

if TYPE_CHECKING:
    from agent.results import MemberCard

register_strings(
    {
        "card.after_sync": (
            "{p} — после подтверждения регистрации",
            "{p} once the back office confirms the registration",
        ),
        "card.training": (
            "УЧЕБНЫЙ РЕЖИМ: баланс учебный, настоящий не меняется",
            "TRAINING: a practice balance, the real one is unchanged",
        ),
    }
)


def is_provisional(card: MemberCard) -> bool:
    """Whether the back office has yet to count events of this member (see module doc)."""
    return card.provisional or card.unsynced_events > 0


def card_text(card: MemberCard | None, lang: str, *, training: bool = False) -> Text:
    out = Text()
    if card is None:
        out.append(t(lang, "co.no_member"), style="dim")
        return out
    name = card.first_name or card.code
    out.append(name, style="bold")
    out.append(f"  {card.phone_masked or card.code}\n")
    tier = card.tier.name_en if lang == "en" else card.tier.name_ru
    out.append(f"{t(lang, 'card.tier')}: ")
    out.append(f"{tier}\n", style="bold cyan")
    out.append(f"{t(lang, 'card.balance')}: ")
    out.append(f"{points(lang, card.balance)}\n", style="bold")
    out.append(f"{t(lang, 'card.available')}: {points(lang, card.spendable)}")
    if card.pending:
        out.append(f"  {t(lang, 'card.pending')}: {points(lang, card.pending)}")
    out.append("\n")
    if card.spendable_after_sync:  # joined offline here: the programme keeps them for now
        after = t(lang, "card.after_sync", p=points(lang, card.spendable_after_sync))
        out.append(after + "\n", style="yellow")
    if card.debt:
        out.append(t(lang, "card.debt", p=points(lang, card.debt)) + "\n", style="red")
    if card.expiring_points and card.expiring_on:
        when = card.expiring_on.strftime("%d.%m")
        exp = t(lang, "card.expiring", p=points(lang, card.expiring_points), d=when)
        out.append(exp + "\n", style="yellow")
    if card.birthday_window:
        out.append(t(lang, "card.birthday") + "\n", style="bold magenta")
    if card.next_tier is not None and card.to_next_tier_kop is not None:
        nxt = card.next_tier.name_en if lang == "en" else card.next_tier.name_ru
        out.append(t(lang, "card.next_tier", tier=nxt, rub=money(lang, card.to_next_tier_kop)))
        out.append("\n")
    for c in card.collections:
        if c.collected:
            out.append(
                t(lang, "card.collection", name=c.name_ru, got=c.collected, target=c.target) + "\n"
            )
    consent = "card.consent_yes" if card.consent_marketing else "card.consent_no"
    out.append(t(lang, consent) + "\n", style="dim")
    if card.identified_by:
        how = t(lang, f"how.{card.identified_by}")
        out.append(t(lang, "card.by", how=how) + "\n", style="dim")
    if training:
        out.append(t(lang, "card.training"), style="bold black on yellow")
    elif is_provisional(card):
        out.append(t(lang, "card.provisional"), style="bold black on yellow")
    return out


class MemberCardView(Static):
    DEFAULT_CLASSES = "member-card"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.card: MemberCard | None = None

    def _training(self) -> bool:
        services = getattr(self.app, "services", None)
        return bool(getattr(services, "training", False))

    def show(self, card: MemberCard | None, lang: str) -> None:
        self.card = card
        self.update(card_text(card, lang, training=self._training()))

    def sync_moved(self) -> None:
        """The queue or the last contact changed: a card marked provisional asks its
        screen's core for a fresh copy (the answer is a ``MemberIdentified`` refresh)."""
        card = self.card
        if card is None or self._training() or not is_provisional(card):
            return
        from tui import ops
        from tui.messages import CoreRequested

        self.post_message(CoreRequested(ops.member_card, (card.member_id,), reply_to=self.screen))
