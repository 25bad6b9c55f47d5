"""Tell a keyboard-wedge scanner from a typing cashier by key timing.

A wedge scanner is a keyboard: it types the code and a suffix key. Measured (notes/
drivers.md): scanner bursts have 0.2-8 ms between keys, people ~150 ms; the suffix arrives
as ``enter`` (CR), ``ctrl+j`` (LF) or ``tab``. Under the Russian layout the scanner's key
presses come out Cyrillic (``KM1:`` is typed ``ЛЬ1Ж``); the text is repaired with
:func:`agent.layout.repair_layout` when it contains Cyrillic (the same key table
repairs a SKU or coupon typed at checkout, ``tui.entry``).

:class:`WedgeClassifier` is pure: keys and times in, decisions out; the clock is whatever
the caller passes (Textual's ``event.time``, or a fake in tests, because ``Pilot.press``
inserts ~80 ms between keys and would look like typing).

Using it from Textual: key events reach ``App.on_event`` before the focused widget, even
while an ``Input`` has focus; unhandled keys bubble back up to the App as the same event
object, which the classifier recognises as a duplicate. The cashier app (``tui.app``) feeds
every key to the classifier there and holds a printable key that could start a scan until
no newer key is queued behind it (or a non-printable key shows the burst is typing): the
keys of a scan are then dropped, so no widget sees them, and ``Scanned`` goes to the screen;
typing goes on in order. Keys that arrive after a scan wait until the screen has applied it
(the field filled, the focus moved), then go to the field the scan focused. Where keys of a
burst were already passed on before it turned out to be a scan, the app restores the field
from the value it had when the burst started.

``d.erase`` (the number of characters of the burst that were passed on to the focused
widget) is an alternative to the restore point for widgets without a ``value``.
A burst that ends without a terminator, or that is slower than ``max_gap_s`` anywhere, is
typing: every key is passed through (``kind == "key"``) and nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.layout import repair_layout

__all__ = ["DEFAULT_TERMINATORS", "WedgeClassifier", "WedgeDecision"]

DEFAULT_TERMINATORS = ("enter", "ctrl+j", "tab")
"""Textual key names of the scanner suffixes: CR, LF, Tab."""

_TERMINATOR_CHARS = {"\r": "enter", "\n": "ctrl+j", "\t": "tab"}


@dataclass(frozen=True, slots=True)
class WedgeDecision:
    """What to do with one key.

    - ``kind == "key"``: an ordinary key; let it through. ``burst_start`` is True when this
      printable key may begin a scan (snapshot the focused field now to undo it later).
    - ``kind == "scan"``: this key is the suffix of a scan. Swallow it; ``text`` is the
      scanned text (layout repaired), ``raw`` what was typed, ``erase`` how many characters
      of it went to the focused widget, ``terminator`` the suffix key name.
    - ``kind == "duplicate"``: the same key event seen again (Textual bubbling): ignore.
    """

    kind: Literal["key", "scan", "duplicate"]
    text: str = ""
    raw: str = ""
    erase: int = 0
    terminator: str | None = None
    layout_repaired: bool = False
    burst_start: bool = False

    @property
    def is_scan(self) -> bool:
        return self.kind == "scan"


_KEY = WedgeDecision("key")
_BURST_START = WedgeDecision("key", burst_start=True)
_DUPLICATE = WedgeDecision("duplicate")


class WedgeClassifier:
    """Classifies keys as typing or scans.

    A scan is at least ``min_length`` printable characters, each within ``max_gap_s``
    seconds of the previous one, followed within ``max_gap_s`` by a terminator key
    (``terminators``, Textual key names; the characters CR, LF, Tab count too). Defaults:
    8 characters (member codes have 13, app QR tokens more; phone numbers are typed) and
    40 ms (5x a real scanner's gap, well under a fast typist's ~100 ms).
    """

    def __init__(
        self,
        *,
        min_length: int = 8,
        max_gap_s: float = 0.040,
        terminators: tuple[str, ...] = DEFAULT_TERMINATORS,
    ) -> None:
        if min_length < 1 or max_gap_s <= 0:
            raise ValueError("min_length must be >= 1 and max_gap_s > 0")
        self.min_length = min_length
        self.max_gap_s = max_gap_s
        self.terminators = frozenset(terminators)
        self._burst: list[str] = []
        self._last_at: float | None = None
        self._last_key: tuple[str, str | None, float] | None = None
        self._last_event: object | None = None
        self.scans = 0
        """Scans recognised so far (each counted once)."""

    def reset(self) -> None:
        """Forget the burst in progress (focus changed, a screen was pushed)."""
        self._burst.clear()
        self._last_at = None

    def feed(
        self, key: str, char: str | None, now: float, *, event_id: object | None = None
    ) -> WedgeDecision:
        """Classify one key press at ``now`` (seconds, monotonic).

        ``key`` is the key name (``"a"``, ``"enter"``, ``"ctrl+j"``), ``char`` the printable
        character or None. Pass the event object as ``event_id`` to recognise it when it
        arrives again (it is compared by identity). Without it, the same ``(key, char, now)``
        twice in a row is taken as a duplicate (a bubbled event keeps its timestamp); that
        fallback needs a clock finer than a scanner's key gap (not Windows' 15.6 ms
        ``time.monotonic``), so pass the event.
        """
        if self._is_duplicate(key, char, now, event_id):
            return _DUPLICATE
        name = key if key in self.terminators else _TERMINATOR_CHARS.get(char or "", key)
        if name in self.terminators:
            return self._terminate(name, now)
        if char is None or len(char) != 1 or not char.isprintable():
            self.reset()
            return _KEY
        continued = (
            bool(self._burst)
            and self._last_at is not None
            and now - self._last_at <= self.max_gap_s
        )
        if not continued:
            self._burst.clear()
        self._burst.append(char)
        self._last_at = now
        return _KEY if continued else _BURST_START

    def _is_duplicate(self, key: str, char: str | None, now: float, event_id: object) -> bool:
        if event_id is not None:
            same = event_id is self._last_event
            self._last_event = event_id
            return same
        triple = (key, char, now)
        same = triple == self._last_key
        self._last_key = triple
        return same

    def _terminate(self, name: str, now: float) -> WedgeDecision:
        burst, last = "".join(self._burst), self._last_at
        self.reset()
        if len(burst) < self.min_length or last is None or now - last > self.max_gap_s:
            return _KEY
        text = repair_layout(burst)
        self.scans += 1
        return WedgeDecision(
            "scan",
            text=text,
            raw=burst,
            erase=len(burst),
            terminator=name,
            layout_repaired=text != burst,
        )
