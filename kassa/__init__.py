"""The composition roots and front doors of a till and a back office: the ``kassa`` command
line (``kassa.cli``), the local POS API (``kassa.posapi``), the one till built from
kassa.toml (``kassa.wiring``) that the headless agent (``kassa.runtime``), the cashier app
and the demos run on, and the installer's tools (configuration, doctor, backups)."""
