//! The garbage collector: removes objects whose owners are gone, and carries out the
//! three propagation policies of a delete.
//!
//! It watches every resource of the registry (except Events) and keeps a graph of
//! objects by UID with their ownerReferences, finalizers and deletion state. From a
//! snapshot of that graph [`plan`] decides:
//! - **Background** (the owner is simply gone): a dependent whose owners are all absent
//!   is deleted; one that still has a live owner only loses the dangling reference.
//!   "Absent" is confirmed with a GET before acting (by name, comparing UIDs), because
//!   the graph is fed by separate watches and the owner's event may just be late.
//! - **Foreground** (owner has `deletionTimestamp` and the `foregroundDeletion`
//!   finalizer): its dependents are deleted (foreground again if they have dependents
//!   of their own); once no dependent with `blockOwnerDeletion: true` remains, the
//!   finalizer is removed and the API server lets the owner go.
//! - **Orphan** (owner has the `orphan` finalizer): the reference to the owner is removed
//!   from every dependent, then the finalizer from the owner.
//!
//! Owners are always matched by UID: a new object that reuses a deleted owner's name does
//! not keep the old owner's dependents alive.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use skiff_api::resource::{lookup_kind, split_api_version, ResourceInfo, RESOURCES};
use tokio_util::sync::CancellationToken;

use crate::ControllerError;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// One object as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index into [`watched_resources`].
    pub res: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

/// The object graph, by UID.
pub type Graph = HashMap<String, Node>;

/// How to delete a dependent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Background,
    Foreground,
}

/// What the collector does to one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Delete `uid`. `verify_absent` lists owners that must be confirmed gone first.
    Delete {
        uid: String,
        policy: Policy,
        verify_absent: Vec<OwnerRefKey>,
    },
    /// Remove the references to `owner_uids` from `uid`'s ownerReferences.
    RemoveOwnerRefs {
        uid: String,
        owner_uids: Vec<String>,
        verify_absent: Vec<OwnerRefKey>,
    },
    /// Remove `finalizer` from `uid`.
    RemoveFinalizer { uid: String, finalizer: String },
}

/// An owner reference reduced to what verification needs (hashable).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerRefKey {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl From<&OwnerReference> for OwnerRefKey {
    fn from(r: &OwnerReference) -> Self {
        OwnerRefKey {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }
}

/// The resources the collector watches: everything but Events, which are many, short
/// lived, and never owners.
pub fn watched_resources() -> Vec<&'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.kind != "Event").collect()
}

fn kind_known(r: &OwnerReference) -> bool {
    let (g, v) = split_api_version(&r.api_version);
    lookup_kind(g, v, &r.kind).is_some()
}

/// Decides every action the graph calls for. Deterministic (sorted by UID) so tests and
/// logs are stable.
pub fn plan(graph: &Graph) -> Vec<Action> {
    // owner uid -> dependents
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in graph.values() {
        for r in &n.owners {
            dependents.entry(r.uid.as_str()).or_default().push(n);
        }
    }
    let mut uids: Vec<&String> = graph.keys().collect();
    uids.sort();
    let mut out = Vec::new();
    for uid in uids {
        let n = &graph[uid];
        let deps = dependents.get(uid.as_str()).cloned().unwrap_or_default();

        // Owner side.
        if n.deleting && n.finalizers.iter().any(|f| f == ORPHAN) {
            for d in &deps {
                out.push(Action::RemoveOwnerRefs {
                    uid: d.uid.clone(),
                    owner_uids: vec![n.uid.clone()],
                    verify_absent: vec![],
                });
            }
            if deps.is_empty() {
                out.push(Action::RemoveFinalizer {
                    uid: n.uid.clone(),
                    finalizer: ORPHAN.into(),
                });
            }
            continue;
        }
        if n.deleting && n.finalizers.iter().any(|f| f == FOREGROUND) {
            for d in &deps {
                if d.deleting {
                    continue;
                }
                // A dependent with another owner that stays just lets go of this one.
                let other_live_owner = d
                    .owners
                    .iter()
                    .any(|r| r.uid != n.uid && graph.get(&r.uid).is_some_and(|o| !o.deleting));
                if other_live_owner {
                    out.push(Action::RemoveOwnerRefs {
                        uid: d.uid.clone(),
                        owner_uids: vec![n.uid.clone()],
                        verify_absent: vec![],
                    });
                } else {
                    let has_own = dependents
                        .get(d.uid.as_str())
                        .is_some_and(|v| !v.is_empty());
                    let policy = if has_own {
                        Policy::Foreground
                    } else {
                        Policy::Background
                    };
                    out.push(Action::Delete {
                        uid: d.uid.clone(),
                        policy,
                        verify_absent: vec![],
                    });
                }
            }
            let blocking = deps.iter().any(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == n.uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                out.push(Action::RemoveFinalizer {
                    uid: n.uid.clone(),
                    finalizer: FOREGROUND.into(),
                });
            }
        }

        // Dependent side: owners that no longer exist.
        if n.deleting || n.owners.is_empty() {
            continue;
        }
        let absent: Vec<&OwnerReference> = n
            .owners
            .iter()
            .filter(|r| !graph.contains_key(&r.uid) && kind_known(r))
            .collect();
        if absent.is_empty() {
            continue;
        }
        let verify: Vec<OwnerRefKey> = absent.iter().map(|r| OwnerRefKey::from(*r)).collect();
        if absent.len() == n.owners.len() {
            out.push(Action::Delete {
                uid: n.uid.clone(),
                policy: Policy::Background,
                verify_absent: verify,
            });
        } else {
            out.push(Action::RemoveOwnerRefs {
                uid: n.uid.clone(),
                owner_uids: absent.iter().map(|r| r.uid.clone()).collect(),
                verify_absent: verify,
            });
        }
    }
    out
}

fn api_resource(r: &ResourceInfo) -> ApiResource {
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    }
}

fn node_of(res: usize, o: &DynamicObject) -> Option<Node> {
    let m = &o.metadata;
    Some(Node {
        res,
        namespace: m.namespace.clone(),
        name: m.name.clone()?,
        uid: m.uid.clone()?,
        resource_version: m.resource_version.clone(),
        owners: m.owner_references.clone().unwrap_or_default(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
    })
}

/// Keeps the graph in step with the watch events of each resource, including relists
/// (objects missing from a relist are dropped).
#[derive(Default)]
struct GraphState {
    graph: Graph,
    relisting: HashMap<usize, HashSet<String>>,
    synced: HashSet<usize>,
}

impl GraphState {
    fn apply(&mut self, res: usize, ev: watcher::Event<DynamicObject>) {
        match ev {
            watcher::Event::Init => {
                self.relisting.insert(res, HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                if let Some(n) = node_of(res, &o) {
                    if let Some(s) = self.relisting.get_mut(&res) {
                        s.insert(n.uid.clone());
                    }
                    self.graph.insert(n.uid.clone(), n);
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.remove(&res) {
                    self.graph
                        .retain(|uid, n| n.res != res || seen.contains(uid));
                }
                self.synced.insert(res);
            }
            watcher::Event::Apply(o) => {
                if let Some(n) = node_of(res, &o) {
                    self.graph.insert(n.uid.clone(), n);
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(uid) = &o.metadata.uid {
                    self.graph.remove(uid);
                }
            }
        }
    }
}

/// Runs the garbage collector until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let resources = watched_resources();
    let streams = resources.iter().enumerate().map(|(i, r)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(r));
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |e| (i, e))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut state = GraphState::default();
    let mut attempted: HashMap<Action, Instant> = HashMap::new();
    let mut next_run: Option<tokio::time::Instant> = None;
    let mut retry = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = events.next() => match ev {
                Some((i, Ok(e))) => {
                    state.apply(i, e);
                    next_run.get_or_insert(tokio::time::Instant::now() + Duration::from_millis(50));
                }
                Some((i, Err(e))) => tracing::warn!(resource = resources[i].plural, error = %e, "garbage collector watch failed; retrying"),
                None => break,
            },
            _ = retry.tick() => {
                next_run.get_or_insert(tokio::time::Instant::now());
            }
            _ = async { tokio::time::sleep_until(next_run.unwrap_or_else(tokio::time::Instant::now)).await }, if next_run.is_some() => {
                next_run = None;
                if state.synced.len() < resources.len() {
                    continue;
                }
                let actions = plan(&state.graph);
                let now = Instant::now();
                // Do not repeat an action whose effect has not reached the graph yet.
                let wanted: HashSet<&Action> = actions.iter().collect();
                attempted.retain(|a, t| now.duration_since(*t) < Duration::from_secs(3) && wanted.contains(a));
                for a in &actions {
                    if attempted.contains_key(a) {
                        continue;
                    }
                    attempted.insert(a.clone(), now);
                    if let Err(e) = execute(&client, &resources, &state.graph, a).await {
                        tracing::warn!(action = ?a, error = %e, "garbage collector action failed; will retry");
                    }
                }
            }
        }
    }
    Ok(())
}

fn api_for(client: &Client, r: &ResourceInfo, ns: Option<&str>) -> Api<DynamicObject> {
    match (r.namespaced(), ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &api_resource(r)),
        _ => Api::all_with(client.clone(), &api_resource(r)),
    }
}

/// Confirms with the API server that the owner is really gone (404, or a different UID
/// under its name).
async fn owner_absent(
    client: &Client,
    dependent_ns: Option<&str>,
    owner: &OwnerRefKey,
) -> Result<bool, kube::Error> {
    let (g, v) = split_api_version(&owner.api_version);
    let Some(r) = lookup_kind(g, v, &owner.kind) else {
        return Ok(false);
    };
    let api = api_for(client, r, dependent_ns);
    Ok(match api.get_opt(&owner.name).await? {
        None => true,
        Some(o) => o.metadata.uid.as_deref() != Some(owner.uid.as_str()),
    })
}

fn ignorable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

async fn execute(
    client: &Client,
    resources: &[&ResourceInfo],
    graph: &Graph,
    a: &Action,
) -> Result<(), ControllerError> {
    let uid = match a {
        Action::Delete { uid, .. }
        | Action::RemoveOwnerRefs { uid, .. }
        | Action::RemoveFinalizer { uid, .. } => uid,
    };
    let Some(n) = graph.get(uid) else {
        return Ok(());
    };
    let api = api_for(client, resources[n.res], n.namespace.as_deref());
    let verify = match a {
        Action::Delete { verify_absent, .. } | Action::RemoveOwnerRefs { verify_absent, .. } => {
            verify_absent.as_slice()
        }
        Action::RemoveFinalizer { .. } => &[],
    };
    for owner in verify {
        if !owner_absent(client, n.namespace.as_deref(), owner).await? {
            tracing::debug!(dependent = %n.name, owner = %owner.name, "owner still exists; the cache was behind");
            return Ok(());
        }
    }
    let result = match a {
        Action::Delete { policy, .. } => {
            let dp = DeleteParams {
                propagation_policy: Some(match policy {
                    Policy::Background => PropagationPolicy::Background,
                    Policy::Foreground => PropagationPolicy::Foreground,
                }),
                preconditions: Some(Preconditions {
                    uid: Some(n.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            tracing::info!(kind = resources[n.res].kind, namespace = ?n.namespace, name = %n.name, "deleting dependent");
            api.delete(&n.name, &dp).await.map(|_| ())
        }
        Action::RemoveOwnerRefs { owner_uids, .. } => {
            let refs: Vec<&OwnerReference> = n
                .owners
                .iter()
                .filter(|r| !owner_uids.contains(&r.uid))
                .collect();
            let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "resourceVersion": n.resource_version}});
            tracing::info!(kind = resources[n.res].kind, name = %n.name, "removing owner references");
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
        Action::RemoveFinalizer { finalizer, .. } => {
            let rest: Vec<&String> = n.finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = serde_json::json!({"metadata": {"finalizers": rest, "resourceVersion": n.resource_version}});
            tracing::info!(kind = resources[n.res].kind, name = %n.name, finalizer, "removing finalizer");
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if ignorable(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("{uid}-name"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: Vec<OwnerReference>, finalizers: &[&str], deleting: bool) -> Node {
        Node {
            res: 0,
            namespace: Some("default".into()),
            name: format!("{uid}-name"),
            uid: uid.into(),
            resource_version: Some("1".into()),
            owners,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
            deleting,
        }
    }

    fn graph(nodes: Vec<Node>) -> Graph {
        nodes.into_iter().map(|n| (n.uid.clone(), n)).collect()
    }

    #[test]
    fn background_deletes_dependents_of_absent_owners_after_verification() {
        let g = graph(vec![node("pod", vec![owner("rs", true)], &[], false)]);
        let a = plan(&g);
        assert_eq!(a.len(), 1);
        match &a[0] {
            Action::Delete {
                uid,
                policy,
                verify_absent,
            } => {
                assert_eq!((uid.as_str(), *policy), ("pod", Policy::Background));
                assert_eq!(verify_absent[0].uid, "rs");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn live_owner_keeps_dependent_and_dangling_refs_are_dropped() {
        let g = graph(vec![
            node("rs", vec![], &[], false),
            node("pod", vec![owner("rs", true)], &[], false),
        ]);
        assert!(plan(&g).is_empty());
        let g = graph(vec![
            node("rs", vec![], &[], false),
            node(
                "pod",
                vec![owner("rs", true), owner("gone", false)],
                &[],
                false,
            ),
        ]);
        assert_eq!(
            plan(&g),
            vec![Action::RemoveOwnerRefs {
                uid: "pod".into(),
                owner_uids: vec!["gone".into()],
                verify_absent: vec![OwnerRefKey::from(&owner("gone", false))],
            }]
        );
    }

    #[test]
    fn unknown_owner_kinds_are_left_alone() {
        let mut r = owner("x", true);
        r.api_version = "example.com/v1".into();
        r.kind = "Widget".into();
        assert!(plan(&graph(vec![node("pod", vec![r], &[], false)])).is_empty());
    }

    #[test]
    fn foreground_deletes_dependents_then_releases_owner() {
        let g = graph(vec![
            node("deploy", vec![], &[FOREGROUND], true),
            node("rs", vec![owner("deploy", true)], &[], false),
            node("pod", vec![owner("rs", true)], &[], false),
        ]);
        let a = plan(&g);
        assert!(
            a.contains(&Action::Delete {
                uid: "rs".into(),
                policy: Policy::Foreground,
                verify_absent: vec![]
            }),
            "{a:?}"
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::RemoveFinalizer { .. })),
            "blocked by rs: {a:?}"
        );

        // rs is going (foreground itself), pod still there: deploy keeps waiting.
        let g = graph(vec![
            node("deploy", vec![], &[FOREGROUND], true),
            node("rs", vec![owner("deploy", true)], &[FOREGROUND], true),
            node("pod", vec![owner("rs", true)], &[], false),
        ]);
        let a = plan(&g);
        assert!(a.contains(&Action::Delete {
            uid: "pod".into(),
            policy: Policy::Background,
            verify_absent: vec![]
        }));
        assert!(!a
            .iter()
            .any(|x| matches!(x, Action::RemoveFinalizer { .. })));

        // Only a non-blocking dependent left: the owner may go.
        let g = graph(vec![
            node("deploy", vec![], &[FOREGROUND], true),
            node("cm", vec![owner("deploy", false)], &[], false),
        ]);
        let a = plan(&g);
        assert!(a.contains(&Action::RemoveFinalizer {
            uid: "deploy".into(),
            finalizer: FOREGROUND.into()
        }));
    }

    #[test]
    fn orphan_strips_references_then_the_finalizer() {
        let g = graph(vec![
            node("rs", vec![], &[ORPHAN], true),
            node("p1", vec![owner("rs", true)], &[], false),
        ]);
        assert_eq!(
            plan(&g),
            vec![Action::RemoveOwnerRefs {
                uid: "p1".into(),
                owner_uids: vec!["rs".into()],
                verify_absent: vec![]
            }]
        );
        let g = graph(vec![
            node("rs", vec![], &[ORPHAN], true),
            node("p1", vec![], &[], false),
        ]);
        assert_eq!(
            plan(&g),
            vec![Action::RemoveFinalizer {
                uid: "rs".into(),
                finalizer: ORPHAN.into()
            }]
        );
    }

    #[test]
    fn relist_drops_objects_that_disappeared() {
        let mut s = GraphState::default();
        let obj = |uid: &str| {
            let mut o = DynamicObject::new(
                &format!("{uid}-name"),
                &api_resource(watched_resources()[0]),
            );
            o.metadata.uid = Some(uid.into());
            o
        };
        s.apply(0, watcher::Event::Init);
        s.apply(0, watcher::Event::InitApply(obj("a")));
        s.apply(0, watcher::Event::InitApply(obj("b")));
        s.apply(0, watcher::Event::InitDone);
        assert_eq!(s.graph.len(), 2);
        assert!(s.synced.contains(&0));
        s.apply(0, watcher::Event::Init);
        s.apply(0, watcher::Event::InitApply(obj("b")));
        s.apply(0, watcher::Event::InitDone);
        assert_eq!(s.graph.keys().collect::<Vec<_>>(), vec!["b"]);
        s.apply(0, watcher::Event::Delete(obj("b")));
        assert!(s.graph.is_empty());
    }
}
