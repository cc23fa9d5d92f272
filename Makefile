# HazardWatch developer commands. `make up` runs the stack on the sample plant;
# `make check` is the gate: lint → types → tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: up check lint types test system-deps venv bench clean

# make passes SIGTERM on to the recipe, not SIGINT: `hazardwatch up` watches its make and stops
# with it (hazardwatch/lifeline.py). A service manager runs .venv/bin/hazardwatch up itself.
up: system-deps venv
	@exec $(BIN)/hazardwatch up

check: lint types test

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

types: venv
	$(BIN)/mypy

test: system-deps venv
	$(BIN)/pytest

bench: venv
	$(BIN)/python -m bench

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "HazardWatch needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	@echo "installing HazardWatch into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/pip install -q --upgrade pip >$(VENV)/install.log 2>&1 && \
	  $(BIN)/pip install -q -e '.[dev]' >>$(VENV)/install.log 2>&1 || \
	  { cat $(VENV)/install.log; exit 1; }
	@touch $@

# System packages the stack and the tests use: PostgreSQL, Mosquitto, Debian's Chromium
# for the browser tests and a CJK font so pages and screenshots show Chinese. Installed only where missing (needs root and apt).
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -d /usr/share/fonts/truetype/wqy ] || missing="$$missing fonts-wqy-microhei"; \
	[ -d /usr/share/fonts/truetype/dejavu ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "please install:$$missing (Debian: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts
