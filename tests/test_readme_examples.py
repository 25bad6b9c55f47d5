"""The README's POS walk-through runs as written: its shell block under bash with curl and
its Python block, against a real `kassa agent serve` on a demo till.

Only TOKEN and API are given from outside (the README reads them from the token file and
the default port when they are unset); every id comes from the agent's own answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_posapi_serve import KASSA, demo_till_config, wait_ready

README = Path(__file__).parent.parent / "README.md"


def readme_block(language: str, first_line: str) -> str:
    """The fenced ``language`` block of the README whose text contains ``first_line``."""
    for block in re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        if first_line in block:
            return str(block)
    raise AssertionError(f"no {language} block with {first_line!r} in the README")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    _, cfg, port = demo_till_config(tmp_path)
    env = {**os.environ, "KASSA_CONFIG": str(cfg)}
    proc = subprocess.Popen(
        [*KASSA, "agent", "serve", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        token_file = tmp_path / "api-token"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(300):
                if token_file.exists() and token_file.read_text(encoding="utf-8").strip():
                    break
                wait_ready_or_exit(proc)
            token = token_file.read_text(encoding="utf-8").strip()
            wait_ready(client, proc, token)
        yield token, f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_ready_or_exit(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise AssertionError(f"agent exited with {proc.returncode}")
    import time

    time.sleep(0.1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_readme_shell_walk_through_runs_as_written(agent: tuple[str, str]):
    token, api = agent
    script = readme_block("sh", "# Copy-paste as it stands")
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "TOKEN": token, "API": api},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    identified, hold, slip, refund = answers
    assert identified["member_id"] == "m00000001"
    assert hold["status"] == "active" and hold["points"] > 0
    assert "POS-1001" in slip["text"] and "Баланс после" in slip["text"]
    assert refund["duplicate"] is False and refund["result"]["amount_kop"] > 0


def test_readme_python_example_runs_as_written(agent: tuple[str, str]):
    token, api = agent
    code = readme_block("python", "httpx.Client(base_url=api")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TOKEN": token, "API": api},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert re.fullmatch(r"\d+ kopecks to pay; \d+ points", first), first


def test_rules_template_starts_a_programme_that_checks(tmp_path: Path):
    mine = tmp_path / "my_programme.toml"
    made = subprocess.run(
        [*KASSA, "rules", "template", str(mine)], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["file"] == str(mine)
    checked = subprocess.run(
        [*KASSA, "rules", "check", str(mine)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True
    # the template is the commented demo: a programme owner edits it, never starts blank
    assert mine.read_text(encoding="utf-8").startswith("# ")

    mine.write_text("# my edits\n", encoding="utf-8")
    again = subprocess.run(
        [*KASSA, "rules", "template", str(mine)], capture_output=True, text=True, check=False
    )
    assert again.returncode == 2
    assert json.loads(again.stdout)["details"]["field"] == "file"
    assert mine.read_text(encoding="utf-8") == "# my edits\n"  # never overwritten

    to_stdout = subprocess.run(
        [*KASSA, "rules", "template"], capture_output=True, text=True, check=True
    )
    assert to_stdout.stdout == (
        Path(__file__).parent.parent / "agent" / "data" / "demo_programme.toml"
    ).read_text(encoding="utf-8")
