"""A terminal closed under the cashier app: writes the vanished tty refuses are dropped,
so Textual's writer thread keeps draining and the app can close."""

from __future__ import annotations

import os

import pytest

from tui.hangup import VanishingTerminal


def test_writes_to_a_hung_up_terminal_are_dropped_not_raised():
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    os.close(master)  # the terminal window closed
    with pytest.raises(OSError):  # what killed Textual's writer thread
        stream.write("x\n")
        stream.flush()
    terminal = VanishingTerminal(stream)
    assert terminal.write("\x1b[?1049l") == len("\x1b[?1049l")
    terminal.flush()
    assert terminal.fileno() == slave
    with pytest.raises(OSError):
        stream.close()
