"""Texts of the stores-and-tills page (Russian, English)."""

from __future__ import annotations

from typing import Final

TEXT: Final[dict[str, tuple[str, str]]] = {
    "stores_title": ("Магазины и кассы", "Stores and tills"),
    "stores_posters": ("Плакаты для регистрации", "Sign-up posters"),
    "stores_posters_intro": (
        "Плакат с QR-кодом: покупатель наводит камеру телефона и получает карту за минуту. "
        "Регистрации считаются по магазину и плакату.",
        "A poster with a QR code: a customer points the phone's camera at it and has the "
        "card in a minute. Sign-ups are counted per store and poster.",
    ),
    "stores_poster_id": ("Плакат", "Poster"),
    "stores_poster_make": ("Плакат (PDF)", "Poster (PDF)"),
    "stores_signups": ("Регистраций", "Sign-ups"),
    "stores_signups_none": (
        "По плакатам пока никто не зарегистрировался.",
        "No one has signed up from a poster yet.",
    ),
    "stores_alarm": (
        "Молчат касс: {n} — дольше {m} мин без связи с бэк-офисом.",
        "Silent tills: {n} — no contact with the back office for over {m} min.",
    ),
    "stores_all_calling": (
        "Все кассы на связи (порог молчания {m} мин).",
        "Every till is calling in (silence threshold {m} min).",
    ),
    "stores_stores": ("Магазины", "Stores"),
    "stores_id": ("Код магазина", "Store id"),
    "stores_name": ("Название", "Name"),
    "stores_created": ("Добавлен (UTC)", "Added (UTC)"),
    "stores_tills_count": ("Касс", "Tills"),
    "stores_open_codes": ("Открытых кодов", "Open codes"),
    "stores_make_code": ("Код подключения", "Enrollment code"),
    "stores_none": ("Магазинов пока нет.", "No stores yet."),
    "stores_add": ("Добавить магазин", "Add a store"),
    "stores_add_button": ("Добавить", "Add"),
    "stores_code_title": ("Код подключения кассы", "Till enrollment code"),
    "stores_code_text": (
        "Код для магазина {store}: введите его на новой кассе (kassa enroll --code). "
        "Он показан один раз, годится для одной кассы и действует до {until} UTC.",
        "The code for store {store}: type it at the new till (kassa enroll --code). "
        "It is shown once, enrolls one till and is valid until {until} UTC.",
    ),
    "stores_unknown_store": ("Магазина {store} нет.", "There is no store {store}."),
    "stores_tills": ("Кассы", "Tills"),
    "stores_till": ("Касса", "Till"),
    "stores_last_contact": ("Последняя связь (UTC)", "Last contact (UTC)"),
    "stores_never": ("не выходила на связь", "never called"),
    "stores_waiting": ("В очереди", "Queued"),
    "stores_oldest": ("Самое старое неотправленное", "Oldest unsent"),
    "stores_quarantined": ("В карантине", "Quarantined"),
    "stores_software": ("Версия ПО", "Software"),
    "stores_state": ("Состояние", "State"),
    "stores_silent_for": ("молчит {m} мин", "silent {m} min"),
    "stores_calling": ("на связи", "calling in"),
    "stores_revoked": ("отключена", "revoked"),
    "stores_unknown": ("нет данных", "not reported"),
    "stores_no_tills": ("Подключённых касс нет.", "No tills enrolled."),
    "stores_queue_note": (
        "Очередь и карантин — как касса сообщила при последней связи.",
        "Queue and quarantine are as the till told at its last contact.",
    ),
    "stores_threshold": ("Порог молчания, минут", "Silence threshold, minutes"),
    "stores_threshold_save": ("Сохранить порог", "Save the threshold"),
    "stores_launch": ("Закрытый запуск: кассиры", "Closed launch: cashiers"),
    "stores_launch_intro": (
        "Те же определения, что в отчёте KPI (kassa backoffice report): чеки без "
        "возвращённых полностью; по телефону — доля пробитых чеков, где участника нашли "
        "по набранному телефону, а не по скану.",
        "The KPI report's definitions (kassa backoffice report): cheques net of those "
        "returned in full; typed phone — the share of rung cheques whose member was found "
        "by a typed phone rather than a scan.",
    ),
    "stores_from": ("С (ГГГГ-ММ-ДД)", "From (YYYY-MM-DD)"),
    "stores_to": ("По (ГГГГ-ММ-ДД)", "To (YYYY-MM-DD)"),
    "stores_show": ("Показать", "Show"),
    "stores_cashier": ("Кассир", "Cashier"),
    "stores_registrations": ("Регистраций", "Registrations"),
    "stores_cheques": ("Чеков с участником", "Cheques with a member"),
    "stores_refunded": ("Возвращено полностью", "Returned in full"),
    "stores_refunds": ("Возвратов", "Refunds"),
    "stores_typed": ("Телефон набран", "Phone typed"),
    "stores_scan_share": ("Доля сканов", "Scan share"),
    "stores_typed_share": ("Доля набранных", "Typed share"),
    "stores_top_member": ("Макс. чеков одного участника", "Most cheques of one member"),
    "stores_signals": ("Сигналы", "Signals"),
    "stores_no_cashiers": ("За период кассиры ничего не пробили.", "No cashier activity."),
    "signal_manual_phone_share": ("часто вводит телефон", "often types the phone"),
    "signal_same_member_many_cheques": (
        "один участник на многих чеках",
        "one member on many cheques",
    ),
    "action_store_added": ("магазин добавлен", "store added"),
    "action_enroll_code_made": ("выдан код подключения кассы", "till enrollment code made"),
    "action_silent_threshold_set": ("изменён порог молчания касс", "silent-till threshold set"),
}
