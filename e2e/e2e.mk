# End-to-end tests against real local clusters (see e2e/test-e2e.sh).
# Included by the root Makefile.

E2E_CLUSTERS ?= a b
E2E_PACKAGES ?= weft-e2e weftd weft-proxy weft-operator
E2E_TEST_ARGS ?= --ignored --test-threads=2

.PHONY: test-e2e check-clean

# The recipe deliberately does not mention $(MAKE): `make -n test-e2e` would
# then run it (and bring clusters up and down) instead of printing it.
# Each image's ref reaches the tests as WEFT_<NAME>_IMAGE (e.g. WEFT_ECHO_IMAGE).
E2E_IMAGE_ENV = $(foreach n,$(WEFT_IMAGE_NAMES),WEFT_$(shell echo '$(n)' | tr 'a-z-' 'A-Z_')_IMAGE="$(IMAGE_REF_$(n))")

test-e2e: ## clusters a+b up, images loaded, e2e tests (--ignored), then ALWAYS down + leftover check
	E2E_CLUSTERS="$(E2E_CLUSTERS)" E2E_PACKAGES="$(E2E_PACKAGES)" E2E_TEST_ARGS="$(E2E_TEST_ARGS)" \
	  CARGO="$(CARGO)" $(E2E_IMAGE_ENV) e2e/test-e2e.sh

check-clean: ## check that cluster CLUSTER left no process, mount, netns, veth, cgroup or rule behind
	e2e/check-clean.sh verify $(CLUSTER)
