#!/usr/bin/env bash
# Runs every test skiff has, on a fresh Debian/Ubuntu machine as root: installs what is
# missing, builds, runs the unit and component tests (including the ones that need
# root, network namespaces, iptables and containerd), then the end-to-end scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing dependencies"
./scripts/install-deps.sh

echo "== building"
cargo build --workspace --all-targets --locked

echo "== unit and component tests"
cargo test --workspace --locked --no-fail-fast

echo "== end-to-end scenarios"
./e2e/run.sh ./target/debug/skiff
