"""`kassa refund` finds the cheque as the core does for the cashier: by
the last digits of a recent cheque, refusing digits that several cheques end with (and
naming them), writing nothing then."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import kassa


def test_refund_by_last_digits_and_an_ambiguous_tail(tmp_path: Path) -> None:
    store = tmp_path / "till.db"
    code, _, err = kassa(store, "init", "--demo", "--members", "30")
    assert code == 0, err
    for receipt in ("SHOP-2026-00417", "SHOP-2026-10417"):
        cheque = {"identify": "0001000000018", "receipt_id": receipt, "lines": [{"sku": "DR-1001"}]}
        code, out, err = kassa(store, "commit", stdin=json.dumps(cheque))
        assert code == 0, (out, err)
    body = {"refund_id": "CLI-R1", "receipt_id": "0417", "lines": {"1": 1}}
    code, out, err = kassa(store, "refund", stdin=json.dumps(body))
    assert code == 2 and out["error"] == "ambiguous_receipt", (out, err)
    assert "SHOP-2026-10417, SHOP-2026-00417" in out["message_en"]
    assert "оканчиваются несколько чеков" in out["message_ru"]
    code, journal, _ = kassa(store, "journal")
    assert [e["type"] for e in journal["pending"]] == ["purchase", "purchase"]
    body["receipt_id"] = "10417"
    code, out, err = kassa(store, "refund", stdin=json.dumps(body))
    assert code == 0, (out, err)
    code, journal, _ = kassa(store, "journal")
    refund = journal["pending"][-1]
    assert refund["type"] == "refund"
    assert json.loads(refund["payload"])["receipt_id"] == "SHOP-2026-10417"
