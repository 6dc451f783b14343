# Weft — one entry point for building, testing and running the mesh locally.
# `make demo` and `make test` are the two commands a newcomer needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export WEFT_CACHE ?= $(HOME)/.cache/weft
CLUSTER ?= a

.PHONY: all build demo demo-down test test-unit test-e2e fmt fmt-check lint crds help

all: build

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## build every crate
	$(CARGO) build --workspace --all-targets

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check: ## fail on unformatted code
	$(CARGO) fmt --all -- --check

lint: ## clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets --features weft-proxy/bench-setup -- -D warnings

crds: ## regenerate config/crd from the API types
	$(CARGO) run -q -p weft-api --bin crdgen -- config/crd

DEMO_CLUSTER ?= a
demo: ## local cluster DEMO_CLUSTER (default a) unless KUBECONFIG is set; build, install, sample app, traffic
	DEMO_CLUSTER="$(DEMO_CLUSTER)" MAKE="$(MAKE)" e2e/demo.sh

demo-down: ## stop the demo's local cluster (DEMO_CLUSTER, default a)
	$(MAKE) cluster-down CLUSTER=$(DEMO_CLUSTER)

test-unit: cluster-deps ## unit tests of every crate (no cluster; curl and h2load from cluster-deps)
	$(CARGO) test --workspace

test: fmt-check lint test-unit test-e2e ## everything: format, lint, unit, integration, end to end
# A full run from scratch gains nothing from incremental compilation, whose
# caches would take several GB of disk (CI starts from a fresh clone).
test: export CARGO_INCREMENTAL ?= 0

include $(wildcard e2e/cluster/cluster.mk e2e/images.mk e2e/e2e.mk controlplane/bench.mk dataplane/bench.mk operator/operator.mk)
