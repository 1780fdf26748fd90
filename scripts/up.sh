#!/usr/bin/env bash
# Brings up a skiff lab on this machine (as root): a control plane and two agent nodes,
# each node in its own network namespace with its own containerd, the demo app
# deployed and answering. Running it again says the lab is up (or repairs it).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
echo "== building skiff (release)"
cargo build --release -p skiff --locked
install -m 0755 target/release/skiff /usr/local/bin/skiff
echo "== skiff lab up"
exec skiff lab up "$@"
