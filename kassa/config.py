"""The till's configuration: one TOML file, typed, every field documented.

Both front ends of a till read it: ``kassa agent serve`` (the agent: POS API, sync,
printer, scanners) and ``kassa tui`` (the cashier app); ``kassa.wiring`` builds the till
from it the same way for both, and a flag given on the command line overrides its key
(``--store`` for both, ``--port`` for the agent, ``--printer``, ``--profile``,
``--scanner`` and ``--backoffice`` for the app). ``kassa doctor`` and ``kassa config check/show``
read it too. Sections only the agent uses: ``api`` (the POS API) and ``log``.

Where: ``--config PATH``, else ``$KASSA_CONFIG``, else ``kassa.toml`` in the platform's
config dir (platformdirs: ``~/.config/kassa`` on Linux, ``%LOCALAPPDATA%\\kassa`` on
Windows). A missing file means all defaults. Every key is checked: an unknown section or
key, or a value of the wrong type, is refused naming the file and the key
(``ConfigError``), so a typo never silently falls back to a default.

Secrets: the POS API token lives in its own file (``api.token_file``, mode 0600, created
on first start); an inline ``api.token`` is allowed but discouraged. ``redacted()`` masks
every secret for ``kassa config show`` and for logs.

``packaging/kassa.example.toml`` is this module's documentation in file form;
``tests/test_config.py`` checks the two agree.
"""

from __future__ import annotations

import logging
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from agent.errors import InputError
from agent.private import write_private
from drivers.profiles import presets, unknown_preset

APP = "kassa"

log = logging.getLogger("kassa.config")


class ConfigError(InputError):
    """The config file is unreadable or invalid; the message names the file and the key."""

    code = "config_error"
    title_ru = "Ошибка настройки"
    title_en = "Configuration error"


def default_config_path() -> Path:
    """``$KASSA_CONFIG``, else ``kassa.toml`` in the platform's per-user config dir."""
    if env := os.environ.get("KASSA_CONFIG"):
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False)) / "kassa.toml"


def _default_store() -> str:
    from kassa.paths import default_store_path

    return str(default_store_path())


@dataclass(frozen=True)
class StoreConfig:
    path: str = field(default_factory=_default_store)
    """The till store (SQLite) file. Default: ``$KASSA_STORE`` or the user data dir."""


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    """Address the POS API listens on. Loopback by default: the POS runs on this PC."""
    port: int = 8781
    """TCP port of the POS API."""
    allow_remote: bool = False
    """Must be true to listen on a non-loopback address (a POS on another machine);
    the token is then the only protection: firewall the port."""
    token_file: str = ""
    """File holding the API token (one line). Default: ``api-token`` beside the config
    file. Created with mode 0600 on first start when missing."""
    token: str = ""
    """The token inline (discouraged: prefer ``token_file``). Never logged or shown."""
    max_body_bytes: int = 65_536
    """Largest request body accepted, bytes; bigger ones get 413."""
    rate_per_s: float = 200.0
    """Sustained requests per second accepted; beyond the burst, requests get 429."""
    rate_burst: int = 400
    """Requests accepted at once above the sustained rate."""
    hold_ttl_s: int = 900
    """Default lifetime of a points hold, seconds (a POS may ask for 10 s .. 24 h)."""
    metrics: bool = False
    """Serve Prometheus metrics at ``/metrics`` (no token; counts and queue depths only)."""


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = True
    """Run the sync loop (push journal, pull changes) when the till is enrolled."""
    url: str = ""
    """Back office URL; default: the one the till was enrolled with."""
    interval_s: float = 5.0
    """Seconds between sync rounds when there is nothing to send."""
    timeout_s: float = 10.0
    """HTTP timeout for one back office call, seconds."""


@dataclass(frozen=True)
class PrinterConfig:
    url: str = ""
    """Receipt printer, e.g. ``tcp://10.0.0.5:9100``, ``serial:///dev/ttyUSB0``,
    ``file:///dev/usb/lp0`` (an existing device file or FIFO, never created),
    ``usb://0x04b8:0x0202``, ``spooler://NAME``, or ``capture:///path`` (no printer: slips
    appended to a file). Empty: no print worker; the POS fetches slip text from the API and
    prints it itself. The schemes: ``drivers.transport``."""
    profile: str = "generic-58"
    """Printer profile: a preset name (``kassa printer profiles``) or a profile file."""
    calibrated: bool = False
    """Set true once ``kassa printer calibrate`` showed the profile's code page prints
    Russian correctly on this printer; ``kassa doctor`` warns until then."""


@dataclass(frozen=True)
class ScannerConfig:
    ports: list[str] = field(default_factory=list)
    """Serial scanner ports (``/dev/ttyACM0``, ``COM3``); empty: no serial scanner."""
    baudrate: int = 9600
    """Serial speed of the scanners, baud."""


@dataclass(frozen=True)
class LogConfig:
    dir: str = ""
    """Directory of ``kassa-agent.log``; default: the platform's user log dir."""
    level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    max_bytes: int = 5_000_000
    """Rotate the log file at this size, bytes."""
    backups: int = 5
    """Rotated files kept."""


@dataclass(frozen=True)
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: str = ""
    """Where this config came from (a path, or "defaults")."""

    def token_path(self) -> Path:
        if self.api.token_file:
            return Path(self.api.token_file)
        base = Path(self.source).parent if self.source not in ("", "defaults") else None
        return ((base or default_config_path().parent) / "api-token").absolute()

    def log_dir(self) -> Path:
        if self.log.dir:
            return Path(self.log.dir)
        from platformdirs import user_log_dir

        return Path(user_log_dir(APP, appauthor=False))


SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "api": ApiConfig,
    "sync": SyncConfig,
    "printer": PrinterConfig,
    "scanner": ScannerConfig,
    "log": LogConfig,
}
SECRET_KEYS = frozenset({("api", "token")})
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _check_value(src: str, where: str, hint: Any, value: Any) -> Any:
    def bad(expected_en: str, expected_ru: str) -> ConfigError:
        return ConfigError(
            f"{src}: {where}: expected {expected_en}, got {type(value).__name__} {value!r}",
            f"{src}: {where}: ожидается {expected_ru}",
            file=src,
            key=where,
        )

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false", "true или false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number", "целое число")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number", "число")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise bad("text", "текст (строка в кавычках)")
    elif hint == list[str] and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise bad("a list of text", "список строк")
    return value


def _validate(cfg: Config, src: str, problems: list[ConfigError]) -> None:
    """Append a ``ConfigError`` to ``problems`` for every out-of-range value."""

    def bad(key: str, en: str, ru: str) -> None:
        problems.append(
            ConfigError(f"{src}: {key}: {en}", f"{src}: {key}: {ru}", file=src, key=key)
        )

    if not 1 <= cfg.api.port <= 65535:
        bad("api.port", "must be 1-65535", "порт от 1 до 65535")
    if not 1024 <= cfg.api.max_body_bytes <= 10_000_000:
        bad("api.max_body_bytes", "must be 1024-10000000", "от 1024 до 10000000 байт")
    if cfg.api.rate_per_s <= 0 or cfg.api.rate_burst < 1:
        bad("api.rate_per_s", "rate and burst must be positive", "должно быть больше 0")
    if not 10 <= cfg.api.hold_ttl_s <= 86_400:
        bad("api.hold_ttl_s", "must be 10-86400 seconds", "от 10 до 86400 секунд")
    if cfg.api.token and len(cfg.api.token) < 16:
        bad("api.token", "must be at least 16 characters", "не короче 16 символов")
    if not _is_loopback(cfg.api.host) and not cfg.api.allow_remote:
        bad(
            "api.host",
            f"{cfg.api.host} is not a loopback address; set api.allow_remote = true to "
            "accept a POS on another machine",
            "адрес не локальный; для доступа по сети задайте api.allow_remote = true",
        )
    if cfg.sync.interval_s <= 0 or cfg.sync.timeout_s <= 0:
        bad("sync.interval_s", "intervals must be positive", "должно быть больше 0")
    if cfg.log.level.upper() not in LEVELS:
        bad(
            "log.level",
            f"must be one of {', '.join(LEVELS)}",
            f"неверный уровень (допустимы {', '.join(LEVELS)})",
        )
    if cfg.log.max_bytes < 10_000 or cfg.log.backups < 1:
        bad("log.max_bytes", "at least 10000 bytes and 1 backup", "слишком мало")
    if not 1200 <= cfg.scanner.baudrate <= 921_600:
        bad("scanner.baudrate", "must be 1200-921600", "от 1200 до 921600")
    if unknown_preset(cfg.printer.profile) is not None:
        known = ", ".join(presets())
        bad(
            "printer.profile",
            f"no printer profile named {cfg.printer.profile!r} (presets: {known}; or a path "
            "to a .toml profile file)",
            f"нет профиля принтера «{cfg.printer.profile}» (есть: {known}; или путь к файлу "
            "профиля .toml)",
        )


def _raise_all(problems: list[ConfigError], src: str) -> None:
    """One ``ConfigError`` for every problem found: the first one's key in ``details``
    (``key``), all of them in ``details["problems"]``, one per line in the messages."""
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0]
    first = problems[0]
    raise ConfigError(
        f"{len(problems)} problems:\n" + "\n".join(p.message_en for p in problems),
        f"ошибок: {len(problems)}:\n" + "\n".join(p.message_ru for p in problems),
        file=src,
        key=first.details.get("key"),
        problems=[
            {"key": p.details.get("key"), "message_en": p.message_en, "message_ru": p.message_ru}
            for p in problems
        ],
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(data: dict[str, Any], src: str) -> Config:
    """Build a ``Config`` from parsed TOML, rejecting unknown keys and wrong types.

    Every problem of the file is reported at once (one ``ConfigError`` listing them all),
    so a fix-and-retry loop does not reveal them one by one."""
    problems: list[ConfigError] = []
    sections: dict[str, Any] = {}
    for name, raw in data.items():
        cls = SECTIONS.get(name)
        if cls is None:
            problems.append(
                ConfigError(
                    f"{src}: unknown section [{name}] (known: {', '.join(SECTIONS)})",
                    f"{src}: неизвестный раздел [{name}] (есть: {', '.join(SECTIONS)})",
                    file=src,
                    key=name,
                )
            )
            continue
        if not isinstance(raw, dict):
            problems.append(
                ConfigError(
                    f"{src}: {name} must be a [section]",
                    f"{src}: {name} — должен быть разделом [{name}]",
                    file=src,
                    key=name,
                )
            )
            continue
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in raw.items():
            if key not in known:
                problems.append(
                    ConfigError(
                        f"{src}: unknown key {name}.{key} (known: {', '.join(sorted(known))})",
                        f"{src}: неизвестный параметр {name}.{key} "
                        f"(есть: {', '.join(sorted(known))})",
                        file=src,
                        key=f"{name}.{key}",
                    )
                )
                continue
            try:
                values[key] = _check_value(src, f"{name}.{key}", hints[key], value)
            except ConfigError as e:
                problems.append(e)
        sections[name] = cls(**values)
    cfg = Config(**sections, source=src)
    _validate(cfg, src, problems)
    _raise_all(problems, src)
    return cfg


def load_config(path: Path | None = None) -> Config:
    """Read and check the config; a missing default file means defaults, a missing file
    named explicitly is an error."""
    explicit = path is not None or "KASSA_CONFIG" in os.environ
    path = path or default_config_path()
    if not path.exists():
        if explicit:
            raise ConfigError(
                f"{path}: config file not found",
                f"{path}: файл настроек не найден",
                file=str(path),
            )
        cfg = Config(source="defaults")
        problems: list[ConfigError] = []
        _validate(cfg, "defaults", problems)
        _raise_all(problems, "defaults")
        return cfg
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot read: {e}", f"{path}: не удаётся прочитать: {e}", file=str(path)
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: {e}", f"{path}: ошибка TOML: {e}", file=str(path)
        ) from None
    return parse_config(data, str(path))


def redacted(cfg: Config) -> dict[str, Any]:
    """The config as plain data with every secret masked (for ``config show`` and logs)."""
    out: dict[str, Any] = {"source": cfg.source}
    for name in SECTIONS:
        section = getattr(cfg, name)
        values = {}
        for f in fields(section):
            value = getattr(section, f.name)
            if (name, f.name) in SECRET_KEYS and value:
                value = "********"
            elif isinstance(value, str):
                value = mask_url_password(value)
            elif isinstance(value, list):
                value = [mask_url_password(v) if isinstance(v, str) else v for v in value]
            values[f.name] = value
        out[name] = values
    out["api"]["token_file"] = str(cfg.token_path())
    return out


def mask_url_password(text: str) -> str:
    """``http://user:pass@bo:8780`` -> ``http://user:***@bo:8780``; other text unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password or "@" not in parts.netloc:
        return text
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def field_docs() -> dict[str, str]:
    """``section.key`` -> its docstring, read from this module's source (for the example
    config test and ``kassa config show --docs``)."""
    import ast
    import inspect
    import sys

    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    docs: dict[str, str] = {}
    by_class = {cls.__name__: name for name, cls in SECTIONS.items()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in by_class:
            body = node.body
            for stmt, nxt in zip(body, [*body[1:], None], strict=True):
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant)
                ):
                    docs[f"{by_class[node.name]}.{stmt.target.id}"] = str(nxt.value.value)
    return docs


def ensure_token(cfg: Config) -> str:
    """The API token: inline, else read from ``token_file``, else a new random one
    written there atomically with mode 0600 (``agent.private.write_private``: a power cut
    leaves no file or the whole token, never an empty one). A token file readable by
    others is refused on POSIX: anyone on the till could then spend members' points.
    An empty (or blank) token file is what an older agent left when it was killed while
    creating it (a person's token is at least 16 characters, so nobody uses an empty
    one): it is replaced by a new token, with a warning in the log, instead of stopping
    every start with exit 2 (which systemd does not restart)."""
    if cfg.api.token:
        return cfg.api.token
    path = cfg.token_path()
    if path.exists():
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise ConfigError(
                f"{path}: token file is readable by others; run chmod 600 {path}",
                f"{path}: файл токена доступен другим пользователям; chmod 600 {path}",
                file=str(path),
                key="api.token_file",
            )
        token = path.read_text(encoding="utf-8", errors="replace").strip()
        if token:
            if len(token) < 16:
                raise ConfigError(
                    f"{path}: token must be at least 16 characters",
                    f"{path}: токен короче 16 символов",
                    file=str(path),
                    key="api.token_file",
                )
            return token
        log.warning(
            "token file %s is empty (a first start was interrupted while writing it): "
            "a new API token is written there",
            path,
        )
        return _new_token_file(path, replace_empty=True)
    try:
        return _new_token_file(path, replace_empty=False)
    except FileExistsError:  # another process's first start wrote it just now
        return ensure_token(cfg)


def _new_token_file(path: Path, *, replace_empty: bool) -> str:
    """A new random API token written to ``path`` (atomically, 0600); unless
    ``replace_empty``, only if there is no file (``FileExistsError`` else)."""
    token = secrets.token_urlsafe(32)
    try:
        write_private(path, (token + "\n").encode("ascii"), exclusive=not replace_empty)
    except FileExistsError:
        raise
    except OSError as e:
        # A service user cannot write its config dir (/etc/kassa): say where the token
        # belongs instead of a traceback and a restart loop.
        raise ConfigError(
            f"{path}: cannot create the token file: {e.strerror or e}; set api.token_file "
            "to a file in a directory this user can write (the service's state directory, "
            "e.g. /var/lib/kassa/api-token)",
            f"{path}: не удалось создать файл токена: {e.strerror or e}; укажите в "
            "api.token_file файл в папке, доступной для записи этому пользователю "
            "(например /var/lib/kassa/api-token)",
            file=str(path),
            key="api.token_file",
        ) from None
    return token


def with_store(cfg: Config, path: str | None) -> Config:
    """``cfg`` with the store path overridden (``--store`` on the command line)."""
    return cfg if not path else replace(cfg, store=StoreConfig(path))
