#!/usr/bin/env bash
# The real kubectl against a real `skiff server`: every kubectl version present on the
# machine (1.27-1.33 under /usr/lib/google-cloud-sdk/bin, or the one on PATH) runs the
# same scenario. Says so clearly and exits 0 when no kubectl is installed.
#
# usage: e2e/kubectl-compat.sh [path/to/skiff]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SKIFF=${1:-$HERE/../target/debug/skiff}
MANIFEST=$HERE/../manifests/examples/web.yaml

KUBECTLS=()
for k in /usr/lib/google-cloud-sdk/bin/kubectl.1.*; do
    [ -x "$k" ] && KUBECTLS+=("$k")
done
if [ "${#KUBECTLS[@]}" -eq 0 ] && command -v kubectl >/dev/null 2>&1; then
    KUBECTLS+=("$(command -v kubectl)")
fi
if [ "${#KUBECTLS[@]}" -eq 0 ]; then
    echo "kubectl-compat: skipped: no kubectl is installed on this machine (looked in /usr/lib/google-cloud-sdk/bin and PATH)"
    exit 0
fi

WORK=$(mktemp -d /tmp/skiff-e2e-kubectl.XXXXXX)
PORT=$((20000 + RANDOM % 10000))
start_server() {
    "$SKIFF" server --data-dir "$WORK/server" --listen "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
    PIDS+=($!)
    wait_for 20 test -s "$WORK/server/admin.kubeconfig" && wait_for 20 curl -skf "https://127.0.0.1:$PORT/healthz"
}
trap 'cleanup_pids; rm -rf "$WORK"' EXIT

if ! start_server; then
    echo "kubectl-compat: the server did not start; log:"; cat "$WORK/server.log"; exit 1
fi
export KUBECONFIG=$WORK/server/admin.kubeconfig

for K in "${KUBECTLS[@]}"; do
    V=$("$K" version --client -o json 2>/dev/null | jq -r '.clientVersion.major + "." + .clientVersion.minor' 2>/dev/null || echo "?")
    NS="compat-${V//./-}"
    echo "== kubectl $V ($K), namespace $NS"
    sed "s/namespace: shop/namespace: $NS/; s/name: shop/name: $NS/" "$MANIFEST" >"$WORK/web-$NS.yaml"
    expect_output "kubectl $V: version shows the server" "Server Version: (v1\.33|version.Info.Major:\"1\", Minor:\"33\")" "$K" version
    expect_output "kubectl $V: api-resources lists deployments" "deployments +deploy +apps/v1 +true +Deployment" "$K" api-resources
    expect_output "kubectl $V: get namespaces prints a table" "^default +Active" "$K" get namespaces
    expect_output "kubectl $V: apply creates" "deployment.apps/web created" "$K" apply -f "$WORK/web-$NS.yaml"
    # Controllers write status all the time; the spec's generation is what a no-op
    # apply must leave alone.
    GEN1=$("$K" get -n "$NS" deploy web -o jsonpath='{.metadata.generation}')
    expect_output "kubectl $V: re-apply is unchanged" "deployment.apps/web unchanged" "$K" apply -f "$WORK/web-$NS.yaml"
    check "kubectl $V: re-apply keeps the generation" test "$GEN1" = "$("$K" get -n "$NS" deploy web -o jsonpath='{.metadata.generation}')"
    check "kubectl $V: re-apply of an unchanged ConfigMap keeps its resourceVersion" bash -c "a=\$('$K' get -n '$NS' cm web-config -o jsonpath='{.metadata.resourceVersion}'); '$K' apply -f '$WORK/web-$NS.yaml' >/dev/null; b=\$('$K' get -n '$NS' cm web-config -o jsonpath='{.metadata.resourceVersion}'); test \"\$a\" = \"\$b\""
    expect_fail "kubectl $V: apply validates against the OpenAPI (unknown field)" "unknown field \"spec.replicaz\"" bash -c "sed 's/replicas: 2/replicaz: 2/' '$WORK/web-$NS.yaml' | '$K' apply -f -"
    expect_output "kubectl $V: create configmap (protobuf body on 1.32+)" "configmap/made created" "$K" create configmap -n "$NS" made --from-literal=a=b
    expect_output "kubectl $V: create deployment (protobuf body on 1.32+)" "deployment.apps/made created" "$K" create deployment -n "$NS" made --image=busybox
    sed 's/replicas: 2/replicas: 3/' "$WORK/web-$NS.yaml" >"$WORK/web3-$NS.yaml"
    expect_output "kubectl $V: apply of a change configures" "deployment.apps/web configured" "$K" apply -f "$WORK/web3-$NS.yaml"
    expect_output "kubectl $V: the change landed" "^3$" "$K" get -n "$NS" deploy web -o jsonpath='{.spec.replicas}{"\n"}'
    expect_output "kubectl $V: get deployments has upstream columns" "NAME +READY +UP-TO-DATE +AVAILABLE +AGE" "$K" get -n "$NS" deployments
    expect_output "kubectl $V: get -o wide adds columns" "CONTAINERS +IMAGES +SELECTOR" "$K" get -n "$NS" deployments -o wide
    expect_output "kubectl $V: service got a ClusterIP and NodePort" "web +NodePort +10\.[0-9.]+ +<none> +80:3[0-9]{4}/TCP" "$K" get -n "$NS" svc
    expect_output "kubectl $V: get -o yaml" "^kind: Deployment" "$K" get -n "$NS" deploy web -o yaml
    expect_output "kubectl $V: scale" "scaled" "$K" scale -n "$NS" deploy/web --replicas=5
    expect_output "kubectl $V: label" "labeled" "$K" label -n "$NS" deploy web tier=frontend
    expect_output "kubectl $V: annotate" "annotated?$" "$K" annotate -n "$NS" deploy web note=hello
    expect_output "kubectl $V: get -l selects" "^web " "$K" get -n "$NS" deploy -l tier=frontend
    expect_output "kubectl $V: get -l excludes" "No resources found" "$K" get -n "$NS" deploy -l tier=backend
    expect_output "kubectl $V: --show-labels" "tier=frontend" "$K" get -n "$NS" deploy --show-labels
    expect_output "kubectl $V: patch --type merge" "patched" "$K" patch -n "$NS" deploy web --type merge -p '{"spec":{"minReadySeconds":2}}'
    expect_output "kubectl $V: patch --type json" "patched" "$K" patch -n "$NS" deploy web --type json -p '[{"op":"replace","path":"/spec/replicas","value":4}]'
    expect_output "kubectl $V: patches landed" "^4 2$" "$K" get -n "$NS" deploy web -o jsonpath='{.spec.replicas} {.spec.minReadySeconds}{"\n"}'
    # get -w prints the initial row, then a row per change.
    ( timeout 5 "$K" get -n "$NS" configmaps -w --no-headers >"$WORK/watch-$NS.txt" 2>&1 & echo $! >"$WORK/watch.pid"; wait )&
    sleep 1.5
    "$K" annotate -n "$NS" configmap web-config touched=yes >/dev/null 2>&1
    sleep 4
    check "kubectl $V: get -w sees a change" test "$(grep -c '^web-config' "$WORK/watch-$NS.txt")" -ge 2
    expect_fail "kubectl $V: invalid object is refused naming the field" "metadata.name" bash -c "printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: $NS\n' | '$K' apply -f -"
    expect_fail "kubectl $V: unknown resource type" "the server doesn't have a resource type" "$K" get widgets
    expect_output "kubectl $V: delete" "deleted" "$K" delete -n "$NS" deploy web
    expect_output "kubectl $V: deleted is gone" "NotFound|not found" bash -c "'$K' get -n '$NS' deploy web 2>&1 || true"
    # More scenarios, one file per area; each sees K, V, NS, WORK and the helpers.
    for part in "$HERE"/compat.d/*.sh; do
        [ -e "$part" ] && . "$part"
    done
done

# Server restart: objects and resourceVersions survive.
LAST_NS="compat-$(echo "${KUBECTLS[-1]}" | sed 's/.*kubectl\.1\./1-/; s/.*kubectl$/x/')"
K=${KUBECTLS[-1]}
BEFORE=$("$K" get svc -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion},{.spec.clusterIP} {end}')
cleanup_pids
if start_server; then
    AFTER=$("$K" get svc -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion},{.spec.clusterIP} {end}')
    check "server restart keeps objects, resourceVersions and ClusterIPs" test "$BEFORE" = "$AFTER"
else
    check "server restarts over its data dir" false
fi
summary
