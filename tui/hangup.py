"""The terminal driver for a terminal that may vanish: closing the window (SIGHUP) takes
the tty away while the app is still drawing. Textual's writer thread dies on the first
write that fails (``EIO``), and the app's shutdown then waits forever to hand that dead
thread its last message: the cashier app would outlive its terminal, holding the till
store. Here the writes a vanished terminal refuses are dropped instead, so the writer
keeps draining and the app closes as Ctrl+Q does."""

from __future__ import annotations

import contextlib
import sys
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


class VanishingTerminal:
    """The terminal stream with ``write`` and ``flush`` that ignore a hung-up tty: there
    is nobody left to show the text to."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class HangupSafeDriver(LinuxDriver):
    """Textual's Linux driver writing through :class:`VanishingTerminal`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stream = sys.__stderr__
        if stream is not None:
            self._file = VanishingTerminal(stream)  # type: ignore[assignment]  # a duck stream
