"""The sync commands as an installer and a store manager use them, against a real back
office over loopback HTTP; the KPI report checked against hand-computed figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.seed import demo_phone
from kassa.cli import main
from kassa.demo_sync import LoopbackServer
from sync.backoffice import kpi
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else {"text": out}


def line(sku: str, price: int, qty: int = 1, category: str = "dresses") -> dict:
    return {"sku": sku, "name": sku, "category": category, "price_kop": price, "qty": qty}


def test_seed_enroll_sell_sync_and_report(tmp_path: Path, capsys, monkeypatch) -> None:
    db = str(tmp_path / "bo.db")
    monkeypatch.setenv("KASSA_BACKOFFICE_DB", db)
    code, seeded = run(capsys, "backoffice", "seed", "--members", "30", "--stores", "2")
    assert code == 0 and seeded["members_loaded"] == 30
    bo = Backoffice(Database.open(db))
    with LoopbackServer(bo) as server:
        store = str(tmp_path / "till.db")
        code, info = run(
            capsys,
            "enroll",
            "--url",
            server.url,
            "--code",
            seeded["enroll_codes"]["s1"],
            "--store",
            store,
        )
        assert code == 0 and info["members"] == 30
        # the same code again is refused, clearly
        code, again = run(
            capsys,
            "enroll",
            "--url",
            server.url,
            "--code",
            seeded["enroll_codes"]["s1"],
            "--store",
            str(tmp_path / "other.db"),
        )
        assert code == 2 and again["error"] == "enroll_code_used" and again["message_ru"]
        for n, phone_i in enumerate([1, 1, 2]):
            req = {
                "identify": demo_phone(phone_i),
                "receipt_id": f"R-{n}",
                "lines": [line("X1", 500_000)],
                "cashier_id": "anna",
                "redeem_points": 100 if n == 0 else 0,
            }
            code, _ = run(capsys, "commit", "--store", store, "--json", json.dumps(req))
            assert code == 0
        code, st = run(capsys, "sync", "status", "--store", store)
        assert st["events_waiting"] == 3
        assert st["enrolled"] and st["online"] and st["last_contact"]  # enrollment's contact
        code, synced = run(capsys, "sync", "now", "--store", store)
        assert code == 0 and synced["acked"] == 3 and synced["events_waiting"] == 0
        code, rep = run(capsys, "backoffice", "report", "--json")
        t = rep["totals"]
        assert (t["cheques"], t["members_with_purchase"], t["repeat_buyers"]) == (3, 2, 1)
        assert t["points_spent"] == 100
        with bo.db.reading() as tx:
            earned = tx.one("SELECT sum(earned) + sum(bonus) FROM purchases")[0]
        assert t["points_issued"] == earned
        assert t["redemption_rate"] == round(100 / earned, 4)
        assert rep["by_cashier"][0]["cashier_id"] == "anna"
        assert rep["by_cashier"][0]["phone_share"] == 1.0
        assert [s["store_id"] for s in rep["by_store"]] == ["s1"]
        code, table = run(capsys, "backoffice", "report")
        assert "Чеков" in table["text"] and "anna" in table["text"]
        # the KPI endpoint needs the admin token
        import httpx

        with httpx.Client(base_url=server.url) as http:
            assert http.get("/v1/kpi").status_code == 401
            r = http.get("/v1/kpi", headers={"authorization": f"Bearer {seeded['admin_token']}"})
            assert r.status_code == 200 and r.json()["totals"]["cheques"] == 3
    # back office gone: sync now says so and keeps the events
    code, _ = run(
        capsys,
        "commit",
        "--store",
        store,
        "--json",
        json.dumps(
            {"identify": demo_phone(3), "receipt_id": "R-9", "lines": [line("X1", 100_000)]}
        ),
    )
    code, down = run(capsys, "sync", "now", "--store", store)
    assert code == 4 and down["error"] == "backoffice_unreachable"
    assert down["details"]["events_waiting"] == 1


def test_kpi_fraud_signals_per_cashier(tmp_path: Path) -> None:
    from cluster import Cluster
    from synchelp import portal

    with portal() as p:
        c = Cluster(tmp_path, str(tmp_path / "bo.db"), p, members=20)
        till = c.till()
        for n in range(10):  # "olga" types the same member's phone on ten cheques
            card = till.agent.identify(demo_phone(1))
            till.sale(
                f"O-{n}", card.member_id, ("BG-7001", 1), cashier="olga", identified_by="phone"
            )
        for n in range(10):  # "ivan" scans ten different members' cards
            card = till.agent.identify(till.agent.card(f"m0000000{n}").code)
            till.sale(
                f"I-{n}",
                card.member_id,
                ("BG-7001", 1),
                cashier="ivan",
                identified_by=card.identified_by,
            )
        till.client.drain()
        rows = {
            r["cashier_id"]: r
            for r in kpi.report(c.bo.context, kpi.period(None, None))["by_cashier"]
        }
        c.close()
    assert rows["olga"]["signals"] == ["manual_phone_share", "same_member_many_cheques"]
    assert (rows["olga"]["phone_share"], rows["olga"]["top_member_cheques"]) == (1.0, 10)
    assert rows["ivan"]["signals"] == [] and rows["ivan"]["phone_share"] == 0.0


def test_bad_period_is_a_clear_error() -> None:
    with pytest.raises(kpi.PeriodError, match="ISO dates") as bad:
        kpi.period("yesterday", None)
    assert bad.value.code == "bad_period" and bad.value.details["field"] == "from"
    for text in ("20260201", "2026-W05-1"):  # ISO forms fromisoformat takes, not YYYY-MM-DD
        with pytest.raises(kpi.PeriodError, match="ISO dates"):
            kpi.period(text, None)
    with pytest.raises(kpi.PeriodError, match="no such date") as missing:
        kpi.period(None, "2026-02-30")
    assert missing.value.details["field"] == "to" and "такой даты нет" in missing.value.message_ru
    with pytest.raises(kpi.PeriodError, match="before") as reversed_:
        kpi.period("2026-02-01", "2026-01-01")
    assert "раньше" in reversed_.value.message_ru
