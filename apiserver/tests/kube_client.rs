//! The API server driven by the `kube` crate, as controllers and users' programs drive
//! it: typed CRUD, list with selectors and pagination, watch (including resume and the
//! 410 path), patches of each type, status and scale subresources, and restarts.

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
