# One command surface for people and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(HOME)/.cargo/bin:$(PATH)

RUST_SOURCES := $(shell find core-rs -name '*.rs' -o -name Cargo.toml) Cargo.toml
DEPS_STAMP := $(VENV)/.deps-installed
CORE_STAMP := $(VENV)/.core-built
NODE_STAMP := sdk-node/node_modules/.package-lock.json
CRON_ORACLES_STAMP := tests/oracles/cron/node_modules/.package-lock.json
WEBHOOK_ORACLES_STAMP := tests/oracles/webhooks/node_modules/.package-lock.json
# examples/invoices: a Python step with its own venv, a Node step with its own node_modules.
INVOICES := examples/invoices/functions
INVOICES_VENV_STAMP := $(INVOICES)/summarize/.venv/.deps-installed
INVOICES_NODE_STAMP := $(INVOICES)/render/node_modules/.package-lock.json

.DEFAULT_GOAL := help
.PHONY: help install demo test test-rust test-python test-node lint bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEPS_STAMP): $(PY) pyproject.toml sdk-python/pyproject.toml
	$(PY) -m pip install --quiet -e sdk-python
	$(PY) -m pip install --quiet -e '.[dev,brokers]'
	touch $(DEPS_STAMP) $(CORE_STAMP)

# Rebuilds the Rust extension in place when its sources change (pip built it the first time).
$(CORE_STAMP): $(DEPS_STAMP) $(RUST_SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release --quiet
	touch $(CORE_STAMP)

$(NODE_STAMP): sdk-node/package.json sdk-node/package-lock.json
	cd sdk-node && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# cron-parser and croner, the npm oracles of tests/unit/test_cron_node_oracles.py.
$(CRON_ORACLES_STAMP): tests/oracles/cron/package.json tests/oracles/cron/package-lock.json
	cd tests/oracles/cron && npm ci --no-audit --no-fund
	touch $(CRON_ORACLES_STAMP)

# @octokit/webhooks-methods and @shopify/shopify-api, the npm oracles of
# tests/unit/test_webhook_node_oracles.py (GitHub and Shopify publish no Python verifier).
$(WEBHOOK_ORACLES_STAMP): tests/oracles/webhooks/package.json tests/oracles/webhooks/package-lock.json
	cd tests/oracles/webhooks && npm ci --no-audit --no-fund
	touch $(WEBHOOK_ORACLES_STAMP)

$(INVOICES_VENV_STAMP): $(INVOICES)/summarize/requirements.txt sdk-python/pyproject.toml
	$(PYTHON) -m venv $(INVOICES)/summarize/.venv
	$(INVOICES)/summarize/.venv/bin/python -m pip install --quiet -e ./sdk-python -r $(INVOICES)/summarize/requirements.txt
	touch $(INVOICES_VENV_STAMP)

$(INVOICES_NODE_STAMP): $(INVOICES)/render/package.json $(INVOICES)/render/package-lock.json
	cd $(INVOICES)/render && npm ci --no-audit --no-fund
	touch $(INVOICES_NODE_STAMP)

install: $(DEPS_STAMP) $(CORE_STAMP) $(NODE_STAMP) $(CRON_ORACLES_STAMP) $(WEBHOOK_ORACLES_STAMP) $(INVOICES_VENV_STAMP) $(INVOICES_NODE_STAMP) ## Create .venv, build the extension, install both SDKs (idempotent)

demo: install ## Run examples/orders on an embedded Postgres
	cd examples/orders && ../../$(VENV)/bin/flowhost run orders --input @order.json

test: install lint test-rust test-python test-node ## Install, lint (ruff, mypy, clippy, stubtest) and run every suite

test-rust: install ## cargo test of the Rust core, also through its Python bindings
	cargo test --quiet
	PYO3_PYTHON=$(abspath $(PY)) cargo test --quiet --features python

test-python: install ## pytest: unit, integration (real Postgres), acceptance (the CLI), SDK
	$(PY) -m pytest tests sdk-python/tests bench/test_harness.py

test-node: $(NODE_STAMP) ## node --test of the Node SDK
	cd sdk-node && npm test && npm run typecheck

lint: install ## ruff (format + checks), mypy, rustfmt, clippy, stubtest
	$(VENV)/bin/ruff format --check python sdk-python tests bench examples
	$(VENV)/bin/ruff check python sdk-python tests bench examples
	$(VENV)/bin/mypy
	cargo fmt --check
	cargo clippy --all-targets --quiet -- -D warnings
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --all-targets --features python --quiet -- -D warnings
	$(PY) -m mypy.stubtest flowhost._core

bench: install ## Benchmarks with their anchors, results in bench/results/
	$(PY) -m bench $(SCENARIOS)

clean: ## Remove build outputs and the venv
	rm -rf $(VENV) target sdk-node/node_modules python/flowhost/_core*.so
	rm -rf $(INVOICES)/summarize/.venv $(INVOICES)/render/node_modules
