//! Deployment and ReplicaSet validation: the selector and its agreement with the pod
//! template, replica counts, the rollout strategy, and the template's pod spec (paths
//! under `spec.template.spec`).

use serde_json::Value;

use super::{
    invalid_each, is_set, names, nonnegative, required_because, validate_label_selector,
    validate_labels, IMMUTABLE,
};
use crate::meta;
use crate::selector::LabelSelector;
use crate::status::Cause;

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_replicated_spec(spec, errs);
    if let Some(strategy) = spec.get("strategy").filter(|s| !s.is_null()) {
        validate_strategy(strategy, errs);
    }
    nonnegative(
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
    nonnegative(
        spec,
        "progressDeadlineSeconds",
        "spec.progressDeadlineSeconds",
        errs,
    );
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pds >= 0 && pds <= min_ready {
            errs.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        selector_immutable(spec, old, errs);
    }
}

pub(super) fn validate_replicaset(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_replicated_spec(spec, errs);
    if let Some(old) = old {
        selector_immutable(spec, old, errs);
    }
}

/// What a Deployment and a ReplicaSet share: replicas, minReadySeconds, the selector
/// and the template it must select.
fn validate_replicated_spec(spec: &Value, errs: &mut Vec<Cause>) {
    nonnegative(spec, "replicas", "spec.replicas", errs);
    nonnegative(spec, "minReadySeconds", "spec.minReadySeconds", errs);
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let parsed = match selector {
        None => {
            errs.push(Cause::required("spec.selector"));
            None
        }
        Some(sel) => {
            let before = errs.len();
            validate_label_selector(sel, "spec.selector", errs);
            let n = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + sel
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            if n == 0 {
                // Upstream words this the same for ReplicaSets.
                errs.push(Cause::invalid(
                    "spec.selector",
                    sel,
                    "empty selector is invalid for deployment",
                ));
            }
            if errs.len() == before {
                match LabelSelector::from_json(sel) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        errs.push(Cause::invalid(
                            "spec.selector",
                            sel,
                            "invalid label selector",
                        ));
                        None
                    }
                }
            } else {
                None
            }
        }
    };
    let Some(template) = spec.get("template").filter(|t| !t.is_null()) else {
        errs.push(Cause::required("spec.template"));
        return;
    };
    let labels_value = template.pointer("/metadata/labels");
    validate_labels(labels_value, "spec.template.metadata.labels", errs);
    if let Some(sel) = parsed.filter(|s| !s.is_empty()) {
        if !sel.matches(&meta::label_map(template)) {
            errs.push(Cause::invalid(
                "spec.template.metadata.labels",
                labels_value.unwrap_or(&Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let pod_spec = template.get("spec").unwrap_or(&Value::Null);
    super::validate_pod_spec(pod_spec, "spec.template.spec", errs);
    // A controller recreates pods that exit, so a template pod must always restart.
    if let Some(rp) = pod_spec
        .get("restartPolicy")
        .filter(|v| v.as_str().is_some_and(|s| s != "Always"))
    {
        errs.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if is_set(pod_spec.get("activeDeadlineSeconds")) {
        errs.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

fn selector_immutable(spec: &Value, old: &Value, errs: &mut Vec<Cause>) {
    let new_sel = spec.get("selector").unwrap_or(&Value::Null);
    let old_sel = old.pointer("/spec/selector").unwrap_or(&Value::Null);
    if new_sel != old_sel {
        errs.push(Cause::invalid("spec.selector", new_sel, IMMUTABLE));
    }
}

/// The value of an int-or-percent, for the "not both zero" rule (`"0%"` is zero).
fn int_or_percent_is_zero(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => {
            s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()) == Some(0)
        }
        _ => false,
    }
}

fn validate_int_or_percent(v: &Value, path: &str, errs: &mut Vec<Cause>) {
    match v {
        Value::Number(n) => {
            if n.as_i64().is_none_or(|n| n < 0) {
                errs.push(Cause::invalid(
                    path,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        Value::String(s) => invalid_each(errs, path, v, names::percent(s)),
        Value::Null => {}
        other => errs.push(Cause::invalid(
            path,
            other,
            "must be an integer or a percentage",
        )),
    }
}

fn validate_strategy(strategy: &Value, errs: &mut Vec<Cause>) {
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        Some("Recreate") => {
            if rolling.is_some() {
                errs.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        // Absent is RollingUpdate once defaulted.
        Some("RollingUpdate") | None => {
            let Some(ru) = rolling else {
                if strategy.get("type").is_some() {
                    errs.push(required_because(
                        "spec.strategy.rollingUpdate",
                        "this should be defaulted and never be nil",
                    ));
                }
                return;
            };
            let mu_path = "spec.strategy.rollingUpdate.maxUnavailable";
            if let Some(mu) = ru.get("maxUnavailable") {
                validate_int_or_percent(mu, mu_path, errs);
                let over = mu
                    .as_str()
                    .and_then(|s| s.strip_suffix('%'))
                    .and_then(|d| d.parse::<i64>().ok())
                    .is_some_and(|p| p > 100);
                if over {
                    errs.push(Cause::invalid(mu_path, mu, "must not be greater than 100%"));
                }
            }
            if let Some(ms) = ru.get("maxSurge") {
                validate_int_or_percent(ms, "spec.strategy.rollingUpdate.maxSurge", errs);
            }
            if int_or_percent_is_zero(ru.get("maxUnavailable"))
                && int_or_percent_is_zero(ru.get("maxSurge"))
            {
                errs.push(Cause::invalid(
                    mu_path,
                    ru.get("maxUnavailable").unwrap_or(&Value::Null),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        Some(_) => errs.push(Cause::not_supported(
            "spec.strategy.type",
            strategy.get("type").unwrap_or(&Value::Null),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn deploy(f: &dyn Fn(&mut Value)) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        });
        f(&mut d);
        d
    }

    #[test]
    fn deployment_rules() {
        type Case = (
            &'static str,
            Box<dyn Fn(&mut Value)>,
            Vec<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            ("valid", Box::new(|_| {}), vec![]),
            (
                "no selector",
                Box::new(|d| {
                    d["spec"].as_object_mut().unwrap().remove("selector");
                }),
                vec![("spec.selector", "FieldValueRequired")],
            ),
            (
                "empty selector",
                Box::new(|d| d["spec"]["selector"] = json!({})),
                vec![("spec.selector", "FieldValueInvalid")],
            ),
            (
                "selector mismatch",
                Box::new(|d| d["spec"]["selector"] = json!({"matchLabels": {"app": "db"}})),
                vec![("spec.template.metadata.labels", "FieldValueInvalid")],
            ),
            (
                "selector expressions match",
                Box::new(
                    |d| d["spec"]["selector"] = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
                ),
                vec![],
            ),
            (
                "selector bad operator",
                Box::new(
                    |d| d["spec"]["selector"] = json!({"matchExpressions": [{"key": "tier", "operator": "Equals", "values": ["front"]}]}),
                ),
                vec![(
                    "spec.selector.matchExpressions[0].operator",
                    "FieldValueInvalid",
                )],
            ),
            (
                "selector In without values",
                Box::new(|d| {
                    d["spec"]["selector"] =
                        json!({"matchExpressions": [{"key": "tier", "operator": "In"}]})
                }),
                vec![(
                    "spec.selector.matchExpressions[0].values",
                    "FieldValueRequired",
                )],
            ),
            (
                "selector Exists with values",
                Box::new(
                    |d| d["spec"]["selector"] = json!({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}),
                ),
                vec![(
                    "spec.selector.matchExpressions[0].values",
                    "FieldValueForbidden",
                )],
            ),
            (
                "selector bad label",
                Box::new(|d| d["spec"]["selector"] = json!({"matchLabels": {"app": "a b"}})),
                vec![("spec.selector.matchLabels", "FieldValueInvalid")],
            ),
            (
                "negative replicas",
                Box::new(|d| d["spec"]["replicas"] = json!(-1)),
                vec![("spec.replicas", "FieldValueInvalid")],
            ),
            (
                "zero replicas",
                Box::new(|d| d["spec"]["replicas"] = json!(0)),
                vec![],
            ),
            (
                "recreate",
                Box::new(|d| d["spec"]["strategy"] = json!({"type": "Recreate"})),
                vec![],
            ),
            (
                "recreate with rolling",
                Box::new(|d| {
                    d["spec"]["strategy"] =
                        json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
                }),
                vec![("spec.strategy.rollingUpdate", "FieldValueForbidden")],
            ),
            (
                "bad strategy",
                Box::new(|d| d["spec"]["strategy"] = json!({"type": "BlueGreen"})),
                vec![("spec.strategy.type", "FieldValueNotSupported")],
            ),
            (
                "rolling ok",
                Box::new(
                    |d| d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
                ),
                vec![],
            ),
            (
                "rolling both zero",
                Box::new(
                    |d| d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
                ),
                vec![(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "FieldValueInvalid",
                )],
            ),
            (
                "rolling bad percent",
                Box::new(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "25"}})),
                vec![("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid")],
            ),
            (
                "rolling negative",
                Box::new(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": -1}})),
                vec![("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid")],
            ),
            (
                "rolling over 100%",
                Box::new(|d| {
                    d["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": "150%"}})
                }),
                vec![(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "FieldValueInvalid",
                )],
            ),
            (
                "revisionHistoryLimit",
                Box::new(|d| d["spec"]["revisionHistoryLimit"] = json!(-1)),
                vec![("spec.revisionHistoryLimit", "FieldValueInvalid")],
            ),
            (
                "minReadySeconds",
                Box::new(|d| d["spec"]["minReadySeconds"] = json!(-5)),
                vec![("spec.minReadySeconds", "FieldValueInvalid")],
            ),
            (
                "progress deadline <= minReady",
                Box::new(|d| {
                    d["spec"]["minReadySeconds"] = json!(10);
                    d["spec"]["progressDeadlineSeconds"] = json!(10);
                }),
                vec![("spec.progressDeadlineSeconds", "FieldValueInvalid")],
            ),
            (
                "template pod spec",
                Box::new(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("")),
                vec![(
                    "spec.template.spec.containers[0].image",
                    "FieldValueRequired",
                )],
            ),
            (
                "template restart policy",
                Box::new(|d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never")),
                vec![("spec.template.spec.restartPolicy", "FieldValueNotSupported")],
            ),
            (
                "template deadline",
                Box::new(|d| d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5)),
                vec![(
                    "spec.template.spec.activeDeadlineSeconds",
                    "FieldValueForbidden",
                )],
            ),
            (
                "template bad label",
                Box::new(|d| d["spec"]["template"]["metadata"]["labels"]["x"] = json!("-")),
                vec![("spec.template.metadata.labels", "FieldValueInvalid")],
            ),
            (
                "no template",
                Box::new(|d| {
                    d["spec"].as_object_mut().unwrap().remove("template");
                }),
                vec![("spec.template", "FieldValueRequired")],
            ),
        ];
        for (case, f, want) in cases {
            expect(&run("apps", "deployments", &deploy(&*f), None), &want, case);
        }
    }

    #[test]
    fn mismatch_message_is_upstreams() {
        let d = deploy(&|d| d["spec"]["selector"] = json!({"matchLabels": {"app": "db"}}));
        let errs = run("apps", "deployments", &d, None);
        assert_eq!(errs[0].message, "Invalid value: {\"app\":\"web\",\"tier\":\"front\"}: `selector` does not match template `labels`");
    }

    #[test]
    fn selector_is_immutable() {
        let old = deploy(&|_| {});
        let scaled = deploy(&|d| d["spec"]["replicas"] = json!(5));
        assert!(run("apps", "deployments", &scaled, Some(&old)).is_empty());
        let moved = deploy(&|d| d["spec"]["selector"] = json!({"matchLabels": {"tier": "front"}}));
        let errs = run("apps", "deployments", &moved, Some(&old));
        expect(
            &errs,
            &[("spec.selector", "FieldValueInvalid")],
            "selector changed",
        );
        assert!(errs[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn replicaset_rules() {
        let rs = |f: &dyn Fn(&mut Value)| {
            let mut d = deploy(f);
            d["kind"] = json!("ReplicaSet");
            d
        };
        expect(
            &run("apps", "replicasets", &rs(&|_| {}), None),
            &[],
            "valid",
        );
        expect(
            &run(
                "apps",
                "replicasets",
                &rs(&|d| d["spec"]["replicas"] = json!(-2)),
                None,
            ),
            &[("spec.replicas", "FieldValueInvalid")],
            "negative",
        );
        expect(
            &run(
                "apps",
                "replicasets",
                &rs(&|d| d["spec"]["selector"] = json!({"matchLabels": {"app": "x"}})),
                None,
            ),
            &[("spec.template.metadata.labels", "FieldValueInvalid")],
            "mismatch",
        );
        let old = rs(&|_| {});
        let moved = rs(&|d| d["spec"]["selector"]["matchLabels"]["tier"] = json!("front"));
        expect(
            &run("apps", "replicasets", &moved, Some(&old)),
            &[("spec.selector", "FieldValueInvalid")],
            "rs selector immutable",
        );
    }
}
