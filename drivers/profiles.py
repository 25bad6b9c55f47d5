"""Printer profiles of our own: what one printer model needs to print a slip right.

Why not python-escpos's capability database: the code page slot for CP866 differs by
model (Epson 17, Rongta 7, Star 10, some POS-58 clones 59, and slot 17 is Greek on one
Rongta), its profile subclasses lose their features, and it sends native QR to printers
without it (notes/drivers.md). A profile here is a small TOML file the installer can read
and fix on site; ``kassa printer calibrate`` prints the page that tells which slot is
right. Presets ship in ``drivers/profiles/*.toml``; a site profile is any other file.

Schema (every key is checked; unknown keys are rejected so a typo cannot pass silently)::

    title = "Epson TM-T20III, 80 mm"    # for people
    columns = 48                         # Font A characters per line (32, 42, 48)
    dots = 576                           # printable width in dots (8 dots = 1 mm at 203 dpi)

    [codepage]
    encoding = "cp866"                   # what text is encoded in: cp866 | cp1251
    cp866 = 17                           # ESC t slot of CP866 on this model
    cp1251 = 46                          # ESC t slot of CP1251 (optional)
    calibrate = [17, 46, 7, 59]          # slots the calibration page tries (optional)

    [qr]
    mode = "image"                       # image (GS v 0 raster) | native (GS ( k)
    native = true                        # the model implements GS ( k
    module_dots = 6                      # dots per QR module (1-16)

    [cut]
    mode = "partial"                     # full | partial | none (tear bar only)
    feed_lines = 3                       # lines fed before cutting or tearing

    [drawer]
    present = true                       # a cash drawer is wired to the printer
    pin = 2                              # 2 or 5
    on_ms = 100                          # pulse length
    off_ms = 200

    [status]
    dle_eot = true                       # answers DLE EOT real-time status requests
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.text import ENCODINGS

PRESETS_DIR = Path(__file__).with_name("profiles")
"""Where the shipped presets live (``drivers/profiles/<name>.toml``)."""

DEFAULT_PRESET = "generic-58"

FONT_A_DOTS = 12
"""Width of one Font A character in dots: ``columns * 12`` must fit in ``dots``."""

KNOWN_SLOTS = (17, 7, 59, 10, 6, 11, 12, 37, 46, 51, 34, 73)
"""CP866/CP1251 slots seen across vendors; the calibration page tries these by default."""

QR_MODES = ("image", "native")
CUT_MODES = ("full", "partial", "none")


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid; the message names file and key."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One printer model's settings (see the module docstring for units and meaning)."""

    name: str
    title: str
    columns: int
    dots: int
    encoding: str
    slots: Mapping[str, int]
    calibrate_slots: tuple[int, ...] = KNOWN_SLOTS
    qr_mode: str = "image"
    qr_native: bool = False
    qr_module_dots: int = 6
    cut: str = "none"
    feed_lines: int = 3
    drawer: bool = False
    drawer_pin: int = 2
    drawer_on_ms: int = 100
    drawer_off_ms: int = 200
    status: bool = False
    source: str = field(default="", compare=False)

    @property
    def slot(self) -> int:
        """The ``ESC t`` slot every job selects: the one holding :attr:`encoding`."""
        return self.slots[self.encoding]


_SCHEMA: dict[str, dict[str, type]] = {
    "": {"title": str, "columns": int, "dots": int},
    "codepage": {"encoding": str, "cp866": int, "cp1251": int, "calibrate": list},
    "qr": {"mode": str, "native": bool, "module_dots": int},
    "cut": {"mode": str, "feed_lines": int},
    "drawer": {"present": bool, "pin": int, "on_ms": int, "off_ms": int},
    "status": {"dle_eot": bool},
}
_REQUIRED = {"": ("title", "columns", "dots"), "codepage": ("encoding",)}


class _Reader:
    """Typed access to the parsed TOML that raises :class:`ProfileError` naming file and key."""

    def __init__(self, source: str, data: dict[str, Any]) -> None:
        self.source = source
        self.data = data

    def fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.source}: key '{key}': {problem}")

    def check_keys(self) -> None:
        for key, value in self.data.items():
            if key in _SCHEMA and key:
                if not isinstance(value, dict):
                    raise self.fail(key, "must be a table ([" + key + "])")
                for sub in value:
                    if sub not in _SCHEMA[key]:
                        raise self.fail(f"{key}.{sub}", f"unknown key in [{key}]")
            elif key not in _SCHEMA[""]:
                raise self.fail(key, "unknown key")
        for section, keys in _REQUIRED.items():
            table = self.data if not section else self.data.get(section, {})
            for key in keys:
                if key not in table:
                    raise self.fail(f"{section}.{key}" if section else key, "is required")

    def get(self, section: str, key: str, default: Any = None) -> Any:
        table = self.data if not section else self.data.get(section, {})
        name = f"{section}.{key}" if section else key
        if key not in table:
            return default
        value = table[key]
        want = _SCHEMA[section][key]
        # bool is an int in Python; a profile saying `columns = true` is still wrong.
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise self.fail(name, f"must be {want.__name__}, got {value!r}")
        return value

    def int_in(self, section: str, key: str, lo: int, hi: int, default: int | None = None) -> int:
        value = self.get(section, key, default)
        name = f"{section}.{key}" if section else key
        if value is None:
            raise self.fail(name, "is required")
        if not lo <= value <= hi:
            raise self.fail(name, f"must be in {lo}..{hi}, got {value}")
        return int(value)

    def choice(self, section: str, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(section, key, default)
        if value not in options:
            raise self.fail(f"{section}.{key}", f"must be one of {', '.join(options)}")
        return str(value)


def parse_profile(text: str, *, name: str, source: str) -> Profile:
    """Validate TOML ``text`` into a :class:`Profile`; ``source`` names it in errors."""
    import tomllib  # noqa: PLC0415 (~2 ms of regex compiling, paid when a profile is read)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {e}") from None
    r = _Reader(source, data)
    r.check_keys()
    columns = r.int_in("", "columns", 16, 96)
    dots = r.int_in("", "dots", 128, 1024)
    if dots % 8:
        raise r.fail("dots", f"must be a multiple of 8 (whole raster bytes), got {dots}")
    if columns * FONT_A_DOTS > dots:
        raise r.fail(
            "columns", f"{columns} Font A columns need {columns * FONT_A_DOTS} dots, dots = {dots}"
        )
    encoding = r.choice("codepage", "encoding", ENCODINGS, "cp866")
    slots = {
        enc: r.int_in("codepage", enc, 1, 255)  # slot 0 is PC437 on every model: no Cyrillic
        for enc in ENCODINGS
        if r.get("codepage", enc) is not None
    }
    if encoding not in slots:
        raise r.fail(
            f"codepage.{encoding}", f"the slot of {encoding} (codepage.encoding) is needed"
        )
    calibrate = r.get("codepage", "calibrate", list(KNOWN_SLOTS))
    if not calibrate or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 255 for s in calibrate
    ):
        raise r.fail("codepage.calibrate", "must be a non-empty list of slots 0..255")
    qr_native = bool(r.get("qr", "native", False))
    qr_mode = r.choice("qr", "mode", QR_MODES, "image")
    if qr_mode == "native" and not qr_native:
        raise r.fail("qr.mode", "native QR needs qr.native = true (the model lacks GS ( k)")
    drawer = bool(r.get("drawer", "present", False))
    pin = r.int_in("drawer", "pin", 2, 5, 2)
    if pin not in {2, 5}:
        raise r.fail("drawer.pin", f"must be 2 or 5, got {pin}")
    on_ms = r.int_in("drawer", "on_ms", 2, 510, 100)
    off_ms = r.int_in("drawer", "off_ms", 2, 510, 200)
    return Profile(
        name=name,
        title=r.get("", "title"),
        columns=columns,
        dots=dots,
        encoding=encoding,
        slots=slots,
        calibrate_slots=tuple(dict.fromkeys([slots[encoding], *calibrate])),
        qr_mode=qr_mode,
        qr_native=qr_native,
        qr_module_dots=r.int_in("qr", "module_dots", 1, 16, 6),
        cut=r.choice("cut", "mode", CUT_MODES, "none"),
        feed_lines=r.int_in("cut", "feed_lines", 0, 20, 3),
        drawer=drawer,
        drawer_pin=pin,
        drawer_on_ms=on_ms,
        drawer_off_ms=off_ms,
        status=bool(r.get("status", "dle_eot", False)),
        source=source,
    )


def presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_name(ref: str) -> str | None:
    """The preset ``ref`` names, or None when ``ref`` is a profile file's path (it ends
    in ``.toml`` or has a directory separator)."""
    return None if ref.endswith(".toml") or "/" in ref or "\\" in ref else ref


def unknown_preset(ref: str) -> str | None:
    """Why the printer profile ``ref`` cannot load, when it names no shipped preset (the
    message lists the presets); None for a preset or a file path (a file is read, and
    its faults told, when it is loaded)."""
    name = preset_name(ref)
    if name is None or (PRESETS_DIR / f"{name}.toml").is_file():
        return None
    return (
        f"no printer profile named {ref!r}; presets: {', '.join(presets())} "
        "(or give a path to a .toml file)"
    )


def load_profile(name_or_path: str | Path | None = None) -> Profile:
    """A preset by name (``"epson-tm-80"``) or a profile file by path (``site.toml``).

    ``None`` gives :data:`DEFAULT_PRESET`. Raises :class:`ProfileError` with the file and
    key at fault, or the list of presets for an unknown name.
    """
    ref = str(name_or_path or DEFAULT_PRESET)
    if (unknown := unknown_preset(ref)) is not None:
        raise ProfileError(unknown)
    name = preset_name(ref)
    path = Path(ref) if name is None else PRESETS_DIR / f"{name}.toml"
    name = name or path.stem
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: cannot read profile: {e}") from None
    return parse_profile(text, name=name, source=str(path))
