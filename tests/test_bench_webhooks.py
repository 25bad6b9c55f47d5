"""The webhook bench (bench/webhooks.py) at a tiny size on SQLite and PostgreSQL, so its
code path cannot rot: a steady stream of till pushes delivered through the served back
office, a simulated 72-hour outage, the deliverer SIGKILLed twice, a backlog drained while
a till pushes; from its JSON (the §8 line, last), nothing lost, invented, changed or out
of order in any phase, duplicates only of the same webhook-id, no dead letter, every
signature good. No timing is asserted (the figures are the bench's)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from benchlib import synclib  # noqa: F401  (puts _synclib in sys.modules first)

TINY = [
    "--members", "300",
    "--rate", "100",
    "--seconds", "2",
    "--outage-events", "200",
    "--outage-members", "20",
    "--kill-events", "300",
    "--backlog", "600",
    "--till-events", "200",
]  # fmt: skip


def _load() -> Any:
    if "bench_webhooks" in sys.modules:
        return sys.modules["bench_webhooks"]
    path = Path(__file__).resolve().parent.parent / "bench" / "webhooks.py"
    spec = importlib.util.spec_from_file_location("bench_webhooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_webhooks"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


# _synclib.ServerProcess leaves its child's stdout pipe to the collector (not this test's)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_webhook_bench_loses_nothing_and_reports(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main([*TINY, "--db", kind]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bench"] == "webhooks" and "targets" in result and "ok" in result
    assert result["lost"] == 0 and result["out_of_order"] == 0
    run = result[kind]
    for phase in ("latency", "outage", "kill", "backlog"):
        assert "error" not in run[phase], (phase, run[phase])
        t = run[phase]["tally"]
        assert t["events"] > 0 and t["lost"] == 0 and t["invented"] == 0, (phase, t)
        assert t["wrong_content"] == 0 and t["out_of_order"] == 0, (phase, t)
        assert t["dead"] == 0 and t["bad_signatures"] == 0, (phase, t)
        assert t["accepted"] == t["events"] + t["duplicates"], (phase, t)
        assert result["targets"]["passed"][f"{kind}_{phase}_clean"] is True
    assert run["latency"]["tally"]["events"] == run["latency"]["outbox_events"]
    assert run["latency"]["outbox_events"] > run["latency"]["purchases"] == 200
    assert run["latency"]["p50_ms"] <= run["latency"]["p99_ms"] <= run["latency"]["max_ms"]
    outage = run["outage"]
    assert outage["simulated_outage_h"] >= 72 and outage["accepted_during_outage"] == 0
    assert outage["attempts_during_outage"] > outage["members"]  # retried, not given up
    assert outage["answered_503"] > 0 and outage["tally"]["events"] == 200
    kill = run["kill"]
    assert kill["all_delivered"] and len(kill["accepted_at_kills"]) == 2
    assert kill["accepted_at_kills"][0] < kill["tally"]["events"]  # killed while sending
    backlog = run["backlog"]
    assert backlog["drained"] and backlog["all_delivered"] and backlog["failed_attempts"] > 0
    for push in ("accept_before", "accept_during", "accept_after"):
        assert backlog[push]["acked"] > 0 and backlog[push]["error"] is None, push
    assert backlog["tally"]["events"] > 600  # the backlog and the tills' own member events
    assert backlog["floor_per_s"] > 0 and backlog["events_per_s"] > 0
