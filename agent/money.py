"""Money in integer kopecks, points as integers, and the one place they are formatted.

Why integers: a loyalty discount ends up on a fiscal receipt line by line (54-FZ), and
the per-line amounts must add up to the cheque exactly. Floats cannot promise that.

Units: ``Kopecks`` = 1/100 rouble; ``Points`` = loyalty points ("бонусы"), whose value
in kopecks is set by the programme (``point_value_kop``, usually 100 = 1 rouble).
"""

from __future__ import annotations

from collections.abc import Sequence

Kopecks = int
Points = int

NBSP = "\u00a0"
"""Thousands separator and unit gap: a non-breaking space keeps "1 250,00 ₽" on one line."""

# Cashier number style, one per language, for money and points alike:
#   ru  1 250,00 ₽   1 250 бонусов   (non-breaking space groups, decimal comma)
#   en  1,250.00 ₽   1,250 points    (comma groups, decimal point)
# The rouble sign follows the amount in both (after a non-breaking space). Slips and
# documents are Russian: their callers leave ``lang`` at "ru".

MAX_CHEQUE_KOP: Kopecks = 100_000_000_00
"""Sanity ceiling for one cheque (100 million roubles): anything above is a typo."""


def _group(n: int, lang: str = "ru") -> str:
    return f"{n:,}" if lang == "en" else f"{n:,}".replace(",", NBSP)


def format_rub(amount: Kopecks, *, sign: bool = False, lang: str = "ru") -> str:
    """Kopecks as the cashier reads them: 125000 -> "1 250,00 ₽" (non-breaking spaces);
    in English "1,250.00 ₽"."""
    neg = amount < 0
    rub, kop = divmod(abs(amount), 100)
    prefix = "-" if neg else ("+" if sign and amount > 0 else "")
    point = "." if lang == "en" else ","
    return f"{prefix}{_group(rub, lang)}{point}{kop:02d}{NBSP}₽"


def plural_ru(n: int, one: str, few: str, many: str) -> str:
    """Russian plural form for ``n`` (1 бонус, 2 бонуса, 5 бонусов, 21 бонус, 11 бонусов)."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def format_points(points: Points, lang: str = "ru", *, sign: bool = False) -> str:
    """Points with the right word: 1250 -> "1 250 бонусов" / "1,250 points"."""
    prefix = "-" if points < 0 else ("+" if sign and points > 0 else "")
    if lang == "en":
        word = "point" if abs(points) == 1 else "points"
        return f"{prefix}{_group(abs(points), lang)} {word}"
    word = plural_ru(points, "бонус", "бонуса", "бонусов")
    return f"{prefix}{_group(abs(points))}{NBSP}{word}"


def percent_of(amount: Kopecks, basis_points: int) -> Kopecks:
    """``amount`` x ``basis_points``/10000, rounded down (1 bp = 0.01 %)."""
    return amount * basis_points // 10_000


def allocate(total: int, weights: Sequence[int], caps: Sequence[int] | None = None) -> list[int]:
    """Split ``total`` over lines in proportion to ``weights``, exactly, by largest remainder.

    ``caps`` bounds each line's share (e.g. line amount minus the programme's minimum
    payable per line); shares that hit their cap are fixed and the rest is spread again
    over the other lines (water filling), so the split stays proportional where it can.
    The result sums to ``total`` exactly; ties in remainders go to the earlier line, so
    the result is deterministic.

    Raises ``ValueError`` if ``total`` is negative, a weight or cap is negative, or
    ``total`` exceeds the sum of caps: callers must cap the total first.
    """
    n = len(weights)
    if caps is None:
        caps = [total] * n
    if len(caps) != n:
        raise ValueError("weights and caps differ in length")
    if total < 0 or any(w < 0 for w in weights) or any(c < 0 for c in caps):
        raise ValueError("allocate() takes non-negative numbers only")
    if total > sum(caps):
        raise ValueError(f"cannot allocate {total} within caps summing to {sum(caps)}")
    shares = [0] * n
    open_lines = [i for i in range(n) if caps[i] > 0]
    remaining = total
    while remaining > 0:
        weight_sum = sum(weights[i] for i in open_lines)
        if weight_sum == 0:
            # Only zero-weight lines have room left: fill them in order, up to their caps.
            for i in open_lines:
                take = min(caps[i] - shares[i], remaining)
                shares[i] += take
                remaining -= take
            break
        capped = [
            i for i in open_lines if remaining * weights[i] >= (caps[i] - shares[i]) * weight_sum
        ]
        if capped:
            # These lines would get at least their room: fill them and spread the rest again.
            for i in capped:
                remaining -= caps[i] - shares[i]
                shares[i] = caps[i]
            open_lines = [i for i in open_lines if i not in capped]
            continue
        quotas = [(remaining * weights[i], i) for i in open_lines]
        floors = {i: q // weight_sum for q, i in quotas}
        handed = sum(floors.values())
        order = sorted(open_lines, key=lambda i: (-(remaining * weights[i] % weight_sum), i))
        extra = set(order[: remaining - handed])
        for i in open_lines:
            shares[i] += floors[i] + (1 if i in extra else 0)
        remaining = 0
    return shares
