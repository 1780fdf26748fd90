//! The routing table: Ingresses, IngressClasses, Services and EndpointSlices in, an
//! immutable [`RouteTable`] out, and `route(host, path)` over it.
//!
//! Everything here is pure. The watch layer rebuilds a whole table whenever an input
//! changes and swaps it in atomically (see `lib.rs`), so a request always sees one
//! consistent table and connections are never touched by a change.
//!
//! Matching follows networking.k8s.io/v1
//! (<https://kubernetes.io/docs/concepts/services-networking/ingress/>):
//! - hosts: an exact host beats a `*.wildcard` host (which covers exactly one DNS
//!   label), which beats rules without a host; when a tier has the host but none of its
//!   paths match, the next tier is tried, then `spec.defaultBackend`, then 404;
//! - paths: `Exact` matches the whole path, `Prefix` matches element-wise on `/`
//!   (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`; a trailing `/` in
//!   the rule is ignored), `ImplementationSpecific` is treated as `Prefix`; the longest
//!   match wins and `Exact` wins a tie;
//! - conflicts: when two Ingresses claim the same host, path and type, the oldest one
//!   (creation time, then namespace/name) wins, as with `defaultBackend`.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use crate::annotations::{self, BackendProtocol};

/// Annotation that makes an IngressClass the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated pre-IngressClass way of choosing a controller.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which Ingresses this controller serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSelector {
    /// IngressClass name served even when no IngressClass object exists (lab setups).
    pub class_name: String,
    /// `spec.controller` value of the IngressClasses this controller implements.
    pub controller: String,
    /// Also serve Ingresses with no class at all when no default class exists
    /// (ingress-nginx's `--watch-ingress-without-class`).
    pub claim_classless: bool,
}

/// The objects a table is built from, as the reflector stores hold them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub ingresses: Vec<Arc<Ingress>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
}

/// One backend Service port with its ready endpoints, shared by every route that
/// points at it so that round-robin spans them all.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs and error pages.
    pub name: String,
    /// Ready endpoint addresses, sorted.
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    pub fn new(name: impl Into<String>, endpoints: Vec<SocketAddr>) -> Self {
        Backend {
            name: name.into(),
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order to try them for one request: round-robin start,
    /// then the others so a connect failure can move on to the next one.
    pub fn pick(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.endpoints.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.endpoints[(start + i) % n])
    }
}

/// How a rule path is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathType {
    Exact,
    Prefix,
}

/// Where a matched request goes and how it is rewritten.
#[derive(Debug)]
pub struct Route {
    pub backend: Arc<Backend>,
    /// `namespace/name` of the Ingress that owns the rule.
    pub ingress: String,
    /// The rule path, normalised (`Prefix` paths lose a trailing `/`, `/` becomes "").
    pub path: String,
    pub path_type: PathType,
    pub rewrite_target: Option<String>,
    /// Plain-HTTP requests get a 308 to https.
    pub ssl_redirect: bool,
    pub protocol: BackendProtocol,
}

impl Route {
    /// The path to send upstream: with a rewrite target the matched part of the path
    /// is replaced, the rest (and the query, handled by the caller) is kept.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(target) = &self.rewrite_target else {
            return path.into();
        };
        let rest = match self.path_type {
            PathType::Exact => "",
            PathType::Prefix => &path[self.path.len().min(path.len())..],
        };
        if rest.is_empty() || rest == "/" {
            return target.clone().into();
        }
        // rest starts with '/' (element-wise match), so join without doubling slashes
        format!("{}{}", target.trim_end_matches('/'), rest).into()
    }
}

/// The answer of [`RouteTable::route`].
#[derive(Debug)]
pub enum Match<'a> {
    Found(&'a Arc<Route>),
    NotFound,
}

/// The rules of one host tier.
#[derive(Debug, Default)]
struct PathRules {
    exact: HashMap<String, Arc<Route>>,
    /// Sorted longest first, so the first hit is the longest match.
    prefixes: Vec<Arc<Route>>,
}

impl PathRules {
    fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        // An exact hit is at least as long as any prefix hit and wins ties.
        if let Some(r) = self.exact.get(path) {
            return Some(r);
        }
        self.prefixes.iter().find(|r| prefix_matches(&r.path, path))
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// Element-wise prefix match of a normalised rule prefix (no trailing '/').
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// An immutable routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact_hosts: HashMap<String, PathRules>,
    /// Keyed by the part after `*.`.
    wildcard_hosts: HashMap<String, PathRules>,
    any_host: PathRules,
    default_backend: Option<Arc<Route>>,
    /// Ingresses (namespace/name) this controller serves.
    pub served: Vec<String>,
    /// Problems found while building (bad paths, missing Services, bad annotations),
    /// for logging; the rest of the table is still built.
    pub warnings: Vec<String>,
}

impl RouteTable {
    /// Finds the route for a request. `host` must be normalised with [`normalize_host`].
    pub fn route(&self, host: &str, path: &str) -> Match<'_> {
        let tiers = [
            self.exact_hosts.get(host),
            host.split_once('.')
                .filter(|(label, _)| !label.is_empty())
                .and_then(|(_, rest)| self.wildcard_hosts.get(rest)),
            Some(&self.any_host),
        ];
        for rules in tiers.into_iter().flatten() {
            if let Some(r) = rules.lookup(path) {
                return Match::Found(r);
            }
        }
        match &self.default_backend {
            Some(r) => Match::Found(r),
            None => Match::NotFound,
        }
    }

    /// All backends in the table (for tests and metrics).
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        let mut seen: HashMap<String, Arc<Backend>> = HashMap::new();
        let all = self
            .exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .chain(std::iter::once(&self.any_host))
            .flat_map(|p| p.exact.values().chain(p.prefixes.iter()))
            .chain(self.default_backend.iter());
        for r in all {
            seen.entry(r.backend.name.clone())
                .or_insert_with(|| r.backend.clone());
        }
        seen.into_values().collect()
    }
}

/// Lower-cases a Host header or :authority, drops the port and a trailing dot.
/// Borrows when there is nothing to change (the usual case: a lower-case name
/// without a port), so the request path does not allocate for it.
pub fn normalize_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let already_normal = !raw.is_empty()
        && !raw.ends_with('.')
        && raw
            .bytes()
            .all(|b| !b.is_ascii_uppercase() && !matches!(b, b':' | b'[' | b' ' | b'\t'));
    if already_normal {
        return raw.into();
    }
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: keep it bracket-less, without the port
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    host.trim_end_matches('.').to_ascii_lowercase().into()
}

/// Whether this controller serves `ing` (IngressClass selection).
pub fn is_ours(ing: &Ingress, classes: &[Arc<IngressClass>], sel: &ClassSelector) -> bool {
    let ours = |class: &IngressClass| {
        class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(sel.controller.as_str())
    };
    let named = |name: &str| {
        classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    };
    if let Some(name) = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
    {
        return match named(name) {
            Some(class) => ours(class),
            None => name == sel.class_name,
        };
    }
    if let Some(name) = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
    {
        return name == &sel.class_name || named(name).is_some_and(|c| ours(c));
    }
    let defaults: Vec<_> = classes
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .map(|v| v.as_str())
                == Some("true")
        })
        .collect();
    match defaults.as_slice() {
        [] => sel.claim_classless,
        // Kubernetes refuses new class-less Ingresses when several defaults exist;
        // for existing ones the oldest default is the documented tie-break.
        many => many
            .iter()
            .min_by_key(|c| {
                (
                    c.metadata.creation_timestamp.clone().map(|t| t.0),
                    c.metadata.name.clone(),
                )
            })
            .is_some_and(|c| ours(c)),
    }
}

/// Hosts listed in `spec.tls` of an Ingress.
fn tls_hosts(ing: &Ingress) -> BTreeSet<String> {
    ing.spec
        .iter()
        .flat_map(|s| s.tls.iter().flatten())
        .flat_map(|t| t.hosts.iter().flatten())
        .map(|h| h.to_ascii_lowercase())
        .collect()
}

/// The oldest-first order used to break conflicts.
pub fn sort_oldest_first(ingresses: &mut [Arc<Ingress>]) {
    ingresses.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.clone().map(|t| t.0),
            i.metadata.namespace.clone().unwrap_or_default(),
            i.metadata.name.clone().unwrap_or_default(),
        )
    });
}

fn ingress_key(ing: &Ingress) -> String {
    format!(
        "{}/{}",
        ing.metadata.namespace.as_deref().unwrap_or("default"),
        ing.metadata.name.as_deref().unwrap_or("")
    )
}

/// Resolves Service ports to ready endpoints; shares one [`Backend`] per port.
struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    cache: HashMap<String, Arc<Backend>>,
}

impl<'a> Resolver<'a> {
    fn new(inputs: &'a Inputs) -> Self {
        let services = inputs
            .services
            .iter()
            .filter_map(|s| {
                Some((
                    (
                        s.metadata.namespace.as_deref()?,
                        s.metadata.name.as_deref()?,
                    ),
                    &**s,
                ))
            })
            .collect();
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for s in &inputs.slices {
            let svc = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (s.metadata.namespace.as_deref(), svc) {
                slices.entry((ns, svc.as_str())).or_default().push(&**s);
            }
        }
        Resolver {
            services,
            slices,
            cache: HashMap::new(),
        }
    }

    fn backend(
        &mut self,
        ns: &str,
        b: &IngressBackend,
        warnings: &mut Vec<String>,
    ) -> Option<Arc<Backend>> {
        let Some(svc) = &b.service else {
            warnings.push(format!(
                "{ns}: resource backends are not supported; use a service backend"
            ));
            return None;
        };
        let port = svc.port.as_ref();
        let port_label = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => {
                warnings.push(format!("{ns}/{}: backend has no port", svc.name));
                return None;
            }
        };
        let name = format!("{ns}/{}:{port_label}", svc.name);
        if let Some(b) = self.cache.get(&name) {
            return Some(b.clone());
        }
        let endpoints = self.endpoints(
            ns,
            &svc.name,
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
            &name,
            warnings,
        );
        let backend = Arc::new(Backend::new(name.clone(), endpoints));
        self.cache.insert(name, backend.clone());
        Some(backend)
    }

    fn endpoints(
        &self,
        ns: &str,
        svc_name: &str,
        number: Option<i32>,
        port_name: Option<&str>,
        label: &str,
        warnings: &mut Vec<String>,
    ) -> Vec<SocketAddr> {
        let Some(svc) = self.services.get(&(ns, svc_name)) else {
            // Not an error for the table: the Service may be created later; until then
            // requests get 503.
            warnings.push(format!("{label}: service not found"));
            return Vec::new();
        };
        let ports = svc.spec.iter().flat_map(|s| s.ports.iter().flatten());
        let svc_port = ports.clone().find(|p| match number {
            Some(n) => p.port == n,
            None => p.name.as_deref() == port_name,
        });
        let Some(svc_port) = svc_port else {
            warnings.push(format!("{label}: service has no such port"));
            return Vec::new();
        };
        // EndpointSlice ports carry the Service port's name ("" when unnamed).
        let want = svc_port.name.as_deref().unwrap_or("");
        let mut out = BTreeSet::new();
        for slice in self.slices.get(&(ns, svc_name)).into_iter().flatten() {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let Some(port) = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == want)
                .and_then(|p| p.port)
            else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            for ep in &slice.endpoints {
                // A nil ready condition means ready (discovery/v1 API docs).
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for addr in &ep.addresses {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        out.insert(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Normalises a rule path; `None` when Kubernetes validation would refuse it.
fn rule_path(path: Option<&str>, path_type: &str) -> Result<(String, PathType), String> {
    let path_type = match path_type {
        "Exact" => PathType::Exact,
        "Prefix" | "ImplementationSpecific" => PathType::Prefix,
        other => {
            return Err(format!(
                "unknown pathType {other:?}; use Exact, Prefix or ImplementationSpecific"
            ))
        }
    };
    let path = path.unwrap_or("/");
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with '/'"));
    }
    match path_type {
        PathType::Exact => Ok((path.to_string(), path_type)),
        PathType::Prefix => Ok((path.trim_end_matches('/').to_string(), path_type)),
    }
}

/// The Ingresses this controller serves, oldest first.
pub fn served(inputs: &Inputs, sel: &ClassSelector) -> Vec<Arc<Ingress>> {
    let mut ingresses: Vec<_> = inputs
        .ingresses
        .iter()
        .filter(|i| is_ours(i, &inputs.classes, sel))
        .cloned()
        .collect();
    sort_oldest_first(&mut ingresses);
    ingresses
}

/// Builds the routing table from the cluster state.
pub fn build(inputs: &Inputs, sel: &ClassSelector) -> RouteTable {
    let mut table = RouteTable::default();
    let mut resolver = Resolver::new(inputs);
    let ingresses = served(inputs, sel);
    let mut warnings = Vec::new();

    for ing in &ingresses {
        let key = ingress_key(ing);
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        table.served.push(key.clone());
        let (annotations, errors) = annotations::parse(ing.metadata.annotations.as_ref());
        warnings.extend(errors.into_iter().map(|e| format!("ingress {key}: {e}")));
        let tls = tls_hosts(ing);
        let Some(spec) = &ing.spec else { continue };

        let make_route = |backend, path: String, path_type, host: Option<&str>| {
            let host_has_tls = host.is_some_and(|h| tls.contains(h));
            Arc::new(Route {
                backend,
                ingress: key.clone(),
                path,
                path_type,
                rewrite_target: annotations.rewrite_target.clone(),
                ssl_redirect: annotations.ssl_redirect.unwrap_or(host_has_tls),
                protocol: annotations.backend_protocol,
            })
        };

        if let Some(db) = &spec.default_backend {
            if let Some(backend) = resolver.backend(ns, db, &mut warnings) {
                if table.default_backend.is_none() {
                    table.default_backend =
                        Some(make_route(backend, String::new(), PathType::Prefix, None));
                } else {
                    warnings.push(format!(
                        "ingress {key}: defaultBackend ignored, an older ingress already sets one"
                    ));
                }
            }
        }

        for rule in spec.rules.iter().flatten() {
            let host = rule.host.as_deref().map(str::to_ascii_lowercase);
            let rules = match host.as_deref() {
                None | Some("") => &mut table.any_host,
                Some(h) => match h.strip_prefix("*.") {
                    Some(suffix) => table.wildcard_hosts.entry(suffix.to_string()).or_default(),
                    None => table.exact_hosts.entry(h.to_string()).or_default(),
                },
            };
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let (path, path_type) = match rule_path(p.path.as_deref(), &p.path_type) {
                    Ok(v) => v,
                    Err(e) => {
                        warnings.push(format!("ingress {key}: {e}"));
                        continue;
                    }
                };
                let Some(backend) = resolver.backend(ns, &p.backend, &mut warnings) else {
                    continue;
                };
                let taken = match path_type {
                    PathType::Exact => rules.exact.contains_key(&path),
                    PathType::Prefix => rules.prefixes.iter().any(|r| r.path == path),
                };
                if taken {
                    warnings.push(format!(
                        "ingress {key}: host {:?} path {path:?} is already served by an older ingress",
                        host.as_deref().unwrap_or("*")
                    ));
                    continue;
                }
                let route = make_route(backend, path.clone(), path_type, host.as_deref());
                match path_type {
                    PathType::Exact => {
                        rules.exact.insert(path, route);
                    }
                    PathType::Prefix => rules.prefixes.push(route),
                }
            }
        }
    }
    let tiers = table
        .exact_hosts
        .values_mut()
        .chain(table.wildcard_hosts.values_mut())
        .chain(std::iter::once(&mut table.any_host));
    for rules in tiers {
        rules
            .prefixes
            .sort_by_key(|r| std::cmp::Reverse(r.path.len()));
    }
    table.exact_hosts.retain(|_, r| !r.is_empty());
    table.wildcard_hosts.retain(|_, r| !r.is_empty());
    table.warnings = warnings;
    table
}

#[cfg(test)]
mod tests;
