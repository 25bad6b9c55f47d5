"""Where the agent's log lines go besides its JSON file, and what each line carries.

- Under systemd, stderr is a stream into the journal (``$JOURNAL_STREAM`` names it): lines
  there carry no timestamp (the journal stamps each entry) and start with the syslog
  priority (``<3>`` error ... ``<7>`` debug, sd-daemon(3)), so ``journalctl -p warning``
  filters by level.
- Every line logged while a POS call is being answered carries that call's request id
  (``kassa.requestid``), so one call's lines can be found in the file and the journal.
- The rotated file keeps logging when rotation is impossible: on Windows a file another
  process holds open (an editor, a log shipper, antivirus) cannot be renamed; the handler
  then writes on into the current file and tries again at the next size check instead of
  losing each record past the limit with a traceback on stderr.
- On a full disk (the log and the till store share one in the usual layout) a record the
  file cannot take is dropped quietly (``RotatingFile.dropped``) instead of a "Logging
  error" traceback on stderr per record: stderr (the journal) still has the line.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from typing import Any

from kassa.requestid import current_request_id

PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
"""Python level -> syslog priority (the ``<N>`` prefix journald reads)."""


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int | None = None) -> bool:
    """Whether stderr is the journal stream systemd connected (``$JOURNAL_STREAM`` is
    ``<device>:<inode>`` of that stream; a redirected stderr no longer matches)."""
    env = os.environ if env is None else env
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno() if fd is None else fd)
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class RequestIdFilter(logging.Filter):
    """Puts the current POS call's request id on the record (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = current_request_id()
            if rid:
                record.request_id = rid
        return True


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message [request_id=...]``, no timestamp, one journal entry per
    line (a traceback's lines keep the record's priority)."""

    def __init__(self, scrub: Any) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        prio = PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        text = f"{record.name}: {self.scrub(record.getMessage())}"
        rid = getattr(record, "request_id", None)
        if rid:
            text += f" [request_id={rid}]"
        if record.exc_info:
            text += "\n" + self.scrub(self.formatException(record.exc_info))
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


class RotatingFile(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that survives a failed rotation (see the module doc)."""

    rotation_failures = 0
    """Rotations that failed (the file grew past its limit meanwhile)."""

    dropped = 0
    """Records the file could not take because the disk was full (ENOSPC)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            self.dropped += 1
            return
        super().handleError(record)

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        try:
            super().doRollover()
        except OSError:
            self.rotation_failures += 1
            if self.stream is None:
                self.stream = self._open()
