#!/usr/bin/env bash
# `make test-e2e`: build the e2e tests and images, bring up clusters a and b,
# load the images, run the e2e tests, and ALWAYS tear the clusters down and
# check that nothing was left behind. Exits with the tests' status (or 1 if
# only the teardown check failed).
#
# Env: E2E_CLUSTERS (default "a b": the tests' first and second cluster; any
#      two of a..h, exported to the tests as WEFT_E2E_CLUSTER_A/B),
#      E2E_PACKAGES (default weft-e2e; e2e.mk adds weftd),
#      E2E_TEST_ARGS (default "--ignored --test-threads=2"), MAKE, CARGO,
#      E2E_KEEP_CLUSTERS=1 to skip the teardown (for debugging).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

MAKE="${MAKE:-make}"
CARGO="${CARGO:-cargo}"
read -r -a clusters <<<"${E2E_CLUSTERS:-a b}"
read -r -a packages <<<"${E2E_PACKAGES:-weft-e2e}"
read -r -a test_args <<<"${E2E_TEST_ARGS:---ignored --test-threads=2}"
[[ ${#clusters[@]} -ge 2 ]] || { echo "test-e2e: E2E_CLUSTERS needs two clusters (got '${clusters[*]}')" >&2; exit 2; }
export WEFT_E2E_CLUSTER_A="${clusters[0]}" WEFT_E2E_CLUSTER_B="${clusters[1]}"
pkg_args=()
for p in "${packages[@]}"; do pkg_args+=(-p "$p"); done
snapdir=target/e2e
status=0

log() { echo "test-e2e: $*" >&2; }

teardown() {
  local rc=$? c
  trap - EXIT INT TERM
  [[ $status -eq 0 ]] && status=$rc
  if [[ "${E2E_KEEP_CLUSTERS:-}" == 1 ]]; then
    log "E2E_KEEP_CLUSTERS=1: leaving clusters ${clusters[*]} up"
    exit "$status"
  fi
  mkdir -p "$snapdir"
  for c in "${clusters[@]}"; do e2e/check-clean.sh snapshot "$c" "$snapdir/snapshot-$c.txt" || true; done
  for c in "${clusters[@]}"; do
    "$MAKE" --no-print-directory cluster-down CLUSTER="$c" || { log "cluster-down $c failed"; [[ $status -ne 0 ]] || status=1; }
  done
  for c in "${clusters[@]}"; do
    e2e/check-clean.sh verify "$c" "$snapdir/snapshot-$c.txt" || { [[ $status -ne 0 ]] || status=1; }
  done
  log "done, exit $status"
  exit "$status"
}

step() { # step <description> <cmd...>: run, remember the first failure, stop on failure
  local what="$1"; shift
  log "$what"
  "$@" || { status=$?; log "FAILED ($status): $what"; exit "$status"; }
}

# Build first (no cluster needed): a compile error fails fast.
step "building the e2e tests" "$CARGO" test "${pkg_args[@]}" --no-run
step "building the images" "$MAKE" --no-print-directory images-build

trap teardown EXIT
trap 'status=130; exit 130' INT TERM
for c in "${clusters[@]}"; do
  step "starting cluster $c" "$MAKE" --no-print-directory cluster-up CLUSTER="$c"
done
step "loading the images into ${clusters[*]}" "$MAKE" --no-print-directory images CLUSTERS="${clusters[*]}"
log "running the e2e tests"
"$CARGO" test --no-fail-fast "${pkg_args[@]}" -- "${test_args[@]}" || status=$?
if [[ $status -ne 0 ]]; then
  log "FAILED ($status): running the e2e tests; the clusters as the tests left them:"
  for c in "${clusters[@]}"; do e2e/cluster/status.sh "$c" >&2 || true; done
  exit "$status"
fi
