"""The holds' table is ``agent.service.holds``; this name stays for callers that still
import it. The time-to-live bounds come from ``agent.results`` at once; every other name
is looked up in ``agent.service.holds`` when first used, so importing this module does not
import the service (a module the service itself needs may import it). ``place`` is
``Agent.place_hold``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.results import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, Hold

if TYPE_CHECKING:  # pragma: no cover - types only
    from agent.results import CheckoutRequest
    from agent.service import Agent

__all__ = ["DEFAULT_TTL_S", "MAX_TTL_S", "MIN_TTL_S", "Hold", "place"]


def place(agent: Agent, req: CheckoutRequest, ttl_s: int = DEFAULT_TTL_S) -> Hold:
    """``agent.place_hold(req, ttl_s)``."""
    return agent.place_hold(req, ttl_s)


def __getattr__(name: str) -> Any:
    from agent.service import holds  # noqa: PLC0415 - lazy, see the module

    return getattr(holds, name)
