"""Running the cashier app as the process's one job: its exit status, and SIGTERM/SIGHUP
outside the app ending the process through every ``finally``."""

from __future__ import annotations

import signal
from typing import Any


def end_cleanly_on_signals() -> None:
    """SIGTERM and SIGHUP outside the app (while the demo is set up or torn down) raise
    ``SystemExit(128 + signal)``, so every ``finally`` runs: servers stop, the demo's temp
    dir goes. While the app runs, it handles them itself (``KassaApp._exit_on_signals``);
    its event loop puts the default back when it closes, so this is called again after."""

    def stop(number: int, frame: object) -> None:
        raise SystemExit(128 + number)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, stop)


def run_cashier_app(app: Any) -> int:
    """Run the cashier app until it exits and return the process exit status: the app's
    own return code, which Textual sets to 1 when the app died of an error (a stylesheet
    that cannot be read, an exception in a handler), 0 after the cashier quit, 128 + N
    after signal N (SIGTERM, SIGHUP)."""
    end_cleanly_on_signals()
    try:
        app.run()
    finally:
        end_cleanly_on_signals()
    code = app.return_code
    return int(code) if code is not None else 0
