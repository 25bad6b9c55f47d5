"""Sync screen (F5): the journal queue and the link to the back office, at a glance.

Shows online/offline, events waiting and the oldest one's time, the last contact, the
last error, the clock skew, and the quarantine (events the back office refused, with its
reason: they never block the queue, a person has to look at them). F5 here syncs now: a
worker pushes everything and pulls the changes through ``sync.client`` under the
client's lock, so it never runs beside the background loop's round (one batch in flight).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from agent.results import SyncView
from tui.i18n import register_strings
from tui.screens.base import KassaScreen
from tui.services import Services

register_strings(
    {
        "sync.title": ("Связь с бэк-офисом", "Back office link"),
        "sync.state": ("Состояние", "State"),
        "sync.online": ("на связи", "online"),
        "sync.offline": ("НЕТ СВЯЗИ", "OFFLINE"),
        "sync.none": ("бэк-офис не настроен", "no back office configured"),
        "sync.waiting": ("В очереди событий", "Events waiting"),
        "sync.oldest": ("Самое старое", "Oldest"),
        "sync.awaiting": ("Приняты, ждут учёта", "Accepted, not yet applied"),
        "sync.contact": ("Последняя связь", "Last contact"),
        "sync.never": ("никогда", "never"),
        "sync.error": ("Последняя ошибка", "Last error"),
        "sync.skew": ("Расхождение часов", "Clock skew"),
        "sync.skew_s": ("{s} с", "{s} s"),
        "sync.quarantine": ("Карантин: {n}", "Quarantine: {n}"),
        "sync.quarantine_none": ("Карантин пуст", "Quarantine is empty"),
        "sync.quarantine_hint": (
            "Отклонённые события очередь не держат; разберите их в бэк-офисе",
            "Refused events do not hold the queue; resolve them at the back office",
        ),
        "sync.running": ("Синхронизация…", "Syncing…"),
        "sync.done": (
            "Готово: отправлено {sent}, принято {acked}, в карантин {q}, получено {pulled}",
            "Done: sent {sent}, acknowledged {acked}, quarantined {q}, pulled {pulled}",
        ),
        "sync.failed": (
            "Связи нет: {e}. События ждут в очереди и уйдут позже",
            "No link: {e}. Events wait in the queue and go later",
        ),
        "sync.refused": (
            "Бэк-офис отказал ({code}): нужен администратор. События ждут в очереди",
            "The back office refused ({code}): call the administrator. Events wait in the queue",
        ),
        "sync.no_client": (
            "Касса не подключена к бэк-офису (kassa enroll)",
            "This till is not enrolled with a back office (kassa enroll)",
        ),
        "bind.sync_now": ("Синхр. сейчас", "Sync now"),
    }
)


@dataclass
class SyncRead(Message):
    online: bool | None
    status: SyncView
    quarantine: list[dict[str, Any]]
    """The latest quarantined events (``SyncView.quarantine``: at most ten, oldest first);
    ``status.quarantined`` counts them all."""
    tz: Any


@dataclass
class SyncFinished(Message):
    ok: bool
    report: dict[str, int]
    error: str = ""
    refused: str | None = None  # the back office's refusal code (bad_token, ...), if it refused


def read_sync(s: Services) -> SyncRead:
    """The real journal's state: the sync client's till service (in training mode the
    app's service runs on the training copy, whose journal is never sent)."""
    client = s.sync
    live = s.agent if client is None else client.agent
    view = live.sync_status()
    online = None if client is None else view.online
    return SyncRead(online, view, list(view.quarantine), s.agent.programme().tz)


def sync_now(s: Services) -> SyncFinished:
    """Push everything, then pull (``SyncClient.sync_now``, which records a failure on
    the journal). A network fault is an answer (the queue keeps its events), not a
    crash."""
    from sync.client import PermanentError, TransientError

    client = s.sync
    if client is None:
        return SyncFinished(False, {}, "no_client")
    try:
        report = client.sync_now()
    except (TransientError, PermanentError) as e:
        refused = (e.code or "refused") if isinstance(e, PermanentError) else None
        return SyncFinished(False, {}, str(e), refused)
    return SyncFinished(True, {k: int(v) for k, v in report.items()})


class SyncScreen(KassaScreen):
    DEFAULT_CSS = """
    #sync-box { height: 1fr; }
    """
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.sync.1", "help.sync.2")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "sync_now", "bind.sync_now", id="sync_now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.read: SyncRead | None = None
        self.running = False

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="sync-box", classes="panel") as box:
            box.border_title = self.t("sync.title")
            yield Static("", id="sync-body")

    def on_mount(self) -> None:
        self.request(read_sync)

    def _when(self, iso: str | None) -> str:
        if not iso or self.read is None:
            return self.t("sync.never")
        return datetime.fromisoformat(iso).astimezone(self.read.tz).strftime("%d.%m %H:%M:%S")

    def render_all(self) -> None:
        self.query_one("#sync-box", VerticalScroll).border_title = self.t("sync.title")
        r = self.read
        if r is None:
            return
        st = r.status
        info = Table.grid(padding=(0, 2))
        info.add_column(style="dim", no_wrap=True)
        info.add_column()
        if r.online is None:
            state = Text(self.t("sync.none"), style="dim")
        elif r.online:
            state = Text("● " + self.t("sync.online"), style="bold green")
        else:
            state = Text("○ " + self.t("sync.offline"), style="bold white on red")
        info.add_row(self.t("sync.state"), state)
        info.add_row(
            self.t("sync.waiting"),
            Text(str(st.events_waiting), style="bold yellow" if st.events_waiting else "bold"),
        )
        if st.events_waiting:
            info.add_row(self.t("sync.oldest"), self._when(st.oldest_waiting))
        if st.awaiting_verdict:
            info.add_row(self.t("sync.awaiting"), Text(str(st.awaiting_verdict), style="yellow"))
        info.add_row(self.t("sync.contact"), self._when(st.last_contact))
        if st.last_error:
            info.add_row(self.t("sync.error"), Text(st.last_error, style="red"))
        if st.clock_skew_seconds is not None:
            info.add_row(self.t("sync.skew"), self.t("sync.skew_s", s=round(st.clock_skew_seconds)))
        parts: list[Any] = [info, Text("")]
        if not r.quarantine:
            parts.append(Text(self.t("sync.quarantine_none"), style="green"))
        else:
            parts.append(Text(self.t("sync.quarantine", n=st.quarantined), style="bold red"))
            q = Table.grid(padding=(0, 1), expand=True)
            q.add_column(justify="right", no_wrap=True)
            q.add_column(no_wrap=True)
            q.add_column(ratio=1, overflow="fold")
            for row in r.quarantine:
                q.add_row(
                    f"#{row['seq']}",
                    f"{row['type']}",
                    Text(f"{row['code']}: {row['message']}", style="red"),
                )
            parts.append(q)
            parts.append(Text(self.t("sync.quarantine_hint"), style="dim"))
        self.query_one("#sync-body", Static).update(Group(*parts))

    def on_sync_read(self, message: SyncRead) -> None:
        self.read = message
        self.render_all()

    def action_sync_now(self) -> None:
        if self.running:
            return
        self.running = True
        self.say_t("sync.running")
        self.request(sync_now)

    def on_sync_finished(self, message: SyncFinished) -> None:
        self.running = False
        if message.ok:
            rep = message.report
            self.say_t(
                "sync.done",
                sent=rep.get("pushed", 0),
                acked=rep.get("acked", 0),
                q=rep.get("quarantined", 0),
                pulled=rep.get("pulled", 0),
            )
        elif message.error == "no_client":
            self.say_t("sync.no_client", error=True)
        elif message.refused:
            # Not "no link": the back office answered no, and retrying will not help.
            self.say_t("sync.refused", code=message.refused, error=True)
        else:
            self.say_t("sync.failed", e=message.error, error=True)
        self.request(read_sync)
        self.kassa.refresh_status()

    def relabel(self) -> None:
        super().relabel()
        self.render_all()
