"""The member card: who the customer is and what their points do (checkout, lookup).

Shows name, masked phone, tier, balance, available and pending points, points expiring
soon with the date, a birthday today, progress to the next tier and in collections, the
marketing-consent state and the offline-provisional marker. ``card_text`` is pure (the
widget and the snapshot tests share it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from tui.i18n import money, points, t

if TYPE_CHECKING:
    from agent.service import MemberCard


def card_text(card: MemberCard | None, lang: str) -> Text:
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
    if card.provisional or card.unsynced_events:
        out.append(t(lang, "card.provisional"), style="bold black on yellow")
    return out


class MemberCardView(Static):
    DEFAULT_CLASSES = "member-card"

    def show(self, card: MemberCard | None, lang: str) -> None:
        self.update(card_text(card, lang))
