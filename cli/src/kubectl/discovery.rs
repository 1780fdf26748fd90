//! Resource resolution from the server's discovery documents (`/api/v1`, `/apis`,
//! `/apis/<group>/<version>`), so that `deploy`, `deployments.apps`, `Deployment`,
//! `TYPE/NAME` and the `all` category mean what they mean to kubectl on *this* server,
//! with nothing hard-coded. Loaded once per invocation (see [`super::client::Ctx`]) and
//! cached on disk per server like kubectl's (`~/.kube/cache/discovery/<host_port>/`,
//! our own `skiff.json` beside kubectl's files), so most commands make no discovery
//! round trip. The cache lives [`CACHE_TTL`]; a type the cached copy does not know is
//! an [`UnknownType`] naming the cache file, which `main` deletes before running the
//! command once more against fresh discovery (a new CRD is found at once).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use super::client::Ctx;

/// One served resource (top-level, not a subresource), in the server's preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources served (`status`, `scale`, `log`, ...).
    pub subresources: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `pods`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `deployment.apps`, `pod`: the prefix kubectl prints in `TYPE/NAME`.
    pub fn kind_prefix(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// The collection URL in `namespace` (ignored for cluster-scoped resources; `None`
    /// means all namespaces).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), name)
    }
}

/// All resources the server serves, core first then groups in the server's order
/// (which is the tie-break kubectl uses too).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub resources: Vec<Resource>,
    /// The cache file this copy was read from (`None`: fetched from the server now).
    pub from_cache: Option<PathBuf>,
}

/// How long a cached discovery is trusted (kubectl's default too); misses refresh it
/// earlier.
pub const CACHE_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// A type or kind the server (or the cached copy of its discovery) does not serve.
#[derive(Debug)]
pub struct UnknownType {
    pub message: String,
    /// Set when the answer came from the disk cache, which may be stale.
    pub cache: Option<PathBuf>,
}

impl std::fmt::Display for UnknownType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnknownType {}

/// If `err` is a miss answered from a cached discovery, deletes that cache file and
/// says so: the caller should run the command again (it will fetch discovery fresh).
pub fn invalidate_on_stale_miss(err: &anyhow::Error) -> bool {
    match err.downcast_ref::<UnknownType>() {
        Some(UnknownType {
            cache: Some(path), ..
        }) => {
            let _ = std::fs::remove_file(path);
            true
        }
        _ => false,
    }
}

/// The per-server directory name kubectl uses: the URL without its scheme, every
/// character other than letters, digits, `.` and `/` replaced by `_`.
pub fn host_dir(server: &str) -> String {
    let schemeless = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server)
        .trim_end_matches('/');
    schemeless
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The cache file for `server`: `$SKIFF_CACHE_DIR` (tests, or a user who wants it
/// elsewhere), else `~/.kube/cache`, then `discovery/<host_port>/skiff.json`.
pub fn cache_file(server: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("SKIFF_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
            .join(".kube")
            .join("cache"),
    };
    Some(
        root.join("discovery")
            .join(host_dir(server))
            .join("skiff.json"),
    )
}

/// Whether a copy fetched at `fetched` (unix seconds) may still be used at `now`.
pub fn is_fresh(fetched: u64, now: u64, ttl: Duration) -> bool {
    fetched <= now && now - fetched < ttl.as_secs()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cached `APIResourceList`s, if the file exists, parses and is fresh.
fn read_cache(path: &Path) -> Option<Vec<Value>> {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let fetched = doc["fetchedAt"].as_u64()?;
    if !is_fresh(fetched, now_secs(), CACHE_TTL) {
        return None;
    }
    doc["lists"].as_array().cloned()
}

/// Writes the cache atomically (temp file + rename) so a concurrent reader never sees
/// half a file; failures only cost the next command a round trip.
fn write_cache(path: &Path, lists: &[Value]) {
    let doc = serde_json::json!({"fetchedAt": now_secs(), "lists": lists});
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".skiff.json.{}", std::process::id()));
    if std::fs::write(&tmp, doc.to_string()).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

impl Discovery {
    /// From the disk cache when fresh, else from the server (then cached).
    pub async fn load(ctx: &Ctx) -> anyhow::Result<Discovery> {
        let cache = cache_file(&ctx.server);
        if let Some(path) = &cache {
            if let Some(lists) = read_cache(path) {
                let mut d = Discovery::from_lists(&lists);
                d.from_cache = Some(path.clone());
                return Ok(d);
            }
        }
        let lists = Discovery::fetch(ctx).await?;
        if let Some(path) = &cache {
            write_cache(path, &lists);
        }
        Ok(Discovery::from_lists(&lists))
    }

    /// From the server, ignoring and then replacing the cache (`api-resources`, like
    /// kubectl's, always shows what the server serves now).
    pub async fn refresh(ctx: &Ctx) -> anyhow::Result<Discovery> {
        let lists = Discovery::fetch(ctx).await?;
        if let Some(path) = cache_file(&ctx.server) {
            write_cache(&path, &lists);
        }
        Ok(Discovery::from_lists(&lists))
    }

    /// The `APIResourceList` of every group's preferred version, from the server.
    pub async fn fetch(ctx: &Ctx) -> anyhow::Result<Vec<Value>> {
        let mut lists = Vec::new();
        lists.push(ctx.get_json("/api/v1").await?);
        let groups = ctx.get_json("/apis").await?;
        for g in groups["groups"].as_array().into_iter().flatten() {
            let Some(gv) = g
                .pointer("/preferredVersion/groupVersion")
                .and_then(Value::as_str)
            else {
                continue;
            };
            match ctx.get_json(&format!("/apis/{gv}")).await {
                Ok(list) => lists.push(list),
                // One broken group (e.g. an aggregated API that is down) must not make
                // every command fail, as with kubectl.
                Err(e) => tracing::warn!("discovery of {gv} failed: {e:#}"),
            }
        }
        Ok(lists)
    }

    fn unknown(&self, message: String) -> anyhow::Error {
        UnknownType {
            message,
            cache: self.from_cache.clone(),
        }
        .into()
    }

    /// Builds the table from `APIResourceList` documents.
    pub fn from_lists(lists: &[Value]) -> Discovery {
        let mut resources: Vec<Resource> = Vec::new();
        for list in lists {
            let gv = list["groupVersion"].as_str().unwrap_or("v1");
            let (group, version) = match gv.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), gv.to_string()),
            };
            let entries = list["resources"].as_array().cloned().unwrap_or_default();
            for r in &entries {
                let name = r["name"].as_str().unwrap_or_default();
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                let strings = |key: &str| -> Vec<String> {
                    r[key]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let prefix = format!("{name}/");
                let subresources = entries
                    .iter()
                    .filter_map(|s| {
                        s["name"]
                            .as_str()?
                            .strip_prefix(&prefix)
                            .map(str::to_string)
                    })
                    .collect();
                let kind = r["kind"].as_str().unwrap_or_default().to_string();
                let singular = r["singularName"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| kind.to_lowercase());
                resources.push(Resource {
                    group: group.clone(),
                    version: version.clone(),
                    kind,
                    plural: name.to_string(),
                    singular,
                    namespaced: r["namespaced"].as_bool().unwrap_or(false),
                    short_names: strings("shortNames"),
                    categories: strings("categories"),
                    verbs: strings("verbs"),
                    subresources,
                });
            }
        }
        Discovery {
            resources,
            from_cache: None,
        }
    }

    /// Resolves a type as typed on the command line: plural, singular, short name or
    /// kind, optionally qualified with `.group` or `.version.group`.
    pub fn resolve(&self, typ: &str) -> anyhow::Result<&Resource> {
        let lower = typ.to_lowercase();
        let matches = |r: &Resource, name: &str| {
            r.plural == name
                || r.singular == name
                || r.kind.to_lowercase() == name
                || r.short_names.iter().any(|s| s == name)
        };
        // Unqualified first: `deployments` (a dot can only start a group qualifier).
        if let Some(r) = self.resources.iter().find(|r| matches(r, &lower)) {
            return Ok(r);
        }
        if let Some((name, qualifier)) = lower.split_once('.') {
            let found = self.resources.iter().find(|r| {
                matches(r, name)
                    && (r.group == qualifier || format!("{}.{}", r.version, r.group) == qualifier)
            });
            if let Some(r) = found {
                return Ok(r);
            }
        }
        Err(self.unknown(format!(
            "the server doesn't have a resource type \"{typ}\"; `skiff api-resources` lists the types it serves"
        )))
    }

    /// The resource of an object given its `apiVersion` and `kind` (for manifests).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> anyhow::Result<&Resource> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let same_group: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|r| r.group == group && r.kind == kind)
            .collect();
        if same_group.is_empty() {
            return Err(self.unknown(format!(
                "no matches for kind \"{kind}\" in version \"{api_version}\": the server does not serve it; check apiVersion and kind (`skiff api-resources` lists them)"
            )));
        }
        // Discovery lists the preferred version only; an object in another version of the
        // same group is sent to the preferred one, which is what the server stores anyway.
        Ok(same_group
            .iter()
            .find(|r| r.version == version)
            .copied()
            .unwrap_or(same_group[0]))
    }

    /// The resources in a category such as `all`.
    pub fn category(&self, name: &str) -> Vec<&Resource> {
        self.resources
            .iter()
            .filter(|r| r.categories.iter().any(|c| c == name))
            .collect()
    }

    /// Expands `a,b` and categories into resources, de-duplicated, in the order given.
    pub fn resolve_list(&self, types: &str) -> anyhow::Result<Vec<&Resource>> {
        let mut out: Vec<&Resource> = Vec::new();
        for t in types.split(',').filter(|t| !t.is_empty()) {
            let found = match self.resolve(t) {
                Ok(r) => vec![r],
                Err(e) => {
                    let cat = self.category(&t.to_lowercase());
                    if cat.is_empty() {
                        return Err(e);
                    }
                    cat
                }
            };
            for r in found {
                if !out.iter().any(|o| o == &r) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }
}

/// What the user named on the command line: `TYPE NAME...`, `TYPE/NAME...` or just types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Comma-separated type list as typed (`pods`, `deploy,svc`, `all`).
    pub types: String,
    /// Names; empty means "all of them".
    pub names: Vec<String>,
}

/// Splits positional arguments the way kubectl does: either `TYPE[,TYPE] [NAME...]` or
/// only `TYPE/NAME` items (which may mix types).
pub fn parse_targets(args: &[String]) -> anyhow::Result<Vec<Target>> {
    if args.is_empty() {
        bail!("you must specify the type of resource; e.g. `skiff get pods` (`skiff api-resources` lists the types)");
    }
    if args.iter().any(|a| a.contains('/')) {
        let mut out: Vec<Target> = Vec::new();
        for a in args {
            let Some((t, n)) = a.split_once('/') else {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>')");
            };
            if t.is_empty() || n.is_empty() {
                bail!("arguments in resource/name form must have a single resource and name; got {a:?}");
            }
            match out.iter_mut().find(|o| o.types == t) {
                Some(o) => o.names.push(n.to_string()),
                None => out.push(Target {
                    types: t.to_string(),
                    names: vec![n.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    Ok(vec![Target {
        types: args[0].clone(),
        names: args[1..].to_vec(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Discovery {
        Discovery::from_lists(&[
            json!({"groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "shortNames": ["po"], "categories": ["all"], "verbs": ["get"]},
                {"name": "pods/log", "namespaced": true, "kind": "Pod"},
                {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service", "shortNames": ["svc"], "categories": ["all"]},
                {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node", "shortNames": ["no"]},
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event", "shortNames": ["ev"]},
            ]}),
            json!({"groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "shortNames": ["deploy"], "categories": ["all"]},
                {"name": "deployments/scale", "namespaced": true, "kind": "Scale"},
            ]}),
            json!({"groupVersion": "events.k8s.io/v1", "resources": [
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event", "shortNames": ["ev"]},
            ]}),
        ])
    }

    #[test]
    fn resolves_every_spelling_kubectl_accepts() {
        let d = sample();
        let cases = [
            ("pods", "", "pods"),
            ("pod", "", "pods"),
            ("po", "", "pods"),
            ("Pod", "", "pods"),
            ("deploy", "apps", "deployments"),
            ("deployments.apps", "apps", "deployments"),
            ("deployment.v1.apps", "apps", "deployments"),
            ("Deployment", "apps", "deployments"),
            // Core wins the tie, as in kubectl.
            ("events", "", "events"),
            ("events.events.k8s.io", "events.k8s.io", "events"),
        ];
        for (typed, group, plural) in cases {
            let r = d.resolve(typed).unwrap_or_else(|e| panic!("{typed}: {e}"));
            assert_eq!(
                (r.group.as_str(), r.plural.as_str()),
                (group, plural),
                "{typed}"
            );
        }
    }

    #[test]
    fn unknown_type_says_what_to_do() {
        let err = sample().resolve("foos").unwrap_err().to_string();
        assert!(
            err.contains("doesn't have a resource type \"foos\""),
            "{err}"
        );
        assert!(err.contains("api-resources"), "{err}");
        assert!(sample().resolve("pods.apps").is_err());
    }

    #[test]
    fn cache_location_and_freshness() {
        let cases = [
            ("https://127.0.0.1:6443", "127.0.0.1_6443"),
            ("http://localhost:8080/", "localhost_8080"),
            ("https://[::1]:6443", "___1__6443"),
            ("https://example.com/prefix", "example.com/prefix"),
        ];
        for (server, want) in cases {
            assert_eq!(host_dir(server), want, "{server}");
        }
        let ttl = Duration::from_secs(600);
        assert!(is_fresh(1000, 1000, ttl));
        assert!(is_fresh(1000, 1599, ttl));
        assert!(!is_fresh(1000, 1600, ttl));
        // A clock that went backwards does not make a copy fresh forever.
        assert!(!is_fresh(2000, 1000, ttl));
    }

    #[test]
    fn only_misses_from_the_cache_invalidate_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skiff.json");
        std::fs::write(&file, "{}").unwrap();
        let mut d = sample();
        let fresh_miss = d.resolve("widgets").unwrap_err();
        assert!(!invalidate_on_stale_miss(&fresh_miss));
        assert!(file.exists());
        d.from_cache = Some(file.clone());
        let stale_miss = d.resolve("widgets").unwrap_err();
        assert!(
            stale_miss.to_string().contains("\"widgets\""),
            "{stale_miss}"
        );
        assert!(invalidate_on_stale_miss(&stale_miss));
        assert!(!file.exists(), "the stale copy is gone");
        let kind_miss = d.for_kind("example.com/v1", "Widget").unwrap_err();
        assert!(kind_miss.downcast_ref::<UnknownType>().is_some());
    }

    #[test]
    fn subresources_are_attached_not_listed() {
        let d = sample();
        assert!(d.resources.iter().all(|r| !r.plural.contains('/')));
        assert_eq!(
            d.resolve("deploy").unwrap().subresources,
            vec!["scale".to_string()]
        );
        assert_eq!(
            d.resolve("po").unwrap().subresources,
            vec!["log".to_string()]
        );
    }

    #[test]
    fn all_category_and_lists_expand_without_duplicates() {
        let d = sample();
        let names: Vec<_> = d
            .resolve_list("all,po")
            .unwrap()
            .iter()
            .map(|r| r.plural.clone())
            .collect();
        assert_eq!(names, vec!["pods", "services", "deployments"]);
        assert!(d.resolve_list("pods,nope").is_err());
    }

    #[test]
    fn kinds_map_to_resources() {
        let d = sample();
        assert_eq!(
            d.for_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        let err = d.for_kind("apps/v1", "Deploymnet").unwrap_err().to_string();
        assert!(err.contains("no matches for kind \"Deploymnet\""), "{err}");
    }

    #[test]
    fn paths_follow_scope() {
        let d = sample();
        assert_eq!(
            d.resolve("deploy").unwrap().object_path(Some("ns"), "web"),
            "/apis/apps/v1/namespaces/ns/deployments/web"
        );
        assert_eq!(
            d.resolve("no").unwrap().object_path(Some("ns"), "n1"),
            "/api/v1/nodes/n1"
        );
        assert_eq!(
            d.resolve("po").unwrap().collection_path(None),
            "/api/v1/pods"
        );
    }

    #[test]
    fn targets_split_like_kubectl() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_targets(&s(&["pods", "a", "b"])).unwrap(),
            vec![Target {
                types: "pods".into(),
                names: s(&["a", "b"])
            }]
        );
        assert_eq!(
            parse_targets(&s(&["po/a", "svc/b", "po/c"])).unwrap(),
            vec![
                Target {
                    types: "po".into(),
                    names: s(&["a", "c"])
                },
                Target {
                    types: "svc".into(),
                    names: s(&["b"])
                }
            ]
        );
        assert!(parse_targets(&s(&["pods", "po/a"])).is_err());
        assert!(parse_targets(&[]).is_err());
    }
}
