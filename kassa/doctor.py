"""`kassa doctor`: checks an installation and explains each finding in plain words (ru/en).

Each check returns ``Finding``s with a level: ``ok``, ``info`` (worth knowing, nothing to
do), ``warning`` (the till works, something is degraded: offline, not calibrated) or
``error`` (something a cashier will hit: the store cannot be written, the printer is
gone). The exit code is the worst level: 0 ok/info, 1 warning, 2 error.

The doctor never takes the store's ownership lock and opens the store read-only, so it
can run next to a live agent. Network and device probes carry short timeouts.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from kassa.config import Config, mask_url_password

LEVELS = ("ok", "info", "warning", "error")
DISK_ERROR_BYTES = 200_000_000
DISK_WARN_BYTES = 1_000_000_000
SKEW_WARN_S = 120.0
PROBE_TIMEOUT_S = 3.0
"""The back office health probe's time limit, seconds (connecting included)."""
BACKLOG_WARN = 1000


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: str
    message_ru: str
    message_en: str
    hint_ru: str = ""
    hint_en: str = ""

    def message(self, lang: str) -> str:
        return self.message_en if lang == "en" else self.message_ru

    def hint(self, lang: str) -> str:
        return self.hint_en if lang == "en" else self.hint_ru


def exit_code(findings: list[Finding]) -> int:
    worst = max((LEVELS.index(f.level) for f in findings), default=0)
    return {0: 0, 1: 0, 2: 1, 3: 2}[worst]


def render(findings: list[Finding], lang: str = "ru") -> str:
    marks = {"ok": "[ OK ]", "info": "[INFO]", "warning": "[WARN]", "error": "[FAIL]"}
    lines = []
    for f in findings:
        lines.append(f"{marks[f.level]} {f.check}: {f.message(lang)}")
        if f.hint(lang):
            lines.append(f"       -> {f.hint(lang)}")
    code = exit_code(findings)
    summary = {
        "ru": ("Всё в порядке", "Есть предупреждения", "Есть ошибки"),
        "en": ("All good", "Warnings found", "Errors found"),
    }[lang][code]
    lines.append(summary)
    return "\n".join(lines)


def _f(check: str, level: str, ru: str, en: str, hint_ru: str = "", hint_en: str = "") -> Finding:
    return Finding(check, level, ru, en, hint_ru, hint_en)


# ---------------------------------------------------------------------- store
def check_store(cfg: Config) -> tuple[list[Finding], dict[str, str]]:
    """Store file present, writable, healthy (quick_check), migrated; returns its meta."""
    path = Path(cfg.store.path)
    if not path.exists():
        return [
            _f(
                "store",
                "error",
                f"база кассы {path} не найдена",
                f"no till store at {path}",
                "выполните kassa enroll (или kassa init для демо)",
                "run kassa enroll (or kassa init for a demo)",
            )
        ], {}
    out: list[Finding] = []
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    if not writable:
        out.append(
            _f(
                "store",
                "error",
                f"нет права записи в {path} или его папку: продажи не сохранятся",
                f"{path} or its directory is not writable: sales cannot be saved",
                f"дайте пользователю службы право записи: chown kassa {path.parent}",
                f"give the service user write access: chown kassa {path.parent}",
            )
        )
    if os.name == "posix" and path.stat().st_mode & 0o077:
        out.append(
            _f(
                "store",
                "warning",
                f"база {path} доступна другим пользователям (в ней ключи кассы)",
                f"{path} is readable by other users (it holds the till's keys)",
                f"chmod 600 {path} (агент делает это сам при запуске)",
                f"chmod 600 {path} (the agent does it itself on start)",
            )
        )
    meta: dict[str, str] = {}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            check = str(conn.execute("PRAGMA quick_check").fetchone()[0])
            meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
            sync = {str(k): str(v) for k, v in conn.execute("SELECT name, value FROM sync_state")}
            quarantined = int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])
            oldest = conn.execute(
                "SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        from agent.store import disk_full

        if disk_full(path):  # SQLite cannot make its -shm index: nothing is damaged
            out.append(
                _f(
                    "store",
                    "error",
                    f"база кассы не открывается: диск заполнен ({e})",
                    f"the till store cannot be opened: the disk is full ({e})",
                    "освободите место на диске",
                    "free disk space",
                )
            )
            return out, {}
        out.append(
            _f(
                "store",
                "error",
                f"база кассы не читается: {e}",
                f"the till store cannot be read: {e}",
                "восстановите из копии: kassa store restore ФАЙЛ",
                "restore from a backup: kassa store restore FILE",
            )
        )
        return out, {}
    if check != "ok":
        out.append(
            _f(
                "store",
                "error",
                f"база кассы повреждена (quick_check: {check})",
                f"the till store is damaged (quick_check: {check})",
                "восстановите из копии: kassa store restore ФАЙЛ",
                "restore from a backup: kassa store restore FILE",
            )
        )
    elif writable:
        out.append(_f("store", "ok", f"база {path} исправна", f"store {path} is healthy"))
    meta.update({f"sync:{k}": v for k, v in sync.items()})
    waiting = int(meta.get("last_seq", "0")) - int(sync.get("acked_events", "0"))
    out.append(_queue_finding(waiting, oldest[0] if oldest else None, quarantined))
    return out, meta


def _queue_finding(waiting: int, oldest: str | None, quarantined: int) -> Finding:
    if quarantined:
        return _f(
            "queue",
            "warning",
            f"{quarantined} событий отклонены бэк-офисом (карантин); ожидают отправки: {waiting}",
            f"{quarantined} events refused by the back office (quarantine); waiting: {waiting}",
            "подробности: kassa sync status; сообщите в поддержку",
            "details: kassa sync status; tell support",
        )
    if waiting > BACKLOG_WARN:
        return _f(
            "queue",
            "warning",
            f"ожидают отправки {waiting} событий (самое старое {oldest})",
            f"{waiting} events waiting to be sent (oldest {oldest})",
            "проверьте связь с бэк-офисом",
            "check the connection to the back office",
        )
    return _f(
        "queue",
        "ok",
        f"ожидают отправки: {waiting}, карантин пуст",
        f"events waiting: {waiting}, quarantine empty",
    )


def check_lock(cfg: Config) -> Finding:
    """Whether an agent owns the store (its lock file is held)."""
    lock = Path(cfg.store.path + ".lock")
    if not lock.exists():
        return _f(
            "agent",
            "info",
            "агент не запущен (база свободна)",
            "no agent is running (the store is not locked)",
            "запустите службу: systemctl start kassa-agent",
            "start the service: systemctl start kassa-agent",
        )
    held = _lock_held(lock)
    pid = lock.read_text(encoding="utf-8", errors="replace").strip() or "?"
    if held:
        return _f("agent", "ok", f"агент работает (pid {pid})", f"the agent is running (pid {pid})")
    return _f(
        "agent",
        "info",
        "агент не запущен (база свободна)",
        "no agent is running (the store is not locked)",
        "запустите службу: systemctl start kassa-agent",
        "start the service: systemctl start kassa-agent",
    )


def _lock_held(lock: Path) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows tills
        import msvcrt

        from agent.store import windows_lock

        with open(lock, "a+", encoding="utf-8") as h:
            try:
                windows_lock(h, msvcrt, msvcrt.LK_NBLCK)
            except OSError:
                return True
            windows_lock(h, msvcrt, msvcrt.LK_UNLCK)
            return False
    import fcntl

    with open(lock, "a+", encoding="utf-8") as h:
        try:
            fcntl.flock(h.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(h.fileno(), fcntl.LOCK_UN)
        return False


# ---------------------------------------------------------------------- back office
def check_backoffice(
    cfg: Config, meta: dict[str, str], get: Callable[[str], Any] | None = None
) -> list[Finding]:
    """Enrollment, reachability of the back office and the clock skew against it."""
    url = cfg.sync.url or meta.get("backoffice_url", "")
    if not meta.get("sync_token") or not url:
        return [
            _f(
                "enrollment",
                "warning",
                "касса не подключена к бэк-офису: продажи копятся локально",
                "the till is not enrolled: sales stay on the till",
                "kassa enroll --url АДРЕС --code КОД",
                "kassa enroll --url URL --code CODE",
            )
        ]
    shown = mask_url_password(url)  # a password in sync.url is never printed
    out = [_f("enrollment", "ok", f"касса подключена к {shown}", f"enrolled with {shown}")]
    if get is None:
        from sync.client import backoffice_http

        def get(u: str) -> Any:
            with backoffice_http(url, timeout_s=PROBE_TIMEOUT_S) as http:
                return http.get(u)

    try:
        resp = get(url.rstrip("/") + "/v1/health")
        resp.raise_for_status()
    except Exception as e:
        out.append(
            _f(
                "backoffice",
                "warning",
                f"бэк-офис {shown} недоступен ({type(e).__name__}): касса работает без связи",
                f"back office {shown} unreachable ({type(e).__name__}): the till works offline",
                "проверьте сеть и адрес; продажи уйдут, когда связь появится",
                "check the network and the URL; sales are sent once it is back",
            )
        )
        return out
    out.append(_f("backoffice", "ok", f"бэк-офис {shown} отвечает", f"back office {shown} answers"))
    date = resp.headers.get("date")
    if date:
        skew = (datetime.now(UTC) - parsedate_to_datetime(date)).total_seconds()
        if abs(skew) > SKEW_WARN_S:
            out.append(
                _f(
                    "clock",
                    "warning",
                    f"часы кассы расходятся с бэк-офисом на {skew:+.0f} с",
                    f"the till clock is {skew:+.0f} s off the back office",
                    "включите синхронизацию времени (timedatectl set-ntp true)",
                    "enable time sync (timedatectl set-ntp true)",
                )
            )
        else:
            out.append(_f("clock", "ok", f"расхождение часов {skew:+.0f} с", f"skew {skew:+.0f} s"))
    return out


# ---------------------------------------------------------------------- printer
def check_printer(cfg: Config) -> list[Finding]:
    """Profile and code page, then the printer itself (opened, status asked if it can)."""
    from drivers.profiles import ProfileError, load_profile

    try:
        profile = load_profile(cfg.printer.profile)
    except ProfileError as e:
        return [
            _f(
                "codepage",
                "error",
                f"профиль принтера неверен: {e}",
                f"printer profile invalid: {e}",
                "исправьте профиль или выберите пресет: kassa printer profiles",
                "fix the profile or choose a preset: kassa printer profiles",
            )
        ]
    out = []
    if not cfg.printer.url:
        # No printer: nothing to calibrate (the POS prints the slip text itself), so no
        # code page warning; a broken profile file is still reported above.
        return [
            _f(
                "printer",
                "info",
                "принтер не настроен: POS печатает слип сам (GET /v1/slips/N)",
                "no printer configured: the POS prints the slip itself (GET /v1/slips/N)",
            )
        ]
    if cfg.printer.calibrated:
        out.append(
            _f(
                "codepage",
                "ok",
                f"кодовая страница {profile.encoding} (ESC t {profile.slot}) проверена",
                f"code page {profile.encoding} (ESC t {profile.slot}) calibrated",
            )
        )
    else:
        out.append(
            _f(
                "codepage",
                "warning",
                f"кодовая страница {profile.encoding} (ESC t {profile.slot}) не проверена на "
                "этом принтере: русский текст может печататься неверно",
                f"code page {profile.encoding} (ESC t {profile.slot}) not calibrated on this "
                "printer: Russian text may print garbled",
                "kassa printer calibrate, затем printer.calibrated = true",
                "run kassa printer calibrate, then set printer.calibrated = true",
            )
        )
    out.append(_probe_printer(cfg.printer.url, profile))
    return out


def _probe_printer(url: str, profile: Any) -> Finding:
    from agent.errors import AgentError
    from drivers.status import query_status
    from drivers.transport import transport_from_url

    try:
        transport = transport_from_url(url)
        transport.open()
        try:
            if profile.status and transport.can_read:
                report = query_status(transport, timeout_s=1.0)
                if not report.ok_to_print:
                    return _f(
                        "printer",
                        "error",
                        f"принтер {url}: {report.fault.message('ru')}",
                        f"printer {url}: {report.fault.message('en')}",
                    )
                return _f(
                    "printer",
                    "ok",
                    f"принтер {url} готов ({report.fault.message('ru')})",
                    f"printer {url} ready ({report.fault.message('en')})",
                )
        finally:
            transport.close()
    except AgentError as e:
        return _f(
            "printer",
            "error",
            f"принтер {url} недоступен: {e.message_ru}",
            f"printer {url} unreachable: {e.message_en}",
            "проверьте питание, кабель и адрес; Linux: группа lp, правила udev",
            "check power, cable and address; Linux: lp group, udev rules",
        )
    return _f(
        "printer", "ok", f"принтер {url} открывается", f"printer {url} opens (no status channel)"
    )


# ---------------------------------------------------------------------- scanners, disk, token
def check_scanners(cfg: Config) -> list[Finding]:
    out = []
    for port in cfg.scanner.ports:
        p = Path(port)
        if os.name == "nt" or not port.startswith("/"):
            out.append(_f("scanner", "info", f"порт {port} не проверяется", f"{port} not probed"))
        elif not p.exists():
            out.append(
                _f(
                    "scanner",
                    "error",
                    f"порт сканера {port} не найден",
                    f"scanner port {port} not found",
                    "проверьте кабель; правила udev дают постоянное имя /dev/kassa-scanner-<порт>",
                    "check the cable; the udev rules give a stable /dev/kassa-scanner-<port> name",
                )
            )
        elif not os.access(p, os.R_OK | os.W_OK):
            out.append(
                _f(
                    "scanner",
                    "error",
                    f"нет доступа к {port}",
                    f"no permission to open {port}",
                    "добавьте пользователя в группу dialout: usermod -aG dialout kassa",
                    "add the user to the dialout group: usermod -aG dialout kassa",
                )
            )
        else:
            out.append(_f("scanner", "ok", f"порт сканера {port} доступен", f"{port} accessible"))
    return out


def check_sync_error(cfg: Config, meta: dict[str, str]) -> Finding | None:
    """Why the last exchange with the back office failed (the journal's ``last_error``),
    or, on a full disk, that sync is stalled because its answers cannot be saved (the sync
    loop could not record even its error then); None when nothing failed."""
    from agent.store import disk_free_bytes, disk_full

    error = meta.get("sync:last_error")
    path = Path(cfg.store.path)
    if disk_full(path) and not (error or "").startswith("till store"):
        free = disk_free_bytes(path) or 0
        return _f(
            "sync",
            "error",
            f"обмен с бэк-офисом стоит: диск базы кассы заполнен (свободно {free} байт), "
            "ответы бэк-офиса некуда записать",
            f"sync is stalled: the till store's disk is full ({free} bytes free), the back "
            "office's answers cannot be saved",
            "освободите место на диске: обмен и продажи продолжатся сами",
            "free disk space: sync and sales resume by themselves",
        )
    if not error:
        return None
    return _f(
        "sync",
        "error" if error.startswith("till store") else "warning",
        f"последний обмен с бэк-офисом не удался: {error}",
        f"the last exchange with the back office failed: {error}",
        "подробности: kassa sync status",
        "details: kassa sync status",
    )


def check_disk(cfg: Config) -> Finding:
    where = Path(cfg.store.path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    mb = free // 1_000_000
    from agent.store import FULL_BELOW_BYTES

    if free < FULL_BELOW_BYTES:
        return _f(
            "disk",
            "error",
            f"диск заполнен (свободно {free} байт): продажи не сохраняются, агент ждёт места",
            f"the disk is full ({free} bytes free): sales cannot be saved, the agent waits "
            "for space",
            "освободите место на диске: агент, печать и обмен продолжат сами",
            "free disk space: the agent, printing and sync resume by themselves",
        )
    if free < DISK_ERROR_BYTES:
        return _f(
            "disk",
            "error",
            f"свободно {mb} МБ: продажи скоро перестанут сохраняться",
            f"{mb} MB free: sales will soon fail to save",
            "освободите место на диске",
            "free disk space",
        )
    if free < DISK_WARN_BYTES:
        return _f("disk", "warning", f"свободно всего {mb} МБ", f"only {mb} MB free")
    return _f("disk", "ok", f"свободно {mb} МБ", f"{mb} MB free")


def check_dirs(cfg: Config) -> list[Finding]:
    """Every directory the agent writes, writable by the user running this check (run it
    as the service's user: ``sudo -u kassa kassa doctor``): the store's (the database and
    its ``-wal``, ``-shm``, ``.lock`` files are created beside it), the log's, and the
    token file's while the token is still to be created on first start. A directory not
    made yet counts as writable if its nearest existing parent is (the agent makes it)."""
    wanted = [
        ("store", Path(cfg.store.path).absolute().parent),
        ("log", cfg.log_dir().absolute()),
    ]
    if not cfg.api.token and not cfg.token_path().exists():
        wanted.append(("token", cfg.token_path().parent))
    out: list[Finding] = []
    for what, directory in wanted:
        where = directory
        while not where.exists() and where != where.parent:
            where = where.parent
        if where.is_dir() and os.access(where, os.W_OK | os.X_OK):
            out.append(
                _f(
                    "dirs",
                    "ok",
                    f"папка ({what}) {directory} доступна для записи",
                    f"{what} directory {directory} is writable",
                )
            )
            continue
        out.append(
            _f(
                "dirs",
                "error",
                f"папка ({what}) {directory}: нет права записи для этого пользователя; "
                "служба не сможет запуститься",
                f"{what} directory {directory} is not writable by this user: the service "
                "cannot start",
                "служба systemd: StateDirectory=kassa (/var/lib/kassa), LogsDirectory=kassa "
                "(/var/log/kassa); api.token_file = /var/lib/kassa/api-token",
                "systemd service: StateDirectory=kassa (/var/lib/kassa), LogsDirectory=kassa "
                "(/var/log/kassa); api.token_file = /var/lib/kassa/api-token",
            )
        )
    return out


def check_token(cfg: Config) -> Finding:
    path = cfg.token_path()
    if cfg.api.token:
        return _f(
            "token",
            "warning",
            "токен API записан прямо в файле настроек",
            "the API token is written in the config file",
            "перенесите его в api.token_file (права 600)",
            "move it to api.token_file (mode 600)",
        )
    if not path.exists():
        return _f(
            "token",
            "info",
            f"файл токена {path} будет создан при первом запуске",
            f"token file {path} is created on first start",
        )
    if os.name == "posix" and path.stat().st_mode & 0o077:
        return _f(
            "token",
            "error",
            f"файл токена {path} доступен другим пользователям",
            f"token file {path} is readable by others",
            f"chmod 600 {path}",
            f"chmod 600 {path}",
        )
    return _f("token", "ok", f"файл токена {path} защищён", f"token file {path} is private")


def run_checks(cfg: Config, *, get: Callable[[str], Any] | None = None) -> list[Finding]:
    """Every check, in the order an installer fixes things. ``get`` replaces the HTTP GET
    of the back office health probe (tests pass the real app's client)."""
    findings = [_f("config", "ok", f"настройки: {cfg.source}", f"config: {cfg.source}")]
    store_findings, meta = check_store(cfg)
    findings += store_findings
    if meta:
        findings.append(check_lock(cfg))
        findings += check_backoffice(cfg, meta, get)
        if (sync := check_sync_error(cfg, meta)) is not None:
            findings.append(sync)
    findings += check_printer(cfg)
    findings += check_scanners(cfg)
    findings.append(check_disk(cfg))
    findings += check_dirs(cfg)
    findings.append(check_token(cfg))
    return findings
