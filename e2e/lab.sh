#!/usr/bin/env bash
# End-to-end scenarios on a fresh lab (2 agent nodes in network namespaces, real
# containerd, runc, CNI, iptables): each check prints what it verified. The lab is
# torn down at the end, also on failure, and the last check is that nothing is left.
#
# usage: e2e/lab.sh [path/to/skiff]     (as root)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SKIFF=$(readlink -f "${1:-$HERE/../target/debug/skiff}")

if [ "$(id -u)" -ne 0 ]; then
    echo "lab e2e: skipped: needs root (network namespaces, containerd)"; exit 0
fi
K=$(command -v kubectl || true)
if [ -z "$K" ]; then
    echo "lab e2e: skipped: kubectl is not installed (the scenarios drive the cluster with it)"; exit 0
fi

DIR=$(mktemp -d /tmp/skiff-e2e-lab.XXXXXX)
PORT=$((26000 + RANDOM % 2000))
lab() { "$SKIFF" lab "$@"; }
finish() {
    lab down --dir "$DIR" >/dev/null 2>&1
    rm -rf "$DIR"
}
trap finish EXIT

echo "== lab up"
START=$SECONDS
if ! lab up --dir "$DIR" --api-port "$PORT" | tee "$DIR.up.log"; then
    echo "lab up failed; supervisor log:"; tail -50 "$DIR/supervisor.log"; tail -20 "$DIR"/logs/*.log 2>/dev/null
    check "lab up" false
    summary; exit 1
fi
check "lab up printed the kubeconfig line" grep -q "^export KUBECONFIG=" "$DIR.up.log"
echo "   (lab up took $((SECONDS - START)) s)"
rm -f "$DIR.up.log"
export KUBECONFIG=$DIR/server/admin.kubeconfig
N1=172.30.0.11; N2=172.30.0.12
in_client() { lab exec client --dir "$DIR" -- timeout 5 busybox "$@"; }
in_node1() { lab exec node1 --dir "$DIR" -- timeout 5 busybox "$@"; }
# The checks run commands in child shells: they need these too.
export SKIFF DIR
export -f lab in_client in_node1

echo "== scheduling and pods"
check "demo pods run on both nodes" bash -c "'$K' get pods -n demo -o wide --no-headers | awk '\$3==\"Running\"{print \$7}' | sort -u | tr '\n' ' ' | grep -q 'node1 node2'"
expect_output "lab status shows the nodes and process memory" "RSS MiB" lab status --dir "$DIR"

echo "== services"
for ip in $N1 $N2; do
    expect_output "NodePort answers from the client on $ip" "^web-" in_client wget -qO- "http://$ip:30080/"
done
# `lab up` returns once the Deployment is available; the EndpointSlice and each node's
# proxy follow a moment later, so the spread may take a few rounds to show.
spread3() { test "$(for _ in $(seq 1 30); do in_client wget -qO- "http://$1:30080/"; done | sort -u | wc -l)" -eq 3; }
export -f spread3 wait_for
check "NodePort spreads over all 3 replicas" bash -c "wait_for 30 spread3 $N1 || { '$K' get endpointslices -n demo -o wide; lab exec node1 --dir '$DIR' -- iptables-save -t nat | grep -E 'KUBE-SEP.*-j DNAT'; exit 1; }"
CIP=$("$K" get svc -n demo web -o jsonpath='{.spec.clusterIP}')
expect_output "Ingress routes by host from the client" "^web-" in_client wget -qO- --header "Host: web.skiff.lab" "http://$N1/"
expect_output "Ingress answers 404 for an unknown host" "404" bash -c "lab exec client --dir '$DIR' -- timeout 5 busybox wget -qO- --header 'Host: nope.example' 'http://$N1/' 2>&1 || true"

# Pods as clients: they exit 0 only if what they check holds, so phase Succeeded is
# the verdict (no logs needed).
run_probe() { # NAME NODE SCRIPT  (namespace: $PROBE_NS, default demo)
    local ns=${PROBE_NS:-demo}
    cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $ns}
spec:
  nodeName: $2
  restartPolicy: Never
  containers:
  - name: probe
    image: busybox:latest
    command: ["sh", "-c", "$3"]
YAML
    wait_for 60 bash -c "'$K' get pod -n $ns $1 -o jsonpath='{.status.phase}' | grep -qE 'Succeeded|Failed'"
    "$K" get pod -n "$ns" "$1" -o jsonpath='{.status.phase}' | grep -q Succeeded
}
check "ClusterIP from a pod reaches every replica" run_probe probe-cip node1 "for i in \$(seq 40); do wget -qO- http://$CIP/; done | sort -u | wc -l | grep -qx 3"
REMOTE=$("$K" get pods -n demo -l app=web -o wide --no-headers | awk '$7=="node2"{print $6; exit}')
check "pod-to-pod across nodes by IP ($REMOTE on node2 from node1)" run_probe probe-p2p node1 "wget -qO- http://$REMOTE:8080/ | grep -q web-"

echo "== cluster DNS"
check "a pod resolves and reaches its Service by short name (web)" run_probe dns-short node1 "wget -qO- http://web/ | grep -q web-"
check "a pod on the other node reaches web.demo.svc.cluster.local" run_probe dns-fqdn node2 "wget -qO- http://web.demo.svc.cluster.local/ | grep -q web-"
PROBE_NS=default check "a pod in another namespace resolves web.demo.svc.cluster.local and reaches web.demo" run_probe dns-crossns node1 "nslookup web.demo.svc.cluster.local >/dev/null && wget -qO- http://web.demo/ | grep -q web-"
check "a name outside the cluster fails fast in the offline lab" run_probe dns-out node2 "start=\$(date +%s); ! nslookup example.com; test \$((\$(date +%s) - start)) -le 3"
check "an unknown name does not resolve" run_probe dns-nx node2 "! nslookup nope.demo.svc.cluster.local"

echo "== logs, exec, port-forward (API server -> kubelet -> containerd)"
P=$("$K" get pods -n demo -l app=web -o jsonpath='{.items[0].metadata.name}')
expect_output "kubectl exec runs a command in the pod" "^$P\$" "$K" exec -n demo "$P" -- hostname
expect_output "kubectl exec passes every argument" "^a b c\$" "$K" exec -n demo "$P" -- sh -c 'echo a b c'
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: talker, namespace: demo}
spec:
  containers:
  - name: c
    image: busybox:latest
    command: ["sh", "-c", "echo hello from talker; sleep 3600"]
YAML
check "kubectl logs shows the container's output" wait_for 30 bash -c "'$K' logs -n demo talker | grep -q 'hello from talker'"
PF=$((18000 + RANDOM % 1000))
( timeout 10 "$K" port-forward -n demo "pod/$P" "$PF:8080" >/dev/null 2>&1 & )
check "kubectl port-forward reaches the pod's port from the host's loopback" wait_for 8 bash -c "curl -s --max-time 2 http://127.0.0.1:$PF/ | grep -q '^$P\$'"
"$K" delete pod -n demo talker --grace-period=0 --wait=false >/dev/null 2>&1

echo "== workloads"
"$K" scale -n demo deploy/web --replicas=5 >/dev/null
check "scale up to 5: all available" wait_for 60 bash -c "'$K' get deploy -n demo web -o jsonpath='{.status.availableReplicas}' | grep -qx 5"
"$K" scale -n demo deploy/web --replicas=2 >/dev/null
check "scale down to 2: 3 pods removed" wait_for 60 bash -c "test \$('$K' get pods -n demo -l app=web --no-headers | wc -l) -eq 2"

"$K" scale -n demo deploy/web --replicas=3 >/dev/null
wait_for 60 bash -c "'$K' get deploy -n demo web -o jsonpath='{.status.availableReplicas}' | grep -qx 3"
# A client polls through the NodePort during a rolling update; every request must
# succeed.
( fails=0; for _ in $(seq 1 150); do in_client wget -qO- "http://$N1:30080/" >/dev/null 2>&1 || fails=$((fails+1)); sleep 0.1; done; echo "$fails" >"$DIR/rollout-fails" ) &
POLL=$!
"$K" set env -n demo deploy/web ROLLOUT=1 >/dev/null
check "rolling update completes" wait_for 120 bash -c "'$K' get deploy -n demo web -o jsonpath='{.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}' | grep -qx 3/3/3"
wait "$POLL"
check "rolling update: no failed request from a polling client ($(cat "$DIR/rollout-fails") failed)" test "$(cat "$DIR/rollout-fails")" -eq 0

echo "== containers and the kubelet"
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: demo}
spec:
  containers:
  - name: c
    image: busybox:latest
    command: ["sh", "-c", "echo crashed-once; exit 1"]
YAML
check "a crashing container restarts and backs off (CrashLoopBackOff)" wait_for 90 bash -c "'$K' get pod -n demo crasher --no-headers | grep -q CrashLoopBackOff && test \$('$K' get pod -n demo crasher -o jsonpath='{.status.containerStatuses[0].restartCount}') -ge 2"
expect_output "logs --previous shows the last attempt's output (kubectl)" "^crashed-once$" "$K" logs -n demo crasher --previous
expect_output "logs --previous shows the last attempt's output (skiff)" "^crashed-once$" "$SKIFF" logs -n demo crasher --previous
check "lastState records the previous attempt's exit code" bash -c "test \"\$('$K' get pod -n demo crasher -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')\" = 1"
"$K" delete pod -n demo crasher --grace-period=0 --wait=false >/dev/null 2>&1
BEFORE=$("$K" get pods -n demo -l app=web -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID},{.status.containerStatuses[0].restartCount} {end}')
AGENT1=$(python3 -c "import json;print(json.load(open('$DIR/state.json'))['processes']['agent node1'])")
kill -9 "$AGENT1"
check "a killed agent is started again" wait_for 30 bash -c "test \$(python3 -c \"import json;print(json.load(open('$DIR/state.json'))['processes']['agent node1'])\") != $AGENT1"
sleep 12
AFTER=$("$K" get pods -n demo -l app=web -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID},{.status.containerStatuses[0].restartCount} {end}')
check "a kubelet restart keeps the running pods (same pods, containers, restart counts)" test "$BEFORE" = "$AFTER"

echo "== node failure"
AGENT2=$(python3 -c "import json;print(json.load(open('$DIR/state.json'))['processes']['agent node2'])")
# Freeze (not kill) the agent: the supervisor would restart a dead one at once.
kill -STOP "$AGENT2"
check "a silent node goes NotReady" wait_for 60 bash -c "'$K' get node node2 --no-headers | grep -q NotReady"
check "its pods are replaced on the other node" wait_for 120 bash -c "test \$('$K' get pods -n demo -l app=web -o wide --no-headers | awk '\$3==\"Running\" && \$7==\"node1\"' | wc -l) -ge 3"
kill -CONT "$AGENT2"
check "the node comes back Ready" wait_for 60 bash -c "'$K' get node node2 --no-headers | grep -qw Ready"

echo "== server restart"
SNAP() { "$K" get deploy,rs,svc,cm -A -o jsonpath='{range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}@{.metadata.uid} {end}' | tr ' ' '\n' | sort; }
BEFORE_SNAP=$(SNAP)
lab restart-server --dir "$DIR" >/dev/null
sleep 2
check "the API server answers again after a restart" wait_for 30 "$K" get --raw /readyz
AFTER_SNAP=$(SNAP)
check "a server restart loses no object (same names and UIDs)" test "$BEFORE_SNAP" = "$AFTER_SNAP"
expect_output "the demo still answers after the server restart" "^web-" in_client wget -qO- "http://$N1:30080/"

echo "== deletion"
"$K" delete -n demo deploy web --wait=false >/dev/null
check "deleting the Deployment removes its ReplicaSets and pods" wait_for 90 bash -c "test -z \"\$('$K' get rs,pods -n demo -l app=web --no-headers 2>/dev/null | grep -v Terminating)\""

# --- kubelet ---
echo "== kubelet: lifecycle hooks, securityContext, events, node conditions"
mkdir -p "$DIR/prestop"
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: hooks, namespace: default}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 10
  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}
  volumes:
  - name: out
    hostPath: {path: $DIR/prestop}
  containers:
  - name: c
    image: busybox:latest
    command: ["sh", "-c", "sleep 3600"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo post-start > /tmp/poststart"]}
      preStop:
        exec: {command: ["sh", "-c", "echo pre-stop > /out/stopped"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot, namespace: default}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: c
    image: busybox:latest
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: badhook, namespace: default}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox:latest
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "exit 7"]}
YAML
# The hostPath is written by uid 1000 in the pod.
chmod 0777 "$DIR/prestop"
check "a pod with postStart/preStop hooks and runAsUser runs" wait_for 60 bash -c "'$K' get pod hooks -o jsonpath='{.status.phase}' | grep -qx Running"
expect_output "the postStart hook ran before the pod was in use (kubectl exec cat)" "^post-start$" "$K" exec hooks -- cat /tmp/poststart
expect_output "runAsUser shows in id -u" "^1000$" "$K" exec hooks -- id -u
expect_output "runAsGroup and supplementalGroups show in id -G" "^3000( .*)? 4000( |$)" "$K" exec hooks -- id -G
check "kubectl describe pod lists the kubelet's Pulling/Pulled/Created/Started events" bash -c "d=\$('$K' describe pod hooks); for r in Pulling Pulled Created Started; do echo \"\$d\" | grep -Eq \"Normal +\$r .*kubelet\" || { echo \"no \$r in:\"; echo \"\$d\" | tail -15; exit 1; }; done"
check "runAsNonRoot refuses the root image (CreateContainerConfigError)" wait_for 60 bash -c "'$K' get pod nonroot -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -qx CreateContainerConfigError && '$K' get pod nonroot -o jsonpath='{.status.containerStatuses[0].state.waiting.message}' | grep -q 'runAsNonRoot and image will run as root'"
check "a failing postStart hook: FailedPostStartHook event and a restart" wait_for 90 bash -c "'$K' get events --field-selector involvedObject.name=badhook,reason=FailedPostStartHook --no-headers | grep -q . && test \$('$K' get pod badhook -o jsonpath='{.status.containerStatuses[0].restartCount}') -ge 1"
"$K" delete pod hooks --wait=false >/dev/null 2>&1
check "deleting the pod runs its preStop hook before the stop (file on the node)" wait_for 30 bash -c "grep -qx pre-stop '$DIR/prestop/stopped'"
check "a Killing event is recorded for the deleted pod" wait_for 30 bash -c "'$K' get events --field-selector involvedObject.name=hooks,reason=Killing --no-headers | grep -q 'Stopping container c'"
check "repeated events are aggregated (BackOff/FailedPostStartHook count > 1, one Event)" wait_for 90 bash -c "'$K' get events --field-selector involvedObject.name=badhook,reason=FailedPostStartHook -o jsonpath='{range .items[*]}{.count}{\"\\n\"}{end}' | awk '{n++; if (\$1>1) big=1} END {exit !(n==1 && big)}'"
check "node conditions MemoryPressure/DiskPressure/PIDPressure are reported by the kubelet" bash -c "'$K' get node node1 -o jsonpath='{range .status.conditions[*]}{.type}={.reason} {end}' | grep -Eq 'MemoryPressure=KubeletHas(Sufficient|Insufficient)Memory DiskPressure=KubeletHas(No)?DiskPressure PIDPressure=KubeletHas(Sufficient|Insufficient)PID'"
"$K" delete pod nonroot badhook --grace-period=0 --wait=false >/dev/null 2>&1
# hostPort through the CNI portmap plugin: the client reaches the pod on node1's own
# address; the pod is placed by the scheduler (nodeSelector), which records Scheduled.
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: hostport, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: node1}
  containers:
  - name: web
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo via-hostport > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, hostPort: 18088}]
YAML
check "a hostPort pod runs" wait_for 60 bash -c "'$K' get pod hostport -o jsonpath='{.status.phase}' | grep -qx Running"
expect_output "the client reaches the pod through node1's hostPort 18088 (portmap)" "^via-hostport$" in_client wget -qO- "http://$N1:18088/"
check "the scheduler recorded a Scheduled event (Successfully assigned default/hostport to node1)" wait_for 30 bash -c "'$K' get events --field-selector involvedObject.name=hostport,reason=Scheduled --no-headers | grep -q 'Successfully assigned default/hostport to node1'"
"$K" delete pod hostport --grace-period=0 --wait=false >/dev/null 2>&1
# imagePullSecrets against a registry that wants a password: a second docker-registry
# with htpasswd (bcrypt) auth in the hub namespace, named to containerd by hosts.toml.
LAB_ID=$(python3 -c "import json;print(json.load(open('$DIR/state.json'))['id'])")
AUTHREG=$DIR/authreg; mkdir -p "$AUTHREG"
if python3 -c "import crypt;print('puller:'+crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))" > "$AUTHREG/htpasswd" 2>/dev/null; then
    printf '%s\n' "version: 0.1" "log: {level: warn}" \
        "storage: {filesystem: {rootdirectory: $AUTHREG/data}}" \
        "http: {addr: 172.30.0.1:5001}" \
        "auth: {htpasswd: {realm: skiff-lab, path: $AUTHREG/htpasswd}}" > "$AUTHREG/config.yml"
    nsenter --net="/var/run/netns/skiff-$LAB_ID-hub" docker-registry serve "$AUTHREG/config.yml" >"$AUTHREG/log" 2>&1 &
    AUTHREG_PID=$!
    for n in node1 node2; do
        mkdir -p "$DIR/nodes/$n/containerd/certs.d/172.30.0.1:5001"
        printf 'server = "http://172.30.0.1:5001"\n[host."http://172.30.0.1:5001"]\n  capabilities = ["pull", "resolve"]\n' > "$DIR/nodes/$n/containerd/certs.d/172.30.0.1:5001/hosts.toml"
    done
    check "an image is pushed to the password-protected registry" wait_for 15 nsenter --net="/var/run/netns/skiff-$LAB_ID-hub" skopeo copy --dest-tls-verify=false --dest-creds puller:s3cret "oci:$DIR/images/busybox:latest" docker://172.30.0.1:5001/private/busybox:1
    "$K" create secret docker-registry regcred --docker-server=172.30.0.1:5001 --docker-username=puller --docker-password=s3cret >/dev/null
    # nocreds pulls Always: with IfNotPresent it may land on the node where `private`
    # already pulled the image and run from the cache, as upstream allows.
    for p in private:regcred:IfNotPresent nocreds:absent:Always; do
        IFS=: read -r pod secret policy <<<"$p"
        cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: default}
spec:
  imagePullSecrets: [{name: "$secret"}]
  containers:
  - {name: c, image: "172.30.0.1:5001/private/busybox:1", imagePullPolicy: $policy, command: ["sleep", "3600"]}
YAML
    done
    check "a pod with imagePullSecrets pulls from the protected registry" wait_for 60 bash -c "'$K' get pod private -o jsonpath='{.status.phase}' | grep -qx Running"
    check "without the secret the pull is refused (ErrImagePull/ImagePullBackOff)" wait_for 60 bash -c "'$K' get pod nocreds -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -Eqx 'ErrImagePull|ImagePullBackOff'"
    "$K" delete pod private nocreds --grace-period=0 --wait=false >/dev/null 2>&1
    kill "$AUTHREG_PID" 2>/dev/null; wait "$AUTHREG_PID" 2>/dev/null
else
    echo "  skip imagePullSecrets e2e: python3 cannot make a bcrypt hash (crypt module)"
fi
# --- end kubelet ---

# --- image push ---
echo "== skiff image push: a docker-save tarball and an OCI layout into the registry mirror"
# A docker-save tarball made offline from the lab's own busybox layout; it carries the
# name skiff-e2e/app:2, which `image push` uses when no --name is given.
skopeo --insecure-policy copy -q "oci:$DIR/images/busybox:latest" "docker-archive:$DIR/app.tar:skiff-e2e/app:2" >/dev/null 2>&1
"$SKIFF" image push "$DIR/app.tar" --dir "$DIR" >"$DIR/push.log" 2>&1
check "image push of a docker-save tarball prints progress and the name pods use" bash -c "grep -q 'as docker.io/skiff-e2e/app:2' '$DIR/push.log' && grep -q 'Copying' '$DIR/push.log' && grep -q '^pushed docker.io/skiff-e2e/app:2 .*image: skiff-e2e/app:2' '$DIR/push.log' || { cat '$DIR/push.log'; false; }"
check "image import of an OCI layout directory with --name" bash -c "'$SKIFF' image import '$DIR/images/busybox' --name tools:7 --dir '$DIR' | grep -q '^pushed docker.io/library/tools:7'"
echo nope > "$DIR/junk.tar"
check "image push refuses a file that is not an image, naming the formats" bash -c "! '$SKIFF' image push '$DIR/junk.tar' --name x:1 --dir '$DIR' >'$DIR/junk.log' 2>&1 && grep -q 'neither a docker-save tarball' '$DIR/junk.log'"
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: pushed, namespace: default}
spec:
  nodeName: node2
  containers:
  - name: c
    image: skiff-e2e/app:2
    imagePullPolicy: Always
    command: ["sh", "-c", "echo from the pushed image; sleep 3600"]
  - name: t
    image: tools:7
    command: ["sleep", "3600"]
YAML
check "a pod runs the pushed images (pulled through the mirror)" wait_for 60 bash -c "'$K' get pod pushed -o jsonpath='{.status.phase}' | grep -qx Running"
check "kubectl logs of the pushed image's container (kubelet cert verified by the API server)" wait_for 20 bash -c "'$K' logs pushed -c c | grep -q 'from the pushed image'"
"$K" delete pod pushed --grace-period=0 --wait=false >/dev/null 2>&1
# --- end image push ---

# --- skiff cli (exec, port-forward) ---
echo "== skiff exec and port-forward (websocket through the API server)"
cat <<YAML | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: skiffcli, namespace: default, labels: {app: skiffcli}}
spec:
  containers:
  - name: c
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: skiffcli, namespace: default}
spec:
  selector: {app: skiffcli}
  ports: [{port: 80, targetPort: http}]
YAML
check "the skiff cli test pod runs" wait_for 60 bash -c "'$K' get pod skiffcli -o jsonpath='{.status.phase}' | grep -qx Running"
expect_output "skiff exec runs a command in the pod" "^skiffcli\$" "$SKIFF" exec skiffcli -- hostname
expect_output "skiff exec passes every argument" "^a b c\$" "$SKIFF" exec skiffcli -- sh -c 'echo a b c'
check "skiff exec exits with the remote command's exit code (7)" bash -c "'$SKIFF' exec skiffcli -- sh -c 'exit 7' 2>/dev/null; test \$? -eq 7"
expect_output "skiff exec -i passes stdin to the command" "^got hello-stdin\$" bash -c "echo hello-stdin | '$SKIFF' exec -i skiffcli -- sh -c 'read x; echo got \$x'"
expect_output "skiff exec keeps stderr apart from stdout" "^to-stderr\$" bash -c "'$SKIFF' exec skiffcli -- sh -c 'echo to-stdout; echo to-stderr >&2' 2>&1 >/dev/null"
expect_fail "skiff exec of a missing command fails and says why" "not found|no such file|executable" "$SKIFF" exec skiffcli -- /no/such/cmd
PF1=$((19000 + RANDOM % 500)); PF2=$((19500 + RANDOM % 500))
"$SKIFF" port-forward pod/skiffcli "$PF1:8080" >"$DIR/pf1.log" 2>&1 &
PFPID1=$!
"$SKIFF" port-forward svc/skiffcli "$PF2:80" >"$DIR/pf2.log" 2>&1 &
PFPID2=$!
check "skiff port-forward pod/NAME reaches the pod from the host's loopback" wait_for 10 bash -c "curl -s --max-time 2 http://127.0.0.1:$PF1/ | grep -qx skiffcli"
check "skiff port-forward serves a second connection" bash -c "curl -s --max-time 2 http://127.0.0.1:$PF1/ | grep -qx skiffcli"
check "skiff port-forward svc/NAME maps the service port to its targetPort" wait_for 10 bash -c "curl -s --max-time 2 http://127.0.0.1:$PF2/ | grep -qx skiffcli"
check "skiff port-forward prints kubectl's Forwarding line" grep -q "^Forwarding from 127.0.0.1:$PF1 -> 8080" "$DIR/pf1.log"
kill "$PFPID1" "$PFPID2" 2>/dev/null; wait "$PFPID1" "$PFPID2" 2>/dev/null
"$K" delete pod skiffcli --grace-period=0 --wait=false >/dev/null 2>&1
"$K" delete svc skiffcli --wait=false >/dev/null 2>&1
# --- end skiff cli ---

echo "== lab down"
ID=$(python3 -c "import json;print(json.load(open('$DIR/state.json'))['id'])")
lab down --dir "$DIR" >/dev/null
check "lab down leaves no namespace" bash -c "! ls /var/run/netns | grep -q 'skiff-$ID-'"
LEFT=$(pgrep -f "$DIR/" | tr '\n' ' ')
check "lab down leaves no process ($LEFT)" test -z "$LEFT"
check "lab down leaves no mount" bash -c "! grep -q '$DIR' /proc/mounts"
summary
