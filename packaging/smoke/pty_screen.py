"""``python pty_screen.py TEXT TIMEOUT_S CMD...``: run CMD on a real 80x24 terminal until
TEXT appears on it (exit 0) or TIMEOUT_S seconds pass or CMD exits first (exit 1, with the
tail of what it drew). CMD is ended either way. For full-screen programs (the cashier app)
in smoke tests, where there is no Pilot (a frozen binary)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def main() -> int:
    text, timeout_s, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(
        cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    seen = bytearray()
    found = False
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
                found = text in ANSI.sub(b"", bytes(seen)).decode("utf-8", "replace")
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        os.close(master)
    if not found:
        tail = ANSI.sub(b"", bytes(seen)).decode("utf-8", "replace")[-2000:]
        sys.stderr.write(f"pty_screen: {text!r} never appeared; exit {proc.returncode}:\n{tail}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
