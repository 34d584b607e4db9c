# Inferwatch — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-stamp
NATIVE := $(VENV)/.native-stamp
NATIVE_SRC := $(wildcard services/inferwatch/native/_*.c) services/inferwatch/native/contract_limits.h
PYTEST_ARGS ?=

-include infra/kafka/kafka.mk

.PHONY: help install system-deps test test-unit test-integration bench lint fmt schemas demo clean

help: ## List every target
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort -u | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

system-deps: ## Install missing system packages (JDK, Maven, headless Chromium) with apt-get when they are absent
	@bash infra/ensure-system-deps.sh

$(STAMP): pyproject.toml setup.py
	@echo "==> creating $(VENV) and installing inferwatch[platform,dev] (first run takes a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --disable-pip-version-check --upgrade pip 'setuptools>=77'
	@$(PIP) install -q --disable-pip-version-check -e '.[platform,dev]'
	@touch $(STAMP)

# The C accelerators (services/inferwatch/native/_*.c), rebuilt in place whenever a source changes.
$(NATIVE): $(STAMP) $(NATIVE_SRC) setup.py
	@echo "==> building the C accelerators in services/inferwatch/native"
	@$(PY) setup.py -q build_ext --inplace > $(VENV)/native-build.log 2>&1 || { cat $(VENV)/native-build.log; exit 1; }
	@$(PY) -c "import inferwatch.native as n; n.require_native()"
	@touch $(NATIVE)

# The TypeScript SDK (sdks/typescript): Node.js from the Debian packages when the machine lacks it,
# then npm ci, which builds node-rdkafka's bundled librdkafka with node-gyp against the local Node
# headers (npm_config_nodedir: no header download) and the package (ESM + CommonJS). A few minutes
# the first time; redone only when the lock file changes. The build is redone when a source or the
# event contract's schemas change.
TS_SDK   := sdks/typescript
TS_STAMP := $(TS_SDK)/node_modules/.installed-stamp
TS_BUILD := $(TS_SDK)/dist/.built-stamp
$(TS_STAMP): $(TS_SDK)/package.json $(TS_SDK)/package-lock.json
	@command -v node >/dev/null 2>&1 || { echo "==> installing Node.js (nodejs, npm) with apt-get"; \
	  S=""; [ "$$(id -u)" -eq 0 ] || S=sudo; $$S apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq nodejs npm libnode-dev >/dev/null; }
	@echo "==> npm ci in $(TS_SDK) (node-rdkafka builds librdkafka: a few minutes the first time)"
	@cd $(TS_SDK) && npm_config_nodedir="$${npm_config_nodedir:-$$(node -p 'require("path").resolve(process.execPath, "../..")')}" \
	  npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(TS_BUILD): $(TS_STAMP) $(wildcard $(TS_SDK)/src/*.ts $(TS_SDK)/scripts/*.mjs schemas/events/*.json schemas/topics/*.yaml)
	@cd $(TS_SDK) && npm run -s build
	@touch $@

# The console's chart library (console/package.json + lock, from the npm registry at build time, never
# committed): npm ci, then its dist files copied into the package's static/vendor/ (git-ignored,
# shipped in the wheel by pyproject's package-data). Redone when the lock file changes.
CONSOLE_VENDOR := services/inferwatch/api/console/static/vendor/uPlot.esm.js
$(CONSOLE_VENDOR): console/package.json console/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "==> installing Node.js (nodejs, npm) with apt-get"; \
	  S=""; [ "$$(id -u)" -eq 0 ] || S=sudo; $$S apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq nodejs npm >/dev/null; }
	@echo "==> npm ci in console/ (the console's chart library)"
	@cd console && npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(dir $@)
	@cp console/node_modules/uplot/dist/uPlot.esm.js console/node_modules/uplot/dist/uPlot.min.css $(dir $@)
	@touch $@

install: system-deps $(STAMP) $(NATIVE) $(TS_BUILD) $(CONSOLE_VENDOR) ## Create .venv and install Inferwatch with the platform and dev extras (C accelerators included), build the TypeScript SDK and fetch the console's chart library

schemas: $(STAMP) ## Regenerate schemas/events/*.json and the C header native/contract_limits.h from the contract
	$(PY) -m inferwatch.contract.jsonschema_gen
	$(PY) -m inferwatch.contract.header_gen

test: install kafka-jars ## Run every test suite against a real Kafka broker (started and stopped by the tests)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) $(NATIVE) $(CONSOLE_VENDOR) ## Unit and contract tests only (no broker)
	@$(PY) -m pytest tests/unit tests/contract $(PYTEST_ARGS)

# The processor benchmark's peer baseline (Evidently) lives in its own virtualenv: it pins pandas
# and pulls ~80 packages that must not leak into Inferwatch's environment. Only `make bench` needs it.
EVIDENTLY_VENV := .venv-evidently
$(EVIDENTLY_VENV)/.installed-stamp:
	@echo "==> creating $(EVIDENTLY_VENV) with Evidently (the processor benchmark's baseline)"
	@test -x $(EVIDENTLY_VENV)/bin/python || $(PYTHON) -m venv $(EVIDENTLY_VENV)
	@$(EVIDENTLY_VENV)/bin/pip install -q --disable-pip-version-check 'evidently==0.7.23' 'pandas<2.3'
	@touch $@

bench: install kafka-jars $(EVIDENTLY_VENV)/.installed-stamp ## Run the benchmarks; writes .bench/results.json
	@$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff format services tests bench

demo: install kafka-jars ## Run the whole platform on a simulated fleet: four incidents, a healthy control (~4 min)
	@$(PY) -m inferwatch.cli.main demo $(DEMO_ARGS)

clean: ## Remove the virtualenv, caches and local state (keeps the Kafka jars)
	rm -rf $(VENV) $(EVIDENTLY_VENV) .pytest_cache .mypy_cache .ruff_cache .inferwatch .bench
