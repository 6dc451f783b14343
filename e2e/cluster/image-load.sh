#!/usr/bin/env bash
# Import an image archive (OCI archive, e.g. from build-image.sh, or a
# `docker save` archive) into a running cluster's containerd, namespace k8s.io,
# so pods with imagePullPolicy IfNotPresent (or Never) run it.
#
# Usage: image-load.sh <cluster-name> <archive.tar>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: image-load.sh <cluster-name> <archive.tar>"
cluster_vars "$1"
archive="$2"
[[ -f "$archive" ]] || die "no such archive: $archive"
[[ -S "$CTR_SOCK" ]] && pid_alive containerd \
  || die "cluster '$CLUSTER' is not running (no containerd at $CTR_SOCK); start it with: e2e/cluster/up.sh $CLUSTER"
out="$(ctr_c images import "$archive" 2>&1)" || die "import of $archive failed: $out"
echo "$out" | grep -v '^\s*$' | sed "s/^/image-load.sh: [$CLUSTER] /" >&2
