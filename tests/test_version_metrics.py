"""Which version runs where, liveness for monitoring, Prometheus metrics, progress bars.

Real processes for the CLI, the real POS API and back office apps over real SQLite (and
PostgreSQL through ``cluster``); a pty stands in for the operator's terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from test_posapi import AUTH, TOKEN, TestClient

from agent.version import user_agent, version
from kassa.posapi import create_app
from sync.backoffice.app import create_app as backoffice_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice

KASSA = [sys.executable, "-m", "kassa.cli"]


def test_kassa_version_is_the_installed_distribution():
    out = subprocess.run([*KASSA, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"kassa {metadata.version('kassa')}"
    assert user_agent("agent") == f"kassa-agent/{metadata.version('kassa')}"


def test_pos_api_live_is_public_and_status_names_the_version(till):
    with TestClient(create_app(till.agent, token=TOKEN), headers={}) as anonymous:
        live = anonymous.get("/v1/live")
        assert live.status_code == 200
        assert live.json() == {"ok": True}  # nothing about the till, its members or queue
        assert anonymous.get("/v1/status").status_code == 401
        assert anonymous.get("/metrics").status_code == 404  # off unless asked for
        status = anonymous.get("/v1/status", headers=AUTH).json()
    assert status["version"] == version()


def test_pos_api_metrics_count_routes_by_template(till):
    app = create_app(till.agent, token=TOKEN, metrics=True)
    with TestClient(app, headers=AUTH) as api:
        api.get("/v1/holds/no-such-hold")
        api.get("/v1/holds/another-one")
        api.get("/v1/no-such-path")
        text = api.get("/metrics", headers={"authorization": ""}).text
    assert f'kassa_agent_build_info{{version="{version()}"}} 1' in text
    # two holds under one series, named by the route template, never the raw path
    assert (
        'kassa_agent_http_requests_total{route="/v1/holds/{hold_id}",method="GET",status="404"} 2'
        in text
    )
    assert 'route="other",method="GET",status="404"} 1' in text
    assert "no-such-hold" not in text
    assert "kassa_agent_events_waiting 0" in text
    assert f"kassa_agent_online {int(till.agent.offline_status().online)}" in text


def test_backoffice_records_the_software_each_till_runs(cluster):
    node = cluster.till("till-v")
    node.sale("R-1", "m00000001", ("DR-1001", 1))
    node.client.drain()
    rows = {t["terminal_id"]: t for t in cluster.bo.terminals()}
    assert rows["till-v"]["software"] == user_agent("agent")
    assert rows["till-v"]["last_seen"] is not None
    assert rows["till-v"]["revoked"] is False


def test_backoffice_health_version_live_and_metrics(tmp_path: Path):
    db = Database.open(str(tmp_path / "bo.db"))
    bo = Backoffice(db)
    bo.initialise()
    try:
        with TestClient(backoffice_app(bo, verifier=False, metrics=True), headers={}) as http:
            assert http.get("/v1/live").json() == {"ok": True}
            assert http.get("/v1/health").json()["version"] == version()
            text = http.get("/metrics").text
        assert "kassa_backoffice_project_backlog_events 0" in text
        assert 'route="/v1/health",method="GET",status="200"} 1' in text
        with TestClient(backoffice_app(bo, verifier=False), headers={}) as http:
            assert http.get("/metrics").status_code == 404
    finally:
        db.close()


def test_backoffice_terminals_command_lists_tills(tmp_path: Path):
    db = tmp_path / "bo.db"
    env = {**os.environ, "PYTHONUTF8": "1"}
    subprocess.run(
        [*KASSA, "backoffice", "seed", "--db", str(db), "--members", "0"],
        capture_output=True,
        check=True,
        env=env,
    )
    out = subprocess.run(
        [*KASSA, "backoffice", "terminals", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert json.loads(out.stdout) == {"terminals": []}


def _run_in_pty(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal (as an operator's shell gives);
    stdout stays a pipe. Returns the exit status and what reached the terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, stdin=follower)
    os.close(follower)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.stdout is not None
    with proc.stdout:
        stdout = proc.stdout.read().decode()
    json.loads(stdout)  # stdout stays one clean JSON object
    return proc.returncode, seen.decode(errors="replace")


def test_seed_shows_progress_on_a_terminal_and_keeps_json_clean(tmp_path: Path):
    code, terminal = _run_in_pty(
        [*KASSA, "backoffice", "seed", "--db", str(tmp_path / "bo.db"), "--members", "60000"]
    )
    assert code == 0
    assert "Участники [" in terminal
    assert "60000/60000" in terminal or "/60000" in terminal
