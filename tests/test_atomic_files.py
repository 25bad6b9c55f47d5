"""``agent.private.write_private``, the one writer of the small files Kassa makes: a
process SIGKILLed at each of its steps leaves the old file or the new one, never an
empty or torn one; the file is 0600 whatever the umask; ``exclusive`` never replaces."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from agent.crashpoint import CRASH_ENV
from agent.private import write_private

pytestmark = [
    pytest.mark.xdist_group("kill"),
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL, modes"),
]

OLD, NEW = b"old token 0123456789\n", b"new token " + b"x" * 5000 + b"\n"


def write_in_child(path: Path, data: bytes, crash_at: str) -> int:
    """``write_private(path, data)`` in a forked child with ``KASSA_CRASH_AT``; its status."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest cleanup, only the write
        os.environ[CRASH_ENV] = crash_at
        os.umask(0)
        try:
            write_private(path, data)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize(
    ("point", "after"),
    [("atomic.written", OLD), ("atomic.synced", OLD), ("atomic.renamed", NEW)],
)
def test_a_kill_at_each_step_leaves_the_old_file_or_the_new(
    tmp_path: Path, point: str, after: bytes
) -> None:
    path = tmp_path / "api-token"
    write_private(path, OLD)
    status = write_in_child(path, NEW, point)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert path.read_bytes() == after
    assert path.stat().st_mode & 0o777 == 0o600
    write_private(path, NEW)  # the next write succeeds over whatever was left
    assert path.read_bytes() == NEW
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in left)  # a killed write's, private


def test_private_whatever_the_umask_and_exclusive_never_replaces(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "keys.json"
        write_private(path, b"{}", exclusive=True)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_bytes() == b"{}"
    with pytest.raises(FileExistsError):
        write_private(path, b"other", exclusive=True)
    assert path.read_bytes() == b"{}"
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json"]  # no temp left
