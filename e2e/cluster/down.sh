#!/usr/bin/env bash
# Stop local cluster <name> and remove everything up.sh made for it: its
# processes (by recorded PID, never by name), containers and shims, mounts,
# cgroups, network namespace, veth, root-ns routes and iptables rules, and its
# state dir. Cached binaries and images are kept. Idempotent.
#
# Usage: down.sh <name>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || die "usage: down.sh <cluster-name>   (e.g. down.sh a)"
cluster_vars "$1"
[[ $EUID -eq 0 ]] || die "must run as root"

if [[ -d "$STATE" ]]; then
  exec 7>"$STATE/.lock"
  flock -w 300 7 || die "another up.sh/down.sh for cluster $CLUSTER holds $STATE/.lock"
fi

stop_named() { # stop_named <name>: the daemon recorded in pids/<name>.pid
  local f="$PIDS/$1.pid"
  [[ -f "$f" ]] || return 0
  if pid_alive "$1"; then stop_pid "$(cat "$f")" 20; fi
  rm -f "$f"
}

# 1. Node agents first, so nothing restarts the containers we remove.
stop_named kube-proxy
stop_named kubelet
stop_named kube-scheduler
stop_named kube-controller-manager

# 2. Containers, through the cluster's own containerd while it runs.
shim_dir="$STATE/containerd/state/io.containerd.runtime.v2.task"
shim_pids=()   # containerd 1.6 records each task's init pid; its parent is the shim
if [[ -d "$shim_dir" ]]; then
  while IFS= read -r f; do
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ && -d /proc/$pid ]] || continue
    ppid="$(awk '/^PPid:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    [[ "$ppid" =~ ^[0-9]+$ && "$(readlink "/proc/$ppid/exe" 2>/dev/null)" == *containerd-shim* ]] && shim_pids+=("$ppid")
  done < <(find "$shim_dir" -name init.pid 2>/dev/null)
fi
netns_paths=()
container_ids=()
if [[ -S "$CTR_SOCK" ]] && pid_alive containerd; then
  for id in $(ctr_c containers ls -q 2>/dev/null); do
    container_ids+=("$id")
    while IFS= read -r p; do netns_paths+=("$p"); done \
      < <(ctr_c containers info "$id" 2>/dev/null | grep -o '"/var/run/netns/[^"]*"' | tr -d '"' | sort -u)
  done
  tasks="$(ctr_c tasks ls -q 2>/dev/null || true)"
  for id in $tasks; do ctr_c tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $tasks; do ctr_c tasks rm -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_c containers ls -q 2>/dev/null); do ctr_c containers rm "$id" >/dev/null 2>&1 || true; done
fi
stop_named containerd
for pid in "${shim_pids[@]}"; do
  [[ "$pid" =~ ^[0-9]+$ ]] && stop_pid "$pid" 5
done

# 3. Control plane.
stop_named kube-apiserver
stop_named etcd

# 4. Anything still in the cluster's cgroups (container processes whose shim
#    died): kill it, then remove the cgroups bottom-up.
for hier in /sys/fs/cgroup/*/; do
  d="$hier$CGROUP_NAME"
  [[ -d "$d" ]] || continue
  for i in 1 2 3 4 5; do
    left="$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -z "$left" ]] && break
    for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.2
  done
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done

# 5. Mounts: everything under the state dir, and the pods' network namespaces.
umount_under() {
  local prefix="$1" m
  awk '{print $5}' /proc/self/mountinfo | { grep -F "$prefix" || true; } | sort -r | while IFS= read -r m; do
    [[ "$m" == "$prefix" || "$m" == "$prefix"/* ]] && umount -l "$m" 2>/dev/null || true
  done
}
umount_under "$STATE"
for p in "${netns_paths[@]}"; do
  umount -l "$p" 2>/dev/null || true
  rm -f "$p"
done

# 6. Network: root-ns iptables rules tagged with this cluster, routes, veth, netns.
while IFS= read -r rule; do
  [[ -n "$rule" ]] && eval "iptables ${rule/-A /-D }" 2>/dev/null || true
done < <(iptables -S FORWARD 2>/dev/null | grep -F -- "--comment $IPT_COMMENT" || true)
ip route del "$POD_CIDR" 2>/dev/null || true
ip route del "$SVC_CIDR" 2>/dev/null || true
ip link del "$VETH_HOST" 2>/dev/null || true
ip netns del "$NETNS" 2>/dev/null || true

# 7. Files outside the state dir that kubelet and CNI write.
for l in /var/log/containers/*.log; do
  [[ -L "$l" && "$(readlink "$l")" == "$STATE"/* ]] && rm -f "$l"
done
rm -rf /var/lib/cni/results/"weft-$CLUSTER"-* 2>/dev/null || true
for id in "${container_ids[@]}"; do   # containerd's own loopback network cache
  rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
done

# 8. State.
if [[ -d "$STATE" ]]; then
  rm -rf --one-file-system "$STATE" || die "could not remove $STATE; see 'grep $STATE /proc/self/mountinfo'"
fi
log "cluster $CLUSTER is down"
