# weftd benchmarks (issue 4 figures). Included by the root Makefile:
#   include controlplane/bench.mk
# Prints figures; never fails on timing.

BENCH_SERVICES ?= 1000
BENCH_ENDPOINTS_PER_SERVICE ?= 10
BENCH_PROXIES ?= 100
BENCH_CHANGES ?= 50

.PHONY: bench-controlplane

bench-controlplane: ## xDS: full push to 100 proxies (1,000 services, 10,000 endpoints), EndpointSlice change -> last ACK p50/p99
	BENCH_SERVICES=$(BENCH_SERVICES) BENCH_ENDPOINTS_PER_SERVICE=$(BENCH_ENDPOINTS_PER_SERVICE) \
	  BENCH_PROXIES=$(BENCH_PROXIES) BENCH_CHANGES=$(BENCH_CHANGES) \
	  $(CARGO) bench -p weftd --bench xds_push
