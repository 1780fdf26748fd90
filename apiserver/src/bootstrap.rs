//! What exists from the first start: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces and the `kubernetes` Service in `default` pointing at
//! the API server. It also moves Events out of the key prefix events.k8s.io Events had
//! before both APIs shared the core storage.

use serde_json::json;
use skiff_api::resource::lookup;
use skiff_api::{convert, meta};

use crate::handlers::objects::key_of;
use crate::handlers::Api;
use crate::store::{Precondition, StoreError};
use crate::strategy;

/// Creates whatever of the bootstrap objects is missing. Idempotent.
pub async fn ensure(api: &Api, api_port: u16, endpoint_ips: &[String]) -> Result<(), StoreError> {
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}});
        create_missing(api, "namespaces", None, name, obj).await?;
    }
    let ip = api.alloc.api_service_ip().to_string();
    let svc = json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "kubernetes", "namespace": "default",
                      "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip,
                  "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]}
    });
    create_missing(api, "services", Some("default"), "kubernetes", svc).await?;
    // The Endpoints of the kubernetes Service are the server's own addresses: no
    // selector, so no controller maintains them.
    if !endpoint_ips.is_empty() {
        let addrs: Vec<_> = endpoint_ips.iter().map(|ip| json!({"ip": ip})).collect();
        let ep = json!({
            "kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": addrs, "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}]
        });
        create_missing(api, "endpoints", Some("default"), "kubernetes", ep).await?;
    }
    migrate_events(api).await
}

/// Where events.k8s.io Events were kept when they had a storage of their own.
const OLD_EVENTS_PREFIX: &str = "/registry/events.k8s.io/events/";

/// Moves Events written through events.k8s.io by an older skiff into the shared core
/// storage, so both APIs see them. Events are short-lived, but skiff has no Event TTL
/// yet, so without this they would be invisible and never cleaned up. An Event that
/// already exists under the core key wins (same name: the core one is newer).
async fn migrate_events(api: &Api) -> Result<(), StoreError> {
    let res = lookup("events.k8s.io", "v1", "events").expect("events.k8s.io Events are served");
    let (old, _, _) = api.store.list(OLD_EVENTS_PREFIX, None, None);
    if old.is_empty() {
        return Ok(());
    }
    tracing::info!(
        count = old.len(),
        "moving events.k8s.io Events into the core Event storage"
    );
    for (key, obj) in old {
        let name = meta::name(&obj).unwrap_or("").to_string();
        let ns = meta::namespace(&obj).map(str::to_string);
        let mut stored = convert::to_storage(res, (*obj).clone());
        meta::remove(&mut stored, "resourceVersion");
        match api
            .store
            .create(&key_of(res, ns.as_deref(), &name), stored)
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        match api.store.delete(&key, Precondition::Exists).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates a core/v1 object through the same create rules as a request, unless it
/// exists.
async fn create_missing(
    api: &Api,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
    mut obj: serde_json::Value,
) -> Result<(), StoreError> {
    let res = lookup("", "v1", plural).expect("a served core resource");
    let key = key_of(res, namespace, name);
    if api.store.get(&key).is_some() {
        return Ok(());
    }
    strategy::prepare_create(res, &mut obj, &api.alloc).map_err(|e| StoreError::Io(e.message))?;
    match api.store.create(&key, obj).await {
        Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}
