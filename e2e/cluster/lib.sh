# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings of the e2e cluster scripts (sourced, not run).
#
# Address plan, for cluster <name> with index N (a=1, b=2, ... h=8):
#   root-ns veth  weft-<name>     10.100.N.1/24
#   node IP       eth0 in netns   10.100.N.2/24   (kubeconfig server https://10.100.N.2:6443)
#   pod CIDR      10.(112+N-1).0.0/16, node podCIDR 10.(112+N-1).0.0/24   (a: 10.112/16, b: 10.113/16)
#   service CIDR  10.(120+N-1).0.0/16  (a: 10.120/16, b: 10.121/16)
#                 kubernetes = .0.1, kube-dns = .0.10
# Routes: in the root netns each pod and service CIDR via its node IP; in each node netns
# 10.100.0.0/16 and 10.112.0.0/13 (every cluster's node and pod addresses) via
# the root-ns veth. No default route, and a root-ns FORWARD rule drops
# anything from a cluster veth to a non-cluster interface: nothing in a
# cluster can reach outside the machine.

WEFT_CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
WEFT_STATE="${WEFT_STATE:-$WEFT_CACHE/clusters}"
E2E_CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PAUSE_IMAGE="weft.local/pause:3.10"
COREDNS_IMAGE="weft.local/coredns:v1.13.1"
TOOLBOX_IMAGE="weft.local/toolbox:1"

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }
log() { echo "$(basename "$0"): $*" >&2; }

# cluster_vars <name>: sets every per-cluster variable.
cluster_vars() {
  CLUSTER="$1"
  [[ "$CLUSTER" =~ ^[a-h]$ ]] || die "cluster name must be one letter a..h (got '$CLUSTER'), e.g. '$(basename "$0") a'"
  local letters=abcdefgh
  local pre="${letters%%"$CLUSTER"*}"
  IDX=$(( ${#pre} + 1 ))
  NETNS="weft-$CLUSTER"
  VETH_HOST="weft-$CLUSTER"
  VETH_NODE="eth0"
  HOST_IP="10.100.$IDX.1"
  NODE_IP="10.100.$IDX.2"
  NODE_NAME="weft-$CLUSTER"
  POD_CIDR="10.$((112 + IDX - 1)).0.0/16"
  NODE_POD_CIDR="10.$((112 + IDX - 1)).0.0/24"
  NODE_POD_GW="10.$((112 + IDX - 1)).0.1"
  SVC_CIDR="10.$((120 + IDX - 1)).0.0/16"
  API_SVC_IP="10.$((120 + IDX - 1)).0.1"
  DNS_SVC_IP="10.$((120 + IDX - 1)).0.10"
  API_PORT=6443
  STATE="$WEFT_STATE/$CLUSTER"
  PIDS="$STATE/pids"
  LOGS="$STATE/logs"
  PKI="$STATE/pki"
  CTR_SOCK="$STATE/containerd.sock"
  KUBECONFIG_ADMIN="$STATE/kubeconfig"
  CGROUP_NAME="weft-$CLUSTER"
  IPT_COMMENT="weft-cluster-$CLUSTER"
}

# in_netns <cmd...>: run in the node's network namespace. nsenter switches
# only the network namespace; `ip netns exec` would also give the process a
# private mount namespace with a fresh /sys (hiding /sys/fs/cgroup), which
# breaks kubelet and containerd, which must share mounts with each other.
in_netns() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# pid_alive <name>: the recorded process is running, is not a zombie, and is
# ours: every daemon has a path under the state dir on its command line, so a
# PID reused after a reboot is never taken for (or killed as) a daemon.
pid_alive() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]] || return 1
  local cmd; cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$STATE/"* ]]
}

# stop_pid <pid> [timeout-seconds]: TERM, wait, then KILL.
stop_pid() {
  local pid="$1" t="${2:-15}" i
  [[ -d "/proc/$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < t * 10; i++)); do
    [[ -d "/proc/$pid" ]] || return 0
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == "Z" ]] && return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do [[ -d "/proc/$pid" ]] || return 0; sleep 0.1; done
}

# ctr_c: the cluster's own containerd client in namespace k8s.io.
ctr_c() { ctr -a "$CTR_SOCK" -n k8s.io "$@"; }
