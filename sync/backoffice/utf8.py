"""Text that is already UTF-8 bytes, as the database layer (``db``) and the PostgreSQL
driver's adapter (``pg``) both know it.

Its own module because ``db`` imports ``pg`` only when a ``postgresql://`` URL is opened
(psycopg is the optional ``backoffice`` extra) and ``pg`` adapts this type: both import it
from here, so neither imports the other back.
"""

from __future__ import annotations


class Utf8Text(bytes):
    """Text that is already UTF-8 bytes (valid, no NUL), for a TEXT column: the pushed
    payloads were encoded once to be hashed, and storing the bytes spares encoding each
    again. PostgreSQL gets them as text (``pg._Utf8TextDumper``, also in ``COPY``); SQLite
    binds them as a BLOB, so its statements say ``CAST(? AS TEXT)`` (the same bytes, as
    text in the database's encoding, UTF-8)."""

    __slots__ = ()


UTF8_TEXT = "bytea"
"""``Tx.insert_many``'s type for a TEXT column of ``Utf8Text`` values. On PostgreSQL psycopg
sends bytes as they are in a binary ``COPY``, and UTF-8 bytes are the binary form of a
text value when the client encoding is UTF-8 (with another encoding ``insert_many`` uses a
text ``COPY``, where ``Utf8Text`` converts); on SQLite the value is ``CAST(? AS TEXT)``."""
