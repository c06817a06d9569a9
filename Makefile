# The two commands of the README:
#   make demo   set up, then run the main job on the embedded defaults
#   make test   set up, then run the test suite
# Both create .venv with pip (PyTorch comes from the wheels the machine already has).

PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

export PATH          := $(BIN):$(PATH)
export PREFECT_HOME  ?= $(CURDIR)/.prefect
export YOLO_CONFIG_DIR ?= $(CURDIR)/.yolo
export YOLO_OFFLINE  := 1
export YOLO_AUTOINSTALL := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK  := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export DVC_NO_ANALYTICS := 1
# Bytecode is cached in .venv as modules are first imported (pip runs with --no-compile):
# with PYTHONDONTWRITEBYTECODE set, as many container images set it, nothing is cached and
# every process compiles torch, Ultralytics and MLflow again (measured: a stage that takes
# 23 s took 40 s, a no-op `dvc repro` 2.7 s instead of 1.1 s).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup browser demo test lint bench serve mlflow-ui prefect-ui up down clean

# The runtime for the demo; the tests (and bench, lint, the team profile) add the dev extra:
# PostgreSQL, S3 and test tools. One pip run either way: dev includes the runtime.
# --no-compile: modules are byte-compiled when first imported, not all ~150 packages
# up front (most of their modules never are).
$(STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -e '.[dev]'
	touch $(DEV_STAMP) $(STAMP)

setup: $(STAMP)
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	@$(BIN)/dvc config core.analytics false
	@$(BIN)/python -m skintwin.ops.plots_page >/dev/null   # dvc plots show, Vega inlined

browser:       # headless Chromium for the tests that open pages offline (Debian's package)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (apt-get)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	      >/dev/null; \
	  else echo "no chromium and no root: the two offline-page checks will skip"; fi

demo: setup    # ends with `skintwin where`
	$(BIN)/skintwin demo

test: $(DEV_STAMP) setup browser  # the layers contract first (seconds), then the suite
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(DEV_STAMP) setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

bench: $(DEV_STAMP) setup   # every benchmark, figures beside their baselines (SIZE=small|default)
	$(BIN)/python -m bench --size $(or $(SIZE),small)

serve: setup   # the HTTP inference service on the champion, http://127.0.0.1:8080/health
	$(BIN)/skintwin serve --port 8080

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

prefect-ui: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

up: $(DEV_STAMP) setup      # Prefect + MLflow servers on loopback, work pool, deployments, a worker
	$(BIN)/skintwin up $(if $(PROFILE),--profile $(PROFILE))   # PROFILE=team: PostgreSQL + S3

down:          # stop what `make up` started
	$(BIN)/skintwin down

clean:
	rm -rf mlflow.db mlartifacts .prefect .yolo data/demo data/processed models reports/evaluate
