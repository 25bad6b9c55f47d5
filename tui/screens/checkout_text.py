"""Cashier strings of the checkout screen's line selection, line void, prompts and coupons
(registered with ``tui.i18n`` on import; the rest of the checkout's strings are in its
table)."""

from __future__ import annotations

from tui.i18n import register_strings

register_strings(
    {
        "bind.void_line": ("Сторно", "Void line"),
        "co.line_selected": (
            "Строка {n}: Del — сторно, ↑↓ — другая строка, Esc — снять выбор",
            "Line {n}: Del - void it, Up/Down - another line, Esc - unselect",
        ),
        "co.line_voided": ("Строка {n} «{name}» удалена из чека", "Line {n} «{name}» voided"),
        "co.coupon_waits": (
            "{coupon} принят: применится, когда найдём участника",
            "{coupon} taken: applied once the member is identified",
        ),
        "co.coupon_pending": ("ждёт участника", "waits for the member"),
        "co.coupon_refused": ("Купон не принят", "Coupon refused"),
        "co.quoting": (
            "Чек ещё считается — нажмите Enter ещё раз",
            "The cheque is still being quoted - press Enter again",
        ),
        "help.checkout.keys": (
            "F8 — новый чек; ↑↓, Del — сторно строки; Esc — шаг назад",
            "F8 - new cheque; Up/Down, Del - void a line; Esc - step back",
        ),
        "quit.what.cheque": ("открытый чек", "the open cheque"),
    }
)
