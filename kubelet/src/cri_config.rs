//! Translating a Kubernetes `Pod` into the CRI configs that run it: the sandbox config
//! (metadata, hostname, DNS, host ports, namespaces, log directory) and one container
//! config per container (command and args with `$(VAR)` expansion, environment with
//! the downward API and ConfigMap/Secret references, volume mounts, resources as
//! cgroup settings, log path, labels).
//!
//! Pure functions: everything they need about the node and the pod's sandbox is passed
//! in, so they are unit-tested without a runtime. The labels and annotation keys are
//! the ones the real kubelet uses (`io.kubernetes.pod.uid`, ...), so `crictl` output
//! looks familiar.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::api;
use crate::volumes::{config_map_data, secret_data, PodObjects, VolumePaths};

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// CFS period the kubelet uses to turn a CPU limit into a quota (100 ms).
const CPU_PERIOD_US: i64 = 100_000;
/// The smallest `cpu.shares` the kernel accepts.
const MIN_CPU_SHARES: i64 = 2;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("pod has no {0}: it cannot be run")]
    MissingField(&'static str),
    #[error("container {container:?}: {field} is not supported by skiff yet")]
    Unsupported { container: String, field: String },
    #[error("container {container:?}: invalid {field}: {why}")]
    Invalid {
        container: String,
        field: String,
        why: String,
    },
}

/// What the node knows that the pod spec does not.
#[derive(Debug, Clone, Default)]
pub struct NodeContext {
    pub node_name: String,
    pub node_ip: String,
    /// Root of the pod log directories (`/var/log/pods` on a real node).
    pub log_root: PathBuf,
    /// Cluster DNS server addresses; empty means no cluster DNS (node resolv.conf).
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The kubelet's state directory; pod volumes live in `<root_dir>/pods/<uid>`.
    pub root_dir: PathBuf,
    /// The node's allocatable resources: what a `resourceFieldRef` to an unset limit
    /// reports, as upstream. `None` makes such a reference an error.
    pub allocatable: Option<crate::node::Capacity>,
}

/// Name, namespace and UID of a pod, checked present.
pub fn pod_identity(pod: &Pod) -> Result<(&str, &str, &str), ConfigError> {
    let name = pod
        .metadata
        .name
        .as_deref()
        .ok_or(ConfigError::MissingField("metadata.name"))?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let uid = pod
        .metadata
        .uid
        .as_deref()
        .ok_or(ConfigError::MissingField("metadata.uid"))?;
    Ok((name, namespace, uid))
}

/// `<log_root>/<namespace>_<name>_<uid>`, the kubelet's layout that log collectors expect.
pub fn pod_log_dir(log_root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    log_root.join(format!("{namespace}_{name}_{uid}"))
}

/// `<container>/<restart count>.log`, relative to the pod log directory.
pub fn container_log_path(container: &str, restart_count: u32) -> String {
    format!("{container}/{restart_count}.log")
}

fn pod_labels(name: &str, namespace: &str, uid: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_NAME.to_string(), name.to_string()),
        (LABEL_POD_NAMESPACE.to_string(), namespace.to_string()),
        (LABEL_POD_UID.to_string(), uid.to_string()),
    ])
}

/// Linux namespaces from the pod spec: the pod shares network and IPC unless it asks
/// for the host's; PID is per container unless `shareProcessNamespace` or `hostPID`.
pub fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>, shared| {
        if host == Some(true) {
            api::NamespaceMode::Node as i32
        } else {
            shared as i32
        }
    };
    let pid_shared = if spec.share_process_namespace == Some(true) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    };
    api::NamespaceOption {
        network: mode(spec.host_network, api::NamespaceMode::Pod),
        pid: mode(spec.host_pid, pid_shared),
        ipc: mode(spec.host_ipc, api::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// DNS for the pod per `dnsPolicy` (`ClusterFirst` is the default; with host networking
/// it falls back to the node's resolver unless `ClusterFirstWithHostNet`).
pub fn dns_config(pod: &Pod, node: &NodeContext) -> Option<api::DnsConfig> {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut config = if cluster && !node.cluster_dns.is_empty() {
        let d = &node.cluster_domain;
        api::DnsConfig {
            servers: node.cluster_dns.clone(),
            searches: vec![
                format!("{namespace}.svc.{d}"),
                format!("svc.{d}"),
                d.clone(),
            ],
            options: vec!["ndots:5".into()],
        }
    } else if policy == "None" {
        api::DnsConfig::default()
    } else {
        return None; // the runtime copies the node's resolv.conf
    };
    if let Some(extra) = spec.dns_config {
        config.servers.extend(extra.nameservers.unwrap_or_default());
        config.searches.extend(extra.searches.unwrap_or_default());
        for o in extra.options.unwrap_or_default() {
            let Some(name) = o.name else { continue };
            config
                .options
                .retain(|existing| existing.split(':').next() != Some(name.as_str()));
            config.options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    Some(config)
}

/// The sandbox config for `attempt` (0 for the first sandbox of a pod).
pub fn sandbox_config(
    pod: &Pod,
    node: &NodeContext,
    attempt: u32,
) -> Result<api::PodSandboxConfig, ConfigError> {
    let (name, namespace, uid) = pod_identity(pod)?;
    let spec = pod.spec.clone().ok_or(ConfigError::MissingField("spec"))?;
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => api::Protocol::Udp,
                "SCTP" => api::Protocol::Sctp,
                _ => api::Protocol::Tcp,
            };
            port_mappings.push(api::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let mut labels = pod_labels(name, namespace, uid);
    for (k, v) in pod.metadata.labels.clone().unwrap_or_default() {
        labels.entry(k).or_insert(v);
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_string());
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    Ok(api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: namespace.into(),
            attempt,
        }),
        // A hostname is a DNS label: at most 63 characters.
        hostname: hostname
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches(['-', '.'])
            .to_string(),
        log_directory: pod_log_dir(&node.log_root, namespace, name, uid)
            .display()
            .to_string(),
        dns_config: dns_config(pod, node),
        port_mappings,
        labels,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(crate::security::sandbox_context(
                pod,
                namespace_options(pod),
            )),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Expands `$(VAR)` references as Kubernetes does: a defined variable is replaced,
/// `$$` is an escaped `$`, anything else is left as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) if vars.contains_key(&body[..end]) => {
                    out.push_str(&vars[&body[..end]]);
                    rest = &body[end + 1..];
                }
                Some(end) => {
                    out.push_str(&rest[pos..pos + 2 + end + 1]);
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(&rest[pos..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API `fieldRef`.
fn field_value(pod: &Pod, path: &str, pod_ip: &str, node: &NodeContext) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let keyed = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(spec.node_name.unwrap_or_else(|| node.node_name.clone())),
        "spec.serviceAccountName" => Some(spec.service_account_name.unwrap_or_default()),
        "status.podIP" => Some(pod_ip.to_string()),
        "status.podIPs" => Some(pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(node.node_ip.clone()),
        p if p.starts_with("metadata.labels['") => keyed(&meta.labels, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            keyed(&meta.annotations, "metadata.annotations['")
        }
        _ => None,
    }
}

/// The value of a `resourceFieldRef` (downward API) for `container`: the request or
/// limit divided by the divisor (default 1) and rounded up, as upstream; an unset
/// limit reads as the node's allocatable amount, an unset request as 0. Pure.
pub fn resource_field_value(
    container: &Container,
    selector: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    allocatable: Option<&crate::node::Capacity>,
) -> Result<String, String> {
    let res = container.resources.clone().unwrap_or_default();
    let (map, name) = match selector.resource.split_once('.') {
        Some(("limits", n)) => (&res.limits, n),
        Some(("requests", n)) => (&res.requests, n),
        _ => return Err(format!("unsupported resource {:?}", selector.resource)),
    };
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(format!("unsupported resource {:?}", selector.resource));
    }
    let parse = |q: &str| skiff_api::validation::parse_quantity(q);
    let set = map
        .as_ref()
        .and_then(|m| m.get(name))
        .map(|q| parse(&q.0))
        .transpose()?;
    // Millis throughout (value x 1000), so CPU and bytes divide the same way.
    let millis = match (set, selector.resource.starts_with("limits.")) {
        (Some(v), _) => v,
        (None, false) => 0,
        (None, true) => {
            let a = allocatable.ok_or_else(|| {
                format!(
                    "{} is unset and the node's allocatable is unknown",
                    selector.resource
                )
            })?;
            match name {
                "cpu" => a.cpu_millis as i128,
                "memory" => a.memory_bytes as i128 * 1000,
                // Not tracked by skiff's node: no limit to report.
                _ => 0,
            }
        }
    };
    let divisor = match &selector.divisor {
        Some(d) => parse(&d.0)?,
        None => 1000,
    };
    if divisor <= 0 {
        return Err(format!(
            "invalid divisor {:?}",
            selector.divisor.as_ref().map(|d| &d.0)
        ));
    }
    Ok(((millis + divisor - 1).div_euclid(divisor)).to_string())
}

fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The container's environment in order: `envFrom` sources first, then `env`, each
/// value expanded against the ones before; a later name replaces an earlier one.
/// ConfigMaps and Secrets come from `objects` (see [`crate::volumes::fetch`]).
pub fn environment(
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    node: &NodeContext,
    objects: &PodObjects,
) -> Result<Vec<(String, String)>, ConfigError> {
    let unsupported = |field: String| ConfigError::Unsupported {
        container: container.name.clone(),
        field,
    };
    let invalid = |field: String, why: String| ConfigError::Invalid {
        container: container.name.clone(),
        field,
        why,
    };
    let mut vars = BTreeMap::new();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>,
               vars: &mut BTreeMap<String, String>,
               name: String,
               value: String| {
        vars.insert(name.clone(), value.clone());
        match out.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    };
    for src in container.env_from.iter().flatten() {
        let prefix = src.prefix.clone().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(r) = &src.config_map_ref {
            (
                "configmap",
                r.name.clone(),
                r.optional == Some(true),
                objects.config_maps.get(&r.name).map(config_map_data),
            )
        } else if let Some(r) = &src.secret_ref {
            (
                "secret",
                r.name.clone(),
                r.optional == Some(true),
                objects.secrets.get(&r.name).map(secret_data),
            )
        } else {
            continue;
        };
        let Some(data) = data else {
            if optional {
                continue;
            }
            return Err(invalid(
                "envFrom".into(),
                format!("{kind} {name:?} not found"),
            ));
        };
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            // Upstream skips keys that are not valid variable names (with an event).
            if is_env_name(&key) {
                set(
                    &mut out,
                    &mut vars,
                    key,
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => expand(v, &vars),
            (None, None) => String::new(),
            (None, Some(src)) => {
                let keyed = |kind: &str,
                             name: &str,
                             key: &str,
                             optional: Option<bool>,
                             data: Option<BTreeMap<String, Vec<u8>>>| {
                    match data.as_ref().map(|d| d.get(key)) {
                        Some(Some(v)) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                        _ if optional == Some(true) => Ok(None),
                        Some(None) => Err(invalid(
                            format!("env {}", e.name),
                            format!("key {key:?} not found in {kind} {name:?}"),
                        )),
                        None => Err(invalid(
                            format!("env {}", e.name),
                            format!("{kind} {name:?} not found"),
                        )),
                    }
                };
                if let Some(f) = &src.field_ref {
                    field_value(pod, &f.field_path, pod_ip, node).ok_or_else(|| {
                        ConfigError::Invalid {
                            container: container.name.clone(),
                            field: format!("env {}: fieldRef", e.name),
                            why: format!("unknown field path {:?}", f.field_path),
                        }
                    })?
                } else if let Some(r) = &src.secret_key_ref {
                    match keyed(
                        "secret",
                        &r.name,
                        &r.key,
                        r.optional,
                        objects.secrets.get(&r.name).map(secret_data),
                    )? {
                        Some(v) => v,
                        None => continue,
                    }
                } else if let Some(r) = &src.config_map_key_ref {
                    match keyed(
                        "configmap",
                        &r.name,
                        &r.key,
                        r.optional,
                        objects.config_maps.get(&r.name).map(config_map_data),
                    )? {
                        Some(v) => v,
                        None => continue,
                    }
                } else if let Some(r) = &src.resource_field_ref {
                    // The env form may name another container of the pod; default: this one.
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        None => container,
                        Some(n) => pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter())
                            .find(|c| c.name == n)
                            .ok_or_else(|| {
                                invalid(
                                    format!("env {}: resourceFieldRef", e.name),
                                    format!("no container named {n:?}"),
                                )
                            })?,
                    };
                    resource_field_value(target, r, node.allocatable.as_ref())
                        .map_err(|why| invalid(format!("env {}: resourceFieldRef", e.name), why))?
                } else {
                    return Err(unsupported(format!("env {}: valueFrom", e.name)));
                }
            }
        };
        set(&mut out, &mut vars, e.name.clone(), value);
    }
    Ok(out)
}

/// cgroup settings from the container's requests and limits: shares from the CPU
/// request, a CFS quota from the CPU limit, the memory limit in bytes.
pub fn linux_resources(container: &Container) -> Result<api::LinuxContainerResources, ConfigError> {
    let res = container.resources.clone().unwrap_or_default();
    let invalid = |field: &str, why: String| ConfigError::Invalid {
        container: container.name.clone(),
        field: field.into(),
        why,
    };
    let millis = |map: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
                  key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .map(|q| {
                skiff_api::validation::parse_quantity(&q.0)
                    .map_err(|e| invalid(&format!("resources {key}"), e))
            })
            .transpose()
    };
    let cpu_limit = millis(&res.limits, "cpu")?;
    // A limit without a request means request = limit (API defaulting does the same).
    let cpu_request = millis(&res.requests, "cpu")?.or(cpu_limit);
    let memory_limit = millis(&res.limits, "memory")?;
    let mut out = api::LinuxContainerResources {
        cpu_shares: cpu_request
            .map(|m| ((m * 1024 / 1000) as i64).max(MIN_CPU_SHARES))
            .unwrap_or(MIN_CPU_SHARES),
        ..Default::default()
    };
    if let Some(m) = cpu_limit {
        out.cpu_period = CPU_PERIOD_US;
        // At least 1 ms: the kernel refuses smaller quotas.
        out.cpu_quota = ((m as i64) * CPU_PERIOD_US / 1000).max(1000);
    }
    if let Some(m) = memory_limit {
        out.memory_limit_in_bytes = (m / 1000) as i64;
    }
    Ok(out)
}

/// The container config for one container of the pod. `restart_count` is the CRI
/// attempt; `pod_ip` feeds the downward API; `objects` and `volumes` resolve env
/// references and `volumeMounts`.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
    pod_ip: &str,
    node: &NodeContext,
    objects: &PodObjects,
    volumes: &VolumePaths,
) -> Result<api::ContainerConfig, ConfigError> {
    let (name, namespace, uid) = pod_identity(pod)?;
    let image = container
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ConfigError::Invalid {
            container: container.name.clone(),
            field: "image".into(),
            why: "must not be empty".into(),
        })?;
    let mounts = crate::volumes::mounts(container, volumes).map_err(|e| ConfigError::Invalid {
        container: container.name.clone(),
        field: "volumeMounts".into(),
        why: e.to_string(),
    })?;
    let env = environment(pod, container, pod_ip, node, objects)?;
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let expand_all = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect::<Vec<_>>()
    };
    let mut labels = pod_labels(name, namespace, uid);
    labels.insert(LABEL_CONTAINER_NAME.into(), container.name.clone());
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(api::ImageSpec {
            image,
            ..Default::default()
        }),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env
            .into_iter()
            .map(|(key, value)| api::KeyValue { key, value })
            .collect(),
        mounts,
        labels,
        annotations: HashMap::from([(
            ANNOTATION_RESTART_COUNT.to_string(),
            restart_count.to_string(),
        )]),
        log_path: container_log_path(&container.name, restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_resources(container)?),
            security_context: Some(crate::security::container_context(
                pod,
                container,
                namespace_options(pod),
            )),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"note": "x"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            node_name: "node-a".into(),
            node_ip: "10.0.0.5".into(),
            log_root: "/var/log/pods".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            root_dir: "/var/lib/kubelet".into(),
            allocatable: Some(crate::node::Capacity {
                cpu_millis: 2000,
                memory_bytes: 4 << 30,
                pods: 110,
            }),
        }
    }

    fn objects() -> PodObjects {
        let cm: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"MODE": "fast", "LEVEL": "3", "bad key": "x"}})).unwrap();
        let s: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(json!({"metadata": {"name": "sec"}, "data": {"password": "aHVudGVyMg==", "MODE": "c2xvdw=="}})).unwrap();
        PodObjects {
            config_maps: BTreeMap::from([("cm".to_string(), cm)]),
            secrets: BTreeMap::from([("sec".to_string(), s)]),
        }
    }

    fn simple() -> Pod {
        pod(json!({"containers": [{"name": "app", "image": "busybox",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}))
    }

    #[test]
    fn sandbox_config_carries_identity_logs_ports_and_labels() {
        let c = sandbox_config(&simple(), &node(), 2).unwrap();
        let m = c.metadata.unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web-1", "shop", "u-1", 2)
        );
        assert_eq!(c.hostname, "web-1");
        assert_eq!(c.log_directory, "/var/log/pods/shop_web-1_u-1");
        assert_eq!(
            c.port_mappings.len(),
            1,
            "only ports with a hostPort are mapped"
        );
        assert_eq!(
            (
                c.port_mappings[0].container_port,
                c.port_mappings[0].host_port
            ),
            (80, 8080)
        );
        assert_eq!(c.labels[LABEL_POD_UID], "u-1");
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.annotations["note"], "x");
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!((ns.network, ns.pid, ns.ipc), (0, 1, 0));
    }

    #[test]
    fn missing_uid_is_an_error() {
        let mut p = simple();
        p.metadata.uid = None;
        assert_eq!(
            sandbox_config(&p, &node(), 0).unwrap_err(),
            ConfigError::MissingField("metadata.uid")
        );
    }

    #[test]
    fn namespaces_follow_host_and_share_flags() {
        let cases = [
            (json!({}), (0, 1, 0)),
            (json!({"hostNetwork": true}), (2, 1, 0)),
            (json!({"shareProcessNamespace": true}), (0, 0, 0)),
            (json!({"hostPID": true, "hostIPC": true}), (0, 2, 2)),
        ];
        for (extra, want) in cases {
            let mut spec = json!({"containers": [{"name": "a", "image": "i"}]});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let ns = namespace_options(&pod(spec.clone()));
            assert_eq!((ns.network, ns.pid, ns.ipc), want, "{spec}");
        }
    }

    #[test]
    fn dns_follows_the_policy() {
        let with = |extra: serde_json::Value| {
            let mut spec = json!({"containers": [{"name": "a", "image": "i"}]});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            dns_config(&pod(spec), &node())
        };
        let cluster = with(json!({})).unwrap();
        assert_eq!(cluster.servers, vec!["10.96.0.10"]);
        assert_eq!(
            cluster.searches,
            vec![
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(cluster.options, vec!["ndots:5"]);
        assert!(with(json!({"dnsPolicy": "Default"})).is_none());
        assert!(with(json!({"hostNetwork": true})).is_none());
        assert!(
            with(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})).is_some()
        );
        let custom = with(json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": "2"}]}})).unwrap();
        assert_eq!(custom.servers, vec!["1.2.3.4"]);
        assert_eq!(custom.options, vec!["ndots:2"]);
        let merged = with(
            json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]}}),
        )
        .unwrap();
        assert_eq!(merged.options, vec!["ndots:1", "edns0"]);
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = BTreeMap::from([
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "$(A)".to_string()),
        ]);
        let cases = [
            ("$(A)", "x"),
            ("pre-$(A)-post", "pre-x-post"),
            ("$(B)", "$(A)"),
            ("$$(A)", "$(A)"),
            ("$(MISSING)", "$(MISSING)"),
            ("$(unclosed", "$(unclosed"),
            ("cost $5", "cost $5"),
            ("$", "$"),
            ("$(A)$(A)", "xx"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }

    #[test]
    fn environment_resolves_references_and_the_downward_api() {
        let p = pod(
            json!({"nodeName": "node-a", "containers": [{"name": "app", "image": "busybox", "env": [
                {"name": "GREETING", "value": "hi"},
                {"name": "MSG", "value": "$(GREETING) from $(POD)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ]}]}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = environment(&p, c, "10.244.0.7", &node(), &PodObjects::default()).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("GREETING", "hi"),
                // POD is defined after MSG, so it is not expanded (Kubernetes order rule).
                ("MSG", "hi from $(POD)"),
                ("POD", "web-1"),
                ("IP", "10.244.0.7"),
                ("APP", "web"),
                ("NODE", "node-a"),
            ]
        );
    }

    #[test]
    fn env_resource_field_refs_divide_round_up_and_default_to_allocatable() {
        let p = pod(json!({"containers": [
            {"name": "app", "image": "i",
             "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1500m"}},
             "env": [
                {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "CPU_LIMIT_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                {"name": "MEM_REQ_MI", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
                {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                {"name": "OTHER_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "other", "resource": "requests.cpu", "divisor": "1m"}}},
             ]},
            {"name": "other", "image": "i", "resources": {"requests": {"cpu": "100m"}}},
        ]}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = environment(&p, c, "", &node(), &PodObjects::default()).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("CPU_LIMIT", "2"),
                ("CPU_LIMIT_M", "1500"),
                ("CPU_REQ", "1"),
                ("MEM_REQ_MI", "64"),
                // No memory limit: the node's allocatable (4 GiB in `node()`).
                ("MEM_LIMIT", "4294967296"),
                ("OTHER_CPU", "100"),
            ]
        );
        let bad = pod(json!({"containers": [{"name": "app", "image": "i", "env": [
            {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.nope"}}}]}]}));
        let err = environment(
            &bad,
            &bad.spec.as_ref().unwrap().containers[0],
            "",
            &node(),
            &PodObjects::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("resourceFieldRef"), "{err}");
    }

    #[test]
    fn env_from_config_maps_and_secrets() {
        let env_of = |container: serde_json::Value| {
            let p = pod(json!({"containers": [container]}));
            environment(
                &p,
                &p.spec.as_ref().unwrap().containers[0],
                "",
                &node(),
                &objects(),
            )
        };
        let got = env_of(json!({"name": "a", "image": "i",
            "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "sec"}, "prefix": "S_"}],
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "LEVEL"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                    {"name": "MSG", "value": "$(PW)-$(S_MODE)"}]}))
        .unwrap();
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("LEVEL", "3"),
                // env replaces the envFrom value in place; "bad key" is skipped.
                ("MODE", "3"),
                ("S_MODE", "slow"),
                ("S_password", "hunter2"),
                ("PW", "hunter2"),
                ("MSG", "hunter2-slow"),
            ]
        );
        let cases = [
            (
                json!({"name": "a", "image": "i", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}),
                "secret \"gone\" not found",
            ),
            (
                json!({"name": "a", "image": "i", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]}),
                "key \"nope\"",
            ),
            (
                json!({"name": "a", "image": "i", "envFrom": [{"configMapRef": {"name": "gone"}}]}),
                "configmap \"gone\" not found",
            ),
        ];
        for (container, want) in cases {
            let err = env_of(container.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{container}: {err}");
        }
        assert!(env_of(json!({"name": "a", "image": "i", "envFrom": [{"configMapRef": {"name": "gone", "optional": true}}]})).unwrap().is_empty());
    }

    #[test]
    fn resources_become_cgroup_settings() {
        let cases = [
            (json!({}), (2, 0, 0, 0)),
            (json!({"requests": {"cpu": "250m"}}), (256, 0, 0, 0)),
            (
                json!({"limits": {"cpu": "500m", "memory": "64Mi"}}),
                (512, 100_000, 50_000, 64 << 20),
            ),
            (
                json!({"requests": {"cpu": "1m"}, "limits": {"cpu": "1m"}}),
                (2, 100_000, 1000, 0),
            ),
        ];
        for (resources, (shares, period, quota, memory)) in cases {
            let c: Container =
                serde_json::from_value(json!({"name": "a", "image": "i", "resources": resources}))
                    .unwrap();
            let r = linux_resources(&c).unwrap();
            assert_eq!(
                (
                    r.cpu_shares,
                    r.cpu_period,
                    r.cpu_quota,
                    r.memory_limit_in_bytes
                ),
                (shares, period, quota, memory),
                "{resources}"
            );
        }
        let bad: Container = serde_json::from_value(
            json!({"name": "a", "image": "i", "resources": {"limits": {"cpu": "lots"}}}),
        )
        .unwrap();
        assert!(linux_resources(&bad).is_err());
    }

    #[test]
    fn container_config_expands_command_and_sets_log_path() {
        let p = pod(json!({"containers": [{"name": "app", "image": "busybox",
            "command": ["sh", "-c"], "args": ["echo $(WHO)"], "env": [{"name": "WHO", "value": "me"}],
            "workingDir": "/tmp", "securityContext": {"runAsUser": 1000}}]}));
        let c = container_config(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            3,
            "10.1.1.1",
            &node(),
            &PodObjects::default(),
            &VolumePaths::new(),
        )
        .unwrap();
        assert_eq!(c.command, vec!["sh", "-c"]);
        assert_eq!(c.args, vec!["echo me"]);
        assert_eq!(c.log_path, "app/3.log");
        assert_eq!(c.metadata.unwrap().attempt, 3);
        assert_eq!(c.labels[LABEL_CONTAINER_NAME], "app");
        assert_eq!(c.annotations[ANNOTATION_RESTART_COUNT], "3");
        assert_eq!(c.working_dir, "/tmp");
        let sc = c.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
    }

    #[test]
    fn volume_mounts_become_cri_mounts() {
        let p = pod(json!({"containers": [{"name": "app", "image": "busybox",
            "volumeMounts": [{"name": "v", "mountPath": "/data", "readOnly": true}, {"name": "missing", "mountPath": "/m"}]}]}));
        let vols = VolumePaths::from([(
            "v".to_string(),
            crate::volumes::VolumeHost {
                path: "/k/v".into(),
                read_only: false,
            },
        )]);
        let err = container_config(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            0,
            "",
            &node(),
            &PodObjects::default(),
            &vols,
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        let mut p = p;
        p.spec.as_mut().unwrap().containers[0]
            .volume_mounts
            .as_mut()
            .unwrap()
            .pop();
        let c = container_config(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            0,
            "",
            &node(),
            &PodObjects::default(),
            &vols,
        )
        .unwrap();
        assert_eq!(c.mounts.len(), 1);
        assert_eq!(
            (
                c.mounts[0].container_path.as_str(),
                c.mounts[0].host_path.as_str(),
                c.mounts[0].readonly
            ),
            ("/data", "/k/v", true)
        );
    }
}
