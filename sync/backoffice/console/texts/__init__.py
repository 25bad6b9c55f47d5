"""The console's texts by section: each module holds ``TEXT`` (key -> (Russian, English))
for its section's pages; ``i18n`` merges them with the shared texts (``merge``)."""

from __future__ import annotations

from collections.abc import Mapping

Texts = Mapping[str, tuple[str, str]]


def merge(*parts: Texts) -> dict[str, tuple[str, str]]:
    """One table from ``parts``; a key in two of them is a mistake, refused at import."""
    out: dict[str, tuple[str, str]] = {}
    for part in parts:
        twice = out.keys() & part.keys()
        if twice:
            raise ValueError(f"console texts defined twice: {sorted(twice)}")
        out.update(part)
    return out
