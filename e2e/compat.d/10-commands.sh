# Everyday kubectl commands against `skiff server`, once per kubectl version: explain,
# create (namespace, secret, service, job), expose, set image, cordon/uncordon, diff,
# the output formats, describe, strategic patch, replace, edit, cascading deletes,
# wait, server-side dry run, graceful deletion and rollouts.
#
# Sourced by e2e/kubectl-compat.sh inside its per-version loop with K (kubectl), V
# (its version), NS (a namespace holding configmap web-config and service web), WORK
# and the helpers of e2e/lib.sh. There is no kubelet here: where a check needs ready
# pods, cmd_mark_ready plays the kubelet's part by writing pod status through the
# status subresource, which is what the ReplicaSet controller reads.

CMD_V=${V//./-}   # a suffix for cluster-scoped names, unique per kubectl version
CMD_NODE="cmd-node-$CMD_V"

# cmd_mark_ready APP: marks every pod labelled app=APP Running and Ready.
cmd_mark_ready() {
    local p
    for p in $("$K" get pods -n "$NS" -l "app=$1" -o name 2>/dev/null); do
        "$K" patch -n "$NS" "$p" --subresource=status --type merge \
            -p '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}' >/dev/null 2>&1
    done
}

# cmd_settle APP: keeps marking APP's pods ready until the Deployment reports every
# replica updated and available (new pods of a rollout appear as it goes).
cmd_settle() {
    local end=$((SECONDS + 30)) st
    while [ "$SECONDS" -lt "$end" ]; do
        cmd_mark_ready "$1"
        st=$("$K" get -n "$NS" deploy "$1" -o jsonpath='{.spec.replicas} {.status.replicas} {.status.updatedReplicas} {.status.availableReplicas} {.metadata.generation} {.status.observedGeneration}' 2>/dev/null)
        # shellcheck disable=SC2086
        set -- "$1" $st
        [ "$#" -eq 7 ] && [ "$2" = "$3" ] && [ "$2" = "$4" ] && [ "$2" = "$5" ] && [ "$6" = "$7" ] && return 0
        sleep 0.3
    done
    return 1
}

# cmd_jp WHAT JSONPATH: one value from the namespace.
cmd_jp() {
    "$K" get -n "$NS" $1 -o jsonpath="$2" 2>&1
}

# --- explain (OpenAPI v2 protobuf on 1.27/1.28, v3 after) ---
expect_output "kubectl $V: explain deployment.spec.replicas" "FIELD: +replicas +<integer>" "$K" explain deployment.spec.replicas
expect_output "kubectl $V: explain deployment.spec.replicas describes it" "Number of desired pods" "$K" explain deployment.spec.replicas
expect_output "kubectl $V: explain pods names the kind" "^KIND: +Pod" "$K" explain pods
expect_output "kubectl $V: explain pods lists the fields" "^  spec[[:space:]]+<(PodSpec|Object)>" "$K" explain pods

# --- create ---
expect_output "kubectl $V: create namespace" "^namespace/cmd-ns-$CMD_V created" "$K" create namespace "cmd-ns-$CMD_V"
expect_output "kubectl $V: the new namespace is Active" "^cmd-ns-$CMD_V +Active" "$K" get namespace "cmd-ns-$CMD_V"
expect_output "kubectl $V: create secret generic --from-literal" "^secret/cmd-secret created" "$K" create secret generic -n "$NS" cmd-secret --from-literal=user=admin --from-literal=pass=s3cret
check "kubectl $V: the secret holds the literal, base64-encoded" test "$(cmd_jp secret/cmd-secret '{.type} {.data.user}')" = "Opaque $(printf admin | base64)"
expect_output "kubectl $V: create service clusterip" "^service/cmd-svc created" "$K" create service clusterip -n "$NS" cmd-svc --tcp=80:8080
expect_output "kubectl $V: the service got a ClusterIP and its ports" "^ClusterIP 10\.[0-9.]+ 80 8080 cmd-svc$" \
    "$K" get -n "$NS" svc cmd-svc -o jsonpath='{.spec.type} {.spec.clusterIP} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}{"\n"}'
if "$K" api-resources --api-group=batch -o name 2>/dev/null | grep -qx 'jobs.batch'; then
    expect_output "kubectl $V: create job" "^job.batch/cmd-job created" "$K" create job -n "$NS" cmd-job --image=busybox -- true
else
    echo "  skip kubectl $V: create job (the server does not serve batch/v1 Jobs)"
fi

# --- a Deployment to work on: expose, set image, describe, patch, rollouts ---
expect_output "kubectl $V: create deployment cmd-app" "^deployment.apps/cmd-app created" "$K" create deployment -n "$NS" cmd-app --image=busybox:1.35 --replicas=2
expect_fail "kubectl $V: wait --for=condition=Available times out while no pod is ready" "timed out" \
    "$K" wait -n "$NS" --for=condition=Available deploy/cmd-app --timeout=1s
cmd_settle cmd-app
expect_output "kubectl $V: wait --for=condition=Available" "deployment.apps/cmd-app condition met" \
    "$K" wait -n "$NS" --for=condition=Available deploy/cmd-app --timeout=20s
expect_output "kubectl $V: rollout status of a finished rollout" "deployment \"cmd-app\" successfully rolled out" \
    "$K" rollout status -n "$NS" deploy/cmd-app --timeout=20s
expect_output "kubectl $V: expose deployment" "^service/cmd-app exposed" "$K" expose deployment -n "$NS" cmd-app --port=80 --target-port=8080
check "kubectl $V: the exposed service selects the deployment's pods" \
    test "$(cmd_jp svc/cmd-app '{.spec.selector.app} {.spec.ports[0].port} {.spec.ports[0].targetPort}')" = "cmd-app 80 8080"
expect_output "kubectl $V: describe deployment" "^Replicas: +2 desired \| 2 updated \| 2 total \| 2 available \| 0 unavailable" \
    "$K" describe -n "$NS" deployment cmd-app
# Upstream defaults a Pod's account and requests, not a template's: describe shows
# only what the user wrote.
check "kubectl $V: describe deployment shows no account the template never named" \
    bash -c "out=\$('$K' describe -n '$NS' deployment cmd-app) && echo \"\$out\" | grep -q '^Pod Template:' && ! echo \"\$out\" | grep -q 'Service Account'"
expect_output "kubectl $V: describe service" "^TargetPort: +8080/TCP" "$K" describe -n "$NS" service cmd-app
expect_output "kubectl $V: describe configmap" "^hello from skiff" "$K" describe -n "$NS" configmap web-config
expect_output "kubectl $V: describe namespace" "^Status: +Active" "$K" describe namespace "$NS"

GEN=$(cmd_jp deploy/cmd-app '{.metadata.generation}')
expect_output "kubectl $V: set image" "^deployment.apps/cmd-app image updated" "$K" set image -n "$NS" deployment/cmd-app busybox=busybox:1.36
check "kubectl $V: set image changed the template and the generation" \
    test "$(cmd_jp deploy/cmd-app '{.spec.template.spec.containers[0].image} {.metadata.generation}')" = "busybox:1.36 $((GEN + 1))"
expect_fail "kubectl $V: rollout status waits for the new pods" "Waiting for deployment \"cmd-app\" rollout to finish" \
    "$K" rollout status -n "$NS" deploy/cmd-app --timeout=1s
cmd_settle cmd-app
expect_output "kubectl $V: rollout status after the pods are ready" "deployment \"cmd-app\" successfully rolled out" \
    "$K" rollout status -n "$NS" deploy/cmd-app --timeout=20s
expect_output "kubectl $V: rollout history lists both revisions" "^2 +<none>" "$K" rollout history -n "$NS" deploy/cmd-app
expect_output "kubectl $V: rollout history --revision shows that template" "Image:[[:space:]]+busybox:1.35" \
    "$K" rollout history -n "$NS" deploy/cmd-app --revision=1
expect_output "kubectl $V: rollout undo" "^deployment.apps/cmd-app rolled back" "$K" rollout undo -n "$NS" deploy/cmd-app
check "kubectl $V: rollout undo restored the previous image" test "$(cmd_jp deploy/cmd-app '{.spec.template.spec.containers[0].image}')" = "busybox:1.35"
check "kubectl $V: rollout history moved revision 1 to 3" \
    bash -c "'$K' rollout history -n '$NS' deploy/cmd-app | awk 'NR>2 && NF {print \$1}' | xargs | grep -qx '2 3'"
cmd_settle cmd-app

# Strategic merge: containers merge by name, env by name; nothing else is lost.
expect_output "kubectl $V: patch --type strategic adds an env var" "patched" \
    "$K" patch -n "$NS" deploy cmd-app --type strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"busybox","env":[{"name":"A","value":"1"}]}]}}}}'
expect_output "kubectl $V: patch --type strategic adds another" "patched" \
    "$K" patch -n "$NS" deploy cmd-app --type strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"busybox","env":[{"name":"B","value":"2"}]}]}}}}'
expect_output "kubectl $V: strategic patches kept the other env var, the image and the one container" \
    "^busybox busybox:1.35 (A=1 B=2|B=2 A=1) $" \
    "$K" get -n "$NS" deploy cmd-app -o jsonpath='{.spec.template.spec.containers[*].name}{" "}{range .spec.template.spec.containers[*]}{.image}{end}{" "}{range .spec.template.spec.containers[0].env[*]}{.name}={.value} {end}{"\n"}'

# --- cordon / uncordon a Node made from a manifest ---
printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n    kubernetes.io/hostname: %s\n' "$CMD_NODE" "$CMD_NODE" >"$WORK/cmd-node-$CMD_V.yaml"
expect_output "kubectl $V: create a Node from a manifest" "^node/$CMD_NODE created" "$K" create -f "$WORK/cmd-node-$CMD_V.yaml"
expect_output "kubectl $V: cordon" "^node/$CMD_NODE cordoned" "$K" cordon "$CMD_NODE"
expect_output "kubectl $V: a cordoned node shows SchedulingDisabled" "^$CMD_NODE +[A-Za-z]+,SchedulingDisabled" "$K" get node "$CMD_NODE"
check "kubectl $V: cordon set spec.unschedulable" test "$("$K" get node "$CMD_NODE" -o jsonpath='{.spec.unschedulable}')" = "true"
expect_output "kubectl $V: uncordon" "^node/$CMD_NODE uncordoned" "$K" uncordon "$CMD_NODE"
check "kubectl $V: uncordon cleared spec.unschedulable" test -z "$("$K" get node "$CMD_NODE" -o jsonpath='{.spec.unschedulable}')"
expect_output "kubectl $V: delete the Node" "deleted" "$K" delete node "$CMD_NODE"

# --- diff: exit 0 and no output when the same, 1 and a diff when changed. The
# Service has its ClusterIP and nodePort allocated: the dry run must keep them. ---
cat >"$WORK/cmd-diff-$CMD_V.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: cmd-diff
  namespace: $NS
data:
  colour: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cmd-diff
  namespace: $NS
spec:
  replicas: 0
  selector:
    matchLabels: {app: cmd-diff}
  template:
    metadata:
      labels: {app: cmd-diff}
    spec:
      containers:
      - name: c
        image: busybox
        ports:
        - containerPort: 8080
        env:
        - {name: A, value: "1"}
---
apiVersion: v1
kind: Service
metadata:
  name: cmd-diff
  namespace: $NS
spec:
  type: NodePort
  selector: {app: cmd-diff}
  ports:
  - port: 80
    targetPort: 8080
EOF
expect_output "kubectl $V: apply the diff fixture" "^deployment.apps/cmd-diff created" "$K" apply -f "$WORK/cmd-diff-$CMD_V.yaml"
check "kubectl $V: diff of an unchanged manifest exits 0 with no output" \
    bash -c "out=\$('$K' diff -f '$WORK/cmd-diff-$CMD_V.yaml' 2>&1); rc=\$?; echo \"rc=\$rc \$out\"; test \$rc = 0 && test -z \"\$out\""
sed 's/colour: blue/colour: green/' "$WORK/cmd-diff-$CMD_V.yaml" >"$WORK/cmd-diff2-$CMD_V.yaml"
check "kubectl $V: diff of a change exits 1 and shows only that change" \
    bash -c "out=\$('$K' diff -f '$WORK/cmd-diff2-$CMD_V.yaml' 2>&1); rc=\$?; echo \"rc=\$rc\"; echo \"\$out\"; test \$rc = 1 && echo \"\$out\" | grep -q '^-  colour: blue' && echo \"\$out\" | grep -q '^+  colour: green' && test \"\$(echo \"\$out\" | grep -c '^[-+] ')\" = 2"
check "kubectl $V: diff changed nothing" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "blue"

# --- get: -A and the output formats ---
expect_output "kubectl $V: get -A" "^$NS +web +NodePort +10\." "$K" get services -A
expect_output "kubectl $V: get -A lists other namespaces too" "^default +kubernetes +ClusterIP +10\." "$K" get services -A
check "kubectl $V: get -o json" test "$("$K" get -n "$NS" cm web-config -o json | jq -r '.kind + " " + .metadata.name + " " + .data.greeting')" = "ConfigMap web-config hello from skiff"
expect_output "kubectl $V: get list -o json is a List with the items" '"name": "web-config"' "$K" get -n "$NS" cm -o json
expect_output "kubectl $V: get -o jsonpath" "^hello from skiff/web-config$" "$K" get -n "$NS" cm web-config -o jsonpath='{.data.greeting}/{.metadata.name}{"\n"}'
expect_output "kubectl $V: get -o jsonpath over a list" "(^| )web-config( |$)" "$K" get -n "$NS" cm -o jsonpath='{.items[*].metadata.name}{"\n"}'
check "kubectl $V: get -o name" bash -c "'$K' get -n '$NS' cm,svc -o name | grep -qx configmap/web-config && '$K' get -n '$NS' cm,svc -o name | grep -qx service/web"
expect_output "kubectl $V: get -o custom-columns" "^web-config +hello from skiff$" \
    "$K" get -n "$NS" cm web-config -o custom-columns='NAME:.metadata.name,GREETING:.data.greeting'
expect_output "kubectl $V: custom-columns has its header" "^NAME +GREETING$" \
    "$K" get -n "$NS" cm web-config -o custom-columns='NAME:.metadata.name,GREETING:.data.greeting'

# --- replace -f and edit ---
"$K" get -n "$NS" cm cmd-diff -o yaml >"$WORK/cmd-replace-$CMD_V.yaml"
sed 's/colour: blue/colour: red/' "$WORK/cmd-replace-$CMD_V.yaml" >"$WORK/cmd-replace2-$CMD_V.yaml"
expect_output "kubectl $V: replace -f" "^configmap/cmd-diff replaced" "$K" replace -f "$WORK/cmd-replace2-$CMD_V.yaml"
check "kubectl $V: replace landed" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "red"
expect_fail "kubectl $V: replace with a stale resourceVersion conflicts" "the object has been modified" "$K" replace -f "$WORK/cmd-replace2-$CMD_V.yaml"
printf '#!/bin/sh\nsed -i "s/colour: red/colour: yellow/" "$1"\n' >"$WORK/cmd-editor.sh"
chmod +x "$WORK/cmd-editor.sh"
expect_output "kubectl $V: edit via KUBE_EDITOR" "^configmap/cmd-diff edited" env KUBE_EDITOR="$WORK/cmd-editor.sh" "$K" edit -n "$NS" cm cmd-diff
check "kubectl $V: edit landed" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "yellow"
expect_output "kubectl $V: edit without a change" "Edit cancelled, no changes made" env KUBE_EDITOR=true "$K" edit -n "$NS" cm cmd-diff
# An invalid edit is refused; kubectl keeps the copy with the server's causes in it.
printf '#!/bin/sh\nsed -i "s/^  replicas: 2$/  replicas: -1/" "$1"\n' >"$WORK/cmd-bad-editor.sh"
chmod +x "$WORK/cmd-bad-editor.sh"
mkdir -p "$WORK/cmd-edit-$CMD_V"
expect_fail "kubectl $V: edit refuses an invalid change" "deployments.apps \"cmd-app\" is invalid" \
    env TMPDIR="$WORK/cmd-edit-$CMD_V" KUBE_EDITOR="$WORK/cmd-bad-editor.sh" "$K" edit -n "$NS" deploy cmd-app
check "kubectl $V: the refused edit's copy names the field" \
    bash -c "grep -h '^# \* spec.replicas: Invalid value: -1' '$WORK/cmd-edit-$CMD_V'/*.yaml"
check "kubectl $V: the refused edit changed nothing" test "$(cmd_jp deploy/cmd-app '{.spec.replicas}')" = "2"

expect_output "kubectl $V: label" "^configmap/cmd-diff labeled" "$K" label -n "$NS" cm cmd-diff cmd=yes
expect_output "kubectl $V: unlabel" "^configmap/cmd-diff unlabeled" "$K" label -n "$NS" cm cmd-diff cmd-
check "kubectl $V: removing the last label leaves no empty labels map (upstream omits it)" \
    test "$("$K" get -n "$NS" cm cmd-diff -o json | jq -c '.metadata | [has("labels"), .name]')" = '[false,"cmd-diff"]'

# --- server-side dry run: answers as if done, persists nothing ---
expect_output "kubectl $V: create --dry-run=server" "^configmap/cmd-dry created \(server dry run\)" "$K" create configmap -n "$NS" cmd-dry --from-literal=a=b --dry-run=server
expect_fail "kubectl $V: create --dry-run=server persisted nothing" "NotFound|not found" "$K" get -n "$NS" cm cmd-dry
expect_output "kubectl $V: create namespace --dry-run=server" "^namespace/cmd-dryns-$CMD_V created \(server dry run\)" "$K" create namespace "cmd-dryns-$CMD_V" --dry-run=server
expect_fail "kubectl $V: the dry-run namespace does not exist" "NotFound|not found" "$K" get namespace "cmd-dryns-$CMD_V"
expect_output "kubectl $V: apply --dry-run=server" "^configmap/cmd-diff configured \(server dry run\)" "$K" apply --dry-run=server -f "$WORK/cmd-diff2-$CMD_V.yaml"
check "kubectl $V: apply --dry-run=server persisted nothing" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "yellow"
expect_output "kubectl $V: patch --dry-run=server answers with the patched object" "^purple$" \
    "$K" patch -n "$NS" cm cmd-diff --dry-run=server -p '{"data":{"colour":"purple"}}' -o jsonpath='{.data.colour}{"\n"}'
check "kubectl $V: patch --dry-run=server persisted nothing" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "yellow"
expect_output "kubectl $V: delete --dry-run=server" "configmap \"cmd-diff\" deleted \(server dry run\)" "$K" delete -n "$NS" cm cmd-diff --dry-run=server
check "kubectl $V: delete --dry-run=server kept the object" test "$(cmd_jp cm/cmd-diff '{.data.colour}')" = "yellow"
expect_output "kubectl $V: scale --dry-run=server" "^deployment.apps/cmd-app scaled \(server dry run\)" "$K" scale -n "$NS" deploy/cmd-app --replicas=7 --dry-run=server
check "kubectl $V: scale --dry-run=server persisted nothing" test "$(cmd_jp deploy/cmd-app '{.spec.replicas}')" = "2"
expect_output "kubectl $V: delete namespace --dry-run=server" "namespace \"$NS\" deleted \(server dry run\)" "$K" delete namespace "$NS" --dry-run=server
expect_output "kubectl $V: the namespace is still Active" "^Active\|$" "$K" get namespace "$NS" -o jsonpath='{.status.phase}|{.metadata.deletionTimestamp}{"\n"}'
# A dry-run create must give back what it allocated: the same nodePort is free after.
NP=$((30100 + ${V#*.} * 10 + RANDOM % 10))
expect_output "kubectl $V: create service nodeport --dry-run=server" "created \(server dry run\)" \
    "$K" create service nodeport -n "$NS" cmd-np --tcp=80:8080 --node-port="$NP" --dry-run=server
expect_output "kubectl $V: the dry run released its nodePort" "^service/cmd-np created" \
    "$K" create service nodeport -n "$NS" cmd-np --tcp=80:8080 --node-port="$NP"

# --- delete: cascades, graceful deletion, wait --for=delete ---
for c in background foreground orphan; do
    "$K" create deployment -n "$NS" "cmd-$c" --image=busybox --replicas=1 >/dev/null 2>&1
done
check "kubectl $V: every cascade fixture has its ReplicaSet" wait_for 20 bash -c \
    "for c in background foreground orphan; do test -n \"\$('$K' get rs -n '$NS' -l app=cmd-\$c -o name)\" || exit 1; done"
expect_output "kubectl $V: delete --cascade=foreground" "deployment.apps \"cmd-foreground\" deleted" "$K" delete -n "$NS" deploy cmd-foreground --cascade=foreground
check "kubectl $V: foreground deletion removed the ReplicaSet before the Deployment" test -z "$("$K" get rs -n "$NS" -l app=cmd-foreground -o name 2>&1)"
expect_output "kubectl $V: delete --cascade=background" "deployment.apps \"cmd-background\" deleted" "$K" delete -n "$NS" deploy cmd-background --cascade=background
check "kubectl $V: the garbage collector removes the ReplicaSet after a background delete" \
    wait_for 20 bash -c "test -z \"\$('$K' get rs -n '$NS' -l app=cmd-background -o name 2>&1)\""
expect_output "kubectl $V: delete --cascade=orphan" "deployment.apps \"cmd-orphan\" deleted" "$K" delete -n "$NS" deploy cmd-orphan --cascade=orphan
expect_fail "kubectl $V: the orphaned Deployment is gone" "NotFound|not found" "$K" get -n "$NS" deploy cmd-orphan
expect_output "kubectl $V: orphan leaves the ReplicaSet, without its owner reference" "^cmd-orphan-[a-z0-9]+:$" \
    "$K" get rs -n "$NS" -l app=cmd-orphan -o jsonpath='{range .items[*]}{.metadata.name}:{.metadata.ownerReferences[*].kind}{"\n"}{end}'
check "kubectl $V: the orphan keeps no empty ownerReferences list (upstream omits it)" \
    test "$("$K" get rs -n "$NS" -l app=cmd-orphan -o json | jq -c '[.items[].metadata | has("ownerReferences")]')" = "[false]"
"$K" delete rs -n "$NS" -l app=cmd-orphan >/dev/null 2>&1

# A bound pod goes through graceful deletion; --force --grace-period=0 ends it now.
"$K" run -n "$NS" cmd-grace --image=busybox --overrides="{\"spec\":{\"nodeName\":\"$CMD_NODE\"}}" >/dev/null 2>&1
expect_output "kubectl $V: delete --grace-period on a bound pod" "pod \"cmd-grace\" deleted" "$K" delete -n "$NS" pod cmd-grace --grace-period=45 --wait=false
expect_output "kubectl $V: the pod waits out its grace period" "^45 [0-9T:-]+Z$" \
    "$K" get -n "$NS" pod cmd-grace -o jsonpath='{.metadata.deletionGracePeriodSeconds} {.metadata.deletionTimestamp}{"\n"}'
expect_output "kubectl $V: delete --grace-period=0 --force" "pod \"cmd-grace\" force deleted" "$K" delete -n "$NS" pod cmd-grace --grace-period=0 --force
expect_fail "kubectl $V: a force-deleted pod is gone" "NotFound|not found" "$K" get -n "$NS" pod cmd-grace
"$K" run -n "$NS" cmd-unbound --image=busybox >/dev/null 2>&1
expect_output "kubectl $V: delete --grace-period on a pod no node runs is immediate" "pod \"cmd-unbound\" deleted" \
    "$K" delete -n "$NS" pod cmd-unbound --grace-period=45 --timeout=10s
expect_fail "kubectl $V: the unbound pod is gone" "NotFound|not found" "$K" get -n "$NS" pod cmd-unbound

"$K" create configmap -n "$NS" cmd-doomed >/dev/null 2>&1
expect_fail "kubectl $V: wait --for=delete times out on an object that stays" "timed out" "$K" wait -n "$NS" --for=delete cm/cmd-doomed --timeout=1s
( sleep 1; "$K" delete -n "$NS" cm cmd-doomed >/dev/null 2>&1 ) &
CMD_BG=$!
expect_output "kubectl $V: wait --for=delete" "configmap/cmd-doomed condition met" "$K" wait -n "$NS" --for=delete cm/cmd-doomed --timeout=20s
wait "$CMD_BG"
expect_output "kubectl $V: a configmap inside the namespace to delete" "^configmap/cmd-inside created" "$K" create configmap -n "cmd-ns-$CMD_V" cmd-inside
( sleep 1; "$K" delete namespace "cmd-ns-$CMD_V" --wait=false >/dev/null 2>&1 ) &
CMD_BG=$!
expect_output "kubectl $V: wait --for=delete of a namespace" "namespace/cmd-ns-$CMD_V condition met" "$K" wait --for=delete "namespace/cmd-ns-$CMD_V" --timeout=60s
wait "$CMD_BG"
check "kubectl $V: the namespace's contents went with it" \
    bash -c "out=\$('$K' get configmaps -A --no-headers) && echo \"\$out\" | grep -q '^$NS ' && ! echo \"\$out\" | grep -q '^cmd-ns-$CMD_V '"
