//! Server-side defaulting per kind: what the upstream API server fills in before it
//! validates and stores an object (`pkg/apis/*/v1/defaults.go`, the strategies'
//! `PrepareForCreate`, and the v1 conversions), so that `kubectl get -o yaml` shows
//! the same fields it would on a real cluster.
//!
//! [`apply`] is idempotent and never overwrites a field the client set. Allocation is
//! not defaulting: cluster IPs and node ports are the API server's job.
//! [`default_tolerations`] is upstream's `DefaultTolerationSeconds` admission step,
//! applied to pods on create only. [`carry_over_service_allocations`] and
//! [`drop_type_dependent_fields`] are what the service update path does so `kubectl
//! apply` of a manifest without a clusterIP keeps the allocated one, and a change of
//! `type` sheds the fields only the old type used.
//!
//! ```
//! use skiff_api::{defaults, resource};
//!
//! let svc = resource::lookup("", "v1", "services").unwrap();
//! let mut s = serde_json::json!({"spec": {"ports": [{"port": 80}]}});
//! defaults::apply(svc, &mut s);
//! assert_eq!(s["spec"]["type"], "ClusterIP");
//! assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
//! assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
//! ```

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::resource::ResourceInfo;

/// Fills in the fields the API server defaults for this kind.
pub fn apply(res: &ResourceInfo, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (res.group, res.kind) {
        ("", "Pod") => {
            let spec = child(obj, "spec");
            pod_spec(spec);
            pod_only(spec);
        }
        ("apps", "Deployment") => deployment(obj),
        ("apps", "ReplicaSet") => {
            let spec = child(obj, "spec");
            set_default(spec, "replicas", json!(1));
            template(spec);
        }
        ("", "Service") => service(obj),
        ("", "Namespace") => namespace(obj),
        ("", "Secret") => secret(obj),
        ("", "Endpoints") => {
            for subset in array_mut(obj, "subsets") {
                for p in array_mut(subset, "ports") {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for p in array_mut(obj, "ports") {
                set_default(p, "protocol", json!("TCP"));
            }
        }
        _ => {}
    }
}

/// The child object `key` of `obj`, created (or replaced, if not an object) on demand.
fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    let map = obj.as_object_mut().expect("defaulting works on objects");
    let v = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v
}

/// Sets `key` unless the client set it to something other than null or "".
fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let unset = match map.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            map.insert(key.to_string(), value);
        }
    }
}

fn array_mut<'a>(obj: &'a mut Value, key: &str) -> std::slice::IterMut<'a, Value> {
    match obj.get_mut(key).and_then(Value::as_array_mut) {
        Some(a) => a.iter_mut(),
        None => [].iter_mut(),
    }
}

/// `Always` for `:latest` or an untagged image (it may change under the same name),
/// `IfNotPresent` for a tag or digest.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Defaults a pod spec (a pod's, or a template's). What only a Pod gets is in
/// `pod_only`.
pub fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    // The v1 API mirrors the account in the deprecated `serviceAccount` field, either
    // way round.
    let sa = ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|k| {
            spec.get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string);
    if let Some(sa) = sa {
        set_default(spec, "serviceAccountName", json!(sa));
        set_default(spec, "serviceAccount", json!(sa));
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers"] {
        for c in array_mut(spec, list) {
            container(c, host_network);
        }
    }
    for v in array_mut(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Value, host_network: bool) {
    if !c.is_object() {
        return;
    }
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set_default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    for p in array_mut(c, "ports") {
        set_default(p, "protocol", json!("TCP"));
        // On the host network the container port is the host port.
        if host_network {
            if let Some(cp) = p.get("containerPort").cloned() {
                set_default_nonzero(p, "hostPort", cp);
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set_default(h, "path", json!("/"));
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c
            .pointer_mut(&format!("/lifecycle/{hook}/httpGet"))
            .filter(|h| h.is_object())
        {
            set_default(h, "path", json!("/"));
            set_default(h, "scheme", json!("HTTP"));
        }
    }
    for env in array_mut(c, "env") {
        if let Some(f) = env
            .pointer_mut("/valueFrom/fieldRef")
            .filter(|f| f.is_object())
        {
            set_default(f, "apiVersion", json!("v1"));
        }
    }
}

/// Defaults a Pod gets and a template does not (upstream keeps templates as written, so
/// `kubectl describe deployment` and `rollout history` show no account nor requests
/// the user never set).
fn pod_only(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    // The ServiceAccount admission step names the namespace's default account.
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        set_default(spec, "serviceAccountName", json!("default"));
        set_default(spec, "serviceAccount", json!("default"));
    }
    for list in ["initContainers", "containers"] {
        for c in array_mut(spec, list) {
            // A limit without a request requests the limit, so the scheduler reserves
            // what the container may use.
            let limits = c
                .pointer("/resources/limits")
                .and_then(Value::as_object)
                .cloned();
            if let Some(limits) = limits.filter(|l| !l.is_empty()) {
                let resources = child(c, "resources");
                let requests = child(resources, "requests");
                for (k, v) in limits {
                    set_default(requests, &k, v);
                }
            }
        }
    }
}

fn set_default_nonzero(obj: &mut Value, key: &str, value: Value) {
    if obj.get(key).and_then(Value::as_i64).unwrap_or(0) == 0 {
        if let Some(m) = obj.as_object_mut() {
            m.insert(key.to_string(), value);
        }
    }
}

/// Volume sources whose files get mode 0644 unless told otherwise.
const MODE_SOURCES: &[&str] = &["secret", "configMap", "downwardAPI", "projected"];

fn volume(v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    // A volume with no source is an emptyDir, as upstream defaults it.
    if map.keys().all(|k| k == "name") {
        map.insert("emptyDir".into(), json!({}));
    }
    for src in MODE_SOURCES {
        if let Some(s) = map.get_mut(*src).filter(|s| s.is_object()) {
            set_default(s, "defaultMode", json!(420));
        }
    }
}

fn template(spec: &mut Value) {
    let t = child(spec, "template");
    let s = child(t, "spec");
    pod_spec(s);
}

fn deployment(obj: &mut Value) {
    let spec = child(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = child(spec, "strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    template(spec);
}

fn service(obj: &mut Value) {
    let spec = child(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or("").to_string();
    if spec["sessionAffinity"] == "ClientIP" {
        let cfg = child(spec, "sessionAffinityConfig");
        let cip = child(cfg, "clientIP");
        set_default(cip, "timeoutSeconds", json!(10800));
    }
    for p in array_mut(spec, "ports") {
        set_default(p, "protocol", json!("TCP"));
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && !port.is_null() {
            p["targetPort"] = port;
        }
    }
    if ty != "ExternalName" {
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        if ty == "NodePort" || ty == "LoadBalancer" {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
    }
    // Keep the two cluster IP fields in step when the client set only the old one.
    let single = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let list_empty = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if let (Some(ip), true) = (single, list_empty) {
        spec["clusterIPs"] = json!([ip]);
    }
}

fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Upstream labels every namespace with its own name so selectors can pick it.
    if let Some(name) = name {
        let meta = crate::meta::metadata_mut(obj);
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    let spec = child(obj, "spec");
    set_default(spec, "finalizers", json!(["kubernetes"]));
    let status = child(obj, "status");
    set_default(status, "phase", json!("Active"));
}

fn secret(obj: &mut Value) {
    set_default(obj, "type", json!("Opaque"));
    // `stringData` is a write-only convenience: merged into `data` (it wins on a
    // clash) and never stored, as the v1 conversion does.
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    let data = child(obj, "data");
    for (k, v) in string_data {
        if let Some(s) = v.as_str() {
            data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

/// Adds the `not-ready` and `unreachable` NoExecute tolerations for 300 seconds unless
/// the pod already tolerates those taints (upstream's `DefaultTolerationSeconds`
/// admission, run on pod create), so pods are evicted from a lost node after five
/// minutes rather than at once.
pub fn default_tolerations(pod: &mut Value) {
    if !pod.is_object() {
        return;
    }
    let spec = child(pod, "spec");
    let tols: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerates = |key: &str| {
        tols.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let mut add = Vec::new();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerates(key) {
            add.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if add.is_empty() {
        return;
    }
    let list = spec
        .as_object_mut()
        .expect("object")
        .entry("tolerations")
        .or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    list.as_array_mut().expect("array").extend(add);
}

/// On a Service update, keeps what the server allocated when the new object leaves it
/// out (a re-applied manifest has no clusterIP or nodePort): `clusterIP`, `clusterIPs`,
/// `ipFamilies`, `ipFamilyPolicy`, `healthCheckNodePort`, and each port's `nodePort`
/// (matched by port number and protocol). Nothing is carried over to or from an
/// ExternalName service, which has no allocations.
pub fn carry_over_service_allocations(new: &mut Value, old: &Value) {
    let Some(old_spec) = old.get("spec") else {
        return;
    };
    if !new.is_object() {
        return;
    }
    let is_external = |s: &Value| s.get("type").and_then(Value::as_str) == Some("ExternalName");
    if is_external(old_spec) || new.get("spec").is_some_and(is_external) {
        return;
    }
    let spec = child(new, "spec");
    for key in [
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "healthCheckNodePort",
    ] {
        if let Some(v) = old_spec.get(key) {
            set_default(spec, key, v.clone());
            if spec
                .get(key)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                spec[key] = v.clone();
            }
        }
    }
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "NodePort" && ty != "LoadBalancer" {
        return;
    }
    let old_ports = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key = |p: &Value| {
        (
            p.get("port").and_then(Value::as_i64),
            p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string(),
        )
    };
    for p in array_mut(spec, "ports") {
        if !p.is_object() || p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
            continue;
        }
        if let Some(np) = old_ports
            .iter()
            .find(|o| key(o) == key(p))
            .and_then(|o| o.get("nodePort"))
        {
            p["nodePort"] = np.clone();
        }
    }
}

/// On a Service update that changes `type`, clears what the old type needed and the
/// new one does not, when the client left it unchanged (it came along in a patch
/// applied to the stored object): cluster IPs and families when going to ExternalName,
/// node ports and `externalTrafficPolicy` when leaving NodePort/LoadBalancer,
/// `healthCheckNodePort` when it no longer applies. Upstream's service strategy does
/// the same before validating, so `kubectl apply` can switch a Service's type.
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let Some(old_spec) = old.get("spec").filter(|s| s.is_object()) else {
        return;
    };
    let Some(spec) = new.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let ty = |s: &Value| {
        s.get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    // Only a LoadBalancer with the Local policy has a health check node port.
    let local_lb = |s: &Value| {
        ty(s) == "LoadBalancer"
            && s.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
    };
    let (old_ty, new_ty) = (ty(old_spec), ty(spec));
    let drop_health_check = local_lb(old_spec) && !local_lb(spec);
    let map = spec.as_object_mut().expect("checked object");
    let mut clear_if_same = |key: &str| {
        if map.get(key).is_some() && map.get(key) == old_spec.get(key) {
            map.remove(key);
        }
    };
    if old_ty != "ExternalName" && new_ty == "ExternalName" {
        for key in [
            "clusterIP",
            "clusterIPs",
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
        ] {
            clear_if_same(key);
        }
    }
    if drop_health_check {
        clear_if_same("healthCheckNodePort");
    }
    if !node_ports(&old_ty) || node_ports(&new_ty) {
        return;
    }
    clear_if_same("externalTrafficPolicy");
    // Node ports go only if none was newly chosen by the client.
    let old_ports: Vec<i64> = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ports) = map.get_mut("ports").and_then(Value::as_array_mut) {
        let unchanged = ports.iter().all(|p| {
            let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            np == 0 || old_ports.contains(&np)
        });
        if unchanged {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;

    fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
        apply(lookup(group, "v1", plural).unwrap(), &mut obj);
        obj
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1.0", "IfNotPresent"),
            ("registry:5000/team/app:latest", "Always"),
            ("nginx@sha256:abcd", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(image_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_defaults() {
        let pod = defaulted(
            "",
            "pods",
            json!({"spec": {"containers": [{
            "name": "app", "image": "nginx",
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        }], "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}}),
        );
        let s = &pod["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["securityContext"], json!({}));
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["serviceAccount"], "default");
        let c = &s["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert!(c["ports"][0].get("hostPort").is_none());
        let lp = &c["livenessProbe"];
        assert_eq!(
            (
                lp["timeoutSeconds"].clone(),
                lp["periodSeconds"].clone(),
                lp["successThreshold"].clone(),
                lp["failureThreshold"].clone()
            ),
            (json!(1), json!(10), json!(1), json!(3))
        );
        assert_eq!(lp["httpGet"]["scheme"], "HTTP");
        assert_eq!(lp["httpGet"]["path"], "/");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5, "client value kept");
        assert_eq!(
            c["resources"]["requests"],
            json!({"memory": "64Mi", "cpu": "500m"})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(s["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(s["volumes"][1]["configMap"]["defaultMode"], 420);
        assert!(s["volumes"][1].get("emptyDir").is_none());
    }

    #[test]
    fn pod_defaults_keep_client_values_and_are_idempotent() {
        let input = json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default", "serviceAccountName": "builder",
            "terminationGracePeriodSeconds": 0, "hostNetwork": true,
            "containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "Never", "ports": [{"containerPort": 8080, "protocol": "UDP"}]}]}});
        let once = defaulted("", "pods", input);
        let s = &once["spec"];
        assert_eq!(s["restartPolicy"], "Never");
        assert_eq!(s["dnsPolicy"], "Default");
        assert_eq!(s["serviceAccountName"], "builder");
        assert_eq!(s["serviceAccount"], "builder");
        assert_eq!(s["terminationGracePeriodSeconds"], 0);
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(s["containers"][0]["ports"][0]["protocol"], "UDP");
        assert_eq!(
            s["containers"][0]["ports"][0]["hostPort"], 8080,
            "host network mirrors ports"
        );
        let twice = defaulted("", "pods", once.clone());
        assert_eq!(once, twice);
    }

    #[test]
    fn deployment_and_replicaset_defaults() {
        let d = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let t = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"limits": {"cpu": "1"}}}]}}}}),
        );
        let ts = &t["spec"]["template"]["spec"];
        assert!(
            ts.get("serviceAccountName").is_none() && ts.get("serviceAccount").is_none(),
            "only pods get the default account: {ts}"
        );
        assert!(
            ts["containers"][0]["resources"].get("requests").is_none(),
            "only pods request their limits: {ts}"
        );
        let named = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"template": {"spec": {"serviceAccountName": "builder"}}}}),
        );
        assert_eq!(
            named["spec"]["template"]["spec"]["serviceAccount"],
            "builder"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let r = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(r["spec"]["replicas"], 0);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
        let partial = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
        );
        assert_eq!(
            partial["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": 1, "maxUnavailable": "25%"})
        );
        let rs = defaulted(
            "apps",
            "replicasets",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}),
        );
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(rs["spec"].get("revisionHistoryLimit").is_none());
    }

    #[test]
    fn service_defaults() {
        let s = defaulted(
            "",
            "services",
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "dns");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        assert!(
            s["spec"].get("clusterIP").is_none(),
            "allocation is not defaulting"
        );
        let np = defaulted(
            "",
            "services",
            json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 0}]}}),
        );
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(np["spec"]["ports"][0]["targetPort"], 80);
        assert!(np["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(
            np["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        assert_eq!(np["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        let ext = defaulted(
            "",
            "services",
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
        );
        assert!(ext["spec"].get("ipFamilies").is_none());
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn namespace_secret_and_endpoint_defaults() {
        let ns = defaulted("", "namespaces", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        let s = defaulted(
            "",
            "secrets",
            json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hello", "c": "hi"}}),
        );
        assert_eq!(s["type"], "Opaque");
        assert_eq!(
            s["data"],
            json!({"a": "eA==", "b": "aGVsbG8=", "c": "aGk="})
        );
        assert!(s.get("stringData").is_none());
        let tls = defaulted("", "secrets", json!({"type": "kubernetes.io/tls"}));
        assert_eq!(tls["type"], "kubernetes.io/tls");
        let slice = defaulted(
            "discovery.k8s.io",
            "endpointslices",
            json!({"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}),
        );
        assert_eq!(slice["ports"][0]["protocol"], "TCP");
        assert_eq!(slice["ports"][1]["protocol"], "UDP");
        let ep = defaulted(
            "",
            "endpoints",
            json!({"subsets": [{"ports": [{"port": 80}]}]}),
        );
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        let node = json!({"metadata": {"name": "n1"}, "status": {}});
        assert_eq!(defaulted("", "nodes", node.clone()), node);
    }

    #[test]
    fn default_tolerations_are_added_once() {
        let mut pod = json!({"spec": {"containers": []}});
        default_tolerations(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let before = pod.clone();
        default_tolerations(&mut pod);
        assert_eq!(pod, before, "idempotent");

        let mut own = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        default_tolerations(&mut own);
        let tols = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tols.len(), 2);
        assert_eq!(tols[0]["tolerationSeconds"], 10);
        assert_eq!(tols[1]["key"], "node.kubernetes.io/not-ready");

        let mut everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut everything);
        assert_eq!(
            everything["spec"]["tolerations"].as_array().unwrap().len(),
            1
        );

        let mut other_effect = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}});
        default_tolerations(&mut other_effect);
        assert_eq!(
            other_effect["spec"]["tolerations"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn service_allocations_carry_over() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "nodePort": 31000}, {"port": 443}]}});
        carry_over_service_allocations(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(
            new["spec"]["ports"][1]["nodePort"], 31000,
            "client value kept"
        );
        assert!(
            new["spec"]["ports"][2].get("nodePort").is_none(),
            "new port left to allocation"
        );

        let mut to_cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        carry_over_service_allocations(&mut to_cluster_ip, &old);
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.0.7");
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());

        let mut to_external = json!({"spec": {"type": "ExternalName", "externalName": "a.b"}});
        carry_over_service_allocations(&mut to_external, &old);
        assert!(to_external["spec"].get("clusterIP").is_none());
    }

    /// Realistic manifests of every kind.
    fn examples() -> Vec<(&'static str, &'static str, Value)> {
        let pod_spec = json!({"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "http"}],
            "readinessProbe": {"httpGet": {"port": "http"}}, "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}], "volumes": [{"name": "cache"}]});
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec});
        vec![
            (
                "",
                "pods",
                json!({"metadata": {"name": "web", "namespace": "default"}, "spec": pod_spec}),
            ),
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
            ),
            (
                "apps",
                "replicasets",
                json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
            ),
            (
                "",
                "services",
                json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            ),
            (
                "",
                "services",
                json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            ),
            ("", "namespaces", json!({"metadata": {"name": "team-a"}})),
            (
                "",
                "secrets",
                json!({"metadata": {"name": "s", "namespace": "default"}, "stringData": {"password": "hunter2"}}),
            ),
            (
                "",
                "configmaps",
                json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "b"}}),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "web-x", "namespace": "default"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"name": "http", "port": 80}]}),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]}),
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}}),
            ),
        ]
    }

    /// Realistic manifests of every kind, once defaulted, must pass validation: the two
    /// modules agree on every field defaulting fills in.
    #[test]
    fn defaulted_examples_validate() {
        let examples = examples();
        for (group, plural, obj) in examples {
            let res = lookup(group, "v1", plural).unwrap();
            let mut obj = obj;
            apply(res, &mut obj);
            if plural == "pods" {
                default_tolerations(&mut obj);
            }
            let errs = crate::validation::validate(res, &obj, None);
            assert!(errs.is_empty(), "{plural}: {errs:#?}");
            // Updating to the same defaulted object is always allowed.
            let errs = crate::validation::validate(res, &obj, Some(&obj));
            assert!(errs.is_empty(), "{plural} update: {errs:#?}");
        }
    }

    /// Every subtree of every example, replaced by each of a few hostile values, must
    /// neither panic defaulting nor validation (the API server sees arbitrary JSON).
    #[test]
    fn hostile_shapes_never_panic() {
        fn paths(v: &Value, here: String, out: &mut Vec<String>) {
            out.push(here.clone());
            match v {
                Value::Object(m) => m.iter().for_each(|(k, c)| {
                    paths(
                        c,
                        format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    )
                }),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, c)| paths(c, format!("{here}/{i}"), out)),
                _ => {}
            }
        }
        let hostile = [
            json!(null),
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(""),
            json!([]),
            json!([1, null, "x", {}]),
            json!({}),
            json!(true),
            json!({"a": [{"b": 1}]}),
        ];
        let mut runs = 0;
        for (group, plural, example) in examples() {
            let res = lookup(group, "v1", plural).unwrap();
            let mut base = example;
            apply(res, &mut base);
            let mut all = Vec::new();
            paths(&base, String::new(), &mut all);
            for path in all {
                for h in &hostile {
                    let mut obj = base.clone();
                    match obj.pointer_mut(&path) {
                        Some(slot) => *slot = h.clone(),
                        None => continue,
                    }
                    let _ = crate::validation::validate(res, &obj, Some(&base));
                    let _ = crate::validation::validate(res, &base, Some(&obj));
                    let mut d = obj.clone();
                    apply(res, &mut d);
                    default_tolerations(&mut d);
                    carry_over_service_allocations(&mut d, &base);
                    carry_over_service_allocations(&mut base.clone(), &obj);
                    drop_type_dependent_fields(&mut obj.clone(), &base);
                    drop_type_dependent_fields(&mut base.clone(), &obj);
                    let _ = crate::validation::validate(res, &d, None);
                    runs += 1;
                }
            }
        }
        assert!(runs > 1000, "the walk covered {runs} variants");
    }

    #[test]
    fn type_changes_drop_what_the_old_type_needed() {
        let old = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31999,
            "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        // A patch that only changes the type leaves everything else as stored.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&mut to_cluster_ip, &old);
        let s = &to_cluster_ip["spec"];
        assert!(s.get("externalTrafficPolicy").is_none());
        assert!(s.get("healthCheckNodePort").is_none());
        assert!(s["ports"][0].get("nodePort").is_none());
        assert_eq!(
            s["clusterIP"], "10.96.0.7",
            "a ClusterIP service keeps its IP"
        );
        let res = lookup("", "v1", "services").unwrap();
        let mut named = to_cluster_ip.clone();
        named["metadata"] = json!({"name": "web", "namespace": "default"});
        assert!(crate::validation::validate(res, &named, Some(&old)).is_empty());

        let mut to_external = old.clone();
        to_external["spec"]["type"] = json!("ExternalName");
        to_external["spec"]["externalName"] = json!("db.example.com");
        drop_type_dependent_fields(&mut to_external, &old);
        assert!(to_external["spec"].get("clusterIP").is_none());
        assert!(to_external["spec"].get("clusterIPs").is_none());
        assert!(to_external["spec"].get("ipFamilies").is_none());

        // A node port the client changed is theirs to keep (validation then refuses it).
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        drop_type_dependent_fields(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30081);

        // Staying a NodePort service drops nothing.
        let np_old = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut same = np_old.clone();
        drop_type_dependent_fields(&mut same, &np_old);
        assert_eq!(same, np_old);
    }
}
