"""Devices: ESC/POS printer, scanners, QR helpers. Depends on `agent.model` only."""
