"""The PostgreSQL side of ``sync.backoffice.db``: psycopg connections and adapters.

Kept apart because psycopg is the ``backoffice`` extra (``pip install 'kassa[backoffice]'``):
a till and an embedded SQLite back office run without it, so nothing imports this module
until a ``postgresql://`` URL is opened (``db.PostgresDatabase``).
"""

from __future__ import annotations

from typing import Any, cast

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper

from sync.backoffice.utf8 import Utf8Text

OperationalError = psycopg.OperationalError
DataError = psycopg.errors.DataError


class _Utf8TextDumper(Dumper):
    oid = psycopg.adapters.types["text"].oid

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        conn = self.connection
        self._encoding = conn.info.encoding if conn is not None else "utf-8"

    def dump(self, obj: Any) -> Buffer:
        if self._encoding == "utf-8":
            return cast(Buffer, obj)  # the bytes are the text format already
        return bytes(obj).decode("utf-8").encode(self._encoding)  # another client encoding


def connect(url: str) -> Any:
    """A psycopg connection (not in autocommit) that sends ``Utf8Text`` as text."""
    conn = psycopg.connect(url, autocommit=False)
    conn.adapters.register_dumper(Utf8Text, _Utf8TextDumper)
    return conn
