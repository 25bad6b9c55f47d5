"""Textual cashier UI (issue 5). Reaches the core only through workers that call `agent.Agent`."""
