"""A real full filesystem for tests: a small tmpfs mounted in the test's directory, and a
ballast file that fills it to the last byte and is removed to free the space again.

The disk is the fault here, so it is real: SQLite meets ENOSPC from the kernel, not an
exception we raise. Mounting needs root (or CAP_SYS_ADMIN) on Linux; elsewhere the tests
that use it are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHUNK = 64 * 1024
"""Bytes written per call while filling, then single bytes for the last partial page."""


class SmallDisk:
    """A tmpfs of ``size_mib`` MiB at ``root``; ``fill()`` takes every free byte with a
    ballast file and ``free()`` removes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ballast = root / "ballast"

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def fill(self) -> None:
        """Write the ballast until the kernel says ENOSPC (nothing is left, not even a
        page: the last bytes are written one by one)."""
        with open(self.ballast, "ab", buffering=0) as f:
            for size in (CHUNK, 1):
                block = b"\0" * size
                while True:
                    try:
                        f.write(block)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        assert self.free_bytes() == 0

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)


def _can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here, or None when it can be tried."""
    if not sys.platform.startswith("linux"):
        return "tmpfs mounts need Linux"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
    return None


@contextlib.contextmanager
def small_disk(where: Path, size_mib: int = 4) -> Iterator[SmallDisk]:
    """Mount a ``size_mib`` MiB tmpfs at ``where`` (created) for the block, then unmount it
    (lazily, should a test's process still hold a file there). Skips the test when the
    mount is not permitted."""
    reason = _can_mount()
    if reason is not None:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield SmallDisk(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
