"""Composition root: the `kassa` command line wires agent, drivers, sync and UI together."""
