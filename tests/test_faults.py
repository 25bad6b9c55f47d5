"""The fault run of ``tests/faults.py`` at the size of ``make test`` (issue 22): two POS
lanes against ``kassa agent serve`` as a real process, SIGKILLed at aimed moments (a push
forwarded and its answer held, right after a push answer, during start-up, at random,
during a long outage and while catching up after it), its sync through a proxy to a real
back office; the outage sends the till offline. Every acknowledged commit, refund and
registration is traced: 0 lost, 0 doubled, 0 phantom, balances equal, the chain intact,
0 flags, nothing quarantined. ``make faults`` is the long run."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from faults import AIMS, run

KILLS = int(os.environ.get("KASSA_FAULT_KILLS", "6"))
OUTAGE_S = float(os.environ.get("KASSA_FAULT_OUTAGE_S", "5"))

# Real processes SIGKILLed: one worker with the other kill tests, one after the other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_processes")]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_two_lanes_through_kills_and_an_outage_lose_nothing(tmp_path: Path) -> None:
    counts = run(tmp_path, kills=KILLS, outage_s=OUTAGE_S, outage_kills=1)
    print(json.dumps(asdict(counts), ensure_ascii=False))
    assert counts.problems == []
    assert (counts.lost, counts.doubled, counts.phantom) == (0, 0, 0)
    assert (counts.balance_mismatches, counts.chain_breaks, counts.flags) == (0, 0, 0)
    assert counts.quarantined == 0
    assert counts.kills >= KILLS
    assert set(AIMS) | {"outage", "catching_up"} <= set(counts.kills_by_aim)
    assert counts.commits > 0 and counts.refunds > 0 and counts.registrations > 0
    assert counts.events >= counts.acknowledged
    assert counts.offline_cheques > 0  # the outage sent the till offline
