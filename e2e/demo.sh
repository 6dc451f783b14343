#!/usr/bin/env bash
# `make demo`: a local cluster (unless KUBECONFIG points at one), Weft's
# images, the operator from config/ (as `make deploy`), a MeshInstallation
# with an ingress gateway, a two-service app in an injected namespace, and
# traffic through the gateway and between the services, with what to look
# at printed.
#
# Env: KUBECONFIG (use that cluster instead of starting a local one; its
#      nodes must already have the weft.local/*:dev images), MAKE,
#      DEMO_CLUSTER (the local cluster's letter, default a).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAKE="${MAKE:-make}"
cluster="${DEMO_CLUSTER:-a}"
ns=weft-demo
say() { printf '\n== %s\n' "$*"; }

if [[ -z "${KUBECONFIG:-}" ]]; then
  say "starting local cluster $cluster (first run builds Kubernetes from source: tens of minutes)"
  "$MAKE" --no-print-directory cluster-up CLUSTER="$cluster" >/dev/null
  KUBECONFIG="$("$MAKE" --no-print-directory -s cluster-kubeconfig CLUSTER="$cluster")"
  export KUBECONFIG
  say "building Weft's images and loading them into cluster $cluster"
  "$MAKE" --no-print-directory images CLUSTERS="$cluster" >/dev/null
  "$MAKE" --no-print-directory -s images-list
else
  say "using the cluster of KUBECONFIG=$KUBECONFIG (images weft.local/*:dev must be on its nodes)"
fi

kubectl_bin=kubectl
if dir="$(e2e/cluster/build.sh --print 2>/dev/null)" && [[ -x "$dir/kubectl" ]]; then
  kubectl_bin="$dir/kubectl"
fi
k() { "$kubectl_bin" "$@"; }

say "installing the operator from config/default (make deploy)"
k apply --server-side --force-conflicts --field-manager=weft-deploy -k config/default >/dev/null
k wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=weft >/dev/null
k -n weft-operator rollout status deployment/weft-operator --timeout=180s
k -n weft-operator get pods

say "applying a MeshInstallation with an ingress gateway (config/samples/weft/meshinstallation-ingress.yaml)"
started=$(date +%s.%N)
k apply --server-side --field-manager=weft-demo -f config/samples/weft/meshinstallation-ingress.yaml
k wait --for=condition=Ready --timeout=300s meshinstallation/default >/dev/null
ready=$(date +%s.%N)
awk -v s="$started" -v r="$ready" 'BEGIN { printf "Ready %.1fs after apply\n", r - s }'
k get meshinstallations
k get meshinstallation default \
  -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'

say "deploying the app: web and api (echo servers) in namespace $ns (istio-injection=enabled), and an Istio Gateway + VirtualService for the ingress gateway"
k apply --server-side --field-manager=weft-demo -f e2e/demo/app.yaml
k -n "$ns" rollout status deployment/web --timeout=180s
k -n "$ns" rollout status deployment/api --timeout=180s
# The gateway proxy is ready once weftd gave it a listener (from the Gateway above).
k -n weft-system rollout status deployment/ingress --timeout=180s
k -n weft-system get deployments,services
echo "pods and their containers (weft-init and weft-proxy were injected by weftd's webhook):"
k -n "$ns" get pods -o custom-columns='POD:.metadata.name,READY:.status.containerStatuses[*].ready,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name'

say "web calls api over mTLS (5 requests from inside the web pod, through its sidecar)"
calls="$(k -n "$ns" exec deployment/web -c echo -- /weft-echo client \
  --url "http://api.$ns.svc.cluster.local:8080/from-web" --count 5 --retry-for 30s)"
echo "$calls" | jq -c '{answered_by: .pod, path: .path, xfcc: .headers["x-forwarded-client-cert"]}'

say "a request from outside the cluster through the ingress gateway"
node_ip="$(k get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
node_port="$(k -n weft-system get service ingress -o jsonpath='{.spec.ports[?(@.port==80)].nodePort}')"
url="http://$node_ip:$node_port/from-outside"
echo "curl $url"
answer=""
for _ in $(seq 60); do
  if answer="$(curl -sf --max-time 5 -H 'Host: demo.example.com' "$url")"; then break; fi
  answer=""
  sleep 1
done
[[ -n "$answer" ]] || { echo "no answer through the gateway at $url" >&2; exit 1; }
echo "$answer" | jq -c '{answered_by: .pod, host: .authority, path: .path, xfcc: .headers["x-forwarded-client-cert"]}'

say "what the sidecars counted: istio_requests_total (port 15090, /stats/prometheus)"
api_pod="$(k -n "$ns" get pods -l app=api -o jsonpath='{.items[0].metadata.name}')"
# One line per istio_requests_total series: count, source -> destination principal, code.
principals() {
  { grep '^istio_requests_total{' || true; } | { grep 'reporter="destination"' || true; } | while read -r series count; do
    label() { grep -o "$1=\"[^\"]*\"" <<<"$series" | cut -d'"' -f2; }
    printf '  %s request(s)  %s -> %s  (HTTP %s)\n' "$count" \
      "$(label source_principal)" "$(label destination_principal)" "$(label response_code)"
  done
}
echo "api (called by web):"
k get --raw "/api/v1/namespaces/$ns/pods/$api_pod:15090/proxy/stats/prometheus" | principals
web_pod="$(k -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')"
echo "web (called through the ingress gateway):"
k get --raw "/api/v1/namespaces/$ns/pods/$web_pod:15090/proxy/stats/prometheus" | principals

cat <<EOF

== where to look
  sidecar and gateway metrics (Istio names): <pod IP>:15090/stats/prometheus, e.g.
      kubectl get --raw /api/v1/namespaces/$ns/pods/$api_pod:15090/proxy/stats/prometheus
  proxy admin (config, certificates; loopback only):
      kubectl -n $ns port-forward $api_pod 15000 & curl localhost:15000/certs
  weftd metrics and debug: kubectl -n weft-system port-forward deploy/weftd-default 15014, then /metrics, /debug/*
  operator metrics: kubectl -n weft-operator port-forward deploy/weft-operator 8080, then /metrics
  status: kubectl get meshinstallations; kubectl describe meshinstallation default
  the ingress gateway: $url

done: KUBECONFIG=$KUBECONFIG; 'make demo-down' stops the local cluster
EOF
