#!/usr/bin/env bash
# Start (or repair) local real-Kubernetes cluster <name> (a, b, ...): one node
# in its own network namespace weft-<name>, running etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy and
# CoreDNS. Idempotent: processes already running are left alone.
#
# Usage: up.sh <name>          (see README.md for addresses and state layout)
# Env:   WEFT_CACHE (default ~/.cache/weft), WEFT_STATE (default $WEFT_CACHE/clusters)
#        WEFT_UP_TIMEOUT  seconds to wait for each component (default 120)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || die "usage: up.sh <cluster-name>   (e.g. up.sh a)"
cluster_vars "$1"
[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, mounts, cgroups)"
for c in containerd runc ctr iptables conntrack buildah openssl nsenter flock; do
  command -v "$c" >/dev/null || die "$c not found; run e2e/cluster/install-deps.sh"
done
[[ -x /usr/lib/cni/bridge ]] || die "CNI plugins missing in /usr/lib/cni; run e2e/cluster/install-deps.sh"
TIMEOUT="${WEFT_UP_TIMEOUT:-120}"
t0=$(date +%s)

mkdir -p "$STATE" "$PIDS" "$LOGS"
# The kubelet taints the node DiskPressure below 256 MiB free (evictionHard
# below); with less than 2 GiB the images and pod logs of a test run get there.
free_mib=$(( $(df --output=avail -k "$STATE" | tail -1) / 1024 ))
[[ $free_mib -ge 2048 ]] || log "warning: only ${free_mib} MiB free under $STATE; below 256 MiB the node is tainted disk-pressure and pods stay Pending"
exec 7>"$STATE/.lock"
flock -w 300 7 || die "another up.sh/down.sh for cluster $CLUSTER holds $STATE/.lock"

BIN="$("$E2E_CLUSTER_DIR/build.sh")" || die "building the binaries failed (see above)"
export PATH="$BIN:$PATH"
KUBECTL="$BIN/kubectl"

# wait_for <what> <log-name> <cmd...>: poll cmd until it succeeds or TIMEOUT;
# on failure print the tail of logs/<log-name>.log and exit.
wait_for() {
  local what="$1" logname="$2" i; shift 2
  for ((i = 0; i < TIMEOUT * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n "$logname" && -f "$PIDS/$logname.pid" ]] && ! pid_alive "$logname"; then
      echo "$(basename "$0"): $logname exited; last lines of $LOGS/$logname.log:" >&2
      tail -n 40 "$LOGS/$logname.log" >&2 || true
      die "$what: $logname is not running (cluster $CLUSTER)"
    fi
    sleep 0.25
  done
  if [[ -n "$logname" ]]; then
    echo "$(basename "$0"): last lines of $LOGS/$logname.log:" >&2
    tail -n 40 "$LOGS/$logname.log" >&2 || true
  fi
  die "timed out after ${TIMEOUT}s waiting for $what (cluster $CLUSTER); logs in $LOGS, stop with e2e/cluster/down.sh $CLUSTER"
}

# start <name> <cmd...>: start a daemon in the node netns unless it already runs.
start() {
  local name="$1"; shift
  if pid_alive "$name"; then return 0; fi
  echo "---- $(date -u +%FT%TZ) starting: $*" >>"$LOGS/$name.log"
  nsenter --net="/run/netns/$NETNS" -- setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 7>&- &
  local pid=$! i
  echo "$pid" >"$PIDS/$name.pid"
  # Until the forked shell has exec'd the daemon, /proc/<pid>/cmdline is
  # up.sh's own and pid_alive would call the daemon dead; on a loaded machine
  # that window is long enough for the first health poll to hit it.
  for ((i = 0; i < 100; i++)); do
    if pid_alive "$name" || ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
}

# ---------------------------------------------------------------- network
setup_network() {
  sysctl -qw net.ipv4.ip_forward=1
  # Each kubelet and containerd holds inotify instances; the kernel default
  # (128 per user) runs out with several clusters up ("too many open files").
  if (( $(sysctl -n fs.inotify.max_user_instances) < 1024 )); then
    sysctl -qw fs.inotify.max_user_instances=1024
  fi
  if ! ip netns list | grep -qw "^$NETNS"; then ip netns add "$NETNS"; fi
  if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
    ip -n "$NETNS" link del "$VETH_NODE" >/dev/null 2>&1 || true
    ip link add "$VETH_HOST" type veth peer name "$VETH_NODE" netns "$NETNS"
  fi
  ip addr replace "$HOST_IP/24" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip -n "$NETNS" addr replace "$NODE_IP/24" dev "$VETH_NODE"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link set "$VETH_NODE" up
  ip -n "$NETNS" route replace 10.100.0.0/16 via "$HOST_IP" dev "$VETH_NODE" 2>/dev/null \
    || true # the /24 is connected; the /16 covers the other clusters' node links
  ip -n "$NETNS" route replace 10.112.0.0/13 via "$HOST_IP" dev "$VETH_NODE"
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$VETH_HOST"
  # ClusterIPs answer from the root netns too (kube-proxy in the node netns
  # DNATs them), so tests running on the host can use Service IPs.
  ip route replace "$SVC_CIDR" via "$NODE_IP" dev "$VETH_HOST"
  in_netns sysctl -qw net.ipv4.ip_forward=1
  in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  in_netns sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true
  in_netns sysctl -qw net.ipv4.conf.all.route_localnet=1
  # Root-ns filter: the cluster may talk to other clusters' veths, nothing else.
  if ! iptables -C FORWARD -i "$VETH_HOST" -o weft-+ -m comment --comment "$IPT_COMMENT" -j ACCEPT 2>/dev/null; then
    iptables -I FORWARD 1 -i "$VETH_HOST" -o weft-+ -m comment --comment "$IPT_COMMENT" -j ACCEPT
  fi
  if ! iptables -C FORWARD -i "$VETH_HOST" ! -o weft-+ -m comment --comment "$IPT_COMMENT" -j DROP 2>/dev/null; then
    iptables -I FORWARD 2 -i "$VETH_HOST" ! -o weft-+ -m comment --comment "$IPT_COMMENT" -j DROP
  fi
}

# ---------------------------------------------------------------- PKI
# cert <name> <subject> <ext: server|client|both> [SANs] [CA name]
cert() {
  local n="$1" subj="$2" kind="$3" sans="${4:-}" ca="${5:-ca}" eku
  [[ -f "$PKI/$n.crt" ]] && return 0
  case "$kind" in
    server) eku=serverAuth ;; client) eku=clientAuth ;; both) eku=serverAuth,clientAuth ;;
  esac
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$n.key" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$PKI/$n.ext"
  openssl req -new -key "$PKI/$n.key" -subj "$subj" -out "$PKI/$n.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$n.ext" -out "$PKI/$n.crt" 2>/dev/null
  rm -f "$PKI/$n.csr" "$PKI/$n.ext"
}

setup_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  local ca
  for ca in ca front-proxy-ca; do
    [[ -f "$PKI/$ca.crt" ]] && continue
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/$ca.key" -subj "/CN=weft-$CLUSTER-$ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -addext "subjectKeyIdentifier=hash" -out "$PKI/$ca.crt" 2>/dev/null
  done
  # Aggregation layer (API server -> extension API servers) client identity.
  cert front-proxy-client "/CN=front-proxy-client" client "" front-proxy-ca
  cert apiserver "/CN=kube-apiserver" server \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  cert admin "/O=system:masters/CN=weft-admin" client
  cert controller-manager "/CN=system:kube-controller-manager" client
  cert scheduler "/CN=system:kube-scheduler" client
  cert kube-proxy "/CN=system:kube-proxy" client
  cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" client
  cert kubelet "/CN=$NODE_NAME" server "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# kubeconfig <file> <cert-name> <server>
kubeconfig() {
  local f="$1" c="$2" server="$3"
  put "$f" 600 <<EOF
apiVersion: v1
kind: Config
clusters:
- name: weft-$CLUSTER
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $c
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$c.crt")
    client-key-data: $(base64 -w0 <"$PKI/$c.key")
contexts:
- name: weft-$CLUSTER
  context: {cluster: weft-$CLUSTER, user: $c}
current-context: weft-$CLUSTER
EOF
}

# ---------------------------------------------------------------- config files
# put <file> [mode]: write stdin to <file> only if the content changed, by
# rename (kube-proxy exits when its config file is rewritten under it).
put() {
  local f="$1" mode="${2:-644}"
  cat >"$f.tmp"; chmod "$mode" "$f.tmp"
  if cmp -s "$f.tmp" "$f"; then rm -f "$f.tmp"; else mv -f "$f.tmp" "$f"; fi
}
write_configs() {
  local server="https://$NODE_IP:$API_PORT"
  mkdir -p "$STATE/conf" "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/kubelet" "$STATE/pod-logs" \
    "$STATE/containerd/root" "$STATE/containerd/state"
  kubeconfig "$KUBECONFIG_ADMIN" admin "$server"
  kubeconfig "$STATE/conf/controller-manager.kubeconfig" controller-manager "$server"
  kubeconfig "$STATE/conf/scheduler.kubeconfig" scheduler "$server"
  kubeconfig "$STATE/conf/kube-proxy.kubeconfig" kube-proxy "$server"
  kubeconfig "$STATE/conf/kubelet.kubeconfig" kubelet-client "$server"

  # Pods get this resolv.conf for dnsPolicy Default: no upstream resolver
  # outside the machine is ever used.
  echo "nameserver 127.0.0.1" | put "$STATE/conf/resolv.conf"

  put "$STATE/conf/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_cdi = false
  # This VM withholds CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj
  # (the sandbox asks for -998): clamp to containerd's own score instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
EOF

  put "$STATE/cni/net.d/10-weft.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "weft-$CLUSTER",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_POD_GW"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  put "$STATE/conf/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$CTR_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_NAME
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_SVC_IP]
clusterDomain: cluster.local
resolvConf: $STATE/conf/resolv.conf
podLogsDir: $STATE/pod-logs
hairpinMode: hairpin-veth
serializeImagePulls: false
maxPods: 110
# Absolute thresholds: a percentage of a large shared disk (1% of 250 GB is
# 2.5 GB) would taint the node DiskPressure while gigabytes are still free,
# and every new pod would stay Pending. Pressure that clears is forgotten
# after 30s instead of the default 5 minutes.
evictionHard: {memory.available: "64Mi", nodefs.available: "256Mi", imagefs.available: "256Mi", nodefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
EOF

  put "$STATE/conf/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/conf/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {syncPeriod: 10s, minSyncPeriod: 0s}
nodePortAddresses: [primary]
EOF
}

# ---------------------------------------------------------------- images
# Local images (no registry can be reached): pause, coredns, toolbox (busybox).
IMG_DIR="$WEFT_CACHE/images/$(basename "$(dirname "$BIN")")"
build_images() {
  mkdir -p "$IMG_DIR"
  [[ -f "$IMG_DIR/pause.tar" ]] || "$E2E_CLUSTER_DIR/build-image.sh" "$PAUSE_IMAGE" "$IMG_DIR/pause.tar" "$BIN/pause"
  [[ -f "$IMG_DIR/coredns.tar" ]] || "$E2E_CLUSTER_DIR/build-image.sh" --port 53/udp --port 53/tcp \
    "$COREDNS_IMAGE" "$IMG_DIR/coredns.tar" "$BIN/coredns"
  if [[ ! -f "$IMG_DIR/toolbox.tar" && -x /bin/busybox ]]; then
    # /bin/busybox plus a /bin/<applet> link for every applet, so that
    # `command: [sleep, "3600"]` or `sh -c '…'` work as usual.
    local tb; tb="$(mktemp -d)"; mkdir "$tb/bin"; cp /bin/busybox "$tb/bin/busybox"
    for a in $(/bin/busybox --list); do [[ "$a" == busybox ]] || ln -s busybox "$tb/bin/$a"; done
    "$E2E_CLUSTER_DIR/build-image.sh" --dest / --arg sh --env PATH=/bin \
      "$TOOLBOX_IMAGE" "$IMG_DIR/toolbox.tar" "$tb/bin/busybox" "$tb/bin"
    rm -rf "$tb"
  fi
}
import_images() {
  local have; have="$(ctr_c images ls -q 2>/dev/null || true)"
  local ref tar
  for pair in "$PAUSE_IMAGE=pause" "$COREDNS_IMAGE=coredns" "$TOOLBOX_IMAGE=toolbox"; do
    ref="${pair%%=*}" tar="$IMG_DIR/${pair#*=}.tar"
    [[ -f "$tar" ]] || continue
    grep -qxF "$ref" <<<"$have" || ctr_c images import "$tar" >/dev/null \
      || die "importing $tar into containerd failed; see $LOGS/containerd.log"
  done
}

# ---------------------------------------------------------------- cgroups
setup_cgroups() {
  # kubelet (cgroupfs driver, cgroupRoot /weft-<name>) needs the root to exist
  # in every v1 hierarchy; each cluster's pods live under its own root.
  local d
  for d in /sys/fs/cgroup/*/; do
    [[ -f "$d/cgroup.procs" && "$d" != */unified/ ]] || continue
    mkdir -p "$d$CGROUP_NAME"
  done
  # cpuset children start empty; copy the parent's cpus/mems.
  if [[ -d /sys/fs/cgroup/cpuset/$CGROUP_NAME ]]; then
    local c=/sys/fs/cgroup/cpuset/$CGROUP_NAME
    [[ -n "$(cat "$c/cpuset.cpus")" ]] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$c/cpuset.cpus"
    [[ -n "$(cat "$c/cpuset.mems")" ]] || cat /sys/fs/cgroup/cpuset/cpuset.mems >"$c/cpuset.mems"
  fi
}

# ---------------------------------------------------------------- daemons
# http_get_ok <port> <path> <expected substring>: plain-HTTP GET on the
# node's loopback (inside the netns) whose response contains the string.
http_get_ok() {
  in_netns bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3 && grep -qF "$3" <&3' _ "$@"
}
K() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s "$@"; }

start_control_plane() {
  start etcd "$BIN/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --quota-backend-bytes $((512 * 1024 * 1024)) --snapshot-count 5000 \
    --auto-compaction-mode periodic --auto-compaction-retention 5m \
    --unsafe-no-fsync --log-level warn
  wait_for "etcd health" etcd http_get_ok 2381 /health '"health":"true"'

  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
    --cert-dir "$STATE/apiserver-certs" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$SVC_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --profiling=false --event-ttl 30m --v 1
  wait_for "kube-apiserver /readyz" kube-apiserver K get --raw /readyz

  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true \
    --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SVC_CIDR" \
    --concurrent-gc-syncs 5 --concurrent-namespace-syncs 2 \
    --profiling=false --v 1

  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$STATE/conf/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/conf/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/conf/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false --v 1
}

start_node() {
  start containerd containerd --config "$STATE/conf/containerd.toml"
  wait_for "containerd socket" containerd ctr -a "$CTR_SOCK" version
  import_images
  start kubelet "$BIN/kubelet" --config "$STATE/conf/kubelet.yaml" \
    --kubeconfig "$STATE/conf/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 1
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/conf/kube-proxy.yaml" --v 1
}

apply_addons() {
  sed -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
    "$E2E_CLUSTER_DIR/manifests/coredns.yaml" | put "$STATE/conf/coredns.yaml"
  wait_for "applying CoreDNS manifests" kube-apiserver K apply --server-side --force-conflicts \
    --field-manager weft-e2e-cluster -f "$STATE/conf/coredns.yaml"
}

node_ready() {
  pid_alive kubelet && http_get_ok 10248 /healthz ok || return 1
  [[ "$(K get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
node_taints() {
  K get node "$NODE_NAME" -o 'jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}' 2>/dev/null | sed 's/ $//'
}
coredns_available() {
  [[ "$(K -n kube-system get deploy coredns -o 'jsonpath={.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" == True ]]
}

log "cluster $CLUSTER: node $NODE_NAME at $NODE_IP, pods $POD_CIDR, services $SVC_CIDR, state $STATE"
build_images
setup_network
setup_cgroups
setup_pki
write_configs
start_control_plane
start_node
wait_for "node $NODE_NAME Ready" kubelet node_ready
log "node $NODE_NAME Ready after $(( $(date +%s) - t0 ))s"
apply_addons
wait_for "CoreDNS Available" kubelet coredns_available
# A tainted node (disk or memory pressure) is Ready but schedules no new pod:
# every test would wait for Pending pods. Say so now, with the reason.
for ((i = 0; i < TIMEOUT; i++)); do
  taints="$(node_taints)"
  [[ -n "$taints" ]] || break
  sleep 1
done
[[ -z "$taints" ]] || die "node $NODE_NAME is tainted ($taints): no new pod will be scheduled; free disk under $STATE: $(df -h --output=avail "$STATE" | tail -1 | tr -d ' '), available memory: $(awk '/^MemAvailable/{printf "%d MiB", $2/1024}' /proc/meminfo) (the kubelet's thresholds: evictionHard in $STATE/conf/kubelet.yaml)"
for d in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
  if ! pid_alive "$d"; then
    tail -n 40 "$LOGS/$d.log" >&2 || true
    die "$d exited (log above: $LOGS/$d.log)"
  fi
done
log "cluster $CLUSTER up in $(( $(date +%s) - t0 ))s; export KUBECONFIG=$KUBECONFIG_ADMIN"
echo "$KUBECONFIG_ADMIN"   # stdout: the admin kubeconfig path, for scripts
