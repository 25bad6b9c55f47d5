"""Every text the members' pages show, in Russian (the default) and English (switched per
phone by a cookie). Templates call ``t("key")``; a page never holds a bare string.

The two consent documents (152-FZ: the consent to process personal data is a document of
its own) are here too, each with the text version recorded when a member gives or
withdraws it (``member_signup``: the programme's ``consent_text_version``,
``MARKETING_TEXT_VERSION``).
"""

from __future__ import annotations

from typing import Final

LANGS: Final = ("ru", "en")

TEXT: Final[dict[str, tuple[str, str]]] = {
    "brand": ("Карта покупателя", "Loyalty card"),
    "lang_switch": ("English", "Русский"),
    "join_title": ("Карта без пластика", "A card without plastic"),
    "join_intro": (
        "Укажите телефон: пришлём код в SMS. Карта откроется здесь, в телефоне.",
        "Enter your phone: we will text you a code. The card opens here, on your phone.",
    ),
    "phone": ("Телефон", "Phone"),
    "send_code": ("Получить код", "Get a code"),
    "code_title": ("Код из SMS", "The code from the SMS"),
    "code_sent": (
        "Если номер {phone} верный, на него отправлен код из 6 цифр. Он действует 5 минут.",
        "If {phone} is right, a 6-digit code was sent to it. It is valid for 5 minutes.",
    ),
    "code": ("Код", "Code"),
    "check_code": ("Подтвердить", "Confirm"),
    "resend": ("Отправить код ещё раз", "Send the code again"),
    "other_phone": ("Другой телефон", "Another phone"),
    "profile_title": ("Почти готово", "Almost done"),
    "first_name": ("Имя", "First name"),
    "birthday": ("Дата рождения (необязательно)", "Birthday (optional)"),
    "birthday_hint": (
        "В день рождения начислим бонусы.",
        "We give bonus points on your birthday.",
    ),
    "consent_programme": (
        "Согласен(на) с правилами программы и на обработку персональных данных",
        "I accept the programme's rules and the processing of my personal data",
    ),
    "consent_marketing": (
        "Согласен(на) получать предложения и новости (можно отозвать в любой момент)",
        "I agree to receive offers and news (can be withdrawn at any time)",
    ),
    "read_document": ("текст согласия", "the consent's text"),
    "get_card": ("Получить карту", "Get the card"),
    "card_title": ("Ваша карта", "Your card"),
    "qr_hint": (
        "Покажите QR-код на кассе. Код обновляется сам.",
        "Show the QR code at the till. It refreshes by itself.",
    ),
    "time_left": ("Код действует ещё", "Valid for"),
    "refresh_needed": (
        "Код устарел: подключитесь к интернету, чтобы обновить его, или назовите номер карты.",
        "The code has expired: go online to refresh it, or tell the cashier the card number.",
    ),
    "offline": ("Нет связи: показан сохранённый код.", "Offline: showing a saved code."),
    "card_number": ("Номер карты", "Card number"),
    "balance": ("Баланс", "Balance"),
    "available": ("Можно потратить", "Spendable"),
    "points": ("бонусов", "points"),
    "pending": ("Начислятся", "Coming"),
    "pending_row": ("{points} бонусов с {date}", "{points} points from {date}"),
    "expiring": ("Сгорят {points} бонусов {date}", "{points} points expire on {date}"),
    "tier": ("Уровень", "Tier"),
    "to_next": (
        "До уровня «{tier}» осталось купить на {rub} ₽",
        "Spend {rub} RUB more to reach “{tier}”",
    ),
    "top_tier": ("Это высший уровень.", "This is the top tier."),
    "collections": ("Коллекции", "Collections"),
    "collection_row": ("{name}: {n} из {target}", "{name}: {n} of {target}"),
    "history": ("Последние покупки", "Recent purchases"),
    "no_history": ("Покупок пока нет.", "No purchases yet."),
    "history_row": (
        "{date}: {rub} ₽, начислено {earned}, списано {spent}",
        "{date}: {rub} RUB, earned {earned}, spent {spent}",
    ),
    "consents": ("Согласия", "Consents"),
    "consent_given": ("дано {date} (версия {version})", "given {date} (version {version})"),
    "consent_withdrawn": (
        "отозвано {date} (версия {version})",
        "withdrawn {date} (version {version})",
    ),
    "consent_refused": (
        "не дано {date} (версия {version})",
        "not given {date} (version {version})",
    ),
    "kind_programme": ("Правила программы и персональные данные", "Programme and personal data"),
    "kind_marketing": ("Рассылки", "Offers and news"),
    "withdraw_marketing": ("Отозвать согласие на рассылки", "Withdraw consent to offers"),
    "erase_title": ("Удаление данных", "Erasing your data"),
    "erase_text": (
        "По запросу ваши персональные данные будут уничтожены в течение 30 дней, "
        "карта и бонусы пропадут.",
        "On request your personal data are destroyed within 30 days; the card and its "
        "points are gone.",
    ),
    "erase_button": ("Запросить удаление данных", "Ask to erase my data"),
    "erase_requested": (
        "Запрос на удаление данных принят {date}. Мы сообщим, когда данные будут уничтожены.",
        "Your request to erase your data was received on {date}. We will tell you when "
        "they are destroyed.",
    ),
    "signout": ("Выйти", "Sign out"),
    "install": (
        "Добавьте страницу на главный экран: карта откроется и без связи.",
        "Add this page to your home screen: the card opens offline too.",
    ),
    "csrf_title": ("Запрос отклонён", "Request refused"),
    "csrf_text": (
        "Форма устарела. Обновите страницу и повторите.",
        "The form is stale. Reload the page and try again.",
    ),
    "gone_title": ("Карта недоступна", "The card is not available"),
    "gone_text": (
        "Войдите снова по номеру телефона.",
        "Sign in again with your phone number.",
    ),
    "start_again": ("Начать сначала", "Start again"),
    "document_title": ("Текст согласия", "Consent text"),
    "version": ("Версия", "Version"),
    "back": ("Назад", "Back"),
    "doc_programme": (
        "Я даю согласие оператору программы лояльности на обработку моих персональных "
        "данных (имя, номер телефона, дата рождения, история покупок) для участия в "
        "программе: выпуска карты, начисления и списания бонусов, расчёта уровня. "
        "Согласие действует до его отзыва; отозвать его можно на странице карты, запросив "
        "удаление данных. Данные уничтожаются в течение 30 дней после отзыва.",
        "I consent to the loyalty programme's operator processing my personal data (first "
        "name, phone number, birthday, purchase history) for taking part in the programme: "
        "issuing the card, earning and spending points, working out the tier. The consent "
        "holds until withdrawn; it is withdrawn on the card page by asking to erase the "
        "data. The data are destroyed within 30 days of the withdrawal.",
    ),
    "doc_marketing": (
        "Я даю согласие получать от оператора программы лояльности предложения, новости и "
        "персональные скидки по SMS и другим каналам связи. Согласие можно отозвать в любой "
        "момент на странице карты; на участие в программе это не влияет.",
        "I consent to receive offers, news and personal discounts from the loyalty "
        "programme's operator by SMS and other channels. The consent can be withdrawn at "
        "any time on the card page; this does not affect taking part in the programme.",
    ),
}


def text(lang: str, key: str, **values: object) -> str:
    """The text ``key`` in ``lang`` (Russian unless ``en``), with ``{name}`` filled in."""
    ru, en = TEXT[key]
    out = en if lang == "en" else ru
    return out.format(**values) if values else out
