"""Injectable crash points: the process kills itself (SIGKILL) at a named point.

The tests of crash safety (``tests/test_enroll_kill.py``) start a real ``kassa`` process
with ``KASSA_CRASH_AT=<point>`` (or ``<point>@<n>``: the n-th time it is reached, from 1)
and check that running the same command again finishes what the killed one began. Each
point is one call of :func:`reached` at a well-defined place (after a file is written but
before it is renamed, after the back office answered but before the store holds the
answer, ...); unset, a point costs one dictionary lookup. POSIX only: elsewhere a point
is never taken.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "KASSA_CRASH_AT"
"""The environment variable naming the point to die at."""

_seen: dict[str, int] = {}
_lock = threading.Lock()


def reached(point: str) -> None:
    """Die here by SIGKILL (no cleanup, no flush) if ``KASSA_CRASH_AT`` names ``point``
    (and, with ``@n``, this is the n-th time it is reached)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or os.name != "posix":
        return
    name, _, nth = wanted.partition("@")
    if name != point:
        return
    with _lock:
        _seen[point] = count = _seen.get(point, 0) + 1
    if not nth or count == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
