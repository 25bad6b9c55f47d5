"""`kassa scanner listen`: read a serial scanner and print one JSON line per scan.

For installers: check that a scanner is wired, configured (suffix, AIM prefix) and that its
codes are recognised, before starting the till. Each line on stdout is a JSON object::

    {"text": "KM1:...", "symbology": "]Q1", "complete": true, "kind": "token",
     "port": "/dev/ttyACM0", "at": "2026-06-15T09:00:00.123456+00:00"}

``kind`` is what the till would make of the text: ``code`` (valid member code), ``token``
(app QR, not verified here), ``phone``, or ``unrecognised`` with ``error`` (the reason).
``complete`` is false when the frame ended by timeout (the scanner sends no suffix).
Connection changes go to stderr. Ctrl+C stops.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from datetime import UTC, datetime
from typing import Any


def add_commands(sub: Any, store_default: str) -> None:
    """Register ``kassa scanner ...`` on the top-level subparsers.

    ``store_default`` is accepted for symmetry with the other command groups; listening
    needs no till store (so it works while the till owns the store).
    """
    del store_default
    sp = sub.add_parser("scanner", help="serial barcode/QR scanners")
    ssub = sp.add_subparsers(dest="scanner_command", required=True)
    p = ssub.add_parser(
        "listen",
        help="print one JSON line per scan from a serial scanner",
        description="Print one JSON line per scan from a serial scanner (Ctrl+C stops).",
    )
    p.add_argument(
        "--port",
        required=True,
        help="serial port or pyserial URL: /dev/ttyACM0, COM4, loop://",
    )
    p.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    p.add_argument("--count", type=int, help="stop after this many scans")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.add_argument(
        "--frame-timeout",
        type=float,
        default=0.2,
        help="seconds of silence that end a scan sent without a suffix (default 0.2)",
    )
    p.set_defaults(func=cmd_scanner_listen)


def _classify(text: str) -> dict[str, Any]:
    """What ``Agent.identify`` would route the text to, without a store or a key."""
    from agent.errors import AgentError, TokenError
    from agent.identify import parse_identifier

    try:
        ident = parse_identifier(text, None, datetime.now(UTC))
    except TokenError as e:
        if e.details.get("reason") == "no_verifier":
            return {"kind": "token"}
        return {"kind": "unrecognised", "error": e.message_en}
    except AgentError as e:
        return {"kind": "unrecognised", "error": e.message_en}
    return {"kind": ident.kind}


def cmd_scanner_listen(args: argparse.Namespace) -> int:
    from drivers.scanner import Frame, FrameAssembler, ScannerStatus, SerialScanner

    frames: queue.Queue[Frame] = queue.Queue()

    def status(s: ScannerStatus) -> None:
        if s.connected:
            sys.stderr.write(f"kassa: scanner connected: {s.port}\n")
        else:
            sys.stderr.write(f"kassa: {s.message_ru} [{s.error}]; retrying\n")
        sys.stderr.flush()

    scanner = SerialScanner(
        args.port,
        frames.put,
        baudrate=args.baud,
        on_status=status,
        assembler=FrameAssembler(timeout_s=args.frame_timeout),
    )
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    seen = 0
    scanner.start()
    try:
        while args.count is None or seen < args.count:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                frame = frames.get(timeout=min(wait, 0.5))
            except queue.Empty:
                continue
            seen += 1
            line = {
                "text": frame.text,
                "symbology": frame.symbology,
                "complete": frame.complete,
                **_classify(frame.text),
                "port": args.port,
                "at": datetime.now(UTC).isoformat(),
            }
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        scanner.stop()
    return 0
