#!/usr/bin/env bash
# Build the pinned Kubernetes, etcd, CoreDNS and pause binaries for the local
# e2e clusters, or reuse them when the pins have not changed.
#
#   e2e/cluster/build.sh            build if needed, print the bin dir
#   e2e/cluster/build.sh --print    print the bin dir only (no build)
#
# Pins: e2e/cluster/go.mod+go.sum (Kubernetes, etcd), coredns/go.mod+go.sum,
# pause/main.go. The cache key is a hash of those files, so a changed pin
# rebuilds into a new dir and an unchanged one reuses the old.
# Layout: ${WEFT_CACHE:-~/.cache/weft}/go/{mod,build}  Go module + build cache
#         ${WEFT_CACHE}/k8s/<key>/bin/                  the binaries
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${WEFT_CACHE:-$HOME/.cache/weft}"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0

key="$(cd "$here" && cat go.mod go.sum coredns/go.mod coredns/go.sum pause/main.go | sha256sum | cut -c1-16)"
dir="$cache/k8s/$key"
bin="$dir/bin"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns pause)

if [[ "${1:-}" == "--print" ]]; then echo "$bin"; exit 0; fi

complete() { [[ -f "$dir/complete" ]] && for b in "${bins[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }
# The binaries are what is cached. Go's build cache for them is several GB
# of disk that only a change of pins would reuse (a rebuild starts from the
# module cache, which stays), so it goes once the binaries exist.
trim_go_build_cache() { rm -rf "$GOCACHE"; }
if complete; then trim_go_build_cache; echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: go not found; install Go >= 1.25 (the pins need it)" >&2; exit 1; }
mkdir -p "$dir" "$GOMODCACHE" "$GOCACHE"
exec 9>"$dir/.lock"
flock 9
if complete; then echo "$bin"; exit 0; fi

start=$(date +%s)
tmp="$dir/bin.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
cd "$here"
kver="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"          # e.g. v1.35.4
minor="$(echo "$kver" | cut -d. -f2)"
x=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  x+=" -X $p.gitVersion=$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  x+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
ldflags="-s -w$x"

echo "build.sh: building Kubernetes $kver, etcd, CoreDNS, pause into $bin (cold: tens of minutes on 2 cores)" >&2
go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
go build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./pause
(cd coredns && go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" github.com/coredns/coredns)

rm -rf "$bin"; mv "$tmp" "$bin"
trim_go_build_cache
secs=$(( $(date +%s) - start ))
echo "$kver" > "$dir/version"
echo "built in ${secs}s on $(nproc) cores at $(date -u +%FT%TZ)" > "$dir/complete"
echo "build.sh: done in ${secs}s" >&2
echo "$bin"
