"""Smoke check of an installed cashier app: run with the python of a venv that has the
kassa wheel installed (not the source tree), ``python -I tui_signin.py WORKDIR``.

Makes a till store and a cashier with the installed ``kassa`` command, starts the
installed app under Textual's Pilot at 80x24 and checks that the sign-in screen renders
with the stylesheet loaded from the installed package and the cashier listed. Exit 0 when
all holds; an AssertionError (exit 1) names what did not.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from textual.widgets import OptionList

import tui.app
from kassa.wiring import open_services
from tui.app import KassaApp
from tui.screens.signin import SignInScreen

CASHIER = ("smoke", "Смоук Тест", "1234")


def kassa(*args: str) -> None:
    """The installed console script next to this interpreter."""
    exe = Path(sys.executable).with_name("kassa")
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"kassa {' '.join(args)}: {run.stdout}{run.stderr}"


async def check(store: Path) -> None:
    installed = Path(tui.app.__file__).resolve()
    assert Path(sys.prefix).resolve() in installed.parents, f"not the installed app: {installed}"
    services = open_services(store, printer_url="capture://", sync_interval_s=None)
    try:
        app = KassaApp(services)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for _ in range(50):  # the cashier list arrives from a worker
                if (
                    app.screen.query("#cashiers")
                    and app.screen.query_one("#cashiers", OptionList).option_count
                ):
                    break
                await pilot.pause(0.1)
            screen = app.screen
            assert isinstance(screen, SignInScreen), f"first screen is {type(screen).__name__}"
            sources = [str(path) for path, _ in app.stylesheet.source]
            assert any(s.endswith("kassa.tcss") for s in sources), f"no kassa.tcss: {sources}"
            names = screen.query_one("#cashiers", OptionList)
            shown = [str(names.get_option_at_index(i).prompt) for i in range(names.option_count)]
            assert any(CASHIER[1] in s for s in shown), f"cashier not listed: {shown}"
            box = screen.query_one("#signin")
            assert box.border_title == "Вход кассира", box.border_title
            app.exit()
        assert app.return_code in (0, None), app.return_code
    finally:
        services.stop()


def main() -> int:
    work = Path(sys.argv[1])
    store = work / "till.db"
    kassa("init", "--store", str(store))
    kassa("cashier", "add", "--store", str(store), "--id", CASHIER[0], "--name", CASHIER[1],
          "--pin", CASHIER[2])  # fmt: skip
    asyncio.run(check(store))
    print("smoke: the installed cashier app shows the sign-in screen (kassa.tcss loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
