# edgepolicy developer entry points. `make run` shows it working; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OPA := .tools/bin/opa
STAMP := $(VENV)/.installed

.PHONY: setup tools tools-e2e tools-all run test test-rego test-python test-e2e lint lint-python fmt clean bench bench-rego bench-admission bench-bundles bench-models bench-finops

setup: $(STAMP) tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,models,finops]'
	touch $(STAMP)

# The tools the tests need: helm (tests/integration/test_helm_chart.py renders charts/edgepolicy)
# and the OCI registry the bundle tests publish to (tests/integration/test_bundle_oci.py).
tools:
	scripts/install-tools.sh opa helm registry

tools-e2e:
	scripts/install-tools.sh opa helm registry k8s etcd prometheus alertmanager

tools-all:
	scripts/install-tools.sh all

run: setup tools-e2e
	scripts/run.sh

test: setup tools-e2e lint-python test-rego test-python

test-rego: tools
	scripts/test-rego.sh

test-python: $(STAMP)
	$(BIN)/pytest

test-e2e: $(STAMP) tools-e2e
	$(BIN)/pytest -m e2e tests/e2e

lint: lint-python tools
	$(OPA) fmt --list --fail rego
	$(OPA) check --strict rego

lint-python: $(STAMP)
	$(BIN)/ruff check edgepolicy webhook bundles tests bench
	scripts/typecheck.sh

fmt: $(STAMP) tools
	$(OPA) fmt --write rego
	$(BIN)/ruff format edgepolicy webhook bundles tests bench

# Every benchmark; each prints its numbers (docs/performance.md records them).
bench: bench-rego bench-admission bench-bundles bench-models bench-finops

bench-rego: setup
	$(BIN)/python bench/rego_decision.py

bench-admission: setup
	scripts/install-tools.sh opa vegeta
	$(BIN)/python bench/admission.py

# Publish-to-activation time of a bundle on 20 real OPA sidecars, long polling vs polling.
bench-bundles: setup
	$(BIN)/python bench/bundles_fleet.py --sidecars 20 --rounds 5

# model sign hashing vs sha256sum (500 MB), cached vs uncached admission verification.
bench-models: setup
	$(BIN)/python bench/model_signing.py

# finops report over a fleet's series in a real Prometheus (generated and backfilled once, cached
# under .cache/finops-bench/); docs/finops-report.md records the results.
bench-finops: setup tools-e2e
	nice $(BIN)/python bench/finops_report.py --pods 1000 --days 1 --scrape 30 --window 24h

clean:
	rm -rf $(VENV) .tools .pytest_cache build *.egg-info
