//! What exists from the first start: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces and the `kubernetes` Service in `default` pointing at
//! the API server.

use serde_json::json;
use skiff_api::resource::lookup;

use crate::handlers::objects::key_of;
use crate::handlers::Api;
use crate::store::StoreError;
use crate::strategy;

/// Creates whatever of the bootstrap objects is missing. Idempotent.
pub async fn ensure(api: &Api, api_port: u16, endpoint_ips: &[String]) -> Result<(), StoreError> {
    let ns = lookup("", "v1", "namespaces").expect("namespaces");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = key_of(ns, None, name);
        if api.store.get(&key).is_some() {
            continue;
        }
        let mut obj = json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}});
        strategy::prepare_create(ns, &mut obj, &api.alloc)
            .map_err(|e| StoreError::Io(e.message))?;
        match api.store.create(&key, obj).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    let svc = lookup("", "v1", "services").expect("services");
    let key = key_of(svc, Some("default"), "kubernetes");
    if api.store.get(&key).is_none() {
        let ip = api.alloc.api_service_ip().to_string();
        let mut obj = json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default",
                          "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip,
                      "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]}
        });
        strategy::prepare_create(svc, &mut obj, &api.alloc)
            .map_err(|e| StoreError::Io(e.message))?;
        match api.store.create(&key, obj).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    // The Endpoints of the kubernetes Service are the server's own addresses: no
    // selector, so no controller maintains them.
    let ep = lookup("", "v1", "endpoints").expect("endpoints");
    let key = key_of(ep, Some("default"), "kubernetes");
    if api.store.get(&key).is_none() && !endpoint_ips.is_empty() {
        let addrs: Vec<_> = endpoint_ips.iter().map(|ip| json!({"ip": ip})).collect();
        let mut obj = json!({
            "kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": addrs, "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}]
        });
        strategy::prepare_create(ep, &mut obj, &api.alloc)
            .map_err(|e| StoreError::Io(e.message))?;
        match api.store.create(&key, obj).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
