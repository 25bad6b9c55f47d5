"""Reusable widgets: the status bar, the key bar, the member card."""
