# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test test-fast ui browser clean

# Re-install only when pyproject.toml changes. torch==2.13.0 resolves to the CPU wheel on local disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# Headless Chromium for the browser test (Debian package; Playwright drives it, never downloads one),
# and a CJK font: without one, Chinese issue titles (the Gitee repos) render as empty boxes.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . || { \
		apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

setup: $(STAMP)

run: setup
	$(BIN)/llama-platform run $(ARGS)

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

ui: setup
	$(BIN)/llama-platform ui

clean:
	rm -rf .llama_platform .pytest_cache
