"""A QR code as an inline SVG, drawn on the server (``couponsheet.qr_matrix``: the
``qrcode`` package's modules, error correction M): one path of unit squares per run of
dark modules in a row, a 4-module quiet zone, scaled by the page (``viewBox`` units are
modules). No image library and no script on the phone draws it."""

from __future__ import annotations

from sync.backoffice.couponsheet import qr_matrix
from sync.backoffice.poster import dark_runs

QUIET = 4
"""Modules of white around the code (the QR standard's quiet zone)."""


def svg(text: str, label: str = "QR") -> str:
    """``text``'s QR code as an ``<svg>`` element (``label``: its accessible name)."""
    matrix = qr_matrix(text)
    size = len(matrix) + 2 * QUIET
    runs = [f"M{c + QUIET} {r + QUIET}h{n}v1h-{n}z" for r, c, n in dark_runs(matrix)]
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'shape-rendering="crispEdges" role="img" aria-label="{safe}">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )
