"""End to end: `kassa demo` in a real terminal (tmux, 80x24), typed like a cashier.

Starts the demo in a detached tmux session, reads the screen with ``capture-pane``, signs
in, sells (SKU, phone, Enter, Enter), checks the slip preview and the status bar, quits
with Ctrl+Q and checks that nothing is left: the demo process (back office thread,
sync loop, print worker included) ended with status 0 and its temp dir is gone. Keys are
sent one at a time with a pause so the wedge classifier sees typing, not a scanner burst.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(
        shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
    ),
    # Typed keys are timed against the scanner gap: on a parallel run this shares one worker
    # with the other real-process tests (SIGKILL loops), never running beside them.
    pytest.mark.xdist_group("real_processes"),
]

ROOT = Path(__file__).resolve().parent.parent
KASSA = Path(sys.executable).with_name("kassa")


class Tmux:
    def __init__(self, session: str) -> None:
        self.session = session

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", *args], check=True, capture_output=True, text=True, timeout=20
        ).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).replace("\xa0", " ")

    def wait_for(self, text: str, rounds: int = 300) -> str:
        """Poll the screen until ``text`` shows (a wait for the app, not a timing check)."""
        screen = ""
        for _ in range(rounds):
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")

    def type(self, text: str) -> None:
        for ch in text:
            self.run("send-keys", "-t", self.session, "-l", ch)
            time.sleep(0.07)  # slower than the 40 ms scanner gap: typing

    def key(self, *names: str) -> None:
        for name in names:
            self.run("send-keys", "-t", self.session, name)
            time.sleep(0.15)


def test_kassa_demo_in_tmux_like_a_cashier(tmp_path: Path) -> None:
    session = f"kassa-e2e-{uuid.uuid4().hex[:8]}"
    rc_file = tmp_path / "rc"
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    command = (
        f"cd {ROOT} && TMPDIR={env_tmp} {KASSA} demo --members 500; echo $? > {rc_file}; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    t = Tmux(session)
    try:
        t.wait_for("Анна Петрова")
        first = t.wait_for("На связи")  # the status bar, once the services are up
        assert "Вход кассира" in first
        t.key("Enter")
        t.type("1111")
        t.key("Enter")
        t.wait_for("Новый чек")
        t.type("DR-1001")
        t.key("Enter")
        t.wait_for("6 499,00")
        t.type("8 916 124-24-86")
        t.key("Enter")
        quote = t.wait_for("К оплате")
        assert "+7 *** ***-24-86" in quote and "Уровень" in quote
        t.key("Enter")  # accept
        t.wait_for("Провести чек?")
        t.key("Enter")  # confirm
        slip = t.wait_for("Слип (предпросмотр)")
        assert "проведён" in slip
        receipt = re.search(r"Чек (\S+) проведён", slip)
        assert receipt is not None
        status = t.wait_for("Очередь 0")  # the sync loop sent the sale to the back office
        assert "На связи" in status
        t.key("F10")
        t.wait_for("New cheque")
        t.key("F11")
        report = t.wait_for("Member cheques")
        assert re.search(r"Member cheques\s+1", report)
        t.key("C-q")
        for _ in range(300):
            if rc_file.exists() and rc_file.read_text().strip():
                break
            time.sleep(0.1)
        assert rc_file.read_text().strip() == "0"
        assert list(env_tmp.iterdir()) == []  # the demo's temp dir is gone
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
