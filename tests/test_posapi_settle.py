"""The agent's start-up settling (``kassa.runtime.settle_for_serving``): objects alive
once start-up is done are put out of the garbage collector's reach before the POS API
serves, so a full collection never walks them while a POS call waits."""

from __future__ import annotations

import gc
import socket
from typing import Any

import pytest

from kassa.runtime import settle_for_serving


def test_settle_for_serving_puts_start_up_objects_out_of_the_collectors_reach():
    gc.unfreeze()
    try:
        start_up = [[i] for i in range(1000)]  # tracked containers, alive from start-up
        settle_for_serving()
        assert gc.get_freeze_count() >= len(start_up)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in start_up)  # a full pass skips them
    finally:
        gc.unfreeze()


def test_the_agent_settles_before_it_serves(tmp_path, monkeypatch):
    """``Runtime.serve`` freezes the start-up objects before uvicorn answers anything, and
    leaves the HTTP parser and event loop to uvicorn's choice (httptools/uvloop when
    installed; the parser wrapped with the header deadline of ``sync.httpserve``)."""
    from kassa import runtime

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_server(config: Any) -> Any:
        seen["http"], seen["loop"] = config.http, config.loop

        class S:
            def run(self) -> None:
                seen["frozen"] = gc.get_freeze_count()
                raise Stop

        return S()

    store = tmp_path / "till.db"
    from kassa.setup import init_store

    init_store(store, demo=True, members=5, store_name="T")
    cfg_file = tmp_path / "kassa.toml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_file.write_text(
        f'[store]\npath = "{store}"\n[api]\nport = {port}\n[sync]\nenabled = false\n'
        f'[log]\ndir = "{tmp_path / "log"}"\n',
        encoding="utf-8",
    )
    from kassa.config import load_config

    monkeypatch.setattr(runtime, "_Server", fake_server)
    try:
        with pytest.raises(Stop):
            runtime.Runtime(load_config(cfg_file)).serve()
    finally:
        gc.unfreeze()
    from sync.httpserve import HeaderDeadlineProtocol

    # uvicorn's own choice of parser (httptools when installed), with the header deadline
    assert (seen["http"], seen["loop"]) == (HeaderDeadlineProtocol, "auto")
    assert seen["frozen"] > 0
