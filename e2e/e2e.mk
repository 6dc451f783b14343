# End-to-end tests against real local clusters (see e2e/test-e2e.sh).
# Included by the root Makefile.

E2E_CLUSTERS ?= a b
E2E_PACKAGES ?= weft-e2e weftd
E2E_TEST_ARGS ?= --ignored --test-threads=2

.PHONY: test-e2e check-clean

test-e2e: ## clusters a+b up, images loaded, e2e tests (--ignored), then ALWAYS down + leftover check
	E2E_CLUSTERS="$(E2E_CLUSTERS)" E2E_PACKAGES="$(E2E_PACKAGES)" E2E_TEST_ARGS="$(E2E_TEST_ARGS)" \
	  MAKE="$(MAKE)" CARGO="$(CARGO)" e2e/test-e2e.sh

check-clean: ## check that cluster CLUSTER left no process, mount, netns, veth, cgroup or rule behind
	e2e/check-clean.sh verify $(CLUSTER)
