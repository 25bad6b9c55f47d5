"""Pilot harness for the cashier app: a real till store enrolled in the real back office.

The back office (``sync.backoffice``, SQLite in the test's temp dir) is reached through
``httpx`` over an in-process ASGI transport wrapped in ``FaultyTransport`` (the network is
the edge we fake: ``harness.network_down()``). Time is a ``FakeClock``; the printer is the
capture (preview) transport; the wedge classifier gets a fake key clock so a burst of
keys can look like a scanner (``harness.scan(pilot, text)``).

``scan`` and ``type`` post their keys to the app's queue (:func:`post_keys`) as the
terminal driver does, each as soon as the app has handled the one before (:func:`drain`:
every message pump quiet), instead of ``pilot.press``, which after every key waits until the
process looks idle by the wall clock (40-70 ms a key, a second under load). The keys take
the same path (the App's ``on_event``, the wedge classifier, the focused widget) in the
same order, and the fake key clock stamps them the same, so a scanner burst is still a scan
and typing still typing; ``one_by_one=True`` presses them through Textual's
``Pilot.press``. The harness's apps hand out a :class:`KeyPilot`, whose ``press`` posts
keys the same way. :func:`settle` waits for the workers and the app's queues.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from conftest import NOW, FakeClock
from synchelp import FaultyTransport, SyncASGITransport
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.message import Message
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from agent import shifts
from agent.seed import demo_programme, member_rows, seed_catalog
from agent.store import Store
from kassa.wiring import open_services
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.enroll import enroll_till
from tui.app import KassaApp
from tui.services import Services

CASHIERS = (("anna", "Анна Петрова", "1111"), ("oleg", "Олег Смирнов", "2222"))


class KeyClock:
    """The wedge classifier's clock: typing is slow (0.2 s per key) unless ``burst``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 0.2

    def __call__(self, event: Any) -> float:
        self.now += self.step
        return self.now


class KeyPilot(Pilot[Any]):
    """The pilot of the harness's apps: ``press`` posts the keys as :func:`post_keys`
    does (Textual's own press, waiting for idleness after each key, is
    ``press_one_by_one``)."""

    async def press(self, *keys: str) -> None:
        await post_keys(self, keys)

    async def press_one_by_one(self, *keys: str) -> None:
        await super().press(*keys)


class Harness:
    def __init__(self, tmp: Path, portal: BlockingPortal, members: int = 60) -> None:
        self.tmp = tmp
        self.clock = FakeClock(NOW)
        self.db = Database.open(str(tmp / "backoffice.db"))
        self.bo = Backoffice(self.db, self.clock)
        self.bo.initialise()
        self.bo.ensure_store("s1", "Тверская")
        self.bo.load_members(
            member_rows(
                members, demo_programme(), bytes.fromhex(self.bo.setting("phone_hash_key")), NOW
            ),
            store_id="s1",
        )
        self.transport = FaultyTransport(SyncASGITransport(create_app(self.bo), portal))
        self.http = httpx.Client(transport=self.transport, base_url="http://backoffice")
        self.path = tmp / "till.db"
        enroll_till(
            self.path,
            self.http,
            self.bo.enroll_code("s1"),
            name="Касса 1",
            terminal_id="till-1",
            clock=self.clock,
        )
        with Store(self.path) as store:
            seed_catalog(store)
            for cid, name, pin in CASHIERS:
                shifts.add_cashier(store, cid, name, pin)
        self.messages: list[Message] = []
        self.keys = KeyClock()
        self.services: Services | None = None
        self.app: KassaApp | None = None

    def coupon(self, percent_bp: int = 1000, member_code: str | None = None) -> str:
        """A coupon signed with the back office's key (as the marketing system would)."""
        from datetime import timedelta

        from agent.tokens import Coupon, TokenSigner, issue_coupon, load_ed25519_private_key

        signer = TokenSigner(1, load_ed25519_private_key(self.bo.setting("token_private_key")))
        now = self.clock.now()
        return issue_coupon(
            signer,
            Coupon(
                "ab" * 16,
                "percent",
                percent_bp,
                now - timedelta(days=1),
                now + timedelta(days=7),
                member_code=member_code,
            ),
        )

    def network_down(self) -> None:
        self.transport.plan = lambda r: "drop_request"

    def network_up(self) -> None:
        self.transport.plan = lambda r: None

    def of(self, kind: type[Message]) -> list[Any]:
        """Recorded messages of ``kind``, each once (a bubbling message is dispatched at
        every level it passes)."""
        seen: set[int] = set()
        out = []
        for m in self.messages:
            if isinstance(m, kind) and id(m) not in seen:
                seen.add(id(m))
                out.append(m)
        return out

    def make_app(self, **kw: Any) -> KassaApp:
        self.services = open_services(
            self.path,
            clock=self.clock,
            http=self.http,
            sync_interval_s=None,
            **kw,
        )
        app = self.app = KassaApp(self.services, key_clock=self.keys, poll_status=False)
        run_test = app.run_test

        @contextlib.asynccontextmanager
        async def run_keyed(*args: Any, **kw: Any) -> AsyncIterator[Pilot[Any]]:
            async with run_test(*args, **kw) as pilot:
                yield KeyPilot(pilot.app)

        app.run_test = run_keyed  # type: ignore[method-assign]
        return app

    @contextlib.asynccontextmanager
    async def run(self, size: tuple[int, int] = (80, 24), **kw: Any) -> AsyncIterator[Pilot[Any]]:
        app = self.make_app(**kw)
        async with app.run_test(size=size, message_hook=self.messages.append) as pilot:
            await settle(pilot)
            yield pilot
            await settle(pilot)

    async def scan(
        self, pilot: Pilot[Any], text: str, suffix: str = "enter", one_by_one: bool = False
    ) -> None:
        """A keyboard-wedge scanner burst: characters 2 ms apart, then the suffix key."""
        self.keys.step = 0.002
        try:
            await _press(pilot, [*[_key(ch) for ch in text], suffix], one_by_one)
        finally:
            self.keys.now += 1.0
            self.keys.step = 0.2
        await settle(pilot)

    async def type(
        self, pilot: Pilot[Any], text: str, submit: bool = True, one_by_one: bool = False
    ) -> None:
        """A cashier typing (slow keys: the key clock's 0.2 s), then Enter."""
        await _press(
            pilot, [*[_key(ch) for ch in text], *(["enter"] if submit else [])], one_by_one
        )
        await settle(pilot)

    def close(self) -> None:
        self.http.close()
        self.db.close()


_NAMED = {
    " ": "space",
    "-": "minus",
    "+": "plus",
    "*": "asterisk",
    "=": "equals_sign",
    ":": "colon",
    "!": "exclamation_mark",
    "(": "left_parenthesis",
    ")": "right_parenthesis",
    ".": "full_stop",
    ",": "comma",
}


def _key(ch: str) -> str:
    return _NAMED.get(ch, ch)


def key_event(key: str) -> events.Key:
    """The event ``pilot.press(key)`` sends: a key name (or a character) and its
    character."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    char: str | None
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def post_keys(pilot: Pilot[Any], keys: Iterable[str]) -> None:
    """Post ``keys`` to the app's queue as the driver does, each once the app has handled
    the one before (so the App, the wedge classifier and the focused widget see them in the
    order ``pilot.press`` gives), without ``pilot.press``'s wait for wall-clock idleness."""
    app = pilot.app
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app.post_message(event)
        await drain(pilot, update=False)
        await app._animator.wait_until_complete()  # a scroll the key started, as press does
        await _finish_workers(pilot)  # a cashier's next key comes after the till answered
    await drain(pilot)


async def drain(pilot: Pilot[Any], update: bool = True) -> None:
    """Wait until the App and every widget of its screen have nothing left to handle and
    (``update``) the screen is updated: its layout, and the callbacks waiting for a refresh
    run (between the keys of one burst the screen's own timer does that, as in the app).

    A key hops from the App to the focused widget and may bubble back, and a worker's
    message comes in from its thread: one round of ``_wait_for_screen`` (a callback through
    every widget, run after what each had queued) is not enough, so rounds go on until no
    queue has anything left."""
    app = pilot.app

    def quiet() -> bool:
        pumps = [app, *app.screen.walk_children(with_self=True)]
        return all(p._message_queue.empty() for p in pumps)

    for _ in range(1000):
        await pilot._wait_for_screen()
        if quiet():
            if not update:
                return
            app.screen._on_timer_update()
            update = False
            if quiet():
                return
    raise AssertionError("the app never went quiet")


async def _press(pilot: Pilot[Any], keys: list[str], one_by_one: bool) -> None:
    if one_by_one:
        await Pilot.press(pilot, *keys)
    else:
        await post_keys(pilot, keys)


def screen_text(app: Any) -> str:
    """The whole terminal as plain text lines (what a cashier sees, no styles)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


def widget_text(app: Any, selector: str) -> str:
    """The plain text inside one widget's region of the screen."""
    region = app.screen.query_one(selector).region
    lines = screen_text(app).split("\n")[region.y : region.y + region.height]
    return "\n".join(line[region.x : region.x + region.width] for line in lines)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until every worker is done (the core's calls, the warm-up, the status read it
    starts) and the app has handled their messages and updated the screen."""
    await drain(pilot)
    await _finish_workers(pilot)
    await drain(pilot)


async def _finish_workers(pilot: Pilot[Any]) -> None:
    """Wait for the running workers and the messages they post, until none runs (a
    worker's message may start the next). An exclusive worker (the status read) cancelled
    by a newer one is done too."""
    app = pilot.app
    for _ in range(50):
        if not any(w.is_running for w in app.workers):
            return
        for worker in [w for w in app.workers if w.is_running]:
            with contextlib.suppress(WorkerCancelled):
                await worker.wait()
        await drain(pilot, update=False)
    raise AssertionError("the app's workers never finished")


@contextlib.contextmanager
def harness(tmp: Path, members: int = 60) -> Iterator[Harness]:
    with start_blocking_portal() as portal:
        h = Harness(tmp, portal, members)
        try:
            yield h
        finally:
            h.close()
