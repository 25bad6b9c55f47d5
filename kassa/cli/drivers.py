"""`kassa printer calibrate|test|profiles` and `kassa member qr`: the installer's commands.

Kept apart from ``kassa.cli`` so the till commands do not import the printer stack; the
drivers themselves are imported inside each command. No printer transport exists yet:
jobs are written to a file (``--out``), which can be sent with ``cat job.bin >
/dev/usb/lp0`` or ``nc printer 9100 < job.bin`` until the transports land.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.errors import InputError
from agent.private import write_private


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _profile(args: argparse.Namespace) -> Any:
    from drivers.profiles import ProfileError, load_profile

    try:
        return load_profile(args.profile)
    except ProfileError as e:
        raise InputError(str(e), f"профиль принтера: {e}", field="profile") from None


def _write(path: str, data: bytes) -> None:
    try:
        write_private(Path(path), data)  # atomic, 0600 (a slip may show a member's card)
    except OSError as e:
        raise InputError(
            f"cannot write {path}: {e.strerror}",
            f"не удалось записать {path}: {e.strerror}",
            field="out",
        ) from None


def cmd_printer_calibrate(args: argparse.Namespace) -> int:
    from drivers.calibrate import calibration_job

    profile = _profile(args)
    encodings = ("cp866", "cp1251") if args.encoding == "both" else (args.encoding,)
    slots = tuple(args.slots) if args.slots else None
    data = calibration_job(profile, encodings=encodings, slots=slots)
    _write(args.out, data)
    tried = ", ".join(str(s) for s in (slots or profile.calibrate_slots))
    sys.stderr.write(
        f"kassa: calibration page for {profile.name} ({len(data)} bytes) written to "
        f"{args.out}; slots tried: {tried}\n"
    )
    return 0


def cmd_printer_test(args: argparse.Namespace) -> int:
    from drivers.calibrate import sample_slip
    from drivers.render import render

    profile = _profile(args)
    data = render(sample_slip(), profile)
    if args.out:
        _write(args.out, data)
        sys.stderr.write(
            f"kassa: test slip for {profile.name} ({len(data)} bytes) written to {args.out}\n"
        )
        return 0
    if args.printer:
        _send(args.printer, data)
        sys.stderr.write(f"kassa: test slip for {profile.name} sent to {args.printer}\n")
        return 0
    sys.stderr.write(
        "kassa: no printer given; use --printer URL (tcp://host:9100, serial:///dev/ttyUSB0,"
        " file:///dev/usb/lp0, usb://0x04b8:0x0202) or --out FILE\n"
        "kassa: принтер не указан: --printer АДРЕС или --out ФАЙЛ\n"
    )
    return 1


def _send(url: str, data: bytes) -> None:
    """Open the printer the URL names, write the job, close it (faults raise PrinterError)."""
    from drivers.transport import transport_from_url

    transport = transport_from_url(url)
    transport.open()
    try:
        transport.write(data)
    finally:
        transport.close()


def cmd_printer_profiles(args: argparse.Namespace) -> int:
    from drivers.profiles import load_profile, presets

    for name in presets():
        p = load_profile(name)
        qr = "native/image" if p.qr_native else "image"
        sys.stdout.write(
            f"{name:14} {p.columns} col, {p.dots} dots, {p.encoding} at ESC t {p.slot}, "
            f"QR {qr}, cut {p.cut}  - {p.title}\n"
        )
    return 0


def cmd_member_qr(args: argparse.Namespace) -> int:
    from agent.identify import check_member_code
    from drivers import qr

    code = check_member_code(args.code)
    m = qr.matrix(code, "M")
    if args.png:
        _write(args.png, qr.png(m, scale=args.scale))
    elif args.svg:
        _write(args.svg, qr.svg(m).encode("utf-8"))
    else:
        sys.stdout.write(qr.text(m, dark_background=not args.light))
        sys.stdout.write(f"{code}\n")
    return 0


def add_commands(sub: Any, store_default: str) -> None:
    """Register `printer ...` and `member ...` on the top-level subparsers.

    ``store_default`` is accepted for the common signature of ``add_commands``; the
    installer commands do not open the till store.
    """
    del store_default
    pp = sub.add_parser("printer", help="receipt printer: calibration page, test slip")
    psub = pp.add_subparsers(dest="printer_command", required=True)
    profile_help = "printer profile: a preset name (see `kassa printer profiles`) or a .toml file"

    p = psub.add_parser(
        "calibrate",
        help="print a Russian pangram under each candidate code page slot",
        description="Write the calibration page: pick the slot whose line reads correctly.",
    )
    p.add_argument("--profile", help=profile_help)
    p.add_argument("--out", required=True, help="file to write the job's bytes to")
    p.add_argument(
        "--encoding",
        choices=("cp866", "cp1251", "both"),
        default="both",
        help="code pages to print test lines in",
    )
    p.add_argument("--slots", type=int, nargs="+", help="slots to try (default: the profile's)")
    p.set_defaults(func=cmd_printer_calibrate)

    p = psub.add_parser("test", help="a full sample slip: Russian text, every block, a QR")
    p.add_argument("--profile", help=profile_help)
    p.add_argument("--out", help="file to write the job's bytes to")
    p.add_argument("--printer", help="printer URL to print on (tcp://, serial://, file://, usb://)")
    p.set_defaults(func=cmd_printer_test)

    p = psub.add_parser("profiles", help="list the shipped printer presets")
    p.set_defaults(func=cmd_printer_profiles)

    mp = sub.add_parser("member", help="member cards")
    msub = mp.add_subparsers(dest="member_command", required=True)
    p = msub.add_parser("qr", help="a member code as a QR: PNG or SVG for cards, or text")
    p.add_argument("code", help="13-digit member code (spaces and dashes ignored)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--png", metavar="FILE", help="write a PNG (1-bit, --scale px per module)")
    out.add_argument("--svg", metavar="FILE", help="write an SVG (0.5 mm per module)")
    out.add_argument("--text", action="store_true", help="draw it in the terminal")
    p.add_argument("--scale", type=_positive, default=10, help="PNG pixels per module (default 10)")
    p.add_argument("--light", action="store_true", help="--text for a light-background terminal")
    p.set_defaults(func=cmd_member_qr)
