"""Devices: ESC/POS printer, scanners, QR helpers (issue 4). Depends on `agent.model` only."""
