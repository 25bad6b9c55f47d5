"""Devices: the ESC/POS printer (rendering, profiles, transports, status, the print worker
over the till's print queue), serial and keyboard-wedge scanners, QR helpers. Imports only
the core (``agent``: the slip, the print queue, the errors), never the UI or sync."""
