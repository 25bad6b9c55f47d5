"""One small screen per cashier flow; see ``tui/__init__.py`` for how to add one."""
