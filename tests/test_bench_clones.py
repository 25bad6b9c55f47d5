"""The sync benches' outbox filler (``bench/_synclib.fill_outbox``): its cloned purchases
are quoted for the member each is given to, so a clean drain leaves no ``rescore_mismatch``
(the flag then counts only real differences between a till's score and the centre's)."""

from __future__ import annotations

from benchlib import synclib as _synclib
from cluster import Cluster

from sync.backoffice import project, verify

EVENTS = 400


def test_clean_drain_of_cloned_events_has_no_rescore_mismatch(cluster: Cluster) -> None:
    node = cluster.till("bench-till")
    node.close()  # the filler opens the store itself
    filled = _synclib.fill_outbox(node.path, EVENTS, 50, templates=48, seed=7)
    assert filled["outbox_events"] == EVENTS
    node.open()
    report = node.client.drain()
    assert report.quarantined == 0
    ctx = cluster.bo.context
    project.run_all(ctx)
    node.client.confirm_all()
    verify.run_all(ctx)
    by_status = dict(cluster.ledger("SELECT status, count(*) FROM events GROUP BY status"))
    assert by_status == {"applied": EVENTS}
    flags = dict(cluster.ledger("SELECT kind, count(*) FROM flags GROUP BY kind"))
    assert flags.get("rescore_mismatch", 0) == 0, flags
    outbox = {row[3] for row in node.outbox()}
    assert outbox == {"acked"}
