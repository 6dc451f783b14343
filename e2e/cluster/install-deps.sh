#!/usr/bin/env bash
# Install the Debian packages the local e2e clusters need (idempotent: does
# nothing when every package is already installed). Run as root.
#   containerd, runc            container runtime (each cluster runs its own containerd)
#   containernetworking-plugins bridge, host-local, portmap, loopback CNI plugins
#   iptables, conntrack         kube-proxy (iptables mode) and the root-ns NAT rules
#   buildah                     builds from-scratch images (build-image.sh)
#   iproute2                    netns, veth, routes
#   openssl                     the clusters' PKI
#   busybox-static              a static busybox for the debug/test image
#   util-linux, procps, psmisc  flock, nsenter, mount, ps
#   curl, jq                    `make demo`: the request through the ingress gateway, reports
#   nghttp2-client              h2load, a real HTTP/2 client the proxy tests run
set -euo pipefail

pkgs=(containerd runc containernetworking-plugins iptables conntrack buildah iproute2 openssl
      busybox-static util-linux procps psmisc ca-certificates curl jq nghttp2-client)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all packages present"
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  echo "install-deps.sh: missing ${missing[*]}; run as root (sudo $0)" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged containerd service; the harness runs its own
# containerd per cluster and does not need the system one.
if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
echo "install-deps.sh: done"
