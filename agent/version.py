"""The installed Kassa version, one place for ``kassa --version``, the User-Agent a till
sends to the back office, ``/v1/status`` and ``/v1/health``.

Read from the installed distribution's metadata (``importlib.metadata``), so a wheel, an
editable install and a frozen build all report the version they were built from; a source
tree that was never installed says ``0+unknown`` rather than guessing.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "kassa"


@cache
def version() -> str:
    """The version string of the installed ``kassa`` distribution (PEP 440)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def user_agent(component: str) -> str:
    """The HTTP User-Agent of one of our programs, e.g. ``kassa-agent/0.1.0``: the back
    office records it per till, so the console can show which till runs what."""
    return f"kassa-{component}/{version()}"
