"""The domain core of the Kassa loyalty agent: money, rules engine, identification, the
SQLite store and journal, and the ``Agent`` service. Imports nothing of UI, devices or
network (enforced by an import-linter contract and tests/test_boundaries.py)."""
