"""`kassa demo`: the whole loyalty flow on a real SQLite store, scripted in the terminal.

The printed walk-through (``kassa demo --script``, no terminal needed): it creates a till
store with the demo programme and members, then identifies members (typed phone, scanned
app QR typed under a Russian layout), quotes and commits cheques, prints the slips as text,
registers a member with consent, refunds part of a cheque and shows the journal waiting
for the back office. Nothing keeps running after it exits.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import AgentError
from agent.identify import make_member_code
from agent.money import format_points, format_rub
from agent.results import CheckoutRequest
from agent.seed import demo_cart, demo_phone
from agent.service import Agent
from agent.slip import slip_text
from agent.tokens import TokenSigner, issue_member_token, load_ed25519_private_key
from kassa.config import Config, StoreConfig
from kassa.setup import init_store, keys_path
from kassa.wiring import build_till

_RU_LAYOUT = dict(
    zip(
        "qwertyuiop[]asdfghjkl;'zxcvbnm,.QWERTYUIOP{}ASDFGHJKL:\"ZXCVBNM<>",
        "йцукенгшщзхъфывапролджэячсмитьбюЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮ",
        strict=True,
    )
)


def _say(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def run_demo(directory: Path | None, *, members: int = 10_000, sync: bool = True) -> int:
    temp = directory is None
    root = Path(tempfile.mkdtemp(prefix="kassa-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    path = root / "till.db"
    try:
        if path.exists():
            path.unlink()
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        _say("Касса: создаём базу с демо-программой")
        info = init_store(path, demo=True, members=members, store_name="Магазин «Демо»")
        print(f"База {path}: {info['members']} участников загружено за {info['seconds']} с")
        till = build_till(Config(store=StoreConfig(str(path)), source="demo"))
        try:
            _script(till.agent, path)
        finally:
            till.close()
        if sync:
            from kassa.demo_sync import run_sync_demo

            run_sync_demo(root, _say)
        return 0
    except AgentError as e:
        print(f"Ошибка: {e.title}: {e.message_ru}", file=sys.stderr)
        return 2
    finally:
        if temp:
            shutil.rmtree(root, ignore_errors=True)


def _script(agent: Agent, path: Path) -> None:
    rules = agent.programme()
    print(
        f"Программа «{rules.name}», версия {rules.version}; "
        f"уровни: {', '.join(t.name_ru for t in rules.tiers)}"
    )

    _say("1. Кассир вводит телефон покупателя")
    phone = demo_phone(1)
    typed = f"8 {phone[2:5]} {phone[5:8]}-{phone[8:10]}-{phone[10:]}"
    card = agent.identify(typed)
    print(
        f"Введено: {typed!r} -> {card.first_name}, {card.phone_masked}, "
        f"уровень «{card.tier.name_ru}»"
    )
    print(
        f"Баланс {format_points(card.balance)}, доступно {format_points(card.spendable)}"
        + (
            f"; {format_points(card.expiring_points)} сгорят {card.expiring_on:%d.%m}"
            if card.expiring_on
            else ""
        )
    )

    if not agent.offline_status().online:
        print(
            "Касса не подключена к бэк-офису (kassa enroll): работает офлайн, "
            "списание ограничено офлайн-лимитами программы"
        )

    _say("2. Расчёт чека: сколько начислим и сколько можно списать")
    cart = demo_cart("DEMO-0001", [("OW-4001", 1), ("DR-1001", 1), ("AC-6001", 1), ("GC-9001", 1)])
    req = CheckoutRequest(card.member_id, cart, identified_by=card.identified_by)
    q = agent.quote(req)
    print(
        f"Сумма чека {format_rub(q.total_kop)}; можно списать до "
        f"{format_points(q.max_redeem_points)}; начислится {format_points(q.total_earned)}"
    )
    print(f"Акции: {', '.join(q.campaigns) or 'нет'}")

    _say("3. Покупатель списывает максимум — проводим чек")
    result = agent.commit(
        CheckoutRequest(card.member_id, cart, "max", identified_by=card.identified_by)
    )
    for line, ql in zip(cart.lines, result.quote.lines, strict=True):
        print(
            f"  {line.name[:28]:28} {format_rub(ql.amount_kop):>14} "
            f"скидка {format_rub(ql.discount_kop):>12} +{ql.earn_points}"
        )
    print(
        f"Списано {format_points(result.quote.redeem_points)}, к оплате "
        f"{format_rub(result.quote.payable_kop)}; событие журнала seq={result.seq}"
    )
    print(slip_text(agent.print_job(result.print_job_id), 42))

    _say("4. Повтор того же чека (POS не получил ответ) — дубль не создаётся")
    again = agent.commit(
        CheckoutRequest(card.member_id, cart, "max", identified_by=card.identified_by)
    )
    print(f"Повтор вернул тот же результат: seq={again.seq}, duplicate={again.duplicate}")

    _say("5. Скан QR из приложения при русской раскладке клавиатуры")
    keys = json.loads(keys_path(path).read_text(encoding="utf-8"))
    signer = TokenSigner(1, load_ed25519_private_key(keys["token_private_key"]))
    token = issue_member_token(signer, make_member_code(100_000_002), datetime.now(UTC))
    garbled = "".join(_RU_LAYOUT.get(ch, ch) for ch in token)
    print(f"Сканер набрал: {garbled[:40]}...")
    card2 = agent.identify(garbled)
    print(
        f"Раскладка исправлена, подпись проверена офлайн: {card2.first_name}, "
        f"код {card2.code}, {format_points(card2.balance)}"
    )

    _say("6. Регистрация нового участника с согласием и первая покупка")
    reg = agent.register(
        phone="+7 (999) 555-01-23",
        first_name="Вера",
        consent_programme=True,
        consent_marketing=False,
    )
    print(
        f"Участник {reg.card.code} ({reg.card.phone_masked}), приветственный бонус "
        f"{format_points(reg.welcome_points)}, можно списать сейчас "
        f"{format_points(reg.card.spendable)}; в базе только хэш и маска телефона"
    )
    if reg.card.spendable:  # the programme's welcome.spend_before_sync when offline
        first = agent.commit(
            CheckoutRequest(
                reg.card.member_id,
                demo_cart("DEMO-0003", [("SH-2001", 1)]),
                min(200, reg.card.spendable),
                identified_by="phone",
            )
        ).quote
        print(
            f"Первая покупка: списано {format_points(first.redeem_points)} из приветственного "
            "бонуса, "
            f"начислено {format_points(first.total_earned)}, баланс "
            f"{format_points(first.balance_after)}"
        )

    _say("7. Частичный возврат: платье вернули")
    refund = agent.refund("DEMO-R-0001", "DEMO-0001", {2: 1})
    r = refund.result
    print(
        f"Возврат {format_rub(r.amount_kop)}: начисление отменено "
        f"{format_points(r.earn_reversed)}, возвращено бонусов "
        f"{format_points(r.points_returned)}, баланс {format_points(r.balance_after)}"
    )
    print(slip_text(agent.print_job(refund.print_job_id), 32))

    _say("8. Журнал для бэк-офиса (отправится при связи, ровно один раз)")
    for event in agent.pending_events():
        print(f"  seq={event['seq']:<3} {event['type']:18} {event['event_id']}")
    status = agent.offline_status()
    print(f"Ждут отправки: {status.events_waiting}; проверка базы: {agent.store.quick_check()}")
