#!/usr/bin/env bash
# Profile-guided release build of weft-proxy: the binary the images ship
# and `make bench-proxy` measures.
#
#   dataplane/pgo/build.sh OUT
#
# 1. an instrumented static build (-Cprofile-generate) runs the benchmark
#    topology (dataplane/bench/run.sh, BENCH_TRAIN=1: HTTP/1.1 and HTTP/2
#    through the mTLS pair, loaded and one request at a time);
# 2. llvm-profdata (rustup's llvm-tools) merges what it recorded;
# 3. the static build with -Cprofile-use is copied to OUT (only when it
#    differs, so images are not rebuilt for nothing).
# The merged profile is cached under $WEFT_CACHE/pgo (~/.cache/weft/pgo),
# keyed by the sources it was recorded from, the toolchain and the flags:
# a tree seen before skips steps 1 and 2.
#
# Environment: CARGO (cargo), STATIC_TARGET (x86_64-unknown-linux-gnu),
# STATIC_RUSTFLAGS (-C target-feature=+crt-static), WEFT_CACHE,
# WEFT_PGO=0 for a plain static build (no profile).
set -euo pipefail

out=${1:?usage: dataplane/pgo/build.sh OUT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
CARGO=${CARGO:-cargo}
STATIC_TARGET=${STATIC_TARGET:-x86_64-unknown-linux-gnu}
STATIC_RUSTFLAGS=${STATIC_RUSTFLAGS:--C target-feature=+crt-static}
cache=${WEFT_CACHE:-$HOME/.cache/weft}/pgo
work="$root/target/pgo"

log() { printf '[pgo] %s\n' "$*" >&2; }

# build TARGET_DIR RUSTFLAGS: the static release weft-proxy; prints its path.
# Call it as `bin=$(build …)`: set -e does not see a failure inside a
# substitution that is an argument of another command.
build() {
    (cd "$root" && CARGO_TARGET_DIR="$1" RUSTFLAGS="$STATIC_RUSTFLAGS $2" $CARGO build -q \
        --release --target "$STATIC_TARGET" -p weft-proxy --bin weft-proxy) || return
    echo "$1/$STATIC_TARGET/release/weft-proxy"
}

install_if_changed() {
    mkdir -p "$(dirname "$out")"
    if ! cmp -s "$1" "$out"; then
        cp "$1" "$out.tmp"
        mv -f "$out.tmp" "$out"
    fi
    log "weft-proxy: $out"
}

if [[ ${WEFT_PGO:-1} == 0 ]]; then
    # The flags and target dir of `make images-static`: its crates are reused.
    log "WEFT_PGO=0: static release build without a profile"
    bin=$(build "$root/target" "")
    install_if_changed "$bin"
    exit 0
fi

sysroot=$(rustc --print sysroot)
profdata_tool() { find "$sysroot/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -n 1; }
tool=$(profdata_tool)
if [[ -z $tool ]]; then
    log "installing rustup's llvm-tools (llvm-profdata)"
    rustup component add llvm-tools >&2
    tool=$(profdata_tool)
    [[ -n $tool ]] || { log "llvm-profdata not found under $sysroot after 'rustup component add llvm-tools'"; exit 1; }
fi

# What the profile depends on: the proxy's and the echo server's sources
# and scripts (not their documents), the lock file, the workspace
# manifest, the toolchain, the flags.
key=$(cd "$root" && {
    git ls-files -z dataplane e2e/echo Cargo.lock Cargo.toml ':!:*.md' | xargs -0 sha256sum
    rustc -vV
    echo "$STATIC_TARGET $STATIC_RUSTFLAGS"
} | sha256sum | cut -c1-16)
profile="$cache/weft-proxy-$key.profdata"

if [[ ! -s $profile ]]; then
    log "recording a profile (no cached one for this tree: $profile)"
    raw="$work/raw"
    rm -rf "$raw"
    mkdir -p "$raw" "$cache"
    instrumented=$(build "$work/generate" "-Cprofile-generate=$raw")
    WEFT_PROXY_BIN="$instrumented" BENCH_TRAIN=1 CARGO="$CARGO" \
        STATIC_TARGET="$STATIC_TARGET" STATIC_RUSTFLAGS="$STATIC_RUSTFLAGS" \
        "$root/dataplane/bench/run.sh"
    shopt -s nullglob
    recorded=("$raw"/*.profraw)
    ((${#recorded[@]})) || { log "the training run wrote no profile under $raw"; exit 1; }
    "$tool" merge -o "$profile.tmp" "${recorded[@]}"
    mv -f "$profile.tmp" "$profile"
fi

# A fixed path in the flags: a new profile does not rebuild every crate.
# (A cached profile on a fresh clone: nothing has made $work yet.)
mkdir -p "$work"
cmp -s "$profile" "$work/weft-proxy.profdata" || cp "$profile" "$work/weft-proxy.profdata"
bin=$(build "$work/use" "-Cprofile-use=$work/weft-proxy.profdata")
install_if_changed "$bin"
