"""`kassa tui` runs on kassa.toml (``--config``), its flags overriding the file as
`kassa agent serve`'s do: the app gets the till the one wiring (``kassa.wiring``) built
from that configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kassa.setup import init_store


@pytest.fixture
def till_config(tmp_path: Path) -> Path:
    store = tmp_path / "till.db"
    init_store(store, demo=True, members=5, store_name="T")
    cfg = tmp_path / "kassa.toml"
    cfg.write_text(
        f'[store]\npath = "{store}"\n'
        '[printer]\nprofile = "epson-tm-80"\n'
        "[sync]\ninterval_s = 7.5\n"
        f'[log]\ndir = "{tmp_path / "log"}"\n',
        encoding="utf-8",
    )
    return cfg


def _app_of(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Any:
    """Run `kassa <argv>` with the app's run replaced by a capture: the app it built."""
    import kassa.cli.tui
    from kassa.cli import main

    seen: dict[str, Any] = {}

    def capture(app: Any) -> int:
        seen["app"] = app
        till = app.services.till
        till.build_printer()
        seen["width"] = till.slip_width
        seen["store"] = str(app.services.agent.store.path)
        return 0

    monkeypatch.setattr(kassa.cli.tui, "run_cashier_app", capture)
    assert main(argv) == 0
    return seen


def test_kassa_tui_takes_the_till_and_printer_from_the_config_file(
    till_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KASSA_STORE", raising=False)
    seen = _app_of(monkeypatch, ["tui", "--config", str(till_config)])
    services = seen["app"].services
    assert seen["store"] == str(till_config.parent / "till.db")
    assert services.till.profile == "epson-tm-80"  # from the file
    assert seen["width"] == 48  # the 80 mm profile's columns reach the slip preview
    assert services.till.printer_url == "capture://"  # no printer.url: the preview
    assert services.sync_interval_s == 7.5


def test_kassa_tui_flags_override_the_config_file(
    till_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _app_of(
        monkeypatch,
        ["tui", "--config", str(till_config), "--profile", "epson-tm-42", "--printer", "none"],
    )
    till = seen["app"].services.till
    assert till.profile == "epson-tm-42"
    assert till.printer_url == "" and till.printer is None
    assert seen["width"] == 42


def test_kassa_tui_refuses_a_config_file_that_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file named on the command line that does not exist is an error, as for
    `kassa agent serve` (never a silent run on defaults)."""
    from kassa.cli import main

    assert main(["tui", "--config", str(tmp_path / "nope.toml")]) == 2
