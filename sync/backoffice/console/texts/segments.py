"""Texts of the segments section (Russian, English)."""

from __future__ import annotations

from typing import Final

TEXT: Final[dict[str, tuple[str, str]]] = {
    "section_segments": ("Сегменты", "Segments"),
    "segments_title": ("Сегменты участников", "Member segments"),
    "segments_intro": (
        "Сегмент — участники, подходящие под все заданные условия. Пустое условие не "
        "ограничивает. Состав пересчитывается каждую ночь (и по кнопке): вход и выход "
        "участников уходят событиями в маркетинговые системы.",
        "A segment is the members who meet every condition given; an empty condition does "
        "not filter. Membership is re-evaluated nightly (and on demand): members entering "
        "and leaving are sent as events to the marketing systems.",
    ),
    "segments_new": ("Новый сегмент", "New segment"),
    "segments_none": ("Сегментов ещё нет.", "No segments yet."),
    "segments_name": ("Название", "Name"),
    "segments_control_pct": ("Контрольная группа, %", "Control group, %"),
    "segments_control_hint": (
        "участники контрольной группы помечаются в выгрузке (control = 1) и не получают "
        "рассылку: так измеряется чистый отклик",
        "control-group members are marked in exports (control = 1) and get no mailing: "
        "that measures the net response",
    ),
    "segments_salt": ("Ключ кампании (необязательно)", "Campaign key (optional)"),
    "segments_consent": (
        "Только согласившиеся на рассылки",
        "Only members who agreed to marketing",
    ),
    "segments_recency": ("Дней с последней покупки", "Days since the last purchase"),
    "segments_frequency": ("Покупок за период", "Purchases in a period"),
    "segments_monetary": ("Сумма покупок за период, ₽", "Spend in a period, ₽"),
    "segments_window": ("за дней", "over days"),
    "segments_from": ("от", "from"),
    "segments_to": ("до", "to"),
    "segments_tiers": ("Уровни (через запятую: {tiers})", "Tiers (comma-separated: {tiers})"),
    "segments_registered_at": (
        "Магазины регистрации (коды через запятую)",
        "Stores of registration (codes, comma-separated)",
    ),
    "segments_purchased_at": (
        "Покупали в магазинах (коды через запятую)",
        "Bought at stores (codes, comma-separated)",
    ),
    "segments_birthday_months": (
        "Месяцы дня рождения (1–12 через запятую)",
        "Birthday months (1-12, comma-separated)",
    ),
    "segments_balance": ("Баланс баллов", "Points balance"),
    "segments_expiring": ("Сгорают баллы в ближайшие дней", "Points expiring within days"),
    "segments_expiring_min": ("не меньше баллов", "at least points"),
    "segments_collection": ("Коллекция ({mechanics})", "Collection ({mechanics})"),
    "segments_collection_none": (
        "в программе нет коллекций",
        "the programme has no collections",
    ),
    "segments_collection_units": ("собрано единиц", "units collected"),
    "segments_rfm": ("RFM-оценки (1–5 через запятую)", "RFM scores (1-5, comma-separated)"),
    "segments_abc": ("ABC-класс (A, B, C)", "ABC class (A, B, C)"),
    "segments_preview": ("Сейчас подходит участников: {n}", "Members matching now: {n}"),
    "segments_create": ("Создать сегмент", "Create the segment"),
    "segments_save": ("Сохранить", "Save"),
    "segments_saved": ("Сегмент сохранён.", "Segment saved."),
    "segments_col_name": ("Сегмент", "Segment"),
    "segments_col_members": ("Участников", "Members"),
    "segments_col_control": ("Контроль", "Control"),
    "segments_col_evaluated": ("Пересчитан (UTC)", "Evaluated (UTC)"),
    "segments_col_by": ("Изменил", "Changed by"),
    "segments_never": ("ещё не пересчитан", "not evaluated yet"),
    "segments_open": ("Открыть", "Open"),
    "segments_evaluate": ("Пересчитать состав сейчас", "Evaluate membership now"),
    "segments_evaluated": (
        "Состав пересчитан: {n} участников, вошли {entered}, вышли {left}.",
        "Membership evaluated: {n} members, {entered} entered, {left} left.",
    ),
    "segments_export": ("Выгрузить участников", "Export the members"),
    "segments_csv_semicolon": ("CSV для Excel (;)", "CSV for Excel (;)"),
    "segments_csv_comma": ("CSV (запятая)", "CSV (comma)"),
    "segments_ndjson": ("NDJSON (JSON по строкам)", "NDJSON (JSON lines)"),
    "segments_export_note": (
        "Телефоны только маской; CSV в UTF-8 с BOM, чтобы Excel показал кириллицу.",
        "Phones masked only; CSV in UTF-8 with a BOM so Excel shows Cyrillic.",
    ),
    "segments_schedule": ("Выгрузка по расписанию", "Scheduled export"),
    "segments_every_hours": ("каждые часов", "every hours"),
    "segments_format": ("Формат", "Format"),
    "segments_delimiter": ("Разделитель", "Delimiter"),
    "segments_schedule_add": ("Добавить расписание", "Add the schedule"),
    "segments_scheduled_ok": ("Расписание добавлено.", "Schedule added."),
    "segments_col_next": ("Следующая (UTC)", "Next (UTC)"),
    "segments_col_last": ("Последний файл", "Last file"),
    "segments_not_found": ("Такого сегмента нет.", "There is no such segment."),
    "segments_back": ("Все сегменты", "All segments"),
    "action_segment_created": ("сегмент создан", "segment created"),
    "action_segment_saved": ("сегмент изменён", "segment changed"),
    "action_segment_exported": ("выгрузка сегмента", "segment exported"),
    "action_segment_export_scheduled": (
        "выгрузка сегмента по расписанию",
        "segment export scheduled",
    ),
}
