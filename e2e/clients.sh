#!/usr/bin/env bash
# The official Python client (PyPI `kubernetes`, the version pinned in
# scripts/install-deps.sh) against a real `skiff server`: runs
# e2e/clients/python/test_client.py and turns each of its checks into an ok/FAIL line.
# Two servers: the main one with its controllers, and one with a tiny watch history
# (`--event-window-seconds 0 --event-min-kept 1`) where every old resourceVersion is
# compacted, for the 410 Gone paths. Says so clearly and exits 0 when python3 or the
# kubernetes package is missing. (The kube-rs side is apiserver/tests/kube_client.rs.)
#
# usage: e2e/clients.sh [path/to/skiff]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SKIFF=${1:-$HERE/../target/debug/skiff}
PROGRAM=$HERE/clients/python/test_client.py

if ! command -v python3 >/dev/null 2>&1; then
    echo "clients: skipped: python3 is not installed (scripts/install-deps.sh installs it)"
    exit 0
fi
if ! PYVER=$(python3 -c 'import kubernetes; print(kubernetes.__version__)' 2>/dev/null); then
    echo "clients: skipped: the Python package 'kubernetes' is not installed (scripts/install-deps.sh installs the pinned version)"
    exit 0
fi

WORK=$(mktemp -d /tmp/skiff-e2e-clients.XXXXXX)
trap 'cleanup_pids; rm -rf "$WORK"' EXIT

# start_server NAME PORT ARGS... : a server with its data dir under $WORK/NAME.
start_server() {
    local name="$1" port="$2"; shift 2
    "$SKIFF" server --data-dir "$WORK/$name" --listen "127.0.0.1:$port" "$@" >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_for 20 test -s "$WORK/$name/admin.kubeconfig" && wait_for 20 curl -skf "https://127.0.0.1:$port/healthz"
}

PORT=$((20000 + RANDOM % 10000))
GONE_PORT=$((PORT + 1))
if ! start_server main "$PORT"; then
    echo "clients: the server did not start; log:"; cat "$WORK/main.log"; exit 1
fi
if ! start_server gone "$GONE_PORT" --event-window-seconds 0 --event-min-kept 1 --no-controllers --no-scheduler; then
    echo "clients: the small-window server did not start; log:"; cat "$WORK/gone.log"; exit 1
fi

echo "== python kubernetes $PYVER"
# Every watch in the program has a timeout; this bounds anything else that hangs.
timeout 600 python3 "$PROGRAM" --kubeconfig "$WORK/main/admin.kubeconfig" \
    --gone-kubeconfig "$WORK/gone/admin.kubeconfig" --results "$WORK/results.tsv" \
    >"$WORK/python.out" 2>&1
rc=$?
SKIPPED=0
while IFS=$'\t' read -r state name detail; do
    case "$state" in
        ok) check "python: $name" true ;;
        skip) SKIPPED=$((SKIPPED + 1)); echo "  skip $name: $detail" ;;
        *) check "python: $name" bash -c 'printf "%b\n" "$0" | tail -20; exit 1' "$detail" ;;
    esac
done <"$WORK/results.tsv"
# A crash outside the checks (an import error, a hang killed by a signal) still fails.
if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
    check "python: the program ran to the end (exit $rc)" bash -c 'cat "$0"; exit 1' "$WORK/python.out"
fi
[ "$SKIPPED" -gt 0 ] && echo "  ($SKIPPED skipped)"
summary
