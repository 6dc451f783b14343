#!/usr/bin/env bash
# Check that `make cluster-down CLUSTER=<name>` left nothing behind.
#
#   e2e/check-clean.sh snapshot <name> <file>   while the cluster runs: record
#        its processes (recorded PIDs, everything in its cgroups, anything whose
#        command line names its state dir), its pods' network namespaces and
#        its mounts
#   e2e/check-clean.sh verify <name> [<file>]   after cluster-down: fail (exit 1)
#        if a recorded process still runs (same PID and start time), or any
#        process, mount, netns, veth, route, cgroup, iptables rule or state dir
#        of the cluster remains
#
# Names and paths come from e2e/cluster/lib.sh (cluster_vars), read only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/cluster/lib.sh
source "$here/cluster/lib.sh"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 2 ]] || usage
mode="$1" name="$2" file="${3:-}"
cluster_vars "$name"

starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }
state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }
comm() { cat "/proc/$1/comm" 2>/dev/null || echo "?"; }

# PIDs whose command line mentions the state dir (daemons, shims).
pids_naming_state() {
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    [[ "$(state "$p")" == Z ]] && continue # exited, waiting to be reaped
    { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$STATE/" && echo "$p"
  done
  return 0
}

# PIDs in the cluster's cgroups (containers and their shims).
pids_in_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/"$CGROUP_NAME"; do
    [[ -d "$d" ]] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# Mount points under the state dir.
mounts_under_state() {
  awk '{print $5}' /proc/self/mountinfo | while IFS= read -r m; do
    [[ "$m" == "$STATE" || "$m" == "$STATE"/* ]] && echo "$m"
  done
  return 0
}

snapshot() {
  [[ -n "$file" ]] || usage
  mkdir -p "$(dirname "$file")"
  local pids p ns inode
  pids="$( { for f in "$PIDS"/*.pid; do [[ -f "$f" ]] && cat "$f"; done; pids_in_cgroups; pids_naming_state; } 2>/dev/null | grep -E '^[0-9]+$' | sort -un || true)"
  {
    echo "# check-clean snapshot of cluster $name at $(date -u +%FT%TZ)"
    for p in $pids; do
      [[ -d "/proc/$p" ]] && echo "pid $p $(starttime "$p") $(comm "$p")"
    done
    # Network namespaces of the cluster's processes that are bind-mounted
    # under /run/netns (the node's and the pods').
    declare -A inodes=()
    for p in $pids; do
      ns="$(readlink "/proc/$p/ns/net" 2>/dev/null || true)"
      [[ "$ns" =~ \[([0-9]+)\] ]] && inodes["${BASH_REMATCH[1]}"]=1
    done
    local dirs=(/run/netns) d
    [[ /var/run -ef /run ]] || dirs+=(/var/run/netns)
    for d in "${dirs[@]}"; do
      for ns in "$d"/*; do
        [[ -e "$ns" ]] || continue
        inode="$(stat -L -c %i "$ns" 2>/dev/null || true)"
        [[ -n "$inode" && -n "${inodes[$inode]:-}" ]] && echo "netns $ns"
      done
    done
    mounts_under_state | sed 's/^/mount /'
  } >"$file"
  echo "check-clean: cluster $name: recorded $(grep -c '^pid ' "$file" || true) processes, $(grep -c '^netns ' "$file" || true) netns, $(grep -c '^mount ' "$file" || true) mounts in $file" >&2
}

verify() {
  local problems=() p c path m
  if [[ -n "$file" && -f "$file" ]]; then
    while read -r kind a b c; do
      case "$kind" in
        pid)
          # Same PID and start time, and not a zombie (exited, not yet reaped).
          if [[ -d "/proc/$a" && "$(starttime "$a")" == "$b" && "$(state "$a")" != Z ]]; then
            problems+=("process $a ($c) still runs")
          fi ;;
        netns)
          [[ -e "$a" ]] && problems+=("network namespace $a still exists")
          grep -qF " $a " /proc/self/mountinfo && problems+=("network namespace $a is still mounted") ;;
        mount)
          grep -qF " $a " /proc/self/mountinfo && problems+=("mount $a still present") ;;
      esac
    done < <(grep -v '^#' "$file")
  elif [[ -n "$file" ]]; then
    echo "check-clean: no snapshot $file; checking current state only" >&2
  fi
  for p in $(pids_naming_state); do
    problems+=("process $p ($(comm "$p")) names $STATE on its command line")
  done
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NETNS" && problems+=("network namespace $NETNS still exists")
  ip link show "$VETH_HOST" >/dev/null 2>&1 && problems+=("veth $VETH_HOST still exists")
  ip route show "$POD_CIDR" 2>/dev/null | grep -q . && problems+=("route to $POD_CIDR still present")
  while IFS= read -r m; do problems+=("mount $m under the state dir"); done < <(mounts_under_state)
  grep -F " $STATE" /proc/mounts >/dev/null && problems+=("/proc/mounts still lists paths under $STATE")
  [[ -e "$STATE" ]] && problems+=("state dir $STATE still exists")
  for path in /sys/fs/cgroup/*/"$CGROUP_NAME"; do
    [[ -d "$path" ]] && problems+=("cgroup $path still exists")
  done
  iptables -S FORWARD 2>/dev/null | grep -qF -- "$IPT_COMMENT" && problems+=("iptables FORWARD rules tagged $IPT_COMMENT remain")
  if [[ ${#problems[@]} -gt 0 ]]; then
    echo "check-clean: cluster $name: NOT clean after cluster-down:" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  echo "check-clean: cluster $name: clean (no process, mount, netns, veth, route, cgroup, iptables rule or state left)" >&2
}

case "$mode" in
  snapshot) snapshot ;;
  verify) verify ;;
  *) usage ;;
esac
