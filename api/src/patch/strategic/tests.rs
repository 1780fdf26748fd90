//! Strategic merge patch behaviour, case by case, and the patches kubectl's
//! client-side `apply` sends.

use serde_json::{json, Value};

use super::{apply, PatchError};
use crate::patch::schema::{root, Ty};

fn smp(kind: &str, original: Value, patch: Value) -> Value {
    apply(&original, &patch, root(kind)).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

fn smp_err(kind: &str, original: Value, patch: Value) -> PatchError {
    apply(&original, &patch, root(kind)).expect_err("the patch should be refused")
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn maps_merge_nulls_delete_scalars_and_type_changes_replace() {
    let original = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}},
                          "data": {"k": "v"}, "n": 1, "l": [1, 2], "o": {"x": 1}});
    let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}},
                       "data": {"k": "w"}, "n": {"now": "object"}, "l": "flat", "o": null, "new": {"deep": {"v": null, "w": 1}}});
    assert_eq!(
        smp("ConfigMap", original, patch),
        json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}},
               "data": {"k": "w"}, "n": {"now": "object"}, "l": "flat", "new": {"deep": {"w": 1}}})
    );
}

#[test]
fn deleting_a_key_keeps_the_order_of_the_others() {
    let out = smp(
        "ConfigMap",
        json!({"a": 1, "b": 2, "c": 3}),
        json!({"a": null}),
    );
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "c"]);
}

#[test]
fn containers_merge_by_name_in_patch_order() {
    let original = pod(json!([
        {"name": "app", "image": "app:1", "args": ["--a"]},
        {"name": "log", "image": "busybox"}
    ]));
    let patch = json!({"spec": {"containers": [
        {"name": "sidecar", "image": "envoy"},
        {"name": "app", "image": "app:2", "args": ["--b"]}
    ]}});
    assert_eq!(
        smp("Pod", original, patch)["spec"]["containers"],
        json!([
            {"name": "sidecar", "image": "envoy"},
            {"name": "app", "image": "app:2", "args": ["--b"]},
            {"name": "log", "image": "busybox"}
        ])
    );
}

/// Without `$setElementOrder` the patch list orders the result, as upstream: named
/// elements in patch order, and an element only the server has goes ahead of a named
/// one only if it stood ahead of it before. kubectl's own documentation shows this:
/// patching a second container into a Deployment puts it first.
#[test]
fn without_set_element_order_the_patch_list_gives_the_order() {
    let original = pod(json!([{"name": "patch-demo-ctr", "image": "nginx"}]));
    let patch = json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}});
    assert_eq!(
        smp("Pod", original, patch)["spec"]["containers"],
        json!([{"name": "patch-demo-ctr-2", "image": "redis"}, {"name": "patch-demo-ctr", "image": "nginx"}])
    );

    let names = |v: &Value| -> Vec<String> {
        v["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let original = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]));
    // Touching existing elements in their own order moves nothing.
    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"name": "b", "x": 1}, {"name": "d", "x": 1}]}}),
    );
    assert_eq!(names(&out), ["a", "b", "c", "d"]);
    // Naming them in another order moves them; "c" stood ahead of "d", so it stays
    // ahead of it.
    let out = smp(
        "Pod",
        original,
        json!({"spec": {"containers": [{"name": "d"}, {"name": "b"}]}}),
    );
    assert_eq!(names(&out), ["a", "c", "d", "b"]);

    // Scalar sets order the same way.
    let out = smp(
        "ConfigMap",
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
}

#[test]
fn container_sublists_merge_on_their_own_keys() {
    let original = pod(json!([{
        "name": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "name": "http"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/app"}],
        "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
        "command": ["/bin/app", "--old"]
    }]));
    let patch = json!({"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
        "ports": [{"containerPort": 443, "name": "https"}, {"containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
        "volumeDevices": [{"name": "raw2", "devicePath": "/dev/xvdb"}],
        "command": ["/bin/app"]
    }]}});
    assert_eq!(
        smp("Pod", original, patch)["spec"]["containers"][0],
        json!({
            "name": "app",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
            "ports": [{"containerPort": 443, "name": "https"}, {"containerPort": 80, "name": "http", "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}, {"name": "cfg", "mountPath": "/etc/app"}],
            "volumeDevices": [{"name": "raw2", "devicePath": "/dev/xvdb"}, {"name": "raw", "devicePath": "/dev/xvda"}],
            "command": ["/bin/app"]
        })
    );
}

#[test]
fn init_and_ephemeral_containers_merge_by_name() {
    let original = json!({"spec": {
        "initContainers": [{"name": "migrate", "image": "m:1"}, {"name": "wait", "image": "busybox"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox", "env": [{"name": "X", "value": "1"}]}]
    }});
    let patch = json!({"spec": {
        "initContainers": [{"name": "migrate", "image": "m:2"}],
        "ephemeralContainers": [{"name": "debug", "env": [{"name": "Y", "value": "2"}]}, {"name": "debug2", "image": "alpine"}]
    }});
    let out = smp("Pod", original, patch);
    assert_eq!(
        out["spec"]["initContainers"],
        json!([{"name": "migrate", "image": "m:2"}, {"name": "wait", "image": "busybox"}])
    );
    assert_eq!(
        out["spec"]["ephemeralContainers"],
        json!([{"name": "debug", "image": "busybox", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]},
               {"name": "debug2", "image": "alpine"}])
    );
}

#[test]
fn pod_spec_lists_merge_by_their_keys_and_tolerations_are_replaced() {
    let original = json!({"spec": {
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c1"}}],
        "imagePullSecrets": [{"name": "reg1"}],
        "hostAliases": [{"ip": "10.1.0.1", "hostnames": ["db"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
        "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
        "readinessGates": [{"conditionType": "x"}]
    }});
    let patch = json!({"spec": {
        "volumes": [{"name": "cfg", "configMap": {"name": "c2"}}, {"name": "tmp", "emptyDir": {"medium": "Memory"}}],
        "imagePullSecrets": [{"name": "reg2"}],
        "hostAliases": [{"ip": "10.1.0.1", "hostnames": ["db", "db.local"]}, {"ip": "10.1.0.2", "hostnames": ["cache"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}, {"topologyKey": "host", "maxSkew": 1}],
        "tolerations": [{"key": "c", "operator": "Exists"}],
        "readinessGates": [{"conditionType": "y"}]
    }});
    let out = smp("Pod", original, patch);
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c2"}},
               {"name": "tmp", "emptyDir": {"medium": "Memory"}}])
    );
    assert_eq!(
        out["spec"]["imagePullSecrets"],
        json!([{"name": "reg2"}, {"name": "reg1"}])
    );
    assert_eq!(
        out["spec"]["hostAliases"],
        json!([{"ip": "10.1.0.1", "hostnames": ["db", "db.local"]}, {"ip": "10.1.0.2", "hostnames": ["cache"]}])
    );
    assert_eq!(
        out["spec"]["topologySpreadConstraints"],
        json!([{"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"},
               {"topologyKey": "host", "maxSkew": 1}])
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "c", "operator": "Exists"}])
    );
    assert_eq!(
        out["spec"]["readinessGates"],
        json!([{"conditionType": "y"}])
    );
}

#[test]
fn pod_template_specs_share_the_pod_spec_metadata() {
    for kind in ["Deployment", "ReplicaSet"] {
        let original = json!({"spec": {"replicas": 1, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
        let out = smp(kind, original, patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]),
            "{kind}"
        );
        assert_eq!(out["spec"]["replicas"], 1);
    }
}

#[test]
fn conditions_merge_by_type_on_every_kind_that_has_them() {
    for kind in [
        "Pod",
        "Node",
        "Deployment",
        "ReplicaSet",
        "Namespace",
        "Service",
    ] {
        let original = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "Starting"},
            {"type": "Other", "status": "True"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": null},
                                                     {"type": "New", "status": "Unknown"}]}});
        assert_eq!(
            smp(kind, original, patch)["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "New", "status": "Unknown"}, {"type": "Other", "status": "True"}]),
            "{kind}"
        );
    }
}

#[test]
fn pod_ips_merge_by_ip() {
    let original =
        json!({"status": {"podIPs": [{"ip": "10.244.0.5"}], "hostIPs": [{"ip": "10.50.0.2"}]}});
    let patch =
        json!({"status": {"podIPs": [{"ip": "fd00::5"}], "hostIPs": [{"ip": "10.50.0.2"}]}});
    let out = smp("Pod", original, patch);
    assert_eq!(
        out["status"]["podIPs"],
        json!([{"ip": "fd00::5"}, {"ip": "10.244.0.5"}])
    );
    assert_eq!(out["status"]["hostIPs"], json!([{"ip": "10.50.0.2"}]));
}

#[test]
fn node_addresses_merge_by_type_taints_replace_and_pod_cidrs_are_a_set() {
    let original = json!({"spec": {"podCIDRs": ["10.244.1.0/24"],
                                   "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]},
                          "status": {"addresses": [{"type": "InternalIP", "address": "10.50.0.2"}, {"type": "Hostname", "address": "n1"}]}});
    // What `kubectl taint node n1 a-` sends: the remaining taints.
    let patch = json!({"spec": {"podCIDRs": ["fd00:1::/64", "10.244.1.0/24"], "taints": [{"key": "b", "effect": "NoSchedule"}]},
                       "status": {"addresses": [{"type": "InternalIP", "address": "10.50.0.3"}]}});
    let out = smp("Node", original, patch);
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoSchedule"}])
    );
    assert_eq!(
        out["spec"]["podCIDRs"],
        json!(["fd00:1::/64", "10.244.1.0/24"])
    );
    assert_eq!(
        out["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.50.0.3"}, {"type": "Hostname", "address": "n1"}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({"spec": {"type": "NodePort", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
        {"name": "https", "port": 443, "targetPort": 8443}]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"name": "metrics", "port": 9100}]}});
    assert_eq!(
        smp("Service", original, patch)["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 9090, "nodePort": 30080},
               {"name": "metrics", "port": 9100},
               {"name": "https", "port": 443, "targetPort": 8443}])
    );
}

#[test]
fn service_account_secrets_merge_by_name() {
    let original = json!({"secrets": [{"name": "a"}]});
    let out = smp(
        "ServiceAccount",
        original,
        json!({"secrets": [{"name": "b"}, {"name": "a"}]}),
    );
    assert_eq!(out["secrets"], json!([{"name": "b"}, {"name": "a"}]));
}

#[test]
fn lists_without_metadata_are_replaced() {
    let ingress = json!({"spec": {"rules": [{"host": "a", "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]}});
    let patch = json!({"spec": {"rules": [{"host": "b"}]}});
    assert_eq!(
        smp("Ingress", ingress, patch)["spec"]["rules"],
        json!([{"host": "b"}])
    );

    let endpoints = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    let patch = json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]});
    assert_eq!(
        smp("Endpoints", endpoints, patch)["subsets"],
        json!([{"addresses": [{"ip": "10.0.0.2"}]}])
    );

    // An unknown field of a known type is atomic too.
    let original = pod(json!([{"name": "a", "args": ["x", "y"]}]));
    let patch = json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}});
    assert_eq!(
        smp("Pod", original, patch)["spec"]["containers"][0]["args"],
        json!(["z"])
    );
}

#[test]
fn owner_references_merge_by_uid_and_finalizers_as_a_set() {
    let original = json!({"metadata": {
        "finalizers": ["a", "b"],
        "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": true}]}});
    let patch = json!({"metadata": {
        "finalizers": ["b", "c"],
        "ownerReferences": [{"uid": "u1", "controller": false}, {"uid": "u2", "kind": "ReplicaSet", "name": "rs2"}]}});
    let out = smp("ConfigMap", original, patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": false},
               {"uid": "u2", "kind": "ReplicaSet", "name": "rs2"}])
    );
}

#[test]
fn delete_from_primitive_list_removes_scalars() {
    let original =
        json!({"metadata": {"finalizers": ["kubernetes", "example.com/x", "example.com/y"]}});
    let patch =
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/x", "absent"]}});
    assert_eq!(
        smp("Namespace", original, patch)["metadata"]["finalizers"],
        json!(["kubernetes", "example.com/y"])
    );
    // Nothing to delete from: nothing happens.
    let out = smp(
        "Namespace",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn set_element_order_and_delete_from_primitive_list_work_together() {
    // kubectl removing finalizer "b" and moving "c" first.
    let original = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let patch = json!({"metadata": {"$setElementOrder/finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}});
    assert_eq!(
        smp("ConfigMap", original, patch)["metadata"]["finalizers"],
        json!(["c", "a"])
    );
}

#[test]
fn patch_directive_in_maps() {
    let original = json!({"spec": {"selector": {"app": "a", "tier": "x"}, "type": "ClusterIP"}});
    let replaced = smp(
        "Service",
        original.clone(),
        json!({"spec": {"selector": {"$patch": "replace", "app": "b", "gone": null}}}),
    );
    assert_eq!(replaced["spec"]["selector"], json!({"app": "b"}));
    assert_eq!(replaced["spec"]["type"], "ClusterIP");

    // As upstream, deleting a map leaves it empty rather than removing the key.
    let deleted = smp(
        "Service",
        original.clone(),
        json!({"spec": {"selector": {"$patch": "delete"}}}),
    );
    assert_eq!(deleted["spec"]["selector"], json!({}));

    let merged = smp(
        "Service",
        original.clone(),
        json!({"spec": {"selector": {"$patch": "merge", "tier": "y"}}}),
    );
    assert_eq!(merged["spec"]["selector"], json!({"app": "a", "tier": "y"}));

    let whole = smp(
        "Service",
        original.clone(),
        json!({"$patch": "replace", "kind": "Service"}),
    );
    assert_eq!(whole, json!({"kind": "Service"}));

    let err = smp_err(
        "Service",
        original,
        json!({"spec": {"selector": {"$patch": "squash"}}}),
    );
    assert_eq!(
        err,
        PatchError::BadDirective {
            value: "\"squash\"".into(),
            path: "spec.selector".into()
        }
    );
    assert!(err
        .to_string()
        .contains("use \"replace\", \"merge\" or \"delete\""));
}

#[test]
fn patch_directive_in_keyed_lists() {
    let original = pod(
        json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "c", "image": "c"}]),
    );

    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}, {"name": "d", "image": "d"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "d", "image": "d"}, {"name": "a", "image": "a"}, {"name": "c", "image": "c"}])
    );

    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "z", "junk": null}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "z", "image": "z"}])
    );

    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"name": "c", "$patch": "merge", "image": "c2"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"][2],
        json!({"name": "c", "image": "c2"})
    );

    // Deleting what is not there is not an error.
    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"name": "nope", "$patch": "delete"}]}}),
    );
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 3);

    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    );
    assert!(
        matches!(&err, PatchError::MissingMergeKey { key, path, .. } if key == "name" && path == "spec.containers"),
        "{err}"
    );

    let err = smp_err(
        "Pod",
        original,
        json!({"spec": {"containers": [{"name": "a", "$patch": "explode"}]}}),
    );
    assert!(matches!(err, PatchError::BadDirective { .. }));
}

#[test]
fn malformed_keyed_list_elements_are_refused() {
    let original = pod(json!([{"name": "a"}]));
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"image": "no-name"}]}}),
    );
    assert_eq!(err.to_string(), "element {\"image\":\"no-name\"} of list \"spec.containers\" has no value for its merge key \"name\"");
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": [{"name": null, "image": "x"}]}}),
    );
    assert!(matches!(err, PatchError::MissingMergeKey { .. }));
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {"containers": ["a"]}}),
    );
    assert!(
        matches!(err, PatchError::ElementNotAnObject { .. }),
        "{err}"
    );
    // Deep errors name the path of the list.
    let err = smp_err(
        "Pod",
        original,
        json!({"spec": {"containers": [{"name": "a", "env": [{"value": "1"}]}]}}),
    );
    assert!(
        matches!(&err, PatchError::MissingMergeKey { path, .. } if path == "spec.containers.env"),
        "{err}"
    );
}

#[test]
fn patches_that_are_not_objects_are_refused() {
    assert_eq!(
        smp_err("Pod", json!({}), json!([1])),
        PatchError::NotAnObject("a list".into())
    );
    assert_eq!(
        smp_err("Pod", json!({}), json!("x")).to_string(),
        "a strategic merge patch must be a JSON object, not a string"
    );
}

#[test]
fn new_fields_are_cleaned_of_directives_and_nulls() {
    let original = json!({"metadata": {"name": "p"}, "spec": {}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a", "env": [{"name": "X", "value": null}]}],
        "nodeSelector": {"$patch": "replace", "disk": "ssd", "zone": null}}});
    assert_eq!(
        smp("Pod", original, patch)["spec"],
        json!({"containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a", "env": [{"name": "X"}]}],
               "nodeSelector": {"disk": "ssd"}})
    );
}

#[test]
fn retain_keys_switches_a_deployment_strategy_and_a_volume_source() {
    let original = json!({"spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "secret": {"secretName": "s"}}]}}}});
    let patch = json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null},
        "template": {"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "name": "v", "configMap": {"name": "cfg"}}]}}}});
    let out = smp("Deployment", original, patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cfg"}}, {"name": "w", "secret": {"secretName": "s"}}])
    );
    let err = smp_err(
        "Deployment",
        json!({}),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert_eq!(
        err,
        PatchError::BadRetainKeys {
            path: "spec.strategy".into()
        }
    );
}

#[test]
fn set_element_order_orders_the_merged_list() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
    // Reorder only, nothing else changes.
    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])
    );

    // A new element placed in the middle.
    let out = smp(
        "Pod",
        original.clone(),
        json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "n"}, {"name": "b"}, {"name": "c"}],
        "containers": [{"name": "n", "image": "new"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a"}, {"name": "n", "image": "new"}, {"name": "b"}, {"name": "c"}])
    );

    // Elements only the server knows ("s", "t") are woven in by their old positions:
    // "t" stood before "c" in the live list, so it still comes before it.
    let original =
        pod(json!([{"name": "s"}, {"name": "a"}, {"name": "b"}, {"name": "t"}, {"name": "c"}]));
    let out = smp(
        "Pod",
        original,
        json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "x"}, {"name": "c"}, {"name": "b"}],
        "containers": [{"name": "x"}]}}),
    );
    let names: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s", "a", "x", "t", "c", "b"]);
}

#[test]
fn set_element_order_must_agree_with_the_patch_list() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}]}}),
    );
    assert_eq!(
        err,
        PatchError::OrderMismatch {
            field: "containers".into(),
            path: "spec.containers".into()
        }
    );
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "c"}]}}),
    );
    assert!(matches!(err, PatchError::OrderMismatch { .. }));
    let err = smp_err(
        "Pod",
        original.clone(),
        json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
    );
    assert!(matches!(err, PatchError::MissingMergeKey { .. }));
    let err = smp_err(
        "Pod",
        original,
        json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
    );
    assert!(matches!(err, PatchError::NotAList { .. }), "{err}");
}

// ---- what `kubectl apply` sends ----------------------------------------------------

/// The live Deployment after a first `kubectl apply` and the controllers' updates.
fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "resourceVersion": "41", "generation": 1,
                     "labels": {"app": "web", "tier": "frontend"},
                     "annotations": {"deployment.kubernetes.io/revision": "1",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                        "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "1"}, {"name": "LANG", "value": "C"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                        "resources": {}, "terminationMessagePath": "/dev/termination-log"
                    }, {
                        "name": "metrics", "image": "exporter:1", "imagePullPolicy": "IfNotPresent"
                    }],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"
                }
            }
        },
        "status": {"replicas": 3, "readyReplicas": 3, "observedGeneration": 1,
                   "conditions": [{"type": "Available", "status": "True"}]}
    })
}

#[test]
fn kubectl_apply_changes_an_image_removes_an_env_var_adds_a_port_and_changes_a_label() {
    // The patch kubectl 1.32 sent (captured against a stub server on loopback) when
    // the applied file changed the image, dropped DEBUG, added port 443 and changed
    // the tier label; only the last-applied annotation is shortened.
    let patch = json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}"},
            "labels": {"tier": "web"}
        },
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "metrics"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "MODE"}, {"name": "LANG"}],
                "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                "env": [{"$patch": "delete", "name": "DEBUG"}],
                "image": "nginx:1.26",
                "name": "web",
                "ports": [{"containerPort": 443, "name": "https"}]
            }]
        }}}
    });
    let out = smp("Deployment", live_deployment(), patch);

    let mut want = live_deployment();
    want["metadata"]["labels"]["tier"] = json!("web");
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"new\":true}");
    let web = &mut want["spec"]["template"]["spec"]["containers"][0];
    web["image"] = json!("nginx:1.26");
    web["env"] = json!([{"name": "MODE", "value": "prod"}, {"name": "LANG", "value": "C"}]);
    web["ports"] = json!([{"containerPort": 80, "protocol": "TCP", "name": "http"},
                          {"containerPort": 443, "name": "https"}]);
    assert_eq!(out, want);
}

#[test]
fn kubectl_apply_removes_a_container_and_a_label_and_scales() {
    let patch = json!({
        "metadata": {"labels": {"tier": null}},
        "spec": {
            "replicas": 5,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "metrics"}]
            }}
        }
    });
    let out = smp("Deployment", live_deployment(), patch);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(out["spec"]["replicas"], 5);
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web"]);
    // What the patch did not mention is untouched.
    assert_eq!(out["status"], live_deployment()["status"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0],
        live_deployment()["spec"]["template"]["spec"]["containers"][0]
    );
}

#[test]
fn kubectl_apply_adds_a_sidecar_first_and_switches_to_recreate() {
    let patch = json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
        "template": {"spec": {
            "$setElementOrder/containers": [{"name": "proxy"}, {"name": "web"}, {"name": "metrics"}],
            "containers": [{"image": "envoy:1", "name": "proxy"}]
        }}
    }});
    // (The strategy above also names rollingUpdate, as kubectl does when the last
    // applied file had it; the captured patch below shows the other case.)
    let out = smp("Deployment", live_deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["proxy", "web", "metrics"]);
}

#[test]
fn kubectl_apply_to_a_service_changes_a_port_and_the_selector() {
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "selector": {"app": "web", "version": "v1"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"port": 80, "targetPort": 8081}, {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}],
        "selector": {"version": null}}});
    let out = smp("Service", live, patch);
    assert_eq!(out["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081},
               {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}])
    );
    assert_eq!(out["spec"]["clusterIP"], "10.96.0.20");
}

#[test]
fn patching_a_missing_or_non_object_original_starts_from_empty() {
    assert_eq!(
        apply(&Value::Null, &json!({"a": 1}), Ty::Object).unwrap(),
        json!({"a": 1})
    );
}

#[test]
fn kubectl_apply_captured_patch_scales_drops_a_label_and_a_container_and_adds_a_volume() {
    // Captured from kubectl 1.32: the file dropped the tier label, scaled to 5,
    // switched to Recreate (the server-defaulted rollingUpdate is not in the patch:
    // $retainKeys removes it), put a proxy container first, removed "metrics" and
    // added a volume.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "..."}, "labels": {"tier": null}},
        "spec": {
            "replicas": 5,
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "proxy"}, {"name": "web"}],
                "containers": [{"image": "envoy:1", "name": "proxy"}, {"$patch": "delete", "name": "metrics"}],
                "volumes": [{"configMap": {"name": "web-cfg"}, "name": "cfg"}]
            }}
        }
    });
    let out = smp("Deployment", live_deployment(), patch);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "..."
    );
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0],
        json!({"image": "envoy:1", "name": "proxy"})
    );
    assert_eq!(
        spec["containers"][1],
        live_deployment()["spec"]["template"]["spec"]["containers"][0]
    );
    assert_eq!(spec["containers"].as_array().unwrap().len(), 2);
    assert_eq!(
        spec["volumes"],
        json!([{"configMap": {"name": "web-cfg"}, "name": "cfg"}])
    );
    assert_eq!(spec["restartPolicy"], "Always");
}

#[test]
fn a_merging_list_left_empty_is_dropped() {
    let container = |env: Value| {
        pod(json!([{"name": "app", "image": "app", "env": env, "ports": [{"containerPort": 80}]}]))
    };
    // (case, original, patch, the container or metadata as stored)
    let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
        (
            "the last env var deleted",
            "Pod",
            container(json!([{"name": "A", "value": "1"}])),
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}}),
            json!({"spec": {"containers": [{"name": "app", "image": "app", "ports": [{"containerPort": 80}]}]}}),
        ),
        (
            "one of two env vars deleted",
            "Pod",
            container(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])),
            json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}}),
            json!({"spec": {"containers": [{"name": "app", "image": "app", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 80}]}]}}),
        ),
        (
            "the last env var deleted, in kubectl apply's form",
            "Pod",
            container(json!([{"name": "A", "value": "1"}])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "app"}], "containers": [{"name": "app", "$setElementOrder/env": [], "env": [{"name": "A", "$patch": "delete"}]}]}}),
            json!({"spec": {"containers": [{"name": "app", "image": "app", "ports": [{"containerPort": 80}]}]}}),
        ),
        (
            "a replace with nothing",
            "Pod",
            container(json!([{"name": "A", "value": "1"}])),
            json!({"spec": {"containers": [{"name": "app", "env": [{"$patch": "replace"}]}]}}),
            json!({"spec": {"containers": [{"name": "app", "image": "app", "ports": [{"containerPort": 80}]}]}}),
        ),
        (
            "every finalizer removed",
            "Namespace",
            json!({"metadata": {"name": "n", "finalizers": ["a", "b"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "b"]}}),
            json!({"metadata": {"name": "n"}}),
        ),
        (
            // Atomic lists are the patch's value, empty or not.
            "an atomic list set empty",
            "Pod",
            container(json!([{"name": "A", "value": "1"}])),
            json!({"spec": {"containers": [{"name": "app", "args": []}]}}),
            json!({"spec": {"containers": [{"name": "app", "image": "app", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}], "args": []}]}}),
        ),
    ];
    for (case, kind, original, patch, want) in cases {
        let mut out = smp(kind, original, patch);
        let out = out.as_object_mut().unwrap();
        out.shift_remove("apiVersion");
        out.shift_remove("kind");
        if kind == "Pod" {
            out.shift_remove("metadata");
        }
        assert_eq!(Value::Object(out.clone()), want, "{case}");
    }
}
