"""The multi-till part of `kassa demo`: a back office on embedded SQLite, two tills.

Starts the back office (uvicorn on a free loopback port, in this process), seeds two
stores and a member base, enrolls a till in each, sells at both — one of them offline
for a while — and shows the batches arriving and the KPI report changing. Everything
stops when the demo ends.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from agent import journal
from agent.money import format_points
from agent.results import CheckoutRequest
from agent.seed import demo_cart, demo_phone
from agent.service import Agent
from agent.store import Store
from sync.backoffice import kpi
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.backoffice.sms import SmsGateway
from sync.client import SyncClient, TransientError, backoffice_http
from sync.enroll import enroll_till
from sync.httpserve import HeaderDeadlineProtocol


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """uvicorn serving the back office on 127.0.0.1 in a thread (demo, tests, benches)."""

    def __init__(
        self, bo: Backoffice, *, verifier: bool = True, sms: SmsGateway | None = None
    ) -> None:
        self.port = _free_port()
        config = uvicorn.Config(
            create_app(bo, verifier=verifier, sms=sms),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=HeaderDeadlineProtocol,  # as `kassa backoffice serve` runs it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="backoffice", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("back office did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _kpi_line(bo: Backoffice) -> str:
    t = kpi.report(bo.context, kpi.period(None, None))["totals"]
    return (
        f"KPI: новых {t['new_members']}, с покупкой {t['members_with_purchase']}, "
        f"чеков {t['cheques']}, начислено {t['points_issued']}, списано {t['points_spent']}"
    )


def run_sync_demo(root: Path, say: object, members: int = 2000) -> None:
    """``say`` prints a section title (shared with the till demo)."""
    title = say if callable(say) else print
    title("9. Бэк-офис: две кассы, синхронизация ровно один раз")
    bo = Backoffice(Database.open(str(root / "backoffice.db")))
    bo.seed_demo({"s1": "Тверская", "s2": "Арбат"}, members)
    with LoopbackServer(bo) as server, backoffice_http(server.url) as http:
        print(f"Бэк-офис: {server.url} (SQLite {root / 'backoffice.db'}), {members} участников")
        print(_kpi_line(bo))
        tills = {}
        for sid in ("s1", "s2"):
            path = root / f"till-{sid}.db"
            info = enroll_till(path, http, bo.enroll_code(sid), name=f"Касса {sid}")
            print(
                f"Касса {info['terminal_id']} магазина {sid} подключена по одноразовому "
                f"коду, загружено {info['members']} участников"
            )
            tills[sid] = path
        with Store(tills["s1"]) as s1, Store(tills["s2"]) as s2:
            a, b = Agent(s1), Agent(s2)
            for i in range(3):
                card = a.identify(demo_phone(10 + i))
                a.commit(
                    CheckoutRequest(
                        card.member_id,
                        demo_cart(f"A-{i}", [("DR-1001", 1), ("BG-7001", 1)]),
                        "max" if i == 0 else 0,
                        cashier_id="anna",
                        identified_by=card.identified_by,
                    )
                )
            pushed = SyncClient(a, http).drain()
            print(
                f"Тверская: 3 чека -> партия из {pushed.sent} событий, подтверждено "
                f"{pushed.acked}; {_kpi_line(bo)}"
            )
            dead = backoffice_http("http://127.0.0.1:9", timeout_s=0.5)
            for i in range(2):
                card = b.identify(demo_phone(20 + i))
                b.commit(
                    CheckoutRequest(
                        card.member_id,
                        demo_cart(f"B-{i}", [("SH-2001", 2)]),
                        cashier_id="oleg",
                        identified_by=card.identified_by,
                    )
                )
            reg = b.register(
                phone="+7 (999) 700-00-01",
                first_name="Лиза",
                consent_programme=True,
                consent_marketing=True,
            )
            try:
                SyncClient(b, dead).drain()
            except TransientError as e:
                print(f"Арбат без связи ({e.__class__.__name__}): ", end="")
            print(
                f"ждут отправки {journal.status(s2).events_waiting} события; продажи идут, "
                f"новый участник {reg.card.code} — предварительно"
            )
            client = SyncClient(b, http)
            pushed = client.drain()
            client.pull_all()
            print(
                f"Связь вернулась: отправлено {pushed.sent}, подтверждено {pushed.acked}, "
                f"повторов 0; ждут {journal.status(s2).events_waiting}"
            )
            again = SyncClient(b, http).drain()
            print(f"Повторная отправка ничего не удваивает: отправлено {again.sent}")
            card = b.card(reg.card.member_id)
            print(
                f"Участник {card.code}: баланс {format_points(card.balance)}, "
                f"предварительный: {'да' if card.provisional else 'нет'}"
            )
        print(_kpi_line(bo))
        print()
        print(kpi.table(kpi.report(bo.context, kpi.period(None, None))))
    bo.db.close()
