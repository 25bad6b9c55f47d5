"""Sanity ceilings for a cheque: the most one line and one cheque may cost (kopecks).

A fashion store's dearest item is a coat or a fur of a few hundred thousand roubles and
its largest cheque a few of those, so an amount above these ceilings is a typo (an extra
zero typed at the till, kopecks sent as roubles by a POS), never a sale. They are checked
where cart lines are validated (``agent.engine.validate_cart``), so the cashier app, the
POS API and the CLI refuse the same cheques with the same ``ChequeLimitError``.
"""

from __future__ import annotations

from agent.errors import ChequeLimitError
from agent.money import Kopecks, format_rub

LINE_MAX_KOP: Kopecks = 1_000_000_00
"""One line (price x quantity) at most 1 000 000,00 ₽."""

CHEQUE_MAX_KOP: Kopecks = 10_000_000_00
"""One cheque (the sum of its lines) at most 10 000 000,00 ₽."""

MAX_LINES = 500
"""Lines of one cheque at most (``agent.engine.validate_cart`` refuses more with a
``CartError``; the POS API's schema says ``maxItems`` from this same number)."""


def check_line(amount_kop: Kopecks, line_no: int | None = None) -> None:
    """Refuse one line costing more than ``LINE_MAX_KOP`` (``line_no``: 1-based, named in
    the message when known)."""
    if amount_kop <= LINE_MAX_KOP:
        return
    where_en = f"line {line_no}: " if line_no is not None else ""
    where_ru = f"позиция {line_no}: " if line_no is not None else ""
    raise ChequeLimitError(
        f"{where_en}{format_rub(amount_kop, lang='en')} is more than one line may cost "
        f"({format_rub(LINE_MAX_KOP, lang='en')}): check the price and the quantity",
        f"{where_ru}{format_rub(amount_kop)} — больше, чем может стоить одна позиция "
        f"({format_rub(LINE_MAX_KOP)}): проверьте цену и количество",
        field="amount_kop",
        amount_kop=amount_kop,
        limit_kop=LINE_MAX_KOP,
        **({"line_no": line_no} if line_no is not None else {}),
    )


def check_cheque(total_kop: Kopecks) -> None:
    """Refuse a cheque whose lines add up to more than ``CHEQUE_MAX_KOP``."""
    if total_kop <= CHEQUE_MAX_KOP:
        return
    raise ChequeLimitError(
        f"the cheque would be {format_rub(total_kop, lang='en')}, more than one cheque may "
        f"be ({format_rub(CHEQUE_MAX_KOP, lang='en')}): check the amounts",
        f"чек на {format_rub(total_kop)} — больше, чем может быть один чек "
        f"({format_rub(CHEQUE_MAX_KOP)}): проверьте суммы",
        field="total",
        amount_kop=total_kop,
        limit_kop=CHEQUE_MAX_KOP,
    )
