# Events with kubectl $V (sourced by e2e/kubectl-compat.sh inside its loop, with K, V,
# NS, WORK and the lib.sh helpers): core v1 and events.k8s.io/v1 Events are one
# resource, so an Event created through either API is listed, selected, printed
# (`get events`, `events`) and deleted through both.

cat >"$WORK/events-$NS.yaml" <<EOF
apiVersion: v1
kind: Event
metadata:
  name: core-ev
  namespace: $NS
involvedObject:
  apiVersion: v1
  kind: Pod
  name: ev-core-pod
  namespace: $NS
reason: CoreReason
message: written through the core API
type: Normal
source:
  component: e2e
firstTimestamp: "2024-01-01T00:00:00Z"
lastTimestamp: "2024-01-01T00:00:00Z"
count: 1
---
apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: v1-ev
  namespace: $NS
regarding:
  apiVersion: v1
  kind: Pod
  name: ev-v1-pod
  namespace: $NS
reason: NewReason
note: written through events.k8s.io
type: Warning
action: Testing
reportingController: skiff.dev/e2e
reportingInstance: e2e-1
eventTime: "2024-01-01T00:00:00.000000Z"
EOF
expect_output "kubectl $V: events are created through both APIs" "event.events.k8s.io/v1-ev created" \
    "$K" create -f "$WORK/events-$NS.yaml"
expect_output "kubectl $V: get events (core) shows the events.k8s.io one" \
    "Warning +NewReason +pod/ev-v1-pod +written through events.k8s.io" "$K" get events -n "$NS"
expect_output "kubectl $V: get events.events.k8s.io shows the core one" \
    "Normal +CoreReason +pod/ev-core-pod +written through the core API" "$K" get events.events.k8s.io -n "$NS"
expect_output "kubectl $V: the core API reads the note as message" "^written through events.k8s.io$" \
    "$K" get events v1-ev -n "$NS" -o jsonpath='{.message}{"\n"}'
expect_output "kubectl $V: events.k8s.io reads the message as note" "^written through the core API$" \
    "$K" get events.v1.events.k8s.io core-ev -n "$NS" -o jsonpath='{.note}{"\n"}'
expect_output "kubectl $V: field selector on involvedObject (core)" "^v1-ev$" \
    "$K" get events -n "$NS" --field-selector involvedObject.name=ev-v1-pod -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
expect_output "kubectl $V: field selector on regarding (events.k8s.io)" "^core-ev$" \
    "$K" get events.events.k8s.io -n "$NS" --field-selector regarding.name=ev-core-pod -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
expect_output "kubectl $V: kubectl events lists both" "NewReason.*written through events.k8s.io" \
    bash -c "'$K' events -n '$NS' 2>&1 | grep -q 'written through the core API' && '$K' events -n '$NS'"
# --for selects by involvedObject kind, name and (1.29+) apiVersion.
expect_output "kubectl $V: kubectl events --for selects the object" "CoreReason" \
    bash -c "out=\$('$K' events -n '$NS' --for pod/ev-core-pod) && ! echo \"\$out\" | grep -q NewReason && echo \"\$out\""
expect_output "kubectl $V: delete through events.k8s.io" "deleted" \
    "$K" delete events.events.k8s.io -n "$NS" core-ev
expect_output "kubectl $V: deleted through events.k8s.io is gone from core" "NotFound|not found" \
    bash -c "'$K' get events -n '$NS' core-ev 2>&1 || true"
expect_output "kubectl $V: delete through core" "deleted" "$K" delete events -n "$NS" v1-ev
# Controllers write Events of their own into the namespace; only ours must be gone.
check "kubectl $V: neither Event is left in either API" bash -c \
    "out=\$('$K' get events.events.k8s.io -n '$NS' -o name && '$K' get events -n '$NS' -o name) && ! echo \"\$out\" | grep -E '/(core-ev|v1-ev)\$'"
