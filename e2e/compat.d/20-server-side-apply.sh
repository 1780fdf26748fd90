# Server-side apply with kubectl $V (sourced by e2e/kubectl-compat.sh inside its loop,
# with K, V, NS, WORK and the lib.sh helpers): create, a no-op re-apply, a change, a
# conflict with another field manager and --force-conflicts, a field dropped from the
# file, and an object applied client-side moving to server-side apply.

# ssa_deploy NAME REPLICAS IMAGE: a Deployment manifest.
ssa_deploy() {
    cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
  namespace: $NS
spec:
  replicas: $2
  selector:
    matchLabels:
      app: $1
  template:
    metadata:
      labels:
        app: $1
    spec:
      containers:
      - name: main
        image: $3
EOF
}
ssa_rv() { "$K" get -n "$NS" "$1" -o jsonpath='{.metadata.resourceVersion}'; }

ssa_deploy ssa 2 busybox >"$WORK/ssa-$NS.yaml"
expect_output "kubectl $V: apply --server-side creates" "deployment.apps/ssa serverside-applied" \
    "$K" apply --server-side -f "$WORK/ssa-$NS.yaml"
expect_output "kubectl $V: server-side apply records an Apply entry for kubectl" "^kubectl Apply$" \
    "$K" get -n "$NS" deploy ssa -o jsonpath='{range .metadata.managedFields[*]}{.manager} {.operation}{"\n"}{end}' --show-managed-fields
# The deployment controller writes status at its own pace, so the spec's generation is
# what a no-op re-apply of a Deployment must keep; a ConfigMap has no controller, so
# there the whole resourceVersion must stay.
ssa_gen() { "$K" get -n "$NS" deploy/ssa -o jsonpath='{.metadata.generation}'; }
SSA_GEN=$(ssa_gen)
"$K" apply --server-side -f "$WORK/ssa-$NS.yaml" >/dev/null 2>&1
check "kubectl $V: server-side re-apply keeps the generation" test "$SSA_GEN" = "$(ssa_gen)"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-cm\n  namespace: %s\ndata:\n  a: "1"\n' "$NS" >"$WORK/ssa-cm-$NS.yaml"
"$K" apply --server-side -f "$WORK/ssa-cm-$NS.yaml" >/dev/null 2>&1
SSA_RV=$(ssa_rv cm/ssa-cm)
"$K" apply --server-side -f "$WORK/ssa-cm-$NS.yaml" >/dev/null 2>&1
check "kubectl $V: server-side re-apply keeps the resourceVersion" test -n "$SSA_RV" -a "$SSA_RV" = "$(ssa_rv cm/ssa-cm)"

ssa_deploy ssa 3 busybox >"$WORK/ssa3-$NS.yaml"
expect_output "kubectl $V: server-side apply of a change" "serverside-applied" \
    "$K" apply --server-side -f "$WORK/ssa3-$NS.yaml"
expect_output "kubectl $V: the server-side change landed" "^3$" \
    "$K" get -n "$NS" deploy ssa -o jsonpath='{.spec.replicas}{"\n"}'

ssa_deploy ssa 5 busybox >"$WORK/ssa5-$NS.yaml"
expect_fail "kubectl $V: another field manager conflicts, naming the field" 'conflict with "kubectl".*\.spec\.replicas' \
    "$K" apply --server-side --field-manager=other -f "$WORK/ssa5-$NS.yaml"
expect_output "kubectl $V: the conflicting apply changed nothing" "^3$" \
    "$K" get -n "$NS" deploy ssa -o jsonpath='{.spec.replicas}{"\n"}'
expect_output "kubectl $V: --force-conflicts takes the field" "serverside-applied" \
    "$K" apply --server-side --field-manager=other --force-conflicts -f "$WORK/ssa5-$NS.yaml"
expect_output "kubectl $V: the forced value landed" "^5$" \
    "$K" get -n "$NS" deploy ssa -o jsonpath='{.spec.replicas}{"\n"}'

# A key dropped from the file goes; a key another manager set stays.
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-cm\n  namespace: %s\ndata:\n  a: "1"\n  b: "2"\n' "$NS" >"$WORK/ssa-cm-$NS.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-cm\n  namespace: %s\ndata:\n  a: "1"\n' "$NS" >"$WORK/ssa-cm1-$NS.yaml"
"$K" apply --server-side -f "$WORK/ssa-cm-$NS.yaml" >/dev/null 2>&1
"$K" patch -n "$NS" cm ssa-cm --type merge -p '{"data":{"c":"3"}}' >/dev/null 2>&1
expect_output "kubectl $V: server-side apply of a file without a key" "serverside-applied" \
    "$K" apply --server-side -f "$WORK/ssa-cm1-$NS.yaml"
expect_output "kubectl $V: the dropped key is gone, the other manager's stays" '^\{"a":"1","c":"3"\}$' \
    "$K" get -n "$NS" cm ssa-cm -o jsonpath='{.data}{"\n"}'

# Client-side apply first, then server-side: the spec is kept and kubectl owns it, so
# a later server-side change does not conflict with kubectl-client-side-apply.
ssa_deploy ssa-csa 2 busybox >"$WORK/ssa-csa-$NS.yaml"
expect_output "kubectl $V: client-side apply before the move" "deployment.apps/ssa-csa created" \
    "$K" apply -f "$WORK/ssa-csa-$NS.yaml"
expect_output "kubectl $V: server-side apply over a client-side applied object" "serverside-applied" \
    "$K" apply --server-side -f "$WORK/ssa-csa-$NS.yaml"
expect_output "kubectl $V: the move keeps the spec" "^2 busybox main$" \
    "$K" get -n "$NS" deploy ssa-csa -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].name}{"\n"}'
ssa_deploy ssa-csa 4 busybox >"$WORK/ssa-csa4-$NS.yaml"
expect_output "kubectl $V: after the move a server-side change does not conflict" "serverside-applied" \
    "$K" apply --server-side -f "$WORK/ssa-csa4-$NS.yaml"
expect_output "kubectl $V: get -o yaml still works with managedFields" "^kind: Deployment" \
    "$K" get -n "$NS" deploy ssa-csa -o yaml --show-managed-fields
"$K" delete -n "$NS" deploy ssa ssa-csa >/dev/null 2>&1
"$K" delete -n "$NS" cm ssa-cm >/dev/null 2>&1
