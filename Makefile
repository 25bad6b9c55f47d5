# The two commands that do all set-up on a fresh machine with Python 3.11+:
#   make demo   - run the product on its embedded defaults (the cashier app, demo back office + till)
#   make test   - run every check: format, lint, types, import contracts, tests
#   make smoke  - the wheel as a store installs it: clean venv, no extras, app and demo run
#   make frozen - the PyInstaller one-file binary, built and run (slow, not in make test)
#   make faults - the long fault run (SIGKILLs of a serving till, outages; prints its counts)
#   make fuzz   - the fuzz, conformance and attack tests at FUZZ_SCALE times make test's size
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck contracts pytest chromium smoke frozen bench faults fuzz clean

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
pytest: $(STAMP) chromium
	$(BIN)/python -m pytest -q -n 4 --dist loadgroup

# The console's browser tests (-m browser) drive Debian's chromium by path (Playwright cannot
# download browsers here): installed when missing, as root with apt-get; else they skip.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } \
		|| echo "no chromium (apt-get install chromium as root): the browser tests will skip"

smoke: $(STAMP)
	bash packaging/smoke/wheel.sh $(BIN)/python $(PY)

frozen:
	bash packaging/smoke/frozen.sh $(PY)

bench: $(STAMP)
	$(BIN)/python bench/checkout.py

# tests/faults.py at full size (make test runs a small one, tests/test_faults.py): two POS
# lanes against kassa agent serve, FAULT_KILLS SIGKILLs at aimed moments, an outage of
# FAULT_OUTAGE_S seconds; prints kills, acknowledged operations, lost, doubled, phantom,
# balance mismatches, chain breaks and flags as JSON, and fails unless all are clean (the
# back office on SQLite, then on a fresh PostgreSQL database FAULT_PG); then
# tests/test_sync_kill.py with SYNC_KILLS SIGKILLs of a selling and syncing till (30 in make test).
FAULT_KILLS ?= 200
FAULT_OUTAGE_S ?= 140
SYNC_KILLS ?= 300
FAULT_PG ?= postgresql://postgres@127.0.0.1:5432/kassa_faults
faults: $(STAMP)
	$(BIN)/python tests/faults.py --kills $(FAULT_KILLS) --outage-s $(FAULT_OUTAGE_S) --outage-kills 3
	psql "$(dir $(FAULT_PG))postgres" -q -c 'DROP DATABASE IF EXISTS $(notdir $(FAULT_PG))' \
		-c 'CREATE DATABASE $(notdir $(FAULT_PG))'
	$(BIN)/python tests/faults.py --kills $(FAULT_KILLS) --outage-s $(FAULT_OUTAGE_S) --outage-kills 3 \
		--database $(FAULT_PG)
	KASSA_SYNC_KILLS=$(SYNC_KILLS) $(BIN)/python -m pytest -q tests/test_sync_kill.py

# Both APIs' fuzz and conformance tests (schemathesis over the served documents, hostile
# pushes, the cheque flow) with KASSA_FUZZ_SCALE times their make-test example counts, and
# the attack tests (phone numbers from a stolen till, guessing limits).
FUZZ_SCALE ?= 10
fuzz: $(STAMP)
	KASSA_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -q -n 4 --dist loadgroup \
		tests/test_posapi_fuzz.py tests/test_sync_fuzz.py tests/test_backoffice_openapi.py \
		tests/test_phone_attack.py tests/test_auth_failures.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
