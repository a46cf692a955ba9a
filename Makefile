# vitscope: the two commands a user needs are `make up` and `make test`.
# `make test-fast` is the quick loop (lint + unit tests); `make screenshots` refreshes docs/screenshots.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install up test test-fast screenshots lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build from local disk; an open range would pull a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0 || $(PIP) install -q torch
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

up: install
	$(VENV)/bin/vitscope up

# what CI runs (.ci/run): lint, types, import rules, every test (unit, integration, browser)
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -q

# the quick loop: lint and the unit tests (no Redis-and-worker stack, no browser, nothing slow)
test-fast: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not integration and not browser and not slow"

# the browser tests, writing their screenshots into docs/screenshots (other runs keep them out of git)
screenshots: install
	VITSCOPE_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -m browser tests/browser

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports --no-logo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
