# weft-proxy benchmark (issue 5 figures). Included by the root Makefile:
#   include dataplane/bench.mk
# A weft-proxy pair (release binaries, STRICT mTLS between them) against
# the echo server called directly, an nginx reverse-proxy pair and a
# plain TCP relay pair (the floor: weft-echo relay), for
# HTTP/1.1 and HTTP/2 at 1,000 and 10,000 req/s (weft-echo load: open
# loop, wrk2-style, latency from each request's due time) and at max
# throughput (h2load). Prints one table; never fails on figures. Installs h2load
# (nghttp2-client) and nginx (nginx-light) with apt-get when missing.

BENCH_DURATION ?= 10
BENCH_RATES ?= 1000 10000

.PHONY: bench-proxy

bench-proxy: ## proxy pair vs direct vs nginx pair vs relay floor: latency added, req/s per core, RSS (weft-echo load, h2load)
	BENCH_DURATION=$(BENCH_DURATION) BENCH_RATES="$(BENCH_RATES)" CARGO="$(CARGO)" dataplane/bench/run.sh
