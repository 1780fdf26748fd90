//! The API server driven by the `kube` crate, as controllers and users' programs drive
//! it: typed CRUD of Namespaces, Pods, Services, ConfigMaps and Deployments; list with
//! label and field selectors and pagination (including bad and expired continue tokens);
//! watch (resume after a disconnect, 410 Gone, and the kube-runtime watcher re-listing
//! after it); patches of each type and server-side apply (skipped while the server
//! answers 415); status and scale subresources; errors whose Status names the object
//! and the field; and restarts. e2e/clients.sh runs the same ground with the official
//! Python client against the real binary.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use skiff_apiserver::testing::TestServer;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_with_conflicts_and_errors() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms
        .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    // Duplicate create: 409 AlreadyExists.
    let err = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "AlreadyExists");
        }
        other => panic!("unexpected {other}"),
    }

    // Update with the current resourceVersion works; with a stale one, 409 Conflict.
    let mut next = created.clone();
    next.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    let err = cms
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err}"
    );

    // Not found.
    let err = cms.get("nope").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err}"
    );

    // Creating in a namespace that does not exist: 404 naming the namespace.
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "missing");
    let err = elsewhere
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.message.contains("namespaces \"missing\"")),
        "{err}"
    );

    // Delete, then it is gone.
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn lists_filter_by_labels_and_page() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        cms.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier})),
        )
        .await
        .unwrap();
    }
    let front = cms
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(front.items.len(), 4);
    let not_front = cms
        .list(&ListParams::default().labels("tier!=front"))
        .await
        .unwrap();
    assert_eq!(not_front.items.len(), 3);
    let set = cms
        .list(&ListParams::default().labels("tier in (front,back)"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 7);

    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.metadata.resource_version.is_some());
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names.len(), 7);
    let all: Api<ConfigMap> = Api::all(client);
    assert!(all.list(&ListParams::default()).await.unwrap().items.len() >= 7);
}

#[tokio::test]
async fn watch_sees_changes_resumes_and_reports_expiry() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("w", json!({})))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();

    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut changed = first.clone();
    changed.data = Some([("k".to_string(), "changed".to_string())].into());
    cms.replace("w", &PostParams::default(), &changed)
        .await
        .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Modified(c)) => {
                assert_eq!(c.data.unwrap()["k"], "changed");
                kinds.push("MODIFIED")
            }
            Some(WatchEvent::Deleted(_)) => kinds.push("DELETED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, vec!["MODIFIED", "DELETED"]);

    // The kube-runtime watcher (list, then watch) sees objects created later.
    let watcher = kube::runtime::watcher(cms.clone(), kube::runtime::watcher::Config::default());
    let mut objects = kube::runtime::WatchStreamExt::applied_objects(watcher).boxed();
    cms.create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let o = objects.try_next().await.unwrap().unwrap();
            if o.metadata.name.as_deref() == Some("later") {
                return o;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("later"));
}

#[tokio::test]
async fn patches_of_each_type_and_subresources() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deps
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    let pp = PatchParams::default();
    let merged = deps
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.labels.unwrap()["a"], "1");
    assert_eq!(
        merged.metadata.generation,
        Some(1),
        "a label change is not a spec change"
    );

    let jp = http::Request::patch("/apis/apps/v1/namespaces/default/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(
            serde_json::to_vec(&json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
                .unwrap(),
        )
        .unwrap();
    let patched: Deployment = client.request(jp).await.unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(3));
    assert_eq!(patched.metadata.generation, Some(2));

    let sm = deps
        .patch("web", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}})))
        .await
        .unwrap();
    let containers = sm.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("busybox:1.36"));

    // Scale subresource.
    let scale = deps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    deps.patch_scale("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 5}})))
        .await
        .unwrap();
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(5)
    );

    // Status subresource: the main resource ignores status, /status takes only status.
    let st = deps
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 2}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().replicas, Some(2));
    assert_eq!(st.spec.unwrap().replicas, Some(5));
    let main = deps
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.unwrap().replicas, Some(2));
}

#[tokio::test]
async fn services_get_cluster_ips_and_pods_bind_once() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let s: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let s = svcs.create(&PostParams::default(), &s).await.unwrap();
    let spec = s.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    assert!(ip.starts_with("10."), "{ip}");
    let np = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&np));
    let k = svcs.get("kubernetes").await.unwrap();
    assert_eq!(k.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let bind = |node: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": node}});
    let req = |node: &str| {
        http::Request::post("/api/v1/namespaces/default/pods/p/binding")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&bind(node)).unwrap())
            .unwrap()
    };
    let ok: serde_json::Value = client.request(req("n1")).await.unwrap();
    assert_eq!(ok["status"], "Success");
    let again = client
        .request::<serde_json::Value>(req("n2"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, kube::Error::Api(ref s) if s.code == 409),
        "{again}"
    );
    let bound = pods.get("p").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
}

#[tokio::test]
async fn objects_and_revisions_survive_a_restart() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "keep"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "keep");
    let c = cms
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();

    server.restart().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "keep");
    let back = cms.get("c").await.unwrap();
    assert_eq!(back.metadata.resource_version, c.metadata.resource_version);
    assert_eq!(back.metadata.uid, c.metadata.uid);
    let nss: Api<Namespace> = Api::all(client);
    assert_eq!(
        nss.get("keep").await.unwrap().metadata.uid,
        created.metadata.uid
    );
    // Writes continue with higher revisions.
    let d = cms
        .create(&PostParams::default(), &cm("d", json!({})))
        .await
        .unwrap();
    let a: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
    let b: u64 = d.metadata.resource_version.unwrap().parse().unwrap();
    assert!(b > a);
}

/// The Status of an API error, or a panic naming what came back instead.
fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

/// A store that forgets history at once: every revision but the newest is compacted, so
/// any older resourceVersion meets 410 Gone.
fn tiny_window() -> skiff_apiserver::store::StoreOptions {
    skiff_apiserver::store::StoreOptions {
        window: Duration::ZERO,
        min_events: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn namespaces_pods_services_deployments_round_trip() {
    let server = TestServer::start().await;
    let client = server.client().await;

    // Namespaces: deletion leaves it Terminating until its finalizer is cleared (no
    // namespace controller runs in the test server).
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "rt"}})).unwrap();
    let made = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(
        made.status.unwrap().phase.as_deref(),
        Some("Active"),
        "a new namespace is Active"
    );
    let mut got = nss.get("rt").await.unwrap();
    got.metadata
        .labels
        .get_or_insert_default()
        .insert("team".into(), "a".into());
    let replaced = nss
        .replace("rt", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.labels.unwrap()["team"], "a");

    // Pods: without nodes a pod stays Pending and unbound, and is deleted at once.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rt");
    let p = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    let mut got = pods.get("p").await.unwrap();
    got.metadata
        .labels
        .get_or_insert_default()
        .insert("touched".into(), "yes".into());
    let replaced = pods
        .replace("p", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.labels.unwrap()["touched"], "yes");
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());

    // Services: an update keeps the allocated ClusterIP.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "rt");
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let s = svcs.create(&PostParams::default(), &s).await.unwrap();
    let ip = s.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let mut got = svcs.get("web").await.unwrap();
    got.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
    let replaced = svcs
        .replace("web", &PostParams::default(), &got)
        .await
        .unwrap();
    let spec = replaced.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].port, 81);
    assert_eq!(spec.cluster_ip.as_deref(), Some(ip.as_str()));
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(svcs.get_opt("web").await.unwrap().is_none());

    // Deployments: a template change is a spec change, so the generation moves.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "rt");
    deps.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    let mut got = deps.get("d").await.unwrap();
    got.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("busybox:1.36".into());
    let replaced = deps
        .replace("d", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    deps.delete("d", &DeleteParams::default()).await.unwrap();
    assert!(deps.get_opt("d").await.unwrap().is_none());

    nss.delete("rt", &DeleteParams::default()).await.unwrap();
    let after = nss.get("rt").await.unwrap();
    assert!(after.metadata.deletion_timestamp.is_some());
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Terminating"));
}

#[tokio::test]
async fn field_selectors_and_bad_continue_tokens() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for n in ["fa", "fb"] {
        cms.create(&PostParams::default(), &cm(n, json!({})))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let one = cms
        .list(&ListParams::default().fields("metadata.name=fa"))
        .await
        .unwrap();
    assert_eq!(names(one), vec!["fa"]);
    let not = names(
        cms.list(&ListParams::default().fields("metadata.name!=fa"))
            .await
            .unwrap(),
    );
    assert!(not.contains(&"fb".to_string()) && !not.contains(&"fa".to_string()));
    let all: Api<ConfigMap> = Api::all(client.clone());
    let here = all
        .list(&ListParams::default().fields("metadata.namespace=default,metadata.name=fb"))
        .await
        .unwrap();
    assert_eq!(names(here), vec!["fb"]);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("fs"))
        .await
        .unwrap();
    let unbound = pods
        .list(&ListParams::default().fields("spec.nodeName=,status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(unbound.items.len(), 1);
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    assert!(running.items.is_empty());

    // A field the resource cannot select on, and a continue token that is not one.
    let s = status_of(cms.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
    let s = status_of(
        cms.list(&ListParams::default().limit(1).continue_token("bogus"))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
}

#[tokio::test]
async fn expired_continue_token_is_410() {
    let server = TestServer::start_with(tiny_window()).await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &cm(&format!("e{i}"), json!({"e": "1"})),
        )
        .await
        .unwrap();
    }
    let lp = ListParams::default().labels("e=1").limit(1);
    let first = cms.list(&lp).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    // Two writes move the compaction point past the first page's revision.
    for v in ["a", "b"] {
        cms.patch(
            "e0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": v}})),
        )
        .await
        .unwrap();
    }
    let s = status_of(cms.list(&lp.clone().continue_token(&token)).await);
    assert_eq!((s.code, s.reason.as_str()), (410, "Expired"), "{s:?}");
    // Starting over works.
    assert_eq!(cms.list(&lp).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn watch_resumes_after_a_disconnect() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let made = cms
        .create(&PostParams::default(), &cm("r", json!({})))
        .await
        .unwrap();
    let set = |v: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "r",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": v}})),
            )
            .await
            .unwrap()
        }
    };
    let wp = WatchParams::default().fields("metadata.name=r").timeout(10);
    let mut stream = cms
        .watch(&wp, made.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap()
        .boxed();
    set("1").await;
    let last_rv = match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Modified(c)) => {
            assert_eq!(c.data.unwrap()["k"], "1");
            c.metadata.resource_version.unwrap()
        }
        other => panic!("unexpected {other:?}"),
    };
    drop(stream); // the disconnect
    set("2").await;
    set("3").await;
    let mut stream = cms.watch(&wp, &last_rv).await.unwrap().boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Modified(c)) => seen.push(c.data.unwrap()["k"].clone()),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["2", "3"], "exactly the changes missed, in order");
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_410_and_the_watcher_relists() {
    let server = TestServer::start_with(tiny_window()).await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let old = cms
        .create(&PostParams::default(), &cm("g", json!({"w": "yes"})))
        .await
        .unwrap();
    let touch = |name: &'static str, v: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": v}})),
            )
            .await
            .unwrap()
        }
    };
    touch("g", "1").await;
    touch("g", "2").await;

    // A raw watch from the old revision gets an ERROR event carrying 410 Expired.
    let mut stream = cms
        .watch(
            &WatchParams::default().timeout(5),
            old.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}")
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // The kube-runtime watcher lists, then watches from the list's revision. Writes to
    // an object its selector does not match, made right after the list, compact that
    // revision away: the watch (opened on the next poll, or resumed after its 1 s
    // timeout if it was already open, since it never learns a newer revision) gets 410,
    // and the watcher must list again.
    cms.create(&PostParams::default(), &cm("other", json!({})))
        .await
        .unwrap();
    let cfg = kube::runtime::watcher::Config::default()
        .labels("w=yes")
        .timeout(1);
    let mut events = kube::runtime::watcher(cms.clone(), cfg).boxed();
    let mut inits = 0;
    let mut saw_gone = false;
    let mut wrote = false;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next().await.unwrap() {
                Ok(kube::runtime::watcher::Event::Init) => inits += 1,
                Ok(kube::runtime::watcher::Event::InitDone) if !wrote => {
                    touch("other", "a").await;
                    touch("other", "b").await;
                    wrote = true;
                }
                Ok(kube::runtime::watcher::Event::InitDone) if saw_gone => break,
                Err(kube::runtime::watcher::Error::WatchError(s)) => {
                    assert_eq!(s.code, 410, "{s:?}");
                    saw_gone = true;
                }
                Ok(_) => {}
                Err(e) => panic!("unexpected watcher error {e}"),
            }
        }
    })
    .await
    .expect("the watcher met 410 and listed again");
    assert_eq!(inits, 2, "one list at the start and one after the 410");

    // After the re-list it follows changes again.
    touch("g", "3").await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(kube::runtime::watcher::Event::Apply(c)) = events.next().await.unwrap() {
                return c;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen.data.unwrap()["k"], "3");
}

#[tokio::test]
async fn server_side_apply_unless_unsupported() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let body = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let pp = PatchParams::apply("kube-test");
    let made = match cms
        .patch("ssa", &pp, &Patch::Apply(body(json!({"a": "1"}))))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 415 => {
            println!("skipped: the server answers 415 to apply patches (server-side apply not implemented yet)");
            return;
        }
        r => r.unwrap(),
    };
    assert_eq!(made.data.unwrap()["a"], "1");
    let managers: Vec<String> = made
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kube-test".to_string()), "{managers:?}");
    let again = cms
        .patch("ssa", &pp, &Patch::Apply(body(json!({"a": "2", "b": "3"}))))
        .await
        .unwrap();
    let data = again.data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("2", "3"));
}

#[tokio::test]
async fn status_and_scale_subresources_replace() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let deps: Api<Deployment> = Api::namespaced(client, "default");
    deps.create(&PostParams::default(), &deployment("s", 2))
        .await
        .unwrap();

    // Replace status: the status lands, the spec sent alongside is ignored.
    let mut d = deps.get_status("s").await.unwrap();
    d.spec.as_mut().unwrap().replicas = Some(9);
    d.status = Some(
        serde_json::from_value(
            json!({"replicas": 2, "observedGeneration": 1, "collisionCount": 4}),
        )
        .unwrap(),
    );
    let r = deps
        .replace_status("s", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(r.status.as_ref().unwrap().collision_count, Some(4));
    assert_eq!(r.spec.unwrap().replicas, Some(2));
    // A stale resourceVersion on /status is a Conflict too.
    let s = status_of(deps.replace_status("s", &PostParams::default(), &d).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}");

    // Replace scale: the Deployment's replicas follow.
    let mut scale = deps.get_scale("s").await.unwrap();
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=s")
    );
    scale.spec.as_mut().unwrap().replicas = Some(4);
    let r = deps
        .replace_scale("s", &PostParams::default(), &scale)
        .await
        .unwrap();
    assert_eq!(r.spec.unwrap().replicas, Some(4));
    assert_eq!(deps.get("s").await.unwrap().spec.unwrap().replicas, Some(4));
    let s = status_of(deps.get_scale("missing").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"), "{s:?}");
}

#[tokio::test]
async fn errors_name_the_object_and_the_field() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");

    let s = status_of(deps.get("nope").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "deployments.apps \"nope\" not found");
    let d = s.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("nope", "apps", "deployments")
    );

    let mut bad = deployment("neg", 1);
    bad.spec.as_mut().unwrap().replicas = Some(-1);
    let s = status_of(deps.create(&PostParams::default(), &bad).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(s.message.contains("spec.replicas"), "{}", s.message);
    let d = s.details.unwrap();
    assert_eq!(d.kind, "Deployment");
    assert!(
        d.causes.iter().any(|c| c.field == "spec.replicas"),
        "{:?}",
        d.causes
    );

    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let s = status_of(
        cms.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(
        s.details
            .unwrap()
            .causes
            .iter()
            .any(|c| c.field == "metadata.name"),
        "the cause names metadata.name"
    );
}

#[tokio::test]
async fn pages_report_the_first_pages_revision_so_a_watch_misses_nothing() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["p1", "p2", "p3"] {
        cms.create(&PostParams::default(), &cm(n, json!({"pg": "1"})))
            .await
            .unwrap();
    }
    let lp = ListParams::default().labels("pg=1").limit(1);
    let first = cms.list(&lp).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    // Written behind the cursor while the client pages: no later page shows it.
    cms.create(&PostParams::default(), &cm("p0", json!({"pg": "1"})))
        .await
        .unwrap();
    let mut token = first.metadata.continue_.clone();
    let mut names = vec![first.items[0].metadata.name.clone().unwrap()];
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = cms.list(&lp.clone().continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version.as_deref(), Some(rv.as_str()));
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    assert_eq!(names, vec!["p1", "p2", "p3"]);
    // So the watch from the list's revision delivers it.
    let mut stream = cms
        .watch(&WatchParams::default().labels("pg=1").timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(c)) => assert_eq!(c.metadata.name.as_deref(), Some("p0")),
        other => panic!("expected ADDED p0, got {other:?}"),
    }
}
