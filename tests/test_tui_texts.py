"""What the till and the back-office report say must be true and said once.

- A refusal is read as «title: message»: the message never repeats its title (phone,
  coupon, PIN), in either language.
- A cashier locked by wrong PINs is told so (not "wrong PIN") with what unlocks it, the
  right PIN too, and the sign-in list marks the lock.
- Member lookup says "the first 20 of more" when the list is cut, never "20 found".
- The KPI report writes shares the Russian way: "13,55 %".

Pilot tests run the real app on a real till store and back office (tui_helpers).
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW
from test_tui_checkout import said
from tui_helpers import harness, settle, widget_text

from agent import history, shifts
from agent.errors import AgentError, CouponError, MemberCodeError, PhoneError
from agent.identify import check_member_code, normalize_phone
from agent.seed import demo_phone
from agent.tokens import Coupon
from sync.backoffice import kpi
from tui.messages import CoreFailed, ShiftOpened
from tui.screens.lookup import LookupScreen, MembersMatched
from tui.screens.signin import SignInScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def says_title_twice(error: AgentError) -> bool:
    """«Телефон не распознан: Номер телефона не распознан: …»: every word of the title
    comes back in the message's first words."""
    for title, message in ((error.title_ru, error.message_ru), (error.title_en, error.message_en)):
        head = words(message)[: len(words(title)) + 2]
        if all(any(w.startswith(t[:5]) for w in head) for t in words(title)):
            return True
    return False


@pytest.mark.parametrize(
    "typed", ["12345", "8 916 123 45 678 9", "+7 999 12a-45-67", "+999 1234567", "+7 930 000 00 00"]
)
def test_phone_refusals_do_not_repeat_their_title(typed: str) -> None:
    with pytest.raises(PhoneError) as info:
        normalize_phone(typed)
    assert not says_title_twice(info.value), info.value.message_ru
    assert typed.strip() in info.value.message_ru  # the cashier still sees what they typed


@pytest.mark.parametrize("typed", ["12345678901x", "000100000001", "0001000000019"])
def test_member_code_refusals_do_not_repeat_their_title(typed: str) -> None:
    with pytest.raises(MemberCodeError) as info:
        check_member_code(typed)
    e = info.value
    assert "код участника" not in e.message_ru.lower(), e.message_ru
    assert "member code" not in e.message_en.lower(), e.message_en
    assert typed in e.message_ru


def test_coupon_and_pin_refusals_do_not_repeat_their_title(tmp_path: Path) -> None:
    with pytest.raises(CouponError) as info:
        Coupon("nothex", "percent", 1000, NOW, NOW + timedelta(days=1))
    assert not says_title_twice(info.value), info.value.message_ru
    with harness(tmp_path) as h, h.make_app().services.store as store:
        with pytest.raises(shifts.PinError) as wrong:
            shifts.verify_pin(store, "anna", "9999")
        assert wrong.value.code == "wrong_pin" and not says_title_twice(wrong.value)
        for _ in range(shifts.MAX_PIN_FAILURES - 1):
            with pytest.raises(shifts.PinError) as last:
                shifts.verify_pin(store, "anna", "9999")
        assert isinstance(last.value, shifts.PinLockedError)  # the fifth locks: say so
        with pytest.raises(shifts.PinLockedError) as locked:
            shifts.verify_pin(store, "anna", "1111")  # the right PIN, still locked
        for e in (last.value, locked.value):
            assert not says_title_twice(e), e.message_ru
            assert "kassa cashier set-pin --id anna" in e.message_ru
        assert {c.cashier_id: c.locked for c in shifts.cashiers(store)} == {
            "anna": True,
            "oleg": False,
        }


def test_lookup_of_a_bad_phone_says_not_recognised_once(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await pilot.press("enter")
                await h.type(pilot, "1111")
                await pilot.press("f4")
                await settle(pilot)
                assert isinstance(pilot.app.screen, LookupScreen)
                await h.type(pilot, "12345")
                text = " ".join(said(pilot).split())
                assert text.startswith("Телефон не распознан: 12345"), text
                assert text.count("распознан") == 1, text
                await pilot.press("f10")
                await settle(pilot)
                text = " ".join(said(pilot).split())
                assert text.startswith("Phone not recognised:") and text.count("recognised") == 1

    run(main())


def test_locked_cashier_is_told_so_and_marked_in_the_list(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert isinstance(pilot.app.screen, SignInScreen)
                for _ in range(shifts.MAX_PIN_FAILURES):
                    await h.type(pilot, "9999")  # Анна is highlighted
                assert h.of(CoreFailed)[-1].code == "pin_locked"
                text = " ".join(said(pilot).split())
                assert text.startswith("PIN заблокирован: Анна Петрова"), text
                assert "Неверный" not in text and "kassa cashier set-pin --id anna" in text
                assert "Анна Петрова — PIN заблокирован" in widget_text(pilot.app, "#cashiers")
                await h.type(pilot, "1111")  # the right PIN: still locked, and it says so
                assert not h.of(ShiftOpened)
                text = " ".join(said(pilot).split())
                assert text.startswith("PIN заблокирован:") and "Неверный" not in text, text
                await pilot.press("f10")
                await settle(pilot)
                assert " ".join(said(pilot).split()).startswith("PIN locked: Анна Петрова")
                assert "Анна Петрова — PIN locked" in widget_text(pilot.app, "#cashiers")
            # A new start (the list read from the store) still shows the lock.
            async with h.run() as pilot:
                rows = widget_text(pilot.app, "#cashiers")
                assert "Анна Петрова — PIN заблокирован" in rows
                assert "Олег Смирнов —" not in rows

    run(main())


def test_lookup_says_the_list_is_cut_and_counts_a_short_one(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path, members=200) as h:
            async with h.run() as pilot:
                await pilot.press("enter")
                await h.type(pilot, "1111")
                await pilot.press("f4")
                await settle(pilot)
                await h.type(pilot, "ан")  # far more than 20 names
                cut = h.of(MembersMatched)[-1]
                assert cut.more and len(cut.matches) == history.NAME_MATCH_LIMIT
                text = " ".join(said(pilot).split())
                assert "Показаны первые 20, есть и другие" in text and "Найдено" not in text
                await pilot.press("escape")  # back to the entry line is not needed: type
                assert h.services is not None
                name = cut.matches[0].first_name
                assert name is not None
                every = history.find_by_name(h.services.store, name, 1000)
                assert len(every) < history.NAME_MATCH_LIMIT
                await pilot.press("f4")
                await settle(pilot)
                await h.type(pilot, name)
                few = h.of(MembersMatched)[-1]
                assert not few.more and len(few.matches) == len(every)
                assert f"Найдено {len(every)}:" in said(pilot)

    run(main())


def test_kpi_report_writes_shares_the_russian_way(tmp_path: Path) -> None:
    from cluster import Cluster
    from synchelp import portal

    with portal() as p:
        c = Cluster(tmp_path, str(tmp_path / "bo.db"), p, members=20)
        till = c.till()
        card = till.agent.identify(demo_phone(1))
        till.sale("O-1", card.member_id, ("BG-7001", 1), cashier="olga", identified_by="phone")
        till.client.drain()
        card = till.agent.identify(demo_phone(1))
        till.sale("O-2", card.member_id, ("BG-7001", 1), redeem=7, cashier="olga")
        till.client.drain()
        data = kpi.report(c.bo.context, kpi.period(None, None))
        c.close()
    rate = data["totals"]["redemption_rate"]
    assert 0 < rate < 1
    text = kpi.table(data)
    line = next(ln for ln in text.split("\n") if "Доля списания" in ln)
    shown = f"{rate * 100:.2f}".replace(".", ",") + "\u00a0%"
    assert line.endswith(shown), line
    assert not re.search(r"\d\.\d+%", text) and not re.search(r"\d%", text), text


def _error_classes() -> dict[str, type[AgentError]]:
    """Every AgentError subclass by name (the core's and the front doors' own)."""
    import importlib

    for mod in (
        "agent.shifts",
        "agent.service.holds",
        "kassa.cli",
        "kassa.cli.sync",
        "kassa.config",
    ):
        importlib.import_module(mod)
    for mod in ("kassa.cli.agent", "kassa.backoffice_backup"):
        importlib.import_module(mod)
    found: dict[str, type[AgentError]] = {}
    todo: list[type[AgentError]] = [AgentError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _literal(node: Any) -> str | None:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def test_no_error_raised_anywhere_repeats_its_title() -> None:
    """Every place that raises an AgentError with literal texts: the message (shown after
    «title: ») does not say the title again («Не найдено: чек 7 не найден»)."""
    import ast

    classes = _error_classes()
    root = Path(__file__).resolve().parent.parent
    seen, doubled = 0, []
    for package in ("agent", "sync", "drivers", "tui", "kassa"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in classes
                    and len(node.args) >= 2
                ):
                    continue
                cls = classes[node.func.id]
                en, ru = _literal(node.args[0]), _literal(node.args[1])
                if en is None or ru is None:
                    continue
                seen += 1
                error = cls(en, ru)
                if says_title_twice(error):
                    doubled.append(f"{path.relative_to(root)}:{node.lineno} {ru!r} / {en!r}")
    assert seen > 100  # the scan found the raise sites
    assert doubled == [], "\n".join(doubled)
