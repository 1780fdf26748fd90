#!/usr/bin/env bash
# Runs every end-to-end scenario script and prints one tally.
# usage: e2e/run.sh [path/to/skiff]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SKIFF=${1:-$HERE/../target/debug/skiff}
status=0
for scenario in "$HERE"/kubectl-compat.sh "$HERE"/clients.sh "$HERE"/lab.sh; do
    [ -x "$scenario" ] || continue
    echo "== e2e: $(basename "$scenario")"
    "$scenario" "$SKIFF" || status=1
done
exit $status
