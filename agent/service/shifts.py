"""Shifts at the till service: the cashiers, PIN sign-in, a shift opened and closed by the
service's clock, its X-report and the report's print job (the rules themselves are in
``agent.shifts``)."""

from __future__ import annotations

from agent import shifts
from agent.results import Cashier, Shift, XReport
from agent.service.context import Context


def add_cashier(ctx: Context, cashier_id: str, name: str, pin: str, role: str = "cashier") -> None:
    """Create a cashier who signs in with ``pin`` (``role``: cashier | supervisor); a
    duplicate id is a ``ConflictError``."""
    shifts.add_cashier(ctx.store, cashier_id, name, pin, role)


def set_pin(ctx: Context, cashier_id: str, pin: str) -> None:
    """A new PIN for the cashier, which also unlocks one locked after wrong PINs."""
    shifts.set_pin(ctx.store, cashier_id, pin)


def cashiers(ctx: Context) -> list[Cashier]:
    return shifts.cashiers(ctx.store)


def verify_pin(ctx: Context, cashier_id: str, pin: str) -> Cashier:
    """The cashier if ``pin`` is theirs (``PinError``, ``PinLockedError`` else)."""
    return shifts.verify_pin(ctx.store, cashier_id, pin)


def open_shift(ctx: Context, cashier_id: str) -> Shift:
    """Open a shift for the cashier now, or resume the one they have open."""
    return shifts.open_shift(ctx.store, cashier_id, ctx.clock.now())


def close_shift(ctx: Context, shift_id: str) -> XReport:
    """Close the shift now; its final report (Z)."""
    return shifts.close_shift(ctx.store, shift_id, ctx.clock.now())


def x_report(ctx: Context, shift_id: str) -> XReport:
    """The shift's figures so far."""
    return shifts.x_report(ctx.store, shift_id, ctx.clock.now())


def queue_report(ctx: Context, report: XReport, *, training: bool = False) -> int:
    """Queue ``report`` for the printer; the print job's id."""
    return shifts.queue_report(ctx.store, report, ctx.store_name, training=training)
