"""The one wiring (``kassa.wiring``): the till every front door runs on is built from the
configuration alone, with one HTTP client set-up to the back office and one printer
status, whoever asks (`kassa agent serve`'s runtime, `kassa tui`, the demo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.store import Store
from kassa.config import Config, parse_config
from kassa.setup import init_store
from kassa.wiring import Till, app_services, build_till
from sync.client import CONNECT_TIMEOUT_S, backoffice_http


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "till.db"
    init_store(path, demo=True, members=3, store_name="T")
    with Store(path) as store, store.write() as conn:
        Store.set_meta(conn, "sync_token", "token")
        Store.set_meta(conn, "backoffice_url", "http://enrolled.example:8080")
    return path


def _cfg(store_path: Path, **sections: dict[str, object]) -> Config:
    return parse_config(
        {"store": {"path": str(store_path)}, **sections}, str(store_path.parent / "kassa.toml")
    )


def test_one_timeout_policy_to_the_back_office() -> None:
    with backoffice_http("http://bo.example", timeout_s=7.0) as http:
        assert (http.timeout.read, http.timeout.connect) == (7.0, CONNECT_TIMEOUT_S)
        assert str(http.base_url) == "http://bo.example"
    with backoffice_http("http://bo.example", timeout_s=0.5) as http:  # never longer
        assert http.timeout.connect == 0.5


def test_the_back_office_client_follows_the_config(store_path: Path) -> None:
    till = build_till(_cfg(store_path, sync={"timeout_s": 4.0}))
    try:
        assert till.http is not None and till.owns_http
        assert str(till.http.base_url) == "http://enrolled.example:8080"  # the enrolment's
        assert till.http.timeout.read == 4.0
    finally:
        till.close()
    assert till.http.is_closed
    till = build_till(_cfg(store_path, sync={"url": "http://other.example"}))
    try:
        assert till.http is not None and str(till.http.base_url) == "http://other.example"
    finally:
        till.close()
    till = build_till(_cfg(store_path, sync={"enabled": False}))
    try:
        assert till.http is None and till.sync is None
    finally:
        till.close()


def test_one_printer_status_for_the_pos_api_and_the_status_bar(
    store_path: Path, tmp_path: Path
) -> None:
    till = build_till(_cfg(store_path))
    try:
        assert till.build_printer() is None
        assert till.printer_status().to_dict() == {"configured": False}
    finally:
        till.close()
    slips = tmp_path / "slips.bin"
    till = build_till(
        _cfg(store_path, printer={"url": f"capture://{slips}", "profile": "epson-tm-80"})
    )
    try:
        assert till.build_printer() is not None and till.slip_width == 48
        status = till.printer_status()
        assert status.file and not status.preview
        assert status.to_dict() == {"configured": True, "state": "unknown", "failures": 0}
    finally:
        till.close()


def test_the_cashier_app_without_a_printer_url_shows_slips_on_screen(store_path: Path) -> None:
    services = app_services(_cfg(store_path))
    try:
        assert isinstance(services.till, Till)
        services.till.build_printer()
        assert services.preview is not None and services.till.printer_status().preview
        assert services.till.profile == "epson-tm-42" and services.slip_width == 42
    finally:
        services.stop()


def test_the_agent_runtime_runs_on_the_wiring(store_path: Path, tmp_path: Path) -> None:
    from kassa.runtime import Runtime

    cfg = _cfg(store_path, sync={"enabled": False}, log={"dir": str(tmp_path / "log")})
    rt = Runtime(cfg)
    rt.open()
    try:
        assert isinstance(rt.till, Till) and rt.agent is rt.till.agent
        assert rt.printer_status() == {"configured": False}
    finally:
        rt.close()
    assert rt.till is None and rt.agent is None
