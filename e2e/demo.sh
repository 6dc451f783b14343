#!/usr/bin/env bash
# `make demo`: a local cluster (unless KUBECONFIG points at one), Weft's
# images and CRDs, a MeshInstallation, the echo sample app with the
# reference's canary policy, and traffic to it, printed.
#
# Env: KUBECONFIG (use that cluster instead of starting local cluster a;
#      its nodes must already have the weft.local images), MAKE, DEMO_CLUSTER (a).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAKE="${MAKE:-make}"
cluster="${DEMO_CLUSTER:-a}"
say() { printf '\n== %s\n' "$*" >&2; }

if [[ -z "${KUBECONFIG:-}" ]]; then
  say "starting local cluster $cluster (first run builds Kubernetes from source: tens of minutes)"
  "$MAKE" --no-print-directory cluster-up CLUSTER="$cluster" >/dev/null
  KUBECONFIG="$("$MAKE" --no-print-directory -s cluster-kubeconfig CLUSTER="$cluster")"
  export KUBECONFIG
  say "building Weft's images and loading them into cluster $cluster"
  "$MAKE" --no-print-directory images CLUSTERS="$cluster"
else
  say "using the cluster of KUBECONFIG=$KUBECONFIG (images weft.local/*:dev must be on its nodes)"
fi

kubectl_bin=kubectl
if dir="$(e2e/cluster/build.sh --print 2>/dev/null)" && [[ -x "$dir/kubectl" ]]; then
  kubectl_bin="$dir/kubectl"
fi
k() { "$kubectl_bin" "$@"; }

say "installing Weft's CRDs (weft.dev, Istio-compatible, Gateway API)"
k apply --server-side --force-conflicts --field-manager=weft-demo -k config/crd >/dev/null
k wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=weft >/dev/null
k get crd -o custom-columns=CRD:.metadata.name,VERSIONS:.spec.versions[*].name | grep -E 'weft|istio|gateway'

say "applying a MeshInstallation"
k apply --server-side --field-manager=weft-demo -f config/samples/weft/meshinstallation-minimal.yaml
k get meshinstallations

say "deploying the echo app (v1 and v2) with a 90/10 canary VirtualService"
k apply --server-side --field-manager=weft-demo -f e2e/demo/app.yaml
k -n weft-demo rollout status deployment/echo-v1 --timeout=120s
k -n weft-demo rollout status deployment/echo-v2 --timeout=120s
k -n weft-demo get pods,svc,virtualservices,destinationrules

say "sending 40 requests from a client pod"
k -n weft-demo delete job traffic --ignore-not-found >/dev/null
k apply --server-side --field-manager=weft-demo -f e2e/demo/traffic.yaml >/dev/null
k -n weft-demo wait --for=condition=Complete --timeout=120s job/traffic
reports="$(k -n weft-demo logs job/traffic)"
echo "$reports" | head -n 1
say "responses by version"
echo "$reports" | grep -o '"version":"[^"]*"' | sort | uniq -c
echo "(without the data plane, kube-proxy picks one pod per keep-alive connection; with weft-proxy"
echo " injected, the VirtualService above splits requests 90/10 between v1 and v2)"

say "done: KUBECONFIG=$KUBECONFIG; 'make demo-down' stops the local cluster"
