"""The status bar at 80 columns: what it shortens or leaves out first when everything
does not fit (the last contact, a quiet printer, the oldest event's time, the cashier's
surname, the long training label) and what it never cuts (training, the link state, a
printer fault, the quarantine, the cashier's first name)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

from tui.services import StatusSnapshot
from tui.widgets.status import status_text

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def snap(**kw: object) -> StatusSnapshot:
    base: dict[str, object] = {
        "online": True,
        "events_waiting": 0,
        "oldest_waiting": None,
        "last_contact": NOW - timedelta(minutes=1),
        "quarantined": 0,
        "printer_fault": "ok",
        "printer_preview": True,
        "print_queue": 0,
        "training": False,
        "now": NOW,
    }
    base.update(kw)
    return StatusSnapshot(**base)  # type: ignore[arg-type]


def test_everything_fits_when_there_is_room() -> None:
    text = status_text(snap(), "ru", "Анна Петрова", None, width=80).plain
    assert text == "● На связи │ Очередь 0 │ связь 11:59 │ Принтер: экран │ Анна Петрова"
    wide = status_text(snap(training=True), "ru", "Анна Петрова", None, width=200).plain
    assert "УЧЕБНЫЙ РЕЖИМ" in wide and "связь 11:59" in wide and "Принтер: экран" in wide


def test_training_at_80_drops_the_last_contact_not_the_name() -> None:
    text = status_text(snap(training=True), "ru", "Анна Петрова", None, width=80).plain
    assert len(text) <= 80
    assert "УЧЕБНЫЙ РЕЖИМ" in text and text.endswith("Анна Петрова")
    assert "связь" not in text and "Принтер: экран" in text


def test_at_80_columns_the_important_parts_always_show() -> None:
    for lang, training, online, waiting, quarantined, fault, queue in product(
        ("ru", "en"),
        (False, True),
        (True, False, None),
        (0, 1234),
        (0, 7),
        (None, "нет бумаги"),
        (0, 3),
    ):
        s = snap(
            training=training,
            online=online,
            events_waiting=waiting,
            oldest_waiting=NOW - timedelta(days=1) if waiting else None,
            last_contact=NOW - timedelta(days=2),
            quarantined=quarantined,
            print_queue=queue,
        )
        if online is None and quarantined:
            continue  # only a back office's answers quarantine events
        problem = "out of paper" if lang == "en" and fault else fault
        text = status_text(s, lang, "Анна Петрова", problem, width=80).plain
        case = (lang, training, online, waiting, quarantined, problem, queue, text)
        assert len(text) <= 80 and "…" not in text, case
        assert text.endswith((" │ Анна Петрова", " │ Анна")), case
        if training:
            assert ("УЧ" if lang == "ru" else "TRAINING") in text, case
        if online is False:
            assert ("НЕТ СВЯЗИ" if lang == "ru" else "OFFLINE") in text, case
        if problem:
            assert problem in text, case
        if quarantined:
            assert ("Карантин 7" if lang == "ru" else "Quarantine 7") in text, case
        assert ("Очередь" if lang == "ru" else "Queue") in text, case


def test_a_name_too_long_for_any_bar_is_cut_at_its_end() -> None:
    name = "Константин-Александр Константинопольский-Преображенский"
    s = snap(training=True, online=False, events_waiting=3, oldest_waiting=NOW, quarantined=2)
    text = status_text(s, "ru", name, "нет бумаги", width=80)
    plain = text.plain
    assert "УЧЁБА" in plain and "НЕТ СВЯЗИ" in plain and "Карантин 2" in plain
    assert "ПРИНТЕР: нет бумаги" in plain and " │ Константин-" in plain
    assert "Константинопольский" not in plain  # the surname went first
    assert text.overflow == "ellipsis" and text.no_wrap  # the rest is cut by the widget


def test_a_capture_file_printer_is_known_not_unknown(tmp_path) -> None:
    """A till printing to a file (``capture:///path``) knows where its slips go: the bar
    says so instead of "Принтер ?", which it keeps for printers that cannot answer."""
    import subprocess
    import sys

    from kassa.wiring import Till, open_services

    store = tmp_path / "till.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kassa.cli",
            "init",
            "--demo",
            "--members",
            "5",
            "--store",
            str(store),
        ],
        check=True,
        capture_output=True,
    )
    services = open_services(store, printer_url=f"capture://{tmp_path / 'slips.bin'}")
    try:
        assert isinstance(services.till, Till)
        services.till.build_printer()
        shown = status_text(services.status(), "ru", None, None, width=200).plain
        assert "Принтер: файл" in shown and "Принтер ?" not in shown
    finally:
        services.stop()
    services = open_services(store, printer_url="tcp://127.0.0.1:9")  # cannot answer yet
    try:
        assert isinstance(services.till, Till)
        services.till.build_printer()
        assert "Принтер ?" in status_text(services.status(), "ru", None, None, width=200).plain
    finally:
        services.stop()


def test_a_status_or_printer_event_after_the_last_screen_left_is_ignored(tmp_path) -> None:
    """The status read and the print worker post from threads; one can land while the app
    closes, after its last screen left. It is dropped, never a ScreenStackError (which
    would turn a clean quit into a traceback and exit 1)."""
    import asyncio

    from tui_helpers import harness

    from tui.messages import PrinterChanged, StatusUpdated

    async def main() -> None:
        with harness(tmp_path) as h:
            app = h.make_app()
            async with app.run_test(size=(80, 24)):
                pass
            assert not app.screen_stack  # closed: no screen left
            app.on_status_updated(StatusUpdated(snap()))
            app.on_printer_changed(PrinterChanged("printed", "ok", "", ""))

    asyncio.run(main())
