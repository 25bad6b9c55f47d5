"""Texts of the webhooks section (Russian, English)."""

from __future__ import annotations

from typing import Final

TEXT: Final[dict[str, tuple[str, str]]] = {
    "section_webhooks": ("Вебхуки", "Webhooks"),
    "webhooks_title": (
        "Вебхуки: события участников внешним системам",
        "Webhooks: member events to other systems",
    ),
    "webhooks_intro": (
        "Подписка получает события участников на свой адрес (HTTPS), подписанные по "
        "Standard Webhooks. Получатель недоступен — события ждут и повторяются до 72 часов, "
        "потом попадают в неотправленные; их можно отправить снова.",
        "A subscription gets the member events at its address (HTTPS), signed per Standard "
        "Webhooks. While the receiver is down the events wait and are retried for up to 72 "
        "hours, then become dead letters, which can be sent again.",
    ),
    "webhooks_none": ("Подписок ещё нет.", "No subscriptions yet."),
    "webhooks_new": ("Новая подписка", "New subscription"),
    "webhooks_url": ("Адрес получателя (https://…)", "Receiver's URL (https://…)"),
    "webhooks_url_hint": (
        "http:// допускается только для 127.0.0.1, ::1 и localhost",
        "http:// only for 127.0.0.1, ::1 and localhost",
    ),
    "webhooks_types": ("Типы событий", "Event types"),
    "webhooks_types_hint": (
        "ни одного не отмечено — все типы, и новые тоже",
        "none ticked: every type, new ones too",
    ),
    "webhooks_all_types": ("все типы", "every type"),
    "webhooks_create": ("Создать подписку", "Create the subscription"),
    "webhooks_col_id": ("№", "#"),
    "webhooks_col_url": ("Адрес", "URL"),
    "webhooks_col_types": ("Типы", "Types"),
    "webhooks_col_state": ("Состояние", "State"),
    "webhooks_col_last": ("Последняя доставка", "Last delivery"),
    "webhooks_col_pending": ("В очереди", "Pending"),
    "webhooks_col_failing": ("С ошибкой", "Failing"),
    "webhooks_col_dead": ("Не доставлены", "Dead"),
    "webhooks_open": ("Открыть", "Open"),
    "webhooks_state_active": ("активна", "active"),
    "webhooks_state_disabled": ("отключена", "disabled"),
    "webhooks_reason_manual": ("вручную", "by hand"),
    "webhooks_reason_gone": (
        "получатель ответил 410 Gone",
        "the receiver answered 410 Gone",
    ),
    "webhooks_never": ("ещё не было", "none yet"),
    "webhooks_no_answer": ("нет ответа", "no answer"),
    "webhooks_secret_title": ("Секрет подписи — скопируйте сейчас", "Signing secret: copy it now"),
    "webhooks_secret_text": (
        "Секрет показывается один раз: больше консоль его не покажет. Получатель проверяет "
        "им заголовок webhook-signature.",
        "The secret is shown once: the console will not show it again. The receiver checks "
        "the webhook-signature header with it.",
    ),
    "webhooks_rotated_text": (
        "Новый секрет показывается один раз. Старый ещё подписывает события до {until} UTC "
        "(обе подписи в заголовке), чтобы получатель успел перейти.",
        "The new secret is shown once. The old one still signs the events until {until} UTC "
        "(both signatures in the header), so the receiver has time to switch.",
    ),
    "webhooks_rotating": (
        "старый секрет подписывает до {until} UTC",
        "the old secret signs until {until} UTC",
    ),
    "webhooks_subscription": ("Подписка № {id}", "Subscription #{id}"),
    "webhooks_back": ("Все подписки", "All subscriptions"),
    "webhooks_not_found": ("Такой подписки нет.", "There is no such subscription."),
    "webhooks_created_at": ("Создана (UTC)", "Created (UTC)"),
    "webhooks_cursor": ("Последнее взятое событие", "Last event taken"),
    "webhooks_rotate": ("Сменить секрет", "Rotate the secret"),
    "webhooks_disable": ("Отключить", "Disable"),
    "webhooks_enable": ("Включить", "Enable"),
    "webhooks_delete": ("Удалить подписку", "Delete the subscription"),
    "webhooks_delete_confirm": (
        "Удалить подписку вместе с очередью и журналом?",
        "Delete the subscription with its queue and log?",
    ),
    "webhooks_save_types": ("Сохранить типы", "Save the types"),
    "webhooks_done_enabled": ("Подписка включена.", "Subscription enabled."),
    "webhooks_done_disabled": ("Подписка отключена.", "Subscription disabled."),
    "webhooks_done_types": ("Типы событий сохранены.", "Event types saved."),
    "webhooks_done_deleted": ("Подписка № {id} удалена.", "Subscription #{id} deleted."),
    "webhooks_done_replayed": (
        "Снова поставлено в очередь событий: {n}.",
        "Events queued again: {n}.",
    ),
    "webhooks_replay": ("Отправить снова", "Send again"),
    "webhooks_replay_one": ("Одно событие или диапазон номеров", "One event or a range of ids"),
    "webhooks_first": ("Номер события", "Event id"),
    "webhooks_last": ("по номер (необязательно)", "up to id (optional)"),
    "webhooks_replay_range": ("События за время (UTC)", "Events of a time span (UTC)"),
    "webhooks_since": ("с", "from"),
    "webhooks_until": ("до", "until"),
    "webhooks_log": ("Журнал доставки", "Delivery log"),
    "webhooks_log_none": ("Попыток доставки ещё не было.", "No delivery attempts yet."),
    "webhooks_log_older": ("Более ранние", "Older"),
    "webhooks_col_at": ("Время (UTC)", "Time (UTC)"),
    "webhooks_col_event": ("Событие", "Event"),
    "webhooks_col_type": ("Тип", "Type"),
    "webhooks_col_member": ("Участник", "Member"),
    "webhooks_col_status": ("Код ответа", "Status"),
    "webhooks_col_attempt": ("Попытка", "Attempt"),
    "webhooks_col_next": ("Следующая (UTC)", "Next (UTC)"),
    "webhooks_col_error": ("Ошибка", "Error"),
    "webhooks_col_ms": ("мс", "ms"),
    "webhooks_dead": ("Неотправленные (ошибки 72 часа)", "Dead letters (failing for 72 hours)"),
    "webhooks_dead_none": ("Неотправленных нет.", "No dead letters."),
    "webhooks_col_attempts": ("Попыток", "Attempts"),
    "webhooks_col_first": ("Первая попытка (UTC)", "First attempt (UTC)"),
    "action_webhook_added": ("подписка на вебхуки создана", "webhook subscription added"),
    "action_webhook_types_set": ("типы событий вебхука изменены", "webhook types changed"),
    "action_webhook_secret_rotated": ("секрет вебхука сменён", "webhook secret rotated"),
    "action_webhook_enabled": ("вебхук включён", "webhook enabled"),
    "action_webhook_disabled": ("вебхук отключён", "webhook disabled"),
    "action_webhook_replayed": ("события вебхука отправлены снова", "webhook events replayed"),
    "action_webhook_deleted": ("подписка на вебхуки удалена", "webhook subscription deleted"),
}
