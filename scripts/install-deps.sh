#!/usr/bin/env bash
# Installs what skiff's build, tests and lab need on a fresh Debian/Ubuntu machine (as
# root). Safe to run again: apt-get skips what is already there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (it uses apt-get)" >&2
    exit 1
fi

PACKAGES=(
    # building
    build-essential pkg-config protobuf-compiler
    # container runtime and networking for the lab and node tests
    containerd runc containernetworking-plugins iptables conntrack iproute2 busybox-static
    # images without internet: registry mirror and OCI tools
    docker-registry skopeo umoci
    # benchmark anchors and load tools
    etcd-server wrk
    # scripts
    curl jq python3 python3-pip procps psmisc
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts containerd and etcd as services on install; skiff runs its own
# instances, so the system ones only cost memory and ports.
for svc in containerd etcd docker-registry; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
echo "install-deps: ok"
