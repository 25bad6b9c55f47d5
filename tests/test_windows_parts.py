"""What the Windows till does differently, tested on Linux where the part is pure Python:
the store's ownership lock through ``msvcrt.locking`` (mandatory byte-range locks, faked
at the edge: the OS call), and the rotated log file when Windows refuses to rename a file
another process holds open (the refusal is the edge we fake)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from agent import store as store_module
from agent.errors import StoreLockedError
from agent.store import WINDOWS_LOCK_OFFSET, Store, windows_lock
from kassa.logs import RotatingFile
from kassa.runtime import JsonFormatter


class FakeMsvcrt:
    """``msvcrt.locking`` with Windows' semantics: a mandatory lock on ``n`` bytes from the
    descriptor's current position; a second lock over a held range fails with OSError
    (EDEADLOCK/EACCES on Windows). ``reads_blocked`` tells whether a range is locked."""

    LK_NBLCK = 2
    LK_UNLCK = 0

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], tuple[int, int]] = {}  # (dev, ino) -> (start, end)

    def locking(self, fd: int, mode: int, n: int) -> None:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        start = os.lseek(fd, 0, os.SEEK_CUR)
        if mode == self.LK_UNLCK:
            self.held.pop(key, None)
            return
        if key in self.held:
            raise OSError(36, "Resource deadlock avoided")
        self.held[key] = (start, start + n)

    def reads_blocked(self, path: Path, start: int, end: int) -> bool:
        st = path.stat()
        span = self.held.get((st.st_dev, st.st_ino))
        return span is not None and span[0] < end and start < span[1]


@pytest.fixture
def windows_locks(monkeypatch: pytest.MonkeyPatch) -> FakeMsvcrt:
    fake = FakeMsvcrt()
    monkeypatch.setattr(
        store_module, "_lock_exclusive", lambda h: windows_lock(h, fake, fake.LK_NBLCK)
    )
    monkeypatch.setattr(store_module, "_unlock", lambda h: windows_lock(h, fake, fake.LK_UNLCK))
    return fake


def test_the_locked_byte_lies_past_the_owner_pid_so_a_second_opener_can_name_it(
    tmp_path: Path, windows_locks: FakeMsvcrt
) -> None:
    path = tmp_path / "till.db"
    first = Store(path)
    try:
        lock = path.with_name("till.db.lock")
        pid = lock.read_text(encoding="utf-8")
        assert pid == str(os.getpid())
        # the pid's bytes are readable by another process: not under the mandatory lock
        assert not windows_locks.reads_blocked(lock, 0, 64)
        assert windows_locks.reads_blocked(lock, WINDOWS_LOCK_OFFSET, WINDOWS_LOCK_OFFSET + 1)
        with pytest.raises(StoreLockedError) as e:
            Store(path)
        assert e.value.details["owner_pid"] == str(os.getpid())
    finally:
        first.close()
    Store(path).close()  # released on close


def test_the_file_position_is_kept_around_the_lock(tmp_path: Path) -> None:
    fake = FakeMsvcrt()
    with open(tmp_path / "x.lock", "a+", encoding="utf-8") as h:
        h.write("1234")
        windows_lock(h, fake, fake.LK_NBLCK)
        assert h.tell() == 4
        h.seek(0)
        assert h.read() == "1234"


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"kassa.test.rotation.{id(handler)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_refused_rotation_keeps_logging_into_the_current_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kassa-agent.log"
    handler = RotatingFile(path, maxBytes=300, backupCount=2, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger = _logger(handler)

    def refused(src: Any, dst: Any) -> None:
        raise PermissionError(32, "The process cannot access the file because it is being used")

    monkeypatch.setattr(os, "rename", refused)
    try:
        for i in range(20):
            logger.info("line %d", i)
    finally:
        monkeypatch.undo()
        handler.close()
    lines = [json.loads(x)["msg"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [f"line {i}" for i in range(20)]  # nothing lost
    assert handler.rotation_failures > 0
    assert "Logging error" not in capsys.readouterr().err


def test_rotation_works_again_once_the_file_is_free(tmp_path: Path) -> None:
    path = tmp_path / "kassa-agent.log"
    handler = RotatingFile(path, maxBytes=300, backupCount=2, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger = _logger(handler)
    try:
        for i in range(20):
            logger.info("line %d", i)
    finally:
        handler.close()
    assert path.with_name("kassa-agent.log.1").exists()
    assert handler.rotation_failures == 0


WINDOWS = Path(__file__).resolve().parent.parent / "packaging" / "windows"


def test_the_windows_install_keeps_data_under_programdata_and_lets_the_pos_read_the_token():
    import re
    import tomllib
    import xml.etree.ElementTree as ET

    from kassa.config import parse_config

    guide = (WINDOWS / "INSTALL.md").read_text(encoding="utf-8")
    snippet = re.search(r"```toml\n(.*?)```", guide, re.S)
    assert snippet is not None
    cfg = parse_config(tomllib.loads(snippet[1]), r"C:\ProgramData\Kassa\kassa.toml")
    root = r"C:\ProgramData\Kassa"
    data = root + "\\"
    for path in (cfg.store.path, cfg.api.token_file, cfg.log.dir):
        assert path.startswith(data), path
    token_dir = cfg.api.token_file.rsplit("\\", 1)[0]
    # the data folder is Administrators' and SYSTEM's only; the token's folder is readable
    # by the POS users' group (the POS runs as a normal user)
    assert f"icacls {root} /inheritance:r /grant:r Administrators:" in guide
    assert f"icacls {token_dir} /grant KassaPOS:(OI)(CI)RX" in guide
    service = ET.parse(WINDOWS / "kassa-agent.xml").getroot()
    assert data in (service.findtext("arguments") or "")
    assert (service.findtext("workingdirectory") or "").startswith(root)
    env = {e.get("name"): e.get("value") for e in service.iter("env")}
    assert env["KASSA_CONFIG"] == data + "kassa.toml"


def test_winsw_is_pinned_by_version_and_sha256_in_both_files():
    import re

    pins = []
    for name in ("INSTALL.md", "kassa-agent.xml"):
        text = (WINDOWS / name).read_text(encoding="utf-8")
        url = re.findall(r"https://github\.com/winsw/winsw/releases/download/(v[\d.]+)/", text)
        sha = re.findall(r"\b[0-9a-f]{64}\b", text)
        assert len(set(url)) == 1 and len(set(sha)) == 1, name
        pins.append((url[0], sha[0]))
    assert pins[0] == pins[1] and pins[0][0] == "v2.12.0"
