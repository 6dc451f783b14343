#!/usr/bin/env bash
# Smoke test of running local clusters: for each cluster given, checks the
# node is Ready, /version, a pod runs, pod -> ClusterIP, DNS from a pod,
# host -> ClusterIP; with two clusters, a pod of the first reaches the
# second's node IP and a pod IP of the second. Creates and deletes a fresh
# namespace weft-smoke-<random>. Prints "N passed, N failed".
#
# Usage: smoke.sh a [b]      (clusters must be up: e2e/cluster/up.sh a)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $# -ge 1 && $# -le 2 ]] || die "usage: smoke.sh <cluster> [<other cluster>]"
KUBECTL="$("$E2E_CLUSTER_DIR/build.sh" --print)/kubectl"
[[ -x "$KUBECTL" ]] || die "no kubectl in the bin dir; run e2e/cluster/build.sh"

NS="weft-smoke-$RANDOM$RANDOM"
passed=0 failed=0
check() { # check <description> <cmd...>
  local what="$1"; shift
  if out="$("$@" 2>&1)"; then
    echo "ok   $what"; passed=$((passed + 1))
  else
    echo "FAIL $what"; echo "$out" | tail -n 5 | sed 's/^/     /'; failed=$((failed + 1))
  fi
}
kc() { "$KUBECTL" --kubeconfig "$WEFT_STATE/$1/kubeconfig" --request-timeout=20s "${@:2}"; }

server_pod() { # server_pod <cluster>: httpd pod + Service in weft-smoke
  kc "$1" create namespace "$NS" --dry-run=client -o yaml | kc "$1" apply -f - >/dev/null
  kc "$1" -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $TOOLBOX_IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "mkdir -p /tmp/www && echo hello-from-$1 > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $TOOLBOX_IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
  kc "$1" -n "$NS" wait --for=condition=Ready pod/web pod/client --timeout=90s
}

for c in "$@"; do
  cluster_vars "$c"
  check "[$c] node $NODE_NAME Ready" kc "$c" wait --for=condition=Ready "node/$NODE_NAME" --timeout=30s
  check "[$c] /version is v1.35.4" bash -c "$(declare -f kc); KUBECTL='$KUBECTL' WEFT_STATE='$WEFT_STATE'; kc $c get --raw /version | grep -q '\"gitVersion\": \"v1.35.4\"'"
  check "[$c] CoreDNS Available" kc "$c" -n kube-system wait --for=condition=Available deploy/coredns --timeout=30s
  check "[$c] pods run (web, client)" server_pod "$c"
  check "[$c] pod -> ClusterIP by DNS name" kc "$c" -n "$NS" exec client -- timeout 10 wget -q -O- http://web.$NS.svc.cluster.local
  check "[$c] DNS kubernetes.default.svc.cluster.local -> $API_SVC_IP" \
    bash -c "$(declare -f kc); KUBECTL='$KUBECTL' WEFT_STATE='$WEFT_STATE'; kc $c -n $NS exec client -- nslookup kubernetes.default.svc.cluster.local | grep -q 'Address: $API_SVC_IP'"
  svc_ip="$(kc "$c" -n "$NS" get svc web -o jsonpath='{.spec.clusterIP}' 2>/dev/null || true)"
  check "[$c] host -> ClusterIP $svc_ip" bash -c "exec 3<>/dev/tcp/$svc_ip/80 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && timeout 5 grep -q hello-from-$c <&3"
done

if [[ $# -eq 2 ]]; then
  a="$1" b="$2"; cluster_vars "$b"
  bpod="$(kc "$b" -n "$NS" get pod web -o jsonpath='{.status.podIP}' 2>/dev/null || true)"
  check "[$a -> $b] pod reaches $b's pod IP $bpod" kc "$a" -n "$NS" exec client -- timeout 10 wget -q -O- "http://$bpod:8080"
  check "[$a -> $b] pod reaches $b's node IP $NODE_IP (API server)" \
    bash -c "$(declare -f kc); KUBECTL='$KUBECTL' WEFT_STATE='$WEFT_STATE'; kc $a -n $NS exec client -- timeout 10 wget -O- http://$NODE_IP:6443 2>&1 | grep -q '400 Bad Request'"
fi

for c in "$@"; do kc "$c" delete namespace "$NS" --timeout=60s >/dev/null 2>&1 || true; done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
