"""systemd's service notification protocol, without a dependency: readiness, stopping and
the watchdog ping, each one datagram on the unix socket named by ``$NOTIFY_SOCKET``.

A unit with ``Type=notify`` counts the service as started only when ``READY=1`` arrives,
so ``systemctl start`` (and every unit ordered after it) waits until the agent owns its
store and listens on its port. With ``WatchdogSec=``, systemd sets ``$WATCHDOG_USEC`` and
kills and restarts the service when ``WATCHDOG=1`` stops arriving; the ping is sent from
the event loop that answers the POS, so a stuck loop is what stops it.

Outside systemd (no ``$NOTIFY_SOCKET``) every call here does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("kassa.sdnotify")


def _address(env: Mapping[str, str]) -> str | bytes | None:
    """The socket address from ``$NOTIFY_SOCKET``: a path, or ``@name`` for an abstract
    socket (Linux; the leading ``@`` stands for the NUL byte)."""
    name = env.get("NOTIFY_SOCKET", "")
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock and other transports: not used by service units


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ``"WATCHDOG=1"``, newline-separated
    assignments) to the service manager. Returns whether it was sent; a missing or broken
    socket is logged, never raised (the agent must run on without systemd)."""
    address = _address(os.environ if env is None else env)
    if address is None or not hasattr(socket, "AF_UNIX"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:
        log.warning("cannot notify the service manager: %s", e.strerror or e)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC`` (microseconds), as
    sd_watchdog_enabled(3) advises; None when there is no watchdog or it is meant for
    another process (``$WATCHDOG_PID`` names a different pid)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


async def watchdog_loop(interval_s: float, env: Mapping[str, str] | None = None) -> None:
    """Ping the watchdog every ``interval_s`` seconds until cancelled."""
    while True:
        notify("WATCHDOG=1", env)
        await asyncio.sleep(interval_s)


class Supervision:
    """Readiness and the watchdog for one server's life on its event loop: ``ready()``
    once the port is bound, ``stopping()`` when shutdown begins."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = env
        self._task: asyncio.Task[None] | None = None

    def ready(self, status: str) -> None:
        notify(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}", self.env)
        interval = watchdog_interval_s(self.env)
        if interval is not None:
            self._task = asyncio.get_running_loop().create_task(
                watchdog_loop(interval, self.env), name="kassa-watchdog"
            )

    async def stopping(self) -> None:
        notify("STOPPING=1", self.env)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
