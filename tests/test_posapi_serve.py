"""`kassa agent serve` as a real process: answers the POS over loopback, owns its store,
logs JSON without personal data, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent.identify import make_member_code
from agent.seed import demo_phone
from agent.store import Store

KASSA = [sys.executable, "-m", "kassa.cli"]


def kassa_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``kassa <args>`` as its own process, to the end (a minute at most): exit code and
    output, whatever the exit code."""
    return subprocess.run(
        [*KASSA, *args], env=env, check=False, capture_output=True, text=True, timeout=60
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(client: httpx.Client, proc: subprocess.Popen, token: str) -> None:
    """Poll until the API answers (start-up readiness, not a timing assertion)."""
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode}")
        try:
            if client.get("/v1/status", headers={"authorization": f"Bearer {token}"}).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("agent did not start")


def demo_till_config(tmp_path: Path, members: int = 50) -> tuple[Path, Path, int]:
    """A demo till store (``kassa init --demo``) and a config serving it on a free port,
    logging into ``tmp_path/log``: (store, config file, port)."""
    store = tmp_path / "till.db"
    subprocess.run(
        [*KASSA, "init", "--demo", "--members", str(members), "--store", str(store)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    cfg = tmp_path / "kassa.toml"
    cfg.write_text(
        f'[store]\npath = "{store}"\n[api]\nport = {port}\n[log]\ndir = "{tmp_path / "log"}"\n',
        encoding="utf-8",
    )
    return store, cfg, port


@pytest.fixture
def setup(tmp_path):
    return (tmp_path, *demo_till_config(tmp_path))


def test_agent_serves_over_loopback_and_stops_on_sigterm(setup):
    tmp_path, store, cfg, port = setup
    env = {**os.environ, "KASSA_CONFIG": str(cfg)}
    stderr = (tmp_path / "serve.stderr").open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [*KASSA, "agent", "serve", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        token_file = tmp_path / "api-token"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(300):
                if token_file.exists() or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert token_file.stat().st_mode & 0o777 == 0o600
            token = token_file.read_text(encoding="utf-8").strip()
            wait_ready(client, proc, token)
            banner = (tmp_path / "serve.stderr").read_text(encoding="utf-8")
            assert f"kassa agent: POS API on http://127.0.0.1:{port}/v1" in banner
            auth = {"authorization": f"Bearer {token}"}
            assert client.get("/v1/status").status_code == 401
            status = client.get("/v1/status", headers=auth).json()
            # `kassa init --demo`, never enrolled: offline, no last contact.
            assert (status["online"], status["enrolled"], status["last_contact"]) == (
                False,
                False,
                None,
            )
            card = client.post("/v1/identify", json={"input": demo_phone(1)}, headers=auth).json()
            assert card["code"] == make_member_code(100_000_001)
            cheque = {
                "member_id": card["member_id"],
                "receipt_id": "POS-42",
                "lines": [{"sku": "DR-1001"}],
                "redeem_points": "max",
            }
            hold = client.post("/v1/holds", json=cheque, headers=auth).json()
            done = client.post(
                "/v1/commit", json=cheque | {"hold_id": hold["hold_id"]}, headers=auth
            ).json()
            assert done["receipt_id"] == "POS-42" and done["quote"]["payable_kop"] >= 0

            # Read-only commands run while the agent owns the store.
            for command in (["journal"], ["sync", "status"]):
                out = kassa_run(*command, "--store", str(store))
                assert out.returncode == 0, out.stdout
                assert json.loads(out.stdout)  # the journal / status document
            # Router answers are JSON; a garbage request makes uvicorn log a warning,
            # which must land in the JSON log (not as a plain-text line).
            wrong = client.get("/v1/commit", headers=auth)
            assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                raw.recv(1024)

            # One owner per store: a second agent on the same store is refused.
            second = kassa_run("agent", "serve", "--quiet", "--port", str(free_port()), env=env)
            assert second.returncode == 3
            assert json.loads(second.stdout)["error"] == "store_locked"
            assert "POS API on" not in second.stderr  # no banner before it failed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    with Store(store) as reopened:  # the lock was released
        assert reopened.one("SELECT count(*) FROM purchases")[0] == 1
    lines = (tmp_path / "log" / "kassa-agent.log").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert any("store closed" in r["msg"] for r in records)
    assert any(r["logger"].startswith("uvicorn") and r["level"] == "WARNING" for r in records)
    text = "\n".join(lines)
    assert token not in text and demo_phone(1)[-7:] not in text


def test_serve_on_a_taken_port_says_so_without_a_banner(setup):
    """Another program listens on the API port: the error JSON (port_in_use, exit 1 so a
    service manager may retry) and no "POS API on ..." banner."""
    _, _, cfg, port = setup
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = kassa_run("agent", "serve", "--config", str(cfg))
    assert out.returncode == 1, out.stdout + out.stderr
    err = json.loads(out.stdout)
    assert err["error"] == "port_in_use" and err["details"]["port"] == port
    assert "POS API on" not in out.stderr


def test_serve_refuses_a_missing_store_and_a_remote_host_without_opt_in(tmp_path):
    cfg = tmp_path / "kassa.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "none.db"}"\n', encoding="utf-8")
    out = kassa_run("agent", "serve", "--config", str(cfg), "--quiet")
    assert out.returncode == 3 and "kassa init" in json.loads(out.stdout)["message_en"]
    cfg.write_text('[api]\nhost = "0.0.0.0"\n', encoding="utf-8")
    out = kassa_run("agent", "serve", "--config", str(cfg))
    assert out.returncode == 2
    err = json.loads(out.stdout)
    assert err["error"] == "config_error" and err["details"]["key"] == "api.host"
    assert Path(err["details"]["file"]) == cfg


def test_runtime_prints_committed_slips_and_keeps_the_store_private(tmp_path, clock):
    """In-process runtime with a loopback TCP 9100 printer: a commit over the API wakes
    the print worker; the store files become owner-only."""
    from synchelp import SyncASGITransport, portal
    from test_drivers_transport import FakeTcpPrinter

    from kassa.config import parse_config
    from kassa.runtime import Runtime
    from tests.conftest import Till

    till = Till(tmp_path / "till.db", clock, members=20)
    till.store.close()
    (tmp_path / "till.db").chmod(0o644)
    printer = FakeTcpPrinter()
    cfg = parse_config(
        {
            "store": {"path": str(tmp_path / "till.db")},
            "printer": {"url": f"tcp://127.0.0.1:{printer.port}", "profile": "epson-tm-80"},
            "log": {"dir": str(tmp_path / "log")},
        },
        str(tmp_path / "kassa.toml"),
    )
    rt = Runtime(cfg)
    rt.open()
    try:
        assert (tmp_path / "till.db").stat().st_mode & 0o777 == 0o600
        with (
            portal() as p,
            httpx.Client(transport=SyncASGITransport(rt.app(), p), base_url="http://pos") as client,
        ):
            token = (tmp_path / "api-token").read_text(encoding="utf-8").strip()
            auth = {"authorization": f"Bearer {token}"}
            body = {
                "identify": make_member_code(100_000_001),
                "receipt_id": "P-1",
                "lines": [{"sku": "DR-1001"}],
            }
            assert client.post("/v1/commit", json=body, headers=auth).status_code == 200
            for _ in range(300):  # wait for the worker to print (an event, not a timing)
                if rt.agent.store.one("SELECT status FROM print_jobs")[0] == "printed":
                    break
                time.sleep(0.05)
            assert rt.agent.store.one("SELECT status FROM print_jobs")[0] == "printed"
            status = client.get("/v1/status", headers=auth).json()
            assert status["printer"]["configured"] and status["print_queue"] == 0
        assert b"P-1" in bytes(printer.printed)
    finally:
        rt.close()
        printer.close()
    assert rt.agent is None


def test_an_address_that_cannot_be_used_is_not_called_a_taken_port():
    """Only "address in use" is ``port_in_use``; an address this machine does not have
    (TEST-NET-1) says what the system said, as ``cannot_listen``."""
    from kassa.cli.agent import ListenError, PortInUseError, check_port

    with pytest.raises(ListenError) as e:
        check_port("192.0.2.1", free_port())
    assert not isinstance(e.value, PortInUseError)
    assert e.value.code == "cannot_listen" and e.value.details["reason"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PortInUseError):
            check_port("127.0.0.1", taken.getsockname()[1])
