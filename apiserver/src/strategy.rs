//! What the server does to an object on its way into the store, per kind: server-set
//! metadata, status handling, generation, defaults, allocations and validation.
//!
//! The rules follow upstream's REST strategies: `create` resets status where the
//! server owns it; an update of the main resource keeps the stored status and an update
//! of `/status` keeps everything but status; `metadata.generation` moves only when the
//! desired state (everything but metadata and status) changes.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};
use skiff_api::{meta, ApiError, ResourceInfo};

use crate::alloc::{self, Allocators};

/// RFC 3339 with second precision, as Kubernetes writes timestamps.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Everything but `metadata` and `status` (and the type fields): the desired state.
fn desired(v: &Value) -> Value {
    let mut d = v.clone();
    if let Some(m) = d.as_object_mut() {
        for k in ["metadata", "status", "kind", "apiVersion"] {
            m.remove(k);
        }
    }
    d
}

fn initial_status(res: &ResourceInfo, obj: &Value) -> Option<Value> {
    match (res.group, res.kind) {
        ("", "Pod") => Some(json!({"phase": "Pending", "qosClass": qos_class(obj)})),
        ("", "Namespace") => Some(json!({"phase": "Active"})),
        ("", "Service") => Some(json!({"loadBalancer": {}})),
        ("", "Node") => None, // the kubelet registers its node with a status
        _ if res.has_status => Some(json!({})),
        _ => None,
    }
}

/// The pod's QoS class from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed && !containers.is_empty() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Random suffix for `generateName`, from the alphabet upstream uses (no vowels, no
/// look-alike characters).
pub fn name_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Removes empty labels, annotations, ownerReferences and finalizers. Upstream stores
/// ObjectMeta through a typed struct whose fields are `omitempty`, so removing the last
/// label (or the garbage collector orphaning a dependent) leaves no `labels: {}` or
/// `ownerReferences: []` behind for `kubectl get -o yaml` to show.
fn drop_empty_metadata(obj: &mut Value) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    m.retain(|k, v| {
        let empty = match v {
            Value::Null => true,
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        !(empty
            && matches!(
                k.as_str(),
                "labels" | "annotations" | "ownerReferences" | "finalizers"
            ))
    });
}

/// Prepares a new object. `name` is already settled (generateName resolved).
pub fn prepare_create(
    res: &ResourceInfo,
    obj: &mut Value,
    alloc: &Allocators,
) -> Result<(), ApiError> {
    let m = meta::metadata_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(k);
    }
    if obj.get("spec").is_some() || res.has_status {
        meta::set(obj, "generation", json!(1));
    } else {
        meta::remove(obj, "generation");
    }
    if let Some(st) = initial_status(res, obj) {
        obj["status"] = st;
    }
    drop_empty_metadata(obj);
    skiff_api::defaults::apply(res, obj);
    let name = meta::name(obj).unwrap_or("").to_string();
    let causes = skiff_api::validation::validate(res, obj, None);
    if !causes.is_empty() {
        return Err(ApiError::invalid(res, &name, causes));
    }
    if (res.group, res.kind) == ("", "Service") {
        allocate_service(obj, None, alloc, &name, res)?;
    }
    Ok(())
}

/// Prepares `new` to replace `old`. `sub` is the subresource written through
/// (`status`, or None for the main resource).
pub fn prepare_update(
    res: &ResourceInfo,
    new: &mut Value,
    old: &Value,
    sub: Option<&str>,
    alloc: &Allocators,
) -> Result<(), ApiError> {
    if sub == Some("status") {
        // Only status may change through /status.
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    } else if res.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    // Server-owned metadata is not the client's to change.
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let m = meta::metadata_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    if let Some(v) = new
        .get("kind")
        .cloned()
        .or_else(|| old.get("kind").cloned())
    {
        new["kind"] = v;
    }
    if let Some(v) = new
        .get("apiVersion")
        .cloned()
        .or_else(|| old.get("apiVersion").cloned())
    {
        new["apiVersion"] = v;
    }
    drop_empty_metadata(new);
    skiff_api::defaults::apply(res, new);
    if (res.group, res.kind) == ("", "Service") && sub.is_none() {
        // Upstream copies allocated values forward when an update leaves them unset (a
        // `kubectl replace` of a manifest without clusterIP neither fails nor
        // re-allocates), and drops what a type change no longer needs.
        skiff_api::defaults::carry_over_service_allocations(new, old);
        skiff_api::defaults::drop_type_dependent_fields(new, old);
    }
    // Only kinds that got a generation at create time track one: a ConfigMap or Secret
    // has none, and an update must not invent it (`kubectl diff` would show it).
    let old_generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
    if let Some(g) = old_generation {
        if desired(new) != desired(old) {
            meta::set(new, "generation", json!(g + 1));
        }
    }
    let name = meta::name(old).unwrap_or("").to_string();
    let causes = skiff_api::validation::validate(res, new, Some(old));
    if !causes.is_empty() {
        return Err(ApiError::invalid(res, &name, causes));
    }
    if (res.group, res.kind) == ("", "Service") && sub.is_none() {
        allocate_service(new, Some(old), alloc, &name, res)?;
    }
    Ok(())
}

fn wants_node_ports(svc: &Value) -> bool {
    matches!(
        svc.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

/// Allocates a ClusterIP and NodePorts for a new or changed Service and releases what
/// an update gives up. On error nothing stays allocated.
fn allocate_service(
    svc: &mut Value,
    old: Option<&Value>,
    alloc: &Allocators,
    name: &str,
    res: &ResourceInfo,
) -> Result<(), ApiError> {
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let mut taken_ips: Vec<Ipv4Addr> = Vec::new();
    let mut taken_ports: Vec<u16> = Vec::new();
    let rollback = |ips: &[Ipv4Addr], ports: &[u16]| {
        ips.iter().for_each(|ip| alloc.release_ip(*ip));
        ports.iter().for_each(|p| alloc.release_port(*p));
    };
    let named = |e: ApiError| {
        let mut e2 = ApiError::invalid(res, name, e.causes.clone());
        if e.causes.is_empty() {
            e2 = e;
        }
        e2
    };

    let old_ips = old.map(alloc::cluster_ips).unwrap_or_default();
    let old_ports = old.map(alloc::node_ports).unwrap_or_default();

    if ty != "ExternalName" {
        let current = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if current != "None" && old_ips.is_empty() {
            let requested = if current.is_empty() {
                None
            } else {
                current.parse().ok()
            };
            if !current.is_empty() && requested.is_none() {
                return Err(ApiError::invalid(
                    res,
                    name,
                    vec![skiff_api::Cause::invalid(
                        "spec.clusterIP",
                        &json!(current),
                        "must be a valid IP address or \"None\"",
                    )],
                ));
            }
            let ip = alloc.allocate_ip(requested).map_err(named)?;
            taken_ips.push(ip);
            svc["spec"]["clusterIP"] = json!(ip.to_string());
            svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        } else if current == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
        }
    }

    let want_np = wants_node_ports(svc);
    let mut kept: Vec<u16> = Vec::new();
    if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let field = format!("spec.ports[{i}].nodePort");
            let np = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
            if !want_np {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            if np != 0 && old_ports.contains(&np) {
                kept.push(np);
                continue;
            }
            match alloc.allocate_port(if np == 0 { None } else { Some(np) }, &field) {
                Ok(port) => {
                    taken_ports.push(port);
                    p["nodePort"] = json!(port);
                }
                Err(e) => {
                    rollback(&taken_ips, &taken_ports);
                    return Err(named(e));
                }
            }
        }
    }
    // Ports the update dropped go back to the pool.
    for p in old_ports {
        if !kept.contains(&p) {
            alloc.release_port(p);
        }
    }
    if ty == "ExternalName" {
        for ip in old_ips {
            alloc.release_ip(ip);
        }
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    Ok(())
}

/// Adds `finalizer` to the object's finalizers if missing.
pub fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let m: &mut Map<String, Value> = meta::metadata_mut(obj);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|f| f == finalizer) {
            a.push(json!(finalizer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::lookup;

    fn alloc() -> Allocators {
        Allocators::new("10.96.0.0/24".parse().unwrap(), (30000, 30010))
    }

    fn spec(replicas: i64) -> Value {
        json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        })
    }

    #[test]
    fn create_sets_server_fields_and_resets_status() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        let mut o = json!({"metadata": {"name": "web", "resourceVersion": "5"}, "spec": spec(1), "status": {"replicas": 9}});
        prepare_create(d, &mut o, &alloc()).unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(o["metadata"]["uid"].as_str().unwrap().len() > 30);
        assert!(o["metadata"].get("resourceVersion").is_none());
        assert_eq!(o["status"], json!({}));
    }

    #[test]
    fn generation_moves_only_with_the_desired_state() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        let a = alloc();
        let mut old = json!({"metadata": {"name": "web", "generation": 3, "uid": "u"}, "spec": spec(1), "status": {"replicas": 1}});
        skiff_api::defaults::apply(d, &mut old);
        let mut same = json!({"metadata": {"name": "web", "labels": {"a": "b"}}, "spec": spec(1)});
        prepare_update(d, &mut same, &old, None, &a).unwrap();
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u");
        assert_eq!(
            same["status"],
            json!({"replicas": 1}),
            "main resource keeps the stored status"
        );
        let mut changed = json!({"metadata": {"name": "web"}, "spec": spec(2)});
        prepare_update(d, &mut changed, &old, None, &a).unwrap();
        assert_eq!(changed["metadata"]["generation"], 4);
        let mut st =
            json!({"metadata": {"name": "web"}, "spec": spec(7), "status": {"replicas": 2}});
        prepare_update(d, &mut st, &old, Some("status"), &a).unwrap();
        assert_eq!(st["spec"]["replicas"], 1, "status writes keep the spec");
        assert_eq!(st["status"]["replicas"], 2);
        assert_eq!(st["metadata"]["generation"], 3);
    }

    #[test]
    fn empty_metadata_collections_are_not_stored() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let a = alloc();
        let mut old = json!({"metadata": {"name": "c", "labels": {}, "annotations": {"a": "b"}}});
        prepare_create(cm, &mut old, &a).unwrap();
        assert!(old["metadata"].get("labels").is_none());
        assert_eq!(old["metadata"]["annotations"], json!({"a": "b"}));
        let mut new = json!({"metadata": {"name": "c", "labels": {"x": "y"}, "annotations": {},
            "ownerReferences": [], "finalizers": []}});
        prepare_update(cm, &mut new, &old, None, &a).unwrap();
        let m = new["metadata"].as_object().unwrap();
        assert_eq!(m["labels"], json!({"x": "y"}));
        for k in ["annotations", "ownerReferences", "finalizers"] {
            assert!(!m.contains_key(k), "{k} left in {m:?}");
        }
    }

    #[test]
    fn kinds_without_a_generation_do_not_gain_one_on_update() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let a = alloc();
        let mut old = json!({"metadata": {"name": "c", "uid": "u"}, "data": {"k": "v"}});
        prepare_create(cm, &mut old, &a).unwrap();
        assert!(old["metadata"].get("generation").is_none());
        let mut changed = json!({"metadata": {"name": "c"}, "data": {"k": "other"}});
        prepare_update(cm, &mut changed, &old, None, &a).unwrap();
        assert!(changed["metadata"].get("generation").is_none());
    }

    #[test]
    fn services_get_and_keep_allocations() {
        let s = lookup("", "v1", "services").unwrap();
        let a = alloc();
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_create(s, &mut svc, &a).unwrap();
        let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.96.0."));
        let np = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=30010).contains(&np));
        // A replace without the allocated values keeps them.
        let mut again = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare_update(s, &mut again, &svc, None, &a).unwrap();
        assert_eq!(again["spec"]["clusterIP"], json!(ip));
        assert_eq!(again["spec"]["ports"][0]["nodePort"], json!(np));
        // Switching to ClusterIP gives the port back.
        let mut cip = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        prepare_update(s, &mut cip, &svc, None, &a).unwrap();
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(a.allocate_port(Some(np as u16), "f").unwrap(), np as u16);
    }

    #[test]
    fn headless_services_get_no_ip() {
        let s = lookup("", "v1", "services").unwrap();
        let mut svc = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        prepare_create(s, &mut svc, &alloc()).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
