# The two commands that do all set-up on a fresh machine with Python 3.11+:
#   make demo   - run the product on its embedded defaults (the cashier app, demo back office + till)
#   make test   - run every check: format, lint, types, import contracts, tests
#   make smoke  - the wheel as a store installs it: clean venv, no extras, app and demo run
#   make frozen - the PyInstaller one-file binary, built and run (slow, not in make test)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck contracts pytest smoke frozen bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kassa demo

test: check

check: lint typecheck contracts pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# Four workers on two cores: most of the time is the cashier app's Pilot tests waiting for
# the app to go idle, not CPU. The SIGKILL and tmux tests share one worker (xdist_group).
pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --dist loadgroup

smoke: $(STAMP)
	bash packaging/smoke/wheel.sh $(BIN)/python $(PY)

frozen:
	bash packaging/smoke/frozen.sh $(PY)

bench: $(STAMP)
	$(BIN)/python bench/checkout.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
