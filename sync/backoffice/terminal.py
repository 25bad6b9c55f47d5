"""An enrolled till as the back office knows it (its own module: the service, the ingest
and the projector all need it, and the service imports the other two)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    store_id: str
    name: str
