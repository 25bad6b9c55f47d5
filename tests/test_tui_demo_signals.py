"""`kassa demo` ended by real signals in a real terminal (tmux): SIGTERM while the app
runs, SIGTERM while the demo is still being set up, and SIGHUP from closing the terminal.
Each must end as Ctrl+Q does: the temp dir with its member data gone, the terminal back
from the alternate screen with mouse reporting off, no process left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from test_tui_demo_tmux import KASSA, ROOT, Tmux, pytestmark

__all__ = ["pytestmark"]


def start(tmp_path: Path, members: int, tail: str = "") -> tuple[Tmux, Path]:
    session = f"kassa-sig-{uuid.uuid4().hex[:8]}"
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    command = f"cd {ROOT} && TMPDIR={env_tmp} {KASSA} demo --members {members}{tail}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    return Tmux(session), env_tmp


def demo_pid(t: Tmux) -> int:
    """The demo process: the pane's shell's child (or the pane itself after ``exec``)."""
    shell = int(t.run("display", "-p", "-t", t.session, "#{pane_pid}").strip())
    children = subprocess.run(
        ["pgrep", "-P", str(shell)], capture_output=True, text=True, check=False
    ).stdout.split()
    return int(children[0]) if children else shell


def wait_until(check: object, what: str, rounds: int = 200) -> None:
    for _ in range(rounds):
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(what)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_while_the_app_runs_cleans_up_and_restores_the_terminal(tmp_path: Path):
    rc = tmp_path / "rc"
    t, env_tmp = start(tmp_path, 300, f"; echo $? > {rc}; sleep 60")
    try:
        t.wait_for("Анна Петрова")
        assert list(env_tmp.glob("kassa-demo-*"))  # the demo's data is there while it runs
        flags = t.run("display", "-p", "-t", t.session, "#{alternate_on} #{mouse_any_flag}")
        assert flags.split() == ["1", "1"]
        os.kill(demo_pid(t), signal.SIGTERM)
        wait_until(rc.exists, "the demo did not end on SIGTERM")
        assert rc.read_text().strip() == str(128 + signal.SIGTERM)
        assert list(env_tmp.iterdir()) == []  # member data, back office: gone
        flags = t.run("display", "-p", "-t", t.session, "#{alternate_on} #{mouse_any_flag}")
        assert flags.split() == ["0", "0"]  # the normal screen, no mouse capture
    finally:
        subprocess.run(["tmux", "kill-session", "-t", t.session], check=False)


def test_sigterm_during_set_up_leaves_nothing(tmp_path: Path):
    rc = tmp_path / "rc"
    err = tmp_path / "stderr"
    t, env_tmp = start(tmp_path, 20_000, f" 2> {err}; echo $? > {rc}; sleep 60")
    try:
        wait_until(lambda: list(env_tmp.glob("kassa-demo-*")), "the demo never started")
        os.kill(demo_pid(t), signal.SIGTERM)
        wait_until(rc.exists, "the demo did not end on SIGTERM")
        assert rc.read_text().strip() == str(128 + signal.SIGTERM), err.read_text()
        assert list(env_tmp.iterdir()) == []
    finally:
        subprocess.run(["tmux", "kill-session", "-t", t.session], check=False)


def test_closing_the_terminal_sighup_cleans_up(tmp_path: Path):
    t, env_tmp = start(tmp_path, 300)
    t.wait_for("Анна Петрова")
    pid = demo_pid(t)
    subprocess.run(["tmux", "kill-session", "-t", t.session], check=True)  # SIGHUP
    wait_until(lambda: not alive(pid), "the demo outlived its terminal")
    wait_until(lambda: list(env_tmp.iterdir()) == [], "the demo's temp dir was left behind")
