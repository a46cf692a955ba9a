# vitscope: the two commands a user needs are `make up` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install up test lint typecheck unit integration browser clean

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

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
