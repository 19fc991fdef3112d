# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test test-fast ui lab browser java checkov clean mlserver-env image

# Re-install only when pyproject.toml changes. torch==2.13.0 resolves to the CPU wheel on local disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	# kubeflow-katib's SDK declares protobuf<5, which kserve's protobuf>=6.33.5 rules out. We use only its
	# generated models (k8s/katib.py); they import and serialise under protobuf 6 (llama_platform_tests/k8s/test_katib.py),
	# so the SDK is installed without its dependency pins.
	$(BIN)/python -m pip install -q --no-deps kubeflow-katib==0.19.0 kubeflow-training==1.9.0 retrying==1.4.2
	touch $(STAMP)

# MLServer (Seldon Core 2's server) in a venv of its own: MLServer 1.7.1 needs fastapi<0.116, hence
# starlette<0.47, and importlib-resources<7; KServe 0.21 needs starlette>=1.3.1. Everything else is
# pinned to the main venv's versions, and the main venv's site-packages (torch, transformers, peft,
# mlflow) come after MLServer's own through a .pth file, so the runtime loads the same model code.
MLSERVER_VENV ?= .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed-stamp
$(MLSERVER_STAMP): $(STAMP)
	test -x $(MLSERVER_VENV)/bin/python || "$$($(BIN)/python -c 'import sys; print(sys.base_prefix)')/bin/python3" -m venv $(MLSERVER_VENV)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E '^(fastapi|starlette|importlib.resources)==| @ ' > $(MLSERVER_VENV)/constraints.txt
	$(MLSERVER_VENV)/bin/python -m pip install -q -c $(MLSERVER_VENV)/constraints.txt mlserver==1.7.1
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(MLSERVER_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_main_venv.pth"
	touch $(MLSERVER_STAMP)

mlserver-env: $(MLSERVER_STAMP)

# Headless Chromium for the browser test (Debian package; Playwright drives it, never downloads one),
# and a CJK font: without one, Chinese issue titles (the Gitee repos) render as empty boxes.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . || { \
		apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

# A Java runtime for the H2O AutoML baseline (evaluation/baseline.py starts a local H2O JVM).
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null; }

setup: $(STAMP) java

# checkov (deploy/ scans in llama_platform_tests/deploy/test_checkov.py) in an environment of its
# own: installed next to the platform it downgrades boto3/botocore, packaging and networkx.
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==3.3.30
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

# The platform image (deploy/docker/Dockerfile), built with podman from a local Debian base and
# smoke-run restricted; reused while its build inputs are unchanged. `make test` builds it too
# (llama_platform_tests/deploy/test_platform_image.py). Cold: ~6.5 min on 2 cores (deploy/README.md).
image: setup
	PYTHON=$(BIN)/python bash deploy/docker/build-offline.sh

run: setup
	$(BIN)/llama-platform run $(ARGS)

test: setup browser checkov mlserver-env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup mlserver-env
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

ui: setup
	$(BIN)/llama-platform ui

# JupyterLab on 127.0.0.1 with the project's environment as its kernel (the notebooks read the
# platform's state through Dagster, so run the pipeline once first). --allow-root: dev containers run as root.
lab: setup
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --allow-root --ServerApp.root_dir=notebooks

clean:
	rm -rf .llama_platform .pytest_cache
