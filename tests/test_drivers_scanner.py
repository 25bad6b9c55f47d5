"""Scanners: the frame assembler (pure), the serial reader over pyserial ``loop://`` and a
socat pty pair (split reads, two frames in one read, CRLF, STX/ETX, AIM prefix, partial
frame at timeout, reconnect), ``kassa scanner listen``, and the keyboard-wedge classifier
driven by a fake clock (scan vs typing, enter / ctrl+j / tab, Russian layout repair,
Textual's bubbled duplicates)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from agent.identify import make_member_code
from drivers.scanner import Frame, FrameAssembler, ScannerStatus, SerialScanner
from drivers.wedge import WedgeClassifier, WedgeDecision
from kassa.cli import scanner as cli_scanner

CODE = make_member_code(100_000_001)  # "0001000000018", a valid member code


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# ----------------------------------------------------------------------------- assembler


def test_a_scan_split_across_reads_is_one_frame():
    a = FrameAssembler()
    assert a.feed(b"7700123", 0.00) == []
    assert a.pending == b"7700123"
    assert a.feed(b"456789\r", 0.01) == ["7700123456789"]
    assert a.pending == b""


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"111\r222\r"], ["111", "222"]),  # two frames in one read
        ([b"111\r\n222\r\n"], ["111", "222"]),  # CRLF
        ([b"111\r", b"\n222\r", b"\n"], ["111", "222"]),  # CRLF split between reads
        ([b"111\n222\n"], ["111", "222"]),  # LF
        ([b"111\t222\t"], ["111", "222"]),  # Tab
        ([b"\x02ABC\x03\x02DEF\x03"], ["ABC", "DEF"]),  # STX/ETX
        ([b"\x02AB", b"C\x03\r\n"], ["ABC"]),  # STX/ETX with a CRLF suffix
        ([b"noise\x02ABC\x03"], ["ABC"]),  # bytes before STX are noise
        ([b"\r\n\r\n"], []),  # empty frames are dropped
        ([b"12\x0034\x1d56\r"], ["123456"]),  # NUL and GS removed
        (["Привет\r".encode()], ["Привет"]),  # UTF-8
    ],
)
def test_frame_terminators(chunks, expected):
    a = FrameAssembler()
    got: list[str] = []
    for i, chunk in enumerate(chunks):
        got += a.feed(chunk, i * 0.001)
    assert got == expected


def test_aim_prefix_is_removed_and_kept_as_symbology():
    a = FrameAssembler()
    frames = a.feed_frames(b"]Q1KM1:abc\r]E0" + CODE.encode() + b"\r", 0.0)
    assert frames == [Frame("KM1:abc", "]Q1"), Frame(CODE, "]E0")]
    raw = FrameAssembler(strip_aim=False)
    assert raw.feed(b"]Q1KM1:abc\r", 0.0) == ["]Q1KM1:abc"]


def test_partial_frame_is_emitted_after_the_timeout():
    a = FrameAssembler(timeout_s=0.2)
    assert a.feed(b"12345", 10.0) == []
    assert a.flush_partial(10.1) == []  # not yet: the rest may still come
    assert a.flush_partial_frames(10.25) == [Frame("12345", None, complete=False)]
    assert a.flush_partial(11.0) == [] and a.pending == b""
    # a stale partial is flushed by the next read too, before the new bytes
    assert a.feed(b"123", 20.0) == []
    assert a.feed(b"456\r", 21.0) == ["123", "456"]


def test_partial_frames_can_be_dropped_and_noise_is_bounded():
    a = FrameAssembler(timeout_s=0.1, partial="drop", max_bytes=16)
    a.feed(b"123", 0.0)
    assert a.flush_partial(1.0) == [] and a.dropped == 1
    assert a.feed(b"x" * 40 + b"\r", 2.0) == [] and a.dropped == 2  # too long: line noise
    assert a.feed(b"ok\r", 2.1) == ["ok"]


# ----------------------------------------------------------------------------- loop://


def test_frames_over_pyserial_loop():
    port = serial.serial_for_url("loop://", timeout=0.05)
    a = FrameAssembler()
    got: list[str] = []
    try:
        for chunk in (b"]Q1" + CODE[:5].encode(), CODE[5:].encode() + b"\r\n", b"42\r43\r"):
            port.write(chunk)
            got += a.feed(port.read(port.in_waiting or 1), time.monotonic())
    finally:
        port.close()
    assert got == [CODE, "42", "43"]


class LoopFactory:
    """An injectable ``serial_for_url``: fails ``fail_first`` times, then opens loop://."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.ports: list[serial.SerialBase] = []
        self.calls = 0

    def __call__(self, url: str, **kwargs: object) -> serial.SerialBase:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise serial.SerialException(2, "could not open port: No such file or directory")
        port = serial.serial_for_url("loop://", **kwargs)
        self.ports.append(port)
        return port


def test_serial_scanner_thread_over_loop_with_reconnect():
    factory = LoopFactory(fail_first=1)
    frames: list[Frame] = []
    statuses: list[ScannerStatus] = []
    scanner = SerialScanner(
        "/dev/ttyACM0",
        frames.append,
        on_status=statuses.append,
        serial_for_url=factory,
        read_timeout_s=0.01,
        reconnect_initial_s=0.01,
        assembler=FrameAssembler(timeout_s=0.1),
    )
    with scanner:
        wait_for(lambda: len(factory.ports) == 1)
        port = factory.ports[0]
        port.write(b"7700123")
        time.sleep(0.03)  # the reader sees the first half alone
        port.write(b"456789\r" + CODE.encode() + b"\r")
        wait_for(lambda: len(frames) == 2)
        port.write(b"NOSUFFIX")  # a scanner without a suffix: ends by timeout
        wait_for(lambda: len(frames) == 3)

        port.close()  # the device vanishes: the reader reports it and reopens
        wait_for(lambda: len(factory.ports) == 2)
        factory.ports[1].write(b"\x02AFTER\x03")
        wait_for(lambda: len(frames) == 4)
    assert [f.text for f in frames] == ["7700123456789", CODE, "NOSUFFIX", "AFTER"]
    assert [f.complete for f in frames] == [True, True, False, True]
    assert [s.connected for s in statuses] == [False, True, False, True]
    assert "Сканер не подключён" in statuses[0].message_ru
    assert scanner.opens == 2 and not scanner.connected


# ----------------------------------------------------------------------------- socat


def _socat(host: Path, dev: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={host}", f"pty,raw,echo=0,link={dev}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: host.exists() and dev.exists())
    return proc


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[Path, Path, list[subprocess.Popen[bytes]]]]:
    """(scanner side read by the till, device side written by the "scanner", processes)."""
    if shutil.which("socat") is None:
        pytest.skip("socat not installed")
    host, dev = tmp_path / "ttyACM-till", tmp_path / "ttyACM-scanner"
    procs = [_socat(host, dev)]
    yield host, dev, procs
    for p in procs:
        p.terminate()
        p.wait(5)


class PtyWriter:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


def test_serial_scanner_over_socat_frames_and_reconnect(ptys):
    host, dev, procs = ptys
    frames: list[Frame] = []
    statuses: list[ScannerStatus] = []
    scanner = SerialScanner(
        str(host),
        frames.append,
        on_status=statuses.append,
        read_timeout_s=0.01,
        reconnect_initial_s=0.02,
        reconnect_max_s=0.1,
        assembler=FrameAssembler(timeout_s=0.15),
    )
    with scanner:
        wait_for(lambda: scanner.connected)
        w = PtyWriter(dev)
        w.send(b"]Q1KM1:")  # split read
        time.sleep(0.03)
        w.send(b"token\r\n" + b"\x02" + CODE.encode() + b"\x03")  # two frames, one write
        wait_for(lambda: len(frames) == 2)
        w.send(b"4600000000017")  # no suffix: a partial frame at timeout
        wait_for(lambda: len(frames) == 3)
        w.close()

        procs[0].terminate()  # unplug: the pty vanishes
        procs[0].wait(5)
        wait_for(lambda: not scanner.connected)
        for p in (host, dev):
            if p.is_symlink():
                p.unlink()
        procs.append(_socat(host, dev))  # plugged back in at the same path
        wait_for(lambda: scanner.connected)
        w = PtyWriter(dev)
        w.send(b"AGAIN\t")
        wait_for(lambda: len(frames) == 4)
        w.close()
    assert [(f.text, f.symbology, f.complete) for f in frames] == [
        ("KM1:token", "]Q1", True),
        (CODE, None, True),
        ("4600000000017", None, False),
        ("AGAIN", None, True),
    ]
    assert [s.connected for s in statuses][:3] == [True, False, True]


def test_scanner_listen_prints_one_json_line_per_scan(ptys, capsys):
    host, dev, _ = ptys
    parser = argparse.ArgumentParser(prog="kassa")
    cli_scanner.add_commands(parser.add_subparsers(dest="command"), "/tmp/unused.db")
    args = parser.parse_args(
        ["scanner", "listen", "--port", str(host), "--count", "3", "--seconds", "10"]
    )

    def scan() -> None:
        time.sleep(0.2)  # the listener opens the port first
        w = PtyWriter(dev)
        w.send(CODE.encode() + b"\r\n]Q1KM1:abc\r\nhello\r\n")
        w.close()

    writer = threading.Thread(target=scan)
    writer.start()
    assert args.func(args) == 0
    writer.join()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["text"], x["kind"]) for x in lines] == [
        (CODE, "code"),
        ("KM1:abc", "token"),
        ("hello", "unrecognised"),
    ]
    assert lines[1]["symbology"] == "]Q1" and lines[0]["complete"] is True
    assert lines[2]["error"] and lines[0]["port"] == str(host)


def test_scanner_listen_on_loop_ends_after_seconds(capsys):
    parser = argparse.ArgumentParser(prog="kassa")
    cli_scanner.add_commands(parser.add_subparsers(dest="command"), "/tmp/unused.db")
    args = parser.parse_args(["scanner", "listen", "--port", "loop://", "--seconds", "0.2"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "scanner connected: loop://" in captured.err


# ----------------------------------------------------------------------------- wedge


class FakeClock:
    """Seconds that tests advance by hand (Pilot.press would add ~80 ms per key)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def tick(self, ms: float) -> float:
        self.t += ms / 1000
        return self.t


def type_keys(
    w: WedgeClassifier, clock: FakeClock, text: str, gap_ms: float, end: str | None = "enter"
) -> list[WedgeDecision]:
    out = [w.feed(ch, ch, clock.tick(gap_ms)) for ch in text]
    if end is not None:
        out.append(w.feed(end, None, clock.tick(gap_ms)))
    return out


@pytest.mark.parametrize("terminator", ["enter", "ctrl+j", "tab"])
def test_a_fast_burst_ending_in_a_suffix_is_a_scan(terminator):
    w, clock = WedgeClassifier(), FakeClock()
    decisions = type_keys(w, clock, CODE, gap_ms=5, end=terminator)
    assert decisions[0].burst_start and decisions[0].kind == "key"
    assert all(d.kind == "key" and not d.burst_start for d in decisions[1:-1])
    scan = decisions[-1]
    assert scan.is_scan and scan.text == CODE == scan.raw
    assert scan.erase == 13 and scan.terminator == terminator and not scan.layout_repaired
    assert w.scans == 1


def test_slow_typing_passes_through():
    w, clock = WedgeClassifier(), FakeClock()
    for gap in (150, 80):  # a cashier; Textual's Pilot.press
        decisions = type_keys(w, clock, CODE, gap_ms=gap)
        assert all(d.kind == "key" for d in decisions)
    assert w.scans == 0


def test_russian_layout_scan_is_repaired():
    w, clock = WedgeClassifier(), FakeClock()
    scan = type_keys(w, clock, "ДЩНФДЖ7700123456", gap_ms=3, end="ctrl+j")[-1]
    assert scan.is_scan and scan.text == "LOYAL:7700123456" and scan.layout_repaired
    token = type_keys(w, clock, "ЛЬ1Жфи1ч2нз", gap_ms=8)[-1]
    assert token.text == "KM1:ab1x2yp" and token.raw == "ЛЬ1Жфи1ч2нз"


def test_terminator_characters_count_like_key_names():
    w, clock = WedgeClassifier(), FakeClock()
    type_keys(w, clock, CODE, gap_ms=2, end=None)
    d = w.feed("ctrl+m", "\r", clock.tick(2))  # a terminal that names Enter differently
    assert d.is_scan and d.terminator == "enter"


def test_what_is_not_a_scan():
    w, clock = WedgeClassifier(min_length=8, max_gap_s=0.040), FakeClock()
    assert not type_keys(w, clock, "12345", gap_ms=3)[-1].is_scan  # too short
    decisions = type_keys(w, clock, CODE, gap_ms=3, end=None)
    assert not w.feed("enter", None, clock.tick(300)).is_scan  # a human Enter later
    assert all(d.kind == "key" for d in decisions)
    type_keys(w, clock, CODE[:6], gap_ms=3, end=None)
    w.feed("backspace", None, clock.tick(3))  # an editing key breaks the burst
    assert not type_keys(w, clock, CODE[6:], gap_ms=3)[-1].is_scan
    assert w.scans == 0


def test_typing_then_a_scan_counts_only_the_burst():
    w, clock = WedgeClassifier(), FakeClock()
    type_keys(w, clock, "12", gap_ms=200, end=None)  # the cashier starts typing
    clock.tick(400)
    decisions = type_keys(w, clock, CODE, gap_ms=4)
    assert decisions[0].burst_start
    assert decisions[-1].is_scan and decisions[-1].text == CODE and decisions[-1].erase == 13


def test_bubbled_duplicates_are_not_counted_twice():
    w, clock = WedgeClassifier(), FakeClock()

    class Key:  # stands in for textual.events.Key: the same object comes back up
        def __init__(self, key: str, character: str | None, time: float) -> None:
            self.key, self.character, self.time = key, character, time

    events = [Key(ch, ch, clock.tick(4)) for ch in CODE] + [Key("enter", "\r", clock.tick(4))]
    kinds = []
    for ev in events:
        kinds.append(w.feed(ev.key, ev.character, ev.time, event_id=ev).kind)
        kinds.append(w.feed(ev.key, ev.character, ev.time, event_id=ev).kind)  # bubbled
    assert kinds.count("scan") == 1 and kinds.count("duplicate") == len(events)
    assert w.scans == 1
    # without an event object, the same key at the same instant is the duplicate
    w2 = WedgeClassifier()
    t = clock.tick(500)
    assert w2.feed("7", "7", t).kind == "key"
    assert w2.feed("7", "7", t).kind == "duplicate"
    assert w2.feed("7", "7", clock.tick(1)).kind == "key"  # a real second press


def test_classifier_rejects_nonsense_settings_and_resets():
    with pytest.raises(ValueError):
        WedgeClassifier(min_length=0)
    w, clock = WedgeClassifier(), FakeClock()
    type_keys(w, clock, CODE, gap_ms=3, end=None)
    w.reset()  # e.g. a modal screen opened mid-burst
    assert not w.feed("enter", None, clock.tick(3)).is_scan
