"""Every text the console shows, in Russian (the default) and English.

Templates call ``t("key")``; a page never holds a bare string. A section's texts live in
``console/texts/<section>.py`` and are merged here. Russian is the language of
the programme's people; English is switched per browser session (a cookie, the switch in
every page's header).
"""

from __future__ import annotations

from typing import Final

from sync.backoffice.console.texts import coupons as coupons_texts
from sync.backoffice.console.texts import dashboard as dashboard_texts
from sync.backoffice.console.texts import members as members_texts
from sync.backoffice.console.texts import merge
from sync.backoffice.console.texts import rules as rules_texts
from sync.backoffice.console.texts import segments as segments_texts
from sync.backoffice.console.texts import stores as stores_texts
from sync.backoffice.console.texts import webhooks as webhooks_texts

LANGS: Final = ("ru", "en")

_SHARED: Final[dict[str, tuple[str, str]]] = {
    "brand": ("Kassa · консоль программы", "Kassa · programme console"),
    "lang_switch": ("English", "Русский"),
    "signin_title": ("Вход в консоль", "Sign in to the console"),
    "login": ("Логин", "Login"),
    "password": ("Пароль", "Password"),
    "signin": ("Войти", "Sign in"),
    "signout": ("Выйти", "Sign out"),
    "wrong_password": ("Неверный логин или пароль.", "Wrong login or password."),
    "attempts_left": ("Осталось попыток до блокировки: {n}.", "Attempts left before lockout: {n}."),
    "locked": (
        "Вход заблокирован после {n} неудачных попыток. Попробуйте через {time}.",
        "Sign-in is locked after {n} failed attempts. Try again in {time}.",
    ),
    "minutes_seconds": ("{m} мин {s} с", "{m} min {s} s"),
    "home_title": ("Главная", "Home"),
    "you_are": ("Вы вошли как", "Signed in as"),
    "role": ("Роль", "Role"),
    "store": ("Магазин", "Store"),
    "your_sections": ("Доступные разделы", "Your sections"),
    "in_development": ("в разработке", "in development"),
    "in_development_page": (
        "Этот раздел ещё в разработке: данных здесь пока нет.",
        "This section is still in development: it shows no data yet.",
    ),
    "refused_title": ("Нет доступа", "Access refused"),
    "refused_text": (
        "Вашей роли этот раздел недоступен.",
        "Your role may not open this section.",
    ),
    "csrf_title": ("Запрос отклонён", "Request refused"),
    "csrf_text": (
        "Форма устарела или пришла не из консоли. Обновите страницу и повторите.",
        "The form is stale or did not come from the console. Reload the page and retry.",
    ),
    "back_home": ("На главную", "Back to home"),
    "audit_title": ("Журнал действий", "Audit log"),
    "audit_intro": (
        "Каждое изменение, сделанное человеком; записи связаны цепочкой хешей SHA-256.",
        "Every change made by a person; the rows are chained by SHA-256 hashes.",
    ),
    "audit_verify": ("Проверить цепочку", "Verify the chain"),
    "audit_ok": ("Цепочка цела, записей: {n}.", "The chain is intact, rows: {n}."),
    "audit_broken": (
        "Цепочка нарушена на записи № {n} ({reason}).",
        "The chain is broken at row {n} ({reason}).",
    ),
    "audit_empty": ("Записей пока нет.", "No rows yet."),
    "col_n": ("№", "#"),
    "col_at": ("Время (UTC)", "Time (UTC)"),
    "col_actor": ("Кто", "Who"),
    "col_action": ("Действие", "Action"),
    "col_subject": ("Объект", "Subject"),
    "col_detail": ("Подробности", "Details"),
    "col_hash": ("Хеш", "Hash"),
    "older": ("Более ранние", "Older"),
    "users_title": ("Пользователи и права", "People and rights"),
    "users_add": ("Добавить пользователя", "Add a user"),
    "users_locked_until": (
        "вход заблокирован до {until} UTC",
        "sign-in locked until {until} UTC",
    ),
    "name": ("Имя", "Name"),
    "store_hint": ("магазин (только для управляющего)", "store (store managers only)"),
    "add": ("Добавить", "Add"),
    "status": ("Состояние", "Status"),
    "active": ("активен", "active"),
    "blocked": ("заблокирован", "blocked"),
    "block": ("Заблокировать", "Block"),
    "unblock": ("Разблокировать", "Unblock"),
    "not_yourself": ("Нельзя заблокировать самого себя.", "You cannot block yourself."),
    # sections
    "section_dashboard": ("Сводка", "Dashboard"),
    "section_members": ("Участники", "Members"),
    "section_coupons": ("Купоны", "Coupons"),
    "section_rules": ("Правила программы", "Programme rules"),
    "section_stores": ("Магазины и кассы", "Stores and tills"),
    "section_users": ("Пользователи и права", "People and rights"),
    "section_audit": ("Журнал действий", "Audit log"),
    # roles
    "role_owner": ("владелец программы", "programme owner"),
    "role_analyst": ("аналитик", "analyst"),
    "role_marketing": ("маркетинг", "marketing"),
    "role_support": ("поддержка", "support"),
    "role_store_manager": ("управляющий магазином", "store manager"),
    # audit actions
    "action_sign_in": ("вход", "signed in"),
    "action_sign_in_failed": ("неудачный вход", "failed sign-in"),
    "action_locked_out": ("блокировка входа", "locked out"),
    "action_user_added": ("пользователь добавлен", "user added"),
    "action_user_changed": ("пользователь изменён", "user changed"),
    "members_flag_erase_requested": ("запрос на удаление данных", "asked to erase the data"),
    "reason_hash": ("запись изменена", "row changed"),
    "reason_link": ("запись удалена или переставлена", "row deleted or moved"),
    "reason_sequence": ("пропущен номер", "a number missing"),
    "reason_head": ("удалены последние записи", "newest rows deleted"),
}

TEXT: Final = merge(
    _SHARED,
    members_texts.TEXT,
    stores_texts.TEXT,
    dashboard_texts.TEXT,
    coupons_texts.TEXT,
    rules_texts.TEXT,
    segments_texts.TEXT,
    webhooks_texts.TEXT,
)
"""Every text: the shared ones above and each section's (``console/texts/<section>.py``)."""


def text(lang: str, key: str, **values: object) -> str:
    """The text ``key`` in ``lang`` (Russian unless ``en``), with ``{name}`` filled in."""
    ru, en = TEXT[key]
    out = en if lang == "en" else ru
    return out.format(**values) if values else out


def label(lang: str, prefix: str, key: str) -> str:
    """``prefix_key``'s text (a role, section or action name), or ``key`` itself if none."""
    return text(lang, f"{prefix}_{key}") if f"{prefix}_{key}" in TEXT else key
