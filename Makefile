# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test test-fast ui browser checkov clean

# Re-install only when pyproject.toml changes. torch==2.13.0 resolves to the CPU wheel on local disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# Headless Chromium for the browser test (Debian package; Playwright drives it, never downloads one).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

setup: $(STAMP)

# checkov (deploy/ scans in llama_platform_tests/deploy/test_checkov.py) in an environment of its
# own: installed next to the platform it downgrades boto3/botocore, packaging and networkx.
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==3.3.30
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

run: setup
	$(BIN)/llama-platform run $(ARGS)

test: setup browser checkov
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

ui: setup
	$(BIN)/llama-platform ui

clean:
	rm -rf .llama_platform .pytest_cache
