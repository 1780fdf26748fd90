//! Pod volumes: which ConfigMaps and Secrets a pod needs ([`referenced`], [`fetch`]),
//! the files each volume holds ([`render`], pure), writing them under the kubelet's
//! pod directory ([`prepare`]) and turning `volumeMounts` into CRI mounts ([`mounts`],
//! pure).
//!
//! Supported: emptyDir (a directory under `<root>/pods/<uid>/volumes/`; `medium:
//! Memory` is a plain directory too), hostPath, configMap, secret, downwardAPI (fieldRef
//! and resourceFieldRef, an unset limit reading as the node's allocatable) and
//! projected (configMap, secret and downwardAPI sources; serviceAccountToken sources
//! are skipped). Files are written once per container start; unlike upstream they are
//! not refreshed while the container runs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::Api;

use crate::cri::api;

/// Upstream's default file mode for configMap, secret, downwardAPI and projected
/// volumes (0644).
pub const DEFAULT_MODE: i32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("reading {kind} {namespace}/{name} from the API: {source}")]
    Api {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("volume {volume:?}: {kind} {name:?} not found; create it or mark the volume optional")]
    Missing {
        volume: String,
        kind: &'static str,
        name: String,
    },
    #[error("volume {volume:?}: key {key:?} is not in {kind} {name:?}; fix the items list or mark it optional")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error(
        "volume {volume:?}: invalid path {path:?}: it must be relative and must not contain '..'"
    )]
    BadPath { volume: String, path: String },
    #[error("volume {volume:?}: unknown downward API field {field:?}")]
    BadField { volume: String, field: String },
    #[error("volume {volume:?}: resourceFieldRef of item {path:?}: {why}")]
    BadResourceField {
        volume: String,
        path: String,
        why: String,
    },
    #[error("container {container:?} mounts volume {volume:?}, which the pod does not define")]
    UnknownVolume { container: String, volume: String },
    #[error("writing volume files under {path}: {source}; check that the kubelet root directory is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The ConfigMaps and Secrets of the pod's namespace that the pod refers to, by name.
/// An object that does not exist is absent (whether that is an error depends on the
/// reference's `optional`).
#[derive(Debug, Clone, Default)]
pub struct PodObjects {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

/// Where the API objects come from: the kube client, or a map in unit tests.
#[async_trait::async_trait]
pub trait ObjectSource: Send + Sync {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError>;
}

#[async_trait::async_trait]
impl ObjectSource for kube::Client {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        Api::<ConfigMap>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|source| VolumeError::Api {
                kind: "configmap",
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(source),
            })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
        Api::<Secret>::namespaced(self.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|source| VolumeError::Api {
                kind: "secret",
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(source),
            })
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

/// Names of the ConfigMaps and Secrets the pod uses (volumes, env, envFrom). Pure.
pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(c) = &v.config_map {
            cms.insert(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(s);
        }
        for src in v
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(c) = &src.config_map {
                cms.insert(c.name.clone());
            }
            if let Some(s) = &src.secret {
                secrets.insert(s.name.clone());
            }
        }
    }
    for c in all_containers(pod) {
        for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &e.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    cms.remove("");
    secrets.remove("");
    (cms, secrets)
}

/// Reads every object the pod refers to.
pub async fn fetch(source: &dyn ObjectSource, pod: &Pod) -> Result<PodObjects, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cms, mut secrets) = referenced(pod);
    // Pull secrets too: the image pull needs them (a missing one is skipped, as
    // upstream pulls without it).
    secrets.extend(crate::pull_secrets::secret_names(pod));
    let mut out = PodObjects::default();
    for name in cms {
        if let Some(cm) = source.config_map(namespace, &name).await? {
            out.config_maps.insert(name, cm);
        }
    }
    for name in secrets {
        if let Some(s) = source.secret(namespace, &name).await? {
            out.secrets.insert(name, s);
        }
    }
    Ok(out)
}

/// A ConfigMap's keys and values (`data` and `binaryData`).
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        out.insert(k, v.0);
    }
    out
}

/// A Secret's keys and values (`stringData` wins over `data`, as on write).
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

/// One file of a volume, relative to the volume's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

fn check_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::BadPath {
            volume: volume.into(),
            path: path.into(),
        })
    }
}

fn mode(m: Option<i32>, default: i32) -> u32 {
    (m.unwrap_or(default) & 0o777) as u32
}

/// Keys to files: every key, or only `items` (each to its own path and mode).
fn project_keys(
    volume: &str,
    kind: &'static str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let Some(data) = data else {
        return if optional {
            Ok(vec![])
        } else {
            Err(VolumeError::Missing {
                volume: volume.into(),
                kind,
                name: name.into(),
            })
        };
    };
    let mut out = Vec::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                check_path(volume, &k)?;
                out.push(VolumeFile {
                    path: k,
                    data: v,
                    mode: mode(None, default_mode),
                });
            }
        }
        Some(items) => {
            for item in items {
                check_path(volume, &item.path)?;
                match data.get(&item.key) {
                    Some(v) => out.push(VolumeFile {
                        path: item.path.clone(),
                        data: v.clone(),
                        mode: mode(item.mode, default_mode),
                    }),
                    None if optional => {}
                    None => {
                        return Err(VolumeError::MissingKey {
                            volume: volume.into(),
                            kind,
                            name: name.into(),
                            key: item.key.clone(),
                        })
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `key="value"` lines, sorted by key, as the downward API writes maps.
fn render_map(map: &Option<BTreeMap<String, String>>) -> String {
    map.iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    allocatable: Option<&crate::node::Capacity>,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let meta = &pod.metadata;
    let mut out = Vec::new();
    for item in items {
        check_path(volume, &item.path)?;
        if let Some(r) = &item.resource_field_ref {
            // A volume belongs to no container: the item names one (required).
            let bad = |why: String| VolumeError::BadResourceField {
                volume: volume.into(),
                path: item.path.clone(),
                why,
            };
            let name = r.container_name.as_deref().unwrap_or_default();
            let container = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == name)
                .ok_or_else(|| bad(format!("no container named {name:?}")))?;
            let text =
                crate::cri_config::resource_field_value(container, r, allocatable).map_err(bad)?;
            out.push(VolumeFile {
                path: item.path.clone(),
                data: text.into_bytes(),
                mode: mode(item.mode, default_mode),
            });
            continue;
        }
        let Some(field) = &item.field_ref else {
            continue;
        };
        let bad = || VolumeError::BadField {
            volume: volume.into(),
            field: field.field_path.clone(),
        };
        let text = match field.field_path.as_str() {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "metadata.labels" => render_map(&meta.labels),
            "metadata.annotations" => render_map(&meta.annotations),
            p => {
                let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
                    p.strip_prefix(prefix)
                        .and_then(|r| r.strip_suffix("']"))
                        .map(|k| {
                            map.as_ref()
                                .and_then(|m| m.get(k))
                                .cloned()
                                .unwrap_or_default()
                        })
                };
                keyed("metadata.labels['", &meta.labels)
                    .or_else(|| keyed("metadata.annotations['", &meta.annotations))
                    .ok_or_else(bad)?
            }
        };
        out.push(VolumeFile {
            path: item.path.clone(),
            data: text.into_bytes(),
            mode: mode(item.mode, default_mode),
        });
    }
    Ok(out)
}

/// The files of a volume, or `None` for a directory-backed volume (emptyDir, hostPath)
/// or a kind skiff does not support. Pure.
pub fn render(
    pod: &Pod,
    volume: &Volume,
    objects: &PodObjects,
    allocatable: Option<&crate::node::Capacity>,
) -> Result<Option<Vec<VolumeFile>>, VolumeError> {
    let v = volume.name.as_str();
    if let Some(c) = &volume.config_map {
        let data = objects.config_maps.get(&c.name).map(config_map_data);
        let dm = c.default_mode.unwrap_or(DEFAULT_MODE);
        return project_keys(
            v,
            "configmap",
            &c.name,
            data,
            c.items.as_deref(),
            c.optional == Some(true),
            dm,
        )
        .map(Some);
    }
    if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = objects.secrets.get(&name).map(secret_data);
        let dm = s.default_mode.unwrap_or(DEFAULT_MODE);
        return project_keys(
            v,
            "secret",
            &name,
            data,
            s.items.as_deref(),
            s.optional == Some(true),
            dm,
        )
        .map(Some);
    }
    if let Some(d) = &volume.downward_api {
        return downward_files(
            v,
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode.unwrap_or(DEFAULT_MODE),
            allocatable,
        )
        .map(Some);
    }
    if let Some(p) = &volume.projected {
        let dm = p.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Vec::new();
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let data = objects.config_maps.get(&c.name).map(config_map_data);
                out.extend(project_keys(
                    v,
                    "configmap",
                    &c.name,
                    data,
                    c.items.as_deref(),
                    c.optional == Some(true),
                    dm,
                )?);
            }
            if let Some(s) = &src.secret {
                let data = objects.secrets.get(&s.name).map(secret_data);
                out.extend(project_keys(
                    v,
                    "secret",
                    &s.name,
                    data,
                    s.items.as_deref(),
                    s.optional == Some(true),
                    dm,
                )?);
            }
            if let Some(d) = &src.downward_api {
                out.extend(downward_files(
                    v,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    dm,
                    allocatable,
                )?);
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Where a volume lives on the node, and whether every mount of it is read-only
/// (API-object volumes always are).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeHost {
    pub path: PathBuf,
    pub read_only: bool,
}

/// The host paths of a pod's volumes, by volume name.
pub type VolumePaths = BTreeMap<String, VolumeHost>;

/// `<root>/pods/<uid>`: everything the kubelet keeps on disk for one pod.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates the pod's volumes under `<root>/pods/<uid>/volumes/<name>` and writes their
/// files (stale files of API-object volumes are replaced). Returns where each is.
pub fn prepare(
    root: &Path,
    pod: &Pod,
    objects: &PodObjects,
    allocatable: Option<&crate::node::Capacity>,
) -> Result<VolumePaths, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("unknown");
    let base = pod_dir(root, uid).join("volumes");
    let mut out = VolumePaths::new();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(h) = &v.host_path {
            let path = PathBuf::from(&h.path);
            if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
                std::fs::create_dir_all(&path).map_err(io_err(&path))?;
            }
            out.insert(
                v.name.clone(),
                VolumeHost {
                    path,
                    read_only: false,
                },
            );
            continue;
        }
        let dir = base.join(&v.name);
        match render(pod, v, objects, allocatable)? {
            Some(files) => {
                write_files(&dir, &files)?;
                out.insert(
                    v.name.clone(),
                    VolumeHost {
                        path: dir,
                        read_only: true,
                    },
                );
            }
            None if v.empty_dir.is_some() => {
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                // World-writable like upstream, so non-root containers can use it.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                    .map_err(io_err(&dir))?;
                out.insert(
                    v.name.clone(),
                    VolumeHost {
                        path: dir,
                        read_only: false,
                    },
                );
            }
            None => {
                tracing::warn!(volume = %v.name, "volume type not supported by skiff; containers mounting it will not start")
            }
        }
    }
    Ok(out)
}

/// Makes `dir` hold exactly `files`. The directory itself stays (running containers
/// have it bind-mounted: replacing it would leave them an orphaned copy); each file is
/// replaced by a rename, and files no longer wanted are removed.
fn write_files(dir: &Path, files: &[VolumeFile]) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let wanted: HashSet<PathBuf> = files.iter().map(|f| dir.join(&f.path)).collect();
    remove_unwanted(dir, &wanted)?;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        std::fs::write(&tmp, &f.data).map_err(io_err(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode))
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Removes files under `dir` that are not in `wanted` (and directories left empty).
fn remove_unwanted(dir: &Path, wanted: &HashSet<PathBuf>) -> Result<(), VolumeError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() && !path.is_symlink() {
            remove_unwanted(&path, wanted)?;
            if !wanted.iter().any(|w| w.starts_with(&path)) {
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        } else if !wanted.contains(&path) {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// Removes everything the kubelet wrote for a pod (after its containers are gone).
pub fn cleanup(root: &Path, uid: &str) -> Result<(), VolumeError> {
    let dir = pod_dir(root, uid);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&dir)(e)),
        _ => Ok(()),
    }
}

/// The CRI mounts of one container from its `volumeMounts`. Pure.
pub fn mounts(
    container: &Container,
    volumes: &VolumePaths,
) -> Result<Vec<api::Mount>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(host) = volumes.get(&m.name) else {
            return Err(VolumeError::UnknownVolume {
                container: container.name.clone(),
                volume: m.name.clone(),
            });
        };
        let mut host_path = host.path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            check_path(&m.name, sub)?;
            host_path = host_path.join(sub);
        }
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => api::MountPropagation::PropagationBidirectional,
            _ => api::MountPropagation::PropagationPrivate,
        };
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.display().to_string(),
            readonly: host.read_only || m.read_only == Some(true),
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-9",
                         "labels": {"b": "2", "a": "1"}, "annotations": {"note": "x\"y"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn objects() -> PodObjects {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "conf"},
            "data": {"app.conf": "port=80", "other": "o"}, "binaryData": {"bin": "AAE="}}))
        .unwrap();
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": "creds"}, "data": {"pw": "aHVudGVyMg=="}}),
        )
        .unwrap();
        PodObjects {
            config_maps: BTreeMap::from([("conf".into(), cm)]),
            secrets: BTreeMap::from([("creds".into(), s)]),
        }
    }

    /// (path, contents, mode) of each file.
    type Files = Vec<(String, String, u32)>;

    fn files(volume: serde_json::Value) -> Result<Option<Files>, VolumeError> {
        let p = pod(
            json!({"containers": [{"name": "app", "image": "i", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}],
                   "volumes": [volume.clone()]}),
        );
        let v: Volume = serde_json::from_value(volume).unwrap();
        let allocatable = crate::node::Capacity {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
            pods: 110,
        };
        render(&p, &v, &objects(), Some(&allocatable)).map(|o| {
            o.map(|fs| {
                fs.into_iter()
                    .map(|f| {
                        (
                            f.path,
                            String::from_utf8_lossy(&f.data).into_owned(),
                            f.mode,
                        )
                    })
                    .collect()
            })
        })
    }

    fn f(path: &str, data: &str, mode: u32) -> (String, String, u32) {
        (path.into(), data.into(), mode)
    }

    #[test]
    fn volume_files_table() {
        let cases: Vec<(&str, serde_json::Value, Files)> = vec![
            (
                "configMap, all keys, binary data included",
                json!({"name": "v", "configMap": {"name": "conf"}}),
                vec![
                    f("app.conf", "port=80", 0o644),
                    f("bin", "\u{0}\u{1}", 0o644),
                    f("other", "o", 0o644),
                ],
            ),
            (
                "configMap items with their own path and mode",
                json!({"name": "v", "configMap": {"name": "conf", "defaultMode": 0o600,
                    "items": [{"key": "app.conf", "path": "etc/app.conf"}, {"key": "other", "path": "o", "mode": 0o400}]}}),
                vec![f("etc/app.conf", "port=80", 0o600), f("o", "o", 0o400)],
            ),
            (
                "secret is decoded",
                json!({"name": "v", "secret": {"secretName": "creds"}}),
                vec![f("pw", "hunter2", 0o644)],
            ),
            (
                "optional missing configMap is empty",
                json!({"name": "v", "configMap": {"name": "nope", "optional": true}}),
                vec![],
            ),
            (
                "downwardAPI",
                json!({"name": "v", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                    {"path": "a", "fieldRef": {"fieldPath": "metadata.labels['a']"}}]}}),
                vec![
                    f("labels", "a=\"1\"\nb=\"2\"\n", 0o644),
                    f("annotations", "note=\"x\\\"y\"\n", 0o644),
                    f("name", "web", 0o644),
                    f("ns", "shop", 0o644),
                    f("a", "1", 0o644),
                ],
            ),
            (
                "downwardAPI resourceFieldRef: set, unset (allocatable), divisor",
                json!({"name": "v", "downwardAPI": {"items": [
                    {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
                    {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
                    {"path": "req", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}}]}}),
                vec![
                    f("mem", "64", 0o644),
                    f("cpu", "2", 0o644),
                    f("req", "250", 0o644),
                ],
            ),
            (
                "projected mixes sources with one default mode",
                json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
                    {"configMap": {"name": "conf", "items": [{"key": "other", "path": "o"}]}},
                    {"secret": {"name": "creds"}},
                    {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"serviceAccountToken": {"path": "token"}}]}}),
                vec![
                    f("o", "o", 0o440),
                    f("pw", "hunter2", 0o440),
                    f("n", "web", 0o440),
                ],
            ),
        ];
        for (name, volume, want) in cases {
            assert_eq!(files(volume).unwrap(), Some(want), "{name}");
        }
        assert_eq!(files(json!({"name": "v", "emptyDir": {}})).unwrap(), None);
    }

    #[test]
    fn volume_errors_table() {
        let cases = [
            (
                json!({"name": "v", "configMap": {"name": "nope"}}),
                "not found",
            ),
            (
                json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "user", "path": "u"}]}}),
                "key \"user\"",
            ),
            (
                json!({"name": "v", "configMap": {"name": "conf", "items": [{"key": "other", "path": "../escape"}]}}),
                "invalid path",
            ),
            (
                json!({"name": "v", "configMap": {"name": "conf", "items": [{"key": "other", "path": "/abs"}]}}),
                "invalid path",
            ),
            (
                json!({"name": "v", "downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nope"}}]}}),
                "spec.nope",
            ),
            (
                json!({"name": "v", "downwardAPI": {"items": [{"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}]}}),
                "no container named \"ghost\"",
            ),
        ];
        for (volume, want) in cases {
            let err = files(volume.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{volume}: {err}");
        }
    }

    #[test]
    fn references_cover_volumes_env_and_env_from() {
        let p = pod(json!({
            "initContainers": [{"name": "i", "image": "x", "envFrom": [{"secretRef": {"name": "s-init"}}]}],
            "containers": [{"name": "a", "image": "x",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "cm-from"}}]}],
            "volumes": [{"name": "v1", "configMap": {"name": "cm-vol"}}, {"name": "v2", "secret": {"secretName": "s-vol"}},
                        {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}, {"secret": {"name": "s-proj"}}]}}]}));
        let (cms, secrets) = referenced(&p);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            ["cm-env", "cm-from", "cm-proj", "cm-vol"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            ["s-env", "s-init", "s-proj", "s-vol"]
        );
    }

    #[test]
    fn mounts_apply_sub_path_and_read_only() {
        let c: Container =
            serde_json::from_value(json!({"name": "a", "image": "x", "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/logs", "subPath": "logs", "readOnly": true},
            {"name": "conf", "mountPath": "/etc/app"}]}))
            .unwrap();
        let vols = VolumePaths::from([
            (
                "data".to_string(),
                VolumeHost {
                    path: "/k/v/data".into(),
                    read_only: false,
                },
            ),
            (
                "conf".to_string(),
                VolumeHost {
                    path: "/k/v/conf".into(),
                    read_only: true,
                },
            ),
        ]);
        let got: Vec<_> = mounts(&c, &vols)
            .unwrap()
            .into_iter()
            .map(|m| (m.container_path, m.host_path, m.readonly))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/data".to_string(), "/k/v/data".to_string(), false),
                ("/logs".to_string(), "/k/v/data/logs".to_string(), true),
                ("/etc/app".to_string(), "/k/v/conf".to_string(), true),
            ]
        );
        let bad: Container = serde_json::from_value(json!({"name": "a", "image": "x", "volumeMounts": [{"name": "zzz", "mountPath": "/z"}]})).unwrap();
        assert!(matches!(
            mounts(&bad, &vols),
            Err(VolumeError::UnknownVolume { .. })
        ));
        let escape: Container = serde_json::from_value(json!({"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/z", "subPath": "../.."}]})).unwrap();
        assert!(matches!(
            mounts(&escape, &vols),
            Err(VolumeError::BadPath { .. })
        ));
    }

    #[test]
    fn prepare_writes_files_and_directories_and_cleanup_removes_them() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host/dir");
        let p = pod(json!({"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "conf", "items": [{"key": "app.conf", "path": "app.conf", "mode": 0o600}]}},
            {"name": "h", "hostPath": {"path": host.display().to_string(), "type": "DirectoryOrCreate"}}]}));
        let paths = prepare(tmp.path(), &p, &objects(), None).unwrap();
        let conf = &paths["conf"];
        assert!(conf.read_only);
        assert_eq!(
            std::fs::read_to_string(conf.path.join("app.conf")).unwrap(),
            "port=80"
        );
        assert_eq!(
            std::fs::metadata(conf.path.join("app.conf"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(paths["scratch"].path.is_dir() && !paths["scratch"].read_only);
        assert_eq!(
            paths["scratch"].path,
            tmp.path().join("pods/u-9/volumes/scratch")
        );
        assert!(host.is_dir(), "DirectoryOrCreate creates the host path");
        // Rewriting with other data keeps the directory (it may be mounted) and drops
        // files no longer wanted.
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(&conf.path).unwrap().ino();
        let mut p2 = p.clone();
        p2.spec.as_mut().unwrap().volumes.as_mut().unwrap()[1] =
            serde_json::from_value(json!({"name": "conf", "configMap": {"name": "conf", "items": [{"key": "other", "path": "sub/o"}]}})).unwrap();
        let again = prepare(tmp.path(), &p2, &objects(), None).unwrap();
        assert_eq!(std::fs::metadata(&again["conf"].path).unwrap().ino(), inode);
        assert!(!conf.path.join("app.conf").exists(), "stale key removed");
        assert_eq!(
            std::fs::read_to_string(conf.path.join("sub/o")).unwrap(),
            "o"
        );
        cleanup(tmp.path(), "u-9").unwrap();
        assert!(!tmp.path().join("pods/u-9").exists());
        cleanup(tmp.path(), "u-9").unwrap();
    }
}
