"""Cashier-facing strings, Russian by default, English switchable at runtime (F10).

One table: ``key -> (ru, en)``. Screens and widgets call ``app.t(key, **fields)`` (which
reads the App's current language) so a language switch re-labels everything on the next
``relabel()``. Keys are dotted by screen; add your screen's strings under its own prefix
(``register.*``, ``refund.*``) in ``STRINGS`` — or, to keep files apart, in your own module
with ``register_strings({...})`` called at import time.

Binding descriptions are i18n keys too (``Binding("f2", "open('register')", "bind.register")``):
the key bar translates them, so bindings stay visible in both languages.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGS = ("ru", "en")

STRINGS: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------------ bindings
    "bind.help": ("Помощь", "Help"),
    "bind.register": ("Регистр.", "Register"),
    "bind.refund": ("Возврат", "Refund"),
    "bind.lookup": ("Поиск", "Lookup"),
    "bind.sync": ("Связь", "Sync"),
    "bind.redeem_toggle": ("Списать/нет", "Spend/none"),
    "bind.coupon": ("Купон", "Coupon"),
    "bind.new_cheque": ("Новый чек", "New cheque"),
    "bind.reprint": ("Копия слипа", "Slip copy"),
    "bind.training": ("Учёба", "Training"),
    "bind.language": ("English", "Русский"),
    "bind.shift": ("Смена", "Shift"),
    "bind.quit": ("Выход", "Quit"),
    "bind.back": ("Назад", "Back"),
    "bind.confirm": ("Провести", "Confirm"),
    "bind.print": ("Печать", "Print"),
    "bind.close_shift": ("Закрыть смену", "Close shift"),
    "bind.sign_out": ("Выйти", "Sign out"),
    "bind.total": ("Сумма чека", "Cheque total"),
    "bind.close": ("Закрыть", "Close"),
    # ------------------------------------------------------------------ status bar
    "status.online": ("На связи", "Online"),
    "status.offline": ("НЕТ СВЯЗИ", "OFFLINE"),
    "status.no_backoffice": ("Без бэк-офиса", "No back office"),
    "status.waiting": ("Очередь {n}", "Queue {n}"),
    "status.oldest": ("с {t}", "since {t}"),
    "status.contact": ("связь {t}", "contact {t}"),
    "status.never": ("никогда", "never"),
    "status.quarantine": ("Карантин {n}", "Quarantine {n}"),
    "status.disk_full": ("ДИСК ЗАПОЛНЕН", "DISK FULL"),
    "status.printer.ok": ("Принтер OK", "Printer OK"),
    "status.printer.unknown": ("Принтер ?", "Printer ?"),
    "status.printer.fault": ("ПРИНТЕР: {m}", "PRINTER: {m}"),
    "status.printer.preview": ("Принтер: экран", "Printer: screen"),
    "status.printer.file": ("Принтер: файл", "Printer: file"),
    "status.printer.queue": ("в очереди {n}", "queued {n}"),
    "status.printer.queue_only": ("Печать: очередь {n}", "Print queue {n}"),
    "status.training": ("УЧЕБНЫЙ РЕЖИМ", "TRAINING MODE"),
    "status.training_short": ("УЧЁБА", "TRAINING"),
    "status.cashier": ("Кассир {name}", "Cashier {name}"),
    # ------------------------------------------------------------------ sign-in
    "signin.title": ("Вход кассира", "Cashier sign-in"),
    "signin.pick": ("Выберите себя в списке и введите PIN", "Pick your name and enter your PIN"),
    "signin.pin": ("PIN", "PIN"),
    "signin.no_cashiers": (
        "Кассиров нет: добавьте их командой kassa cashier add",
        "No cashiers: add one with kassa cashier add",
    ),
    "signin.checking": ("Проверяем PIN…", "Checking PIN…"),
    "signin.pick_first": ("Сначала выберите кассира", "Pick a cashier first"),
    "signin.wrong_pin": (
        "{name}, осталось попыток: {left}. Другой кассир — стрелки ↑↓",
        "{name}, {left} tries left. Another cashier: Up/Down",
    ),
    "signin.pin_for": ("PIN кассира: ", "PIN for: "),
    # ------------------------------------------------------------------ shift / X-report
    "shift.title": ("Смена и X-отчёт", "Shift and X-report"),
    "shift.opened": ("Смена открыта: {name}, {t}", "Shift open: {name}, {t}"),
    "shift.closed": (
        "Смена закрыта, Z-отчёт отправлен на принтер",
        "Shift closed, the Z report is sent to the printer",
    ),
    "shift.close_confirm": (
        "Закрыть смену? F12 или Enter — да, Esc — нет",
        "Close the shift? F12 or Enter - yes, Esc - no",
    ),
    "shift.close_confirm_work": (
        "Закрыть смену? Не сохранится: {what}. F12 или Enter — да, Esc — нет",
        "Close the shift? Lost: {what}. F12 or Enter - yes, Esc - no",
    ),
    "shift.printed": ("X-отчёт отправлен на принтер", "X-report sent to the printer"),
    "xr.cashier": ("Кассир", "Cashier"),
    "xr.opened": ("Открыта", "Opened"),
    "xr.closed": ("Закрыта", "Closed"),
    "xr.at": ("Отчёт на", "Report at"),
    "xr.cheques": ("Чеков с картой", "Member cheques"),
    "xr.by_scan": ("  по скану", "  by scan"),
    "xr.by_phone": ("  по телефону", "  by phone"),
    "xr.offline": ("  без связи", "  offline"),
    "xr.sales": ("Сумма чеков", "Sales"),
    "xr.discount": ("Скидки", "Discounts"),
    "xr.earned": ("Начислено баллов", "Points earned"),
    "xr.spent": ("Списано баллов", "Points spent"),
    "xr.registrations": ("Регистраций", "Registrations"),
    "xr.refunds": ("Возвратов", "Refunds"),
    "xr.refund_kop": ("  на сумму", "  amount"),
    "xr.reversed": ("  отменено начислений", "  points reversed"),
    "xr.returned": ("  возвращено баллов", "  points returned"),
    # ------------------------------------------------------------------ checkout
    "co.title": ("Продажа", "Checkout"),
    "co.entry": (
        "Скан / телефон / артикул [*кол-во] [!распродажа] / =сумма / -баллы",
        "Scan / phone / SKU [*qty] [!sale] / =total / -points",
    ),
    "co.no_member": (
        "Отсканируйте карту или QR, или введите телефон",
        "Scan a card or app QR, or type the phone",
    ),
    "co.cheque": ("Чек", "Cheque"),
    "co.empty": ("Чек пуст: введите артикул или =сумма", "Empty: type a SKU or =total"),
    "co.total": ("Итого", "Total"),
    "co.earn": ("Начислим", "Earn"),
    "co.max": ("Можно списать", "May spend"),
    "co.spend": ("Списываем", "Spend"),
    "co.spend.max": ("всё", "all"),
    "co.spend.none": ("нет", "none"),
    "co.payable": ("К оплате", "To pay"),
    "co.coupon": ("Купон", "Coupon"),
    "co.accept": (
        "Enter — принять, F6 — списать всё/ничего, -N — списать N",
        "Enter - accept, F6 - spend all/none, -N - spend N",
    ),
    "co.confirm_title": ("Провести чек?", "Commit the cheque?"),
    "co.confirm_hint": ("Enter — провести, Esc — назад", "Enter - commit, Esc - back"),
    "co.committed": ("Чек {r} проведён", "Cheque {r} committed"),
    "co.committed_offline": (
        "Чек {r} проведён без связи (уйдёт позже)",
        "Cheque {r} committed offline (sent later)",
    ),
    "co.next": ("Enter или F8 — новый чек", "Enter or F8 - new cheque"),
    "co.reprinted": (
        "Копия слипа чека {r} отправлена на печать",
        "A copy of the slip of cheque {r} is sent to the printer",
    ),
    "co.total_line": ("Сумма без товаров", "Total without items"),
    "co.unknown_sku": ("Артикул {sku} не найден", "SKU {sku} not found"),
    "co.bad_entry": ("Не понял ввод: {text}", "Cannot read: {text}"),
    "co.bad_qty": (
        "Количество в «{text}» — от 1 до {most} в одной строке",
        "The quantity in «{text}» must be 1 to {most} on one line",
    ),
    "co.member_first": (
        "Сначала найдите участника: скан карты или телефон",
        "Identify a member first: scan the card or type the phone",
    ),
    "co.sale": ("расп.", "sale"),
    "co.discard_ask": (
        "Отменить этот чек? F8 или Enter — да, Esc — нет",
        "Drop this cheque? F8 or Enter - yes, Esc - no",
    ),
    "co.discard_kept": ("Чек сохранён", "Cheque kept"),
    "co.coupon_prompt": ("Купон: отсканируйте или введите код", "Coupon: scan or type the code"),
    # ------------------------------------------------------------------ member card
    "card.tier": ("Уровень", "Tier"),
    "card.balance": ("Баланс", "Balance"),
    "card.available": ("Доступно", "Available"),
    "card.pending": ("Ожидают", "Pending"),
    "card.expiring": ("{p} сгорят {d}", "{p} expire {d}"),
    "card.birthday": ("Сегодня день рождения!", "Birthday today!"),
    "card.next_tier": ("До «{tier}»: {rub}", "To {tier}: {rub}"),
    "card.collection": ("{name}: {got} из {target}", "{name}: {got} of {target}"),
    "card.consent_yes": ("Рассылки: согласие есть", "Marketing: consented"),
    "card.consent_no": ("Рассылки: нет согласия", "Marketing: no consent"),
    "card.provisional": (
        "ПРЕДВАРИТЕЛЬНО: баланс уточнится после связи",
        "PROVISIONAL: balance settles once online",
    ),
    "card.debt": ("Долг {p}", "Debt {p}"),
    "card.by": ("найден: {how}", "found by: {how}"),
    "how.phone": ("телефон", "phone"),
    "how.scan_code": ("скан карты", "card scan"),
    "how.scan_token": ("QR приложения", "app QR"),
    # ------------------------------------------------------------------ help (F1)
    # One key per line of help; a screen lists its keys in ``HELP_LINES`` (tui/screens/help.py).
    # Keep each line under 70 characters: the help box is 76 wide at 80 columns.
    "help.close": ("Esc или F1 — закрыть", "Esc or F1 - close"),
    "help.general.1": ("Отсканируйте или введите данные, затем Enter", "Scan or type, then Enter"),
    "help.general.2": ("Esc — назад", "Esc - back"),
    "help.signin.1": (
        "Выберите себя в списке (стрелки ↑↓) и нажмите Enter",
        "Pick your name (Up/Down arrows) and press Enter",
    ),
    "help.signin.2": (
        "Введите PIN и нажмите Enter: откроется смена",
        "Type your PIN and press Enter: your shift opens",
    ),
    "help.signin.3": (
        "Цифра в списке сразу начинает PIN; Esc — стереть PIN",
        "A digit on the list starts the PIN; Esc - clear the PIN",
    ),
    "help.checkout.1": (
        "Отсканируйте QR или карту участника, или введите телефон/код, Enter",
        "Scan the member's QR or card, or type the phone or code, Enter",
    ),
    "help.checkout.2": (
        "Товары: артикул [*кол-во] или =сумма чека, Enter",
        "Goods: SKU [*qty] or =cheque total, Enter",
    ),
    "help.checkout.3": (
        "Enter на пустой строке — принять, ещё Enter — провести чек",
        "Enter on an empty line - accept, Enter again - commit",
    ),
    "help.checkout.4": (
        "F6 — списать все баллы/ничего, -N — списать N; F7 — купон",
        "F6 - spend all points/none, -N - spend N; F7 - coupon",
    ),
    "help.refund.2": (
        "Строки: 2 (всю), 2*1 (одну шт.), * (всё), -2 (убрать)",
        "Lines: 2 (all of it), 2*1 (one unit), * (everything), -2 (drop)",
    ),
    "help.lookup.1": (
        "Введите телефон, номер участника или часть имени, Enter",
        "Type the phone, member code or part of the name, Enter",
    ),
    "help.lookup.2": (
        "Или отсканируйте карту; Esc — назад к продаже",
        "Or scan the card; Esc - back to checkout",
    ),
    "help.register.1": (
        "Телефон, имя, день рождения (необяз.); Tab — следующее поле",
        "Phone, first name, birthday (optional); Tab - next field",
    ),
    "help.register.2": (
        "Прочитайте согласия покупателю, Пробел — отметить",
        "Read the consents to the customer, Space ticks a box",
    ),
    "help.register.3": (
        "F12 — зарегистрировать, затем Enter — к покупке; Esc — назад (спросит)",
        "F12 - register, then Enter - to a purchase; Esc - back (asks first)",
    ),
    "help.shift.1": ("P — напечатать X-отчёт", "P - print the X-report"),
    "help.shift.2": (
        "F12 — закрыть смену и напечатать Z-отчёт (Enter — да, Esc — нет)",
        "F12 - close the shift, print the Z report (Enter - yes, Esc - no)",
    ),
    "help.sync.1": ("F5 — связаться с бэк-офисом сейчас", "F5 - sync with the back office now"),
    "help.sync.2": (
        "Карантин не держит очередь: его разбирает старший",
        "Quarantine never blocks the queue: a supervisor sorts it out",
    ),
    "help.training.1": (
        "Enter или F9 — включить/выключить учебный режим",
        "Enter or F9 - training mode on/off",
    ),
    "help.training.2": (
        "В учебном режиме ничего не уходит в программу",
        "In training mode nothing reaches the programme",
    ),
    # ------------------------------------------------------------------ errors, misc
    "err.title": ("Ошибка", "Error"),
    "err.unexpected": ("Непредвиденная ошибка: {m}", "Unexpected error: {m}"),
    "err.no_shift": ("Сначала войдите и откройте смену", "Sign in and open a shift first"),
    "printer.fault": ("Принтер: {m}", "Printer: {m}"),
    "lang.switched": ("Язык: русский", "Language: English"),
    "training.on": ("Учебный режим включён", "Training mode on"),
    "slip.preview": ("Слип (предпросмотр)", "Slip (preview)"),
}


def points(lang: str, n: int) -> str:
    """Integer points for the cashier: «1 949 бонусов» / "1,949 points" (the style is
    ``agent.money``'s, the one place for cashier number formats)."""
    from agent.money import format_points

    return format_points(n, lang)


def money(lang: str, kop: int) -> str:
    """Kopecks for the cashier: «17 099,10 ₽» / "17,099.10 ₽" (``agent.money``)."""
    from agent.money import format_rub

    return format_rub(kop, lang=lang)


def register_strings(extra: Mapping[str, tuple[str, str]]) -> None:
    """Add a screen's strings; a key defined twice is a programming error."""
    clash = sorted(set(extra) & set(STRINGS))
    if clash:
        raise ValueError(f"i18n keys defined twice: {', '.join(clash)}")
    STRINGS.update(extra)


def t(lang: str, key: str, **fields: object) -> str:
    """The text of ``key`` in ``lang`` with ``fields`` filled in; an unknown key shows
    itself (visible in tests and snapshots, never a crash at the till)."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**fields) if fields else text
