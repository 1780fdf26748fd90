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

# The official Python client, for e2e/clients.sh. Pinned so a new release cannot change
# what the e2e suite checks; 33.x is the client for Kubernetes 1.33, the version skiff
# reports.
PY_KUBERNETES=33.1.0
if [ "$(python3 -c 'import kubernetes; print(kubernetes.__version__)' 2>/dev/null)" != "$PY_KUBERNETES" ]; then
    echo "install-deps: installing the Python kubernetes client $PY_KUBERNETES"
    # Debian's own python3 refuses pip installs into the system (PEP 668) unless told.
    if ! out=$(python3 -m pip install --quiet "kubernetes==$PY_KUBERNETES" 2>&1); then
        if echo "$out" | grep -q externally-managed; then
            python3 -m pip install --quiet --break-system-packages "kubernetes==$PY_KUBERNETES"
        else
            echo "$out" >&2
            exit 1
        fi
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
echo "install-deps: ok"
