#!/usr/bin/env bash
# Show the state of local cluster <name>: each daemon (PID, alive, RSS), the
# total RSS of the cluster (daemons, containerd shims, every container process
# in the cluster's memory cgroup), the node's taints and pressure conditions,
# and the free disk and memory the kubelet's eviction thresholds look at.
#
# Usage: status.sh <name>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $# -eq 1 ]] || die "usage: status.sh <cluster-name>"
cluster_vars "$1"
[[ -d "$STATE" ]] || { echo "cluster $CLUSTER: not set up (no $STATE)"; exit 1; }

rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A seen=()
total=0 down=0
echo "cluster $CLUSTER: node $NODE_NAME $NODE_IP, kubeconfig $KUBECONFIG_ADMIN"
for d in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
  if pid_alive "$d"; then
    pid="$(cat "$PIDS/$d.pid")"; r="$(rss "$pid")"; seen[$pid]=1; total=$((total + r))
    printf "  %-24s pid %-8s %6d MiB\n" "$d" "$pid" $((r / 1024))
  else
    printf "  %-24s DOWN\n" "$d"; down=1
  fi
done
others=()
for f in $(find "$STATE/containerd/state" -name init.pid 2>/dev/null); do
  p="$(cat "$f")"; others+=("$p" "$(awk '/^PPid/{print $2}' "/proc/$p/status" 2>/dev/null || true)")
done
others+=($(find "/sys/fs/cgroup/memory/$CGROUP_NAME" -name cgroup.procs -exec cat {} + 2>/dev/null || true))
rest=0
for p in "${others[@]}"; do
  [[ -n "$p" && -z "${seen[$p]:-}" ]] || continue
  seen[$p]=1; r="$(rss "$p")"; rest=$((rest + r))
done
total=$((total + rest))
printf "  %-24s %15d MiB\n" "shims + containers" $((rest / 1024))
printf "  %-24s %15d MiB\n" "total RSS" $((total / 1024))
if pid_alive kube-apiserver; then
  KUBECTL="$("$E2E_CLUSTER_DIR/build.sh" --print)/kubectl"
  # A taint (e.g. node.kubernetes.io/disk-pressure) is why pods stay Pending
  # with "untolerated taint(s)"; the condition next to it says why.
  taints="$("$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" get node "$NODE_NAME" \
    -o 'jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}' 2>/dev/null || echo '?')"
  conds="$("$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" get node "$NODE_NAME" \
    -o 'jsonpath={range .status.conditions[*]}{.type}={.status} {end}' 2>/dev/null || echo '?')"
  echo "  node taints: ${taints:-none}"
  echo "  node conditions: $conds"
fi
echo "  disk free under $STATE: $(df -h --output=avail "$STATE" | tail -1 | tr -d ' ') of $(df -h --output=size "$STATE" | tail -1 | tr -d ' ')"
echo "  memory available: $(awk '/^MemAvailable/{printf "%d MiB", $2/1024}' /proc/meminfo)"
exit $down
