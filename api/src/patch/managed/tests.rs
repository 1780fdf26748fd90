//! Table tests for managedFields bookkeeping and server-side apply.

use super::*;
use crate::resource::lookup;
use serde_json::json;

fn deploy() -> &'static ResourceInfo {
    lookup("apps", "v1", "deployments").unwrap()
}

fn cm() -> &'static ResourceInfo {
    lookup("", "v1", "configmaps").unwrap()
}

fn req<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyRequest<'a> {
    ApplyRequest {
        manager,
        subresource: None,
        force,
        now,
    }
}

fn web(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    })
}

/// The paths an entry owns, printed.
fn owned(obj: &Value, manager: &str) -> Vec<String> {
    let entries = read_entries(obj).unwrap();
    let e = entries
        .iter()
        .find(|e| e.manager == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"));
    e.fields.iter().map(|p| Display(p).to_string()).collect()
}

fn managers(obj: &Value) -> Vec<(String, Operation)> {
    read_entries(obj)
        .unwrap()
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[test]
fn managers_come_from_the_user_agent_prefix() {
    let cases = [
        ("kubectl/v1.33.0 (linux/amd64) kubernetes/abc", "kubectl"),
        ("kubectl-client-side-apply", "kubectl-client-side-apply"),
        ("", ""),
        ("Go-http-client/1.1", "Go-http-client"),
        ("bad\u{7}agent\n/1", "badagent"),
    ];
    for (ua, want) in cases {
        assert_eq!(manager_from_user_agent(ua), want, "{ua}");
    }
    assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
}

#[test]
fn a_create_records_every_field_for_its_manager() {
    let mut obj = web(2, "nginx");
    obj["metadata"]["uid"] = json!("u");
    record_update(deploy(), None, None, &mut obj, "kubectl-create", "T1").unwrap();
    let mf = &obj["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl-create");
    assert_eq!(mf["operation"], "Update");
    assert_eq!(mf["apiVersion"], "apps/v1");
    assert_eq!(mf["time"], "T1");
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert!(mf.get("subresource").is_none());
    assert_eq!(
        mf["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    // Server metadata and type fields are nobody's.
    let fields = owned(&obj, "kubectl-create");
    assert!(fields.contains(&".metadata.labels.app".to_string()));
    assert!(!fields
        .iter()
        .any(|f| f.contains("uid") || f.contains(".metadata.name") || f.contains("kind")));
}

#[test]
fn updates_take_what_they_change_and_a_no_op_changes_nothing() {
    let mut obj = web(2, "nginx");
    record_update(deploy(), None, None, &mut obj, "creator", "T1").unwrap();

    // A no-op update by anyone leaves the object, times included, as it was.
    let mut same = obj.clone();
    record_update(deploy(), None, Some(&obj), &mut same, "other", "T2").unwrap();
    assert_eq!(same, obj);

    // A change moves the changed field to the writer, with a fresh time.
    let mut scaled = obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(deploy(), None, Some(&obj), &mut scaled, "scaler", "T3").unwrap();
    assert_eq!(owned(&scaled, "scaler"), vec![".spec.replicas"]);
    assert!(!owned(&scaled, "creator").contains(&".spec.replicas".to_string()));
    assert_eq!(scaled["metadata"]["managedFields"][0]["time"], "T1");
    assert_eq!(scaled["metadata"]["managedFields"][1]["time"], "T3");

    // The same manager changing a field it owns: same set, fresh time.
    let mut rescaled = scaled.clone();
    rescaled["spec"]["replicas"] = json!(6);
    record_update(
        deploy(),
        None,
        Some(&scaled),
        &mut rescaled,
        "scaler",
        "T3b",
    )
    .unwrap();
    assert_eq!(owned(&rescaled, "scaler"), vec![".spec.replicas"]);
    assert_eq!(rescaled["metadata"]["managedFields"][1]["time"], "T3b");

    // A removed field leaves every set.
    let mut trimmed = scaled.clone();
    trimmed["metadata"]["labels"] = json!({});
    record_update(deploy(), None, Some(&scaled), &mut trimmed, "editor", "T4").unwrap();
    assert!(!owned(&trimmed, "creator").contains(&".metadata.labels.app".to_string()));
    assert_eq!(owned(&trimmed, "editor"), vec![".metadata.labels"]);
}

#[test]
fn status_writes_are_recorded_against_the_status_subresource() {
    let mut obj = web(2, "nginx");
    record_update(deploy(), None, None, &mut obj, "creator", "T1").unwrap();
    let mut st = obj.clone();
    st["status"] = json!({"replicas": 2});
    record_update(
        deploy(),
        Some("status"),
        Some(&obj),
        &mut st,
        "controller",
        "T2",
    )
    .unwrap();
    let entries = read_entries(&st).unwrap();
    assert_eq!(entries[1].subresource, "status");
    assert_eq!(owned(&st, "controller"), vec![".status.replicas"]);
    assert_eq!(st["metadata"]["managedFields"][1]["subresource"], "status");
    // A main-resource write never takes status.
    let mut again = st.clone();
    again["spec"]["replicas"] = json!(3);
    record_update(deploy(), None, Some(&st), &mut again, "controller", "T3").unwrap();
    assert_eq!(owned(&again, "controller"), vec![".status.replicas"]);
}

#[test]
fn clients_may_replace_or_strip_managed_fields() {
    let mut obj = web(2, "nginx");
    record_update(deploy(), None, None, &mut obj, "creator", "T1").unwrap();
    type Managers = Option<Vec<(String, Operation)>>;
    let cases: Vec<(Value, Managers)> = vec![
        // `[]` keeps them (upstream: clients unaware of the field must not drop it).
        (json!([]), Some(vec![("creator".into(), Operation::Update)])),
        // `[{}]` strips them.
        (json!([{}]), None),
        // Entries sent replace the stored ones (kubectl's client-side -> server-side
        // migration does this).
        (
            json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]),
            Some(vec![("kubectl".into(), Operation::Apply)]),
        ),
    ];
    for (sent, want) in cases {
        let mut new = obj.clone();
        new["metadata"]["managedFields"] = sent.clone();
        record_update(deploy(), None, Some(&obj), &mut new, "patcher", "T2").unwrap();
        match want {
            None => assert!(new["metadata"].get("managedFields").is_none(), "{sent}"),
            Some(w) => assert_eq!(managers(&new), w, "{sent}"),
        }
    }
    let mut bad = obj.clone();
    bad["metadata"]["managedFields"] =
        json!([{"manager": "x", "operation": "Steal", "fieldsType": "FieldsV1"}]);
    let err = record_update(deploy(), None, Some(&obj), &mut bad, "p", "T2").unwrap_err();
    assert!(
        matches!(&err, ManagedError::InvalidManagedFields { field, .. } if field == "metadata.managedFields[0].operation"),
        "{err:?}"
    );
}

#[test]
fn apply_creates_owning_only_what_it_sent() {
    let obj = apply(
        deploy(),
        None,
        &web(2, "nginx"),
        &req("kubectl", false, "T1"),
    )
    .unwrap();
    assert_eq!(managers(&obj), vec![("kubectl".into(), Operation::Apply)]);
    assert_eq!(
        owned(&obj, "kubectl"),
        vec![
            ".metadata.labels.app",
            ".spec.replicas",
            ".spec.selector.matchLabels.app",
            ".spec.template.metadata.labels.app",
            ".spec.template.spec.containers[name=\"web\"]",
            ".spec.template.spec.containers[name=\"web\"].image",
            ".spec.template.spec.containers[name=\"web\"].name",
        ]
    );
    assert_eq!(obj["spec"]["replicas"], 2);
}

#[test]
fn applying_the_same_configuration_twice_changes_nothing() {
    let first = apply(
        deploy(),
        None,
        &web(2, "nginx"),
        &req("kubectl", false, "T1"),
    )
    .unwrap();
    let second = apply(
        deploy(),
        Some(&first),
        &web(2, "nginx"),
        &req("kubectl", false, "T2"),
    )
    .unwrap();
    assert_eq!(first, second);
}

#[test]
fn conflicts_name_the_manager_and_the_field_and_force_takes_ownership() {
    let mut live = web(2, "nginx");
    record_update(
        deploy(),
        None,
        None,
        &mut live,
        "kubectl-client-side-apply",
        "T1",
    )
    .unwrap();

    // Same values: shared ownership, no conflict.
    let shared = apply(
        deploy(),
        Some(&live),
        &web(2, "nginx"),
        &req("kubectl", false, "T2"),
    )
    .unwrap();
    assert!(owned(&shared, "kubectl-client-side-apply").contains(&".spec.replicas".to_string()));
    assert!(owned(&shared, "kubectl").contains(&".spec.replicas".to_string()));

    let err = apply(
        deploy(),
        Some(&live),
        &web(3, "nginx"),
        &req("kubectl", false, "T2"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let err = apply(
        deploy(),
        Some(&live),
        &web(3, "busybox"),
        &req("kubectl", false, "T2"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );

    let forced = apply(
        deploy(),
        Some(&live),
        &web(3, "nginx"),
        &req("kubectl", true, "T2"),
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(!owned(&forced, "kubectl-client-side-apply").contains(&".spec.replicas".to_string()));
    assert!(owned(&forced, "kubectl").contains(&".spec.replicas".to_string()));

    // Two appliers: the message names an Apply manager without a version.
    let other = apply(
        deploy(),
        Some(&forced),
        &web(4, "nginx"),
        &req("other", false, "T3"),
    )
    .unwrap_err();
    assert_eq!(
        other.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
}

#[test]
fn fields_dropped_from_the_configuration_are_removed_unless_someone_else_owns_them() {
    let mut with_extra = web(2, "nginx");
    with_extra["metadata"]["labels"]["tier"] = json!("front");
    with_extra["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "busybox"}));
    let first = apply(deploy(), None, &with_extra, &req("kubectl", false, "T1")).unwrap();
    let second = apply(
        deploy(),
        Some(&first),
        &web(2, "nginx"),
        &req("kubectl", false, "T2"),
    )
    .unwrap();
    assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx"}])
    );

    // Another applier sent the label too (same value, shared ownership): it stays.
    let ops_cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web", "labels": {"tier": "front"}}});
    let shared = apply(deploy(), Some(&first), &ops_cfg, &req("ops", false, "T2")).unwrap();
    let applied_again = apply(
        deploy(),
        Some(&shared),
        &web(2, "nginx"),
        &req("kubectl", false, "T3"),
    )
    .unwrap();
    assert_eq!(
        applied_again["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    assert_eq!(owned(&applied_again, "ops"), vec![".metadata.labels.tier"]);
}

#[test]
fn merge_follows_list_metadata() {
    let root = schema::root("Deployment");
    let cases = [
        // Keyed lists merge by key; live-only elements stay after the applied ones.
        (
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                {"name": "b", "image": "y"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "z", "env": [{"name": "F", "value": "2"}]}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "z", "env": [{"name": "F", "value": "2"}, {"name": "E", "value": "1"}]},
                {"name": "b", "image": "y"}]}}}}),
        ),
        // Atomic lists are replaced; scalar sets unite; maps merge; nulls set nothing.
        (
            json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
                   "spec": {"template": {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}}}),
            json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2", "z": null}},
                   "spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}}),
            json!({"metadata": {"finalizers": ["b", "a"], "labels": {"x": "1", "y": "2"}},
                   "spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}}),
        ),
    ];
    for (live, applied, want) in cases {
        assert_eq!(
            merge(live.clone(), &applied, root),
            want,
            "{live} + {applied}"
        );
    }
}

#[test]
fn apply_refuses_unusable_configurations() {
    let cases = [
        (
            json!({"kind": "Deployment", "metadata": {"name": "web"}}),
            "apiVersion must be set",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"}}),
            "kind \"ReplicaSet\"",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "managedFields": [{}]}}),
            "managedFields must be nil",
        ),
        (json!(["not", "an", "object"]), "must be an object"),
    ];
    for (applied, want) in cases {
        let err = apply(deploy(), None, &applied, &req("kubectl", false, "T1")).unwrap_err();
        assert!(matches!(err, ManagedError::BadApply(_)), "{err:?}");
        assert!(err.to_string().contains(want), "{err} lacks {want}");
    }
}

#[test]
fn apply_through_status_owns_only_status() {
    let live = apply(
        deploy(),
        None,
        &web(2, "nginx"),
        &req("kubectl", false, "T1"),
    )
    .unwrap();
    let mut st = web(2, "nginx");
    st["status"] = json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    let r = ApplyRequest {
        manager: "ctl",
        subresource: Some("status"),
        force: false,
        now: "T2",
    };
    let out = apply(deploy(), Some(&live), &st, &r).unwrap();
    assert_eq!(
        owned(&out, "ctl"),
        vec![
            ".status.conditions[type=\"Available\"]",
            ".status.conditions[type=\"Available\"].status",
            ".status.conditions[type=\"Available\"].type",
            ".status.replicas",
        ]
    );
    assert_eq!(read_entries(&out).unwrap()[1].subresource, "status");
}

#[test]
fn configmap_data_keys_are_separate_fields() {
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let live = apply(cm(), None, &a, &req("one", false, "T1")).unwrap();
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let out = apply(cm(), Some(&live), &b, &req("two", false, "T2")).unwrap();
    assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(owned(&out, "one"), vec![".data.a"]);
    assert_eq!(owned(&out, "two"), vec![".data.b"]);
}
