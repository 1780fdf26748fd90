#!/usr/bin/env bash
# Brings skiff up on this machine (as root) and puts the example app into it.
#
# Today this starts the API server with its store and shows the real kubectl working
# against it; when the lab lands (`skiff lab up`: server + agents in network
# namespaces, containerd, the demo answering over NodePort and Ingress) this script
# runs that instead.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
echo "== building skiff (release)"
cargo build --release -p skiff --locked
SKIFF=$PWD/target/release/skiff
DATA=${SKIFF_DATA_DIR:-/var/lib/skiff/server}
LOG=$DATA.log
mkdir -p "$(dirname "$DATA")"

if [ -f "$DATA.pid" ] && kill -0 "$(cat "$DATA.pid")" 2>/dev/null; then
    echo "== skiff server already running (pid $(cat "$DATA.pid"))"
else
    echo "== starting skiff server (data dir $DATA, log $LOG)"
    nohup "$SKIFF" server --data-dir "$DATA" --listen 127.0.0.1:6443 >"$LOG" 2>&1 &
    echo $! >"$DATA.pid"
fi
for _ in $(seq 1 100); do
    curl -skf https://127.0.0.1:6443/healthz >/dev/null 2>&1 && break
    sleep 0.1
done
export KUBECONFIG=$DATA/admin.kubeconfig
if command -v kubectl >/dev/null 2>&1; then
    kubectl apply --validate=false -f manifests/examples/web.yaml
    kubectl get all -n shop
else
    echo "kubectl is not installed; the API is up at https://127.0.0.1:6443"
fi
echo
echo "export KUBECONFIG=$KUBECONFIG"
echo "stop it with: kill \$(cat $DATA.pid)"
