"""Schemathesis conformance of a served OpenAPI document: the checks every answer must
pass, and the runner that draws requests of one operation and checks each answer.

Both the POS API's and the back office's drift tests use it: :data:`CHECKS` (no 5xx, a
documented status, the documented content type, a body of the documented schema) for
valid requests, plus ``negative_data_rejection`` (a request the document calls invalid is
refused with a 4xx) for invalid ones. How a request reaches its app (an in-process
client, or schemathesis's own ASGI call) is the caller's ``respond``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

Respond = Callable[[schemathesis.Case, Sequence[Any]], object]


def checks_for(mode: GenerationMode) -> list[Any]:
    """The checks of an answer to a request drawn in ``mode``."""
    return [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS


FUZZ_SCALE = int(os.environ.get("KASSA_FUZZ_SCALE", "1"))
"""How many times the fuzz and conformance tests' example counts: 1 in ``make test``,
more in ``make fuzz`` (the long run)."""


def scaled(count: int) -> int:
    """``count`` examples times ``FUZZ_SCALE``."""
    return count * FUZZ_SCALE


def conform(
    op: schemathesis.APIOperation,
    mode: GenerationMode,
    count: int,
    respond: Respond,
    *,
    cases: st.SearchStrategy[schemathesis.Case] | None = None,
    derandomize: bool = False,
) -> None:
    """Draw ``count`` requests of ``mode`` to ``op`` (from ``cases`` if given, else the
    operation's own strategy) and hand each to ``respond(case, checks)``, which sends it
    and validates the answer against those checks. An operation with nothing that can be
    made invalid draws no negative request; that is accepted for ``NEGATIVE`` only."""

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode) if cases is None else cases)
    def run(case: schemathesis.Case) -> None:
        respond(case, checks_for(mode))

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be invalid
        assert mode is GenerationMode.NEGATIVE, op.label
