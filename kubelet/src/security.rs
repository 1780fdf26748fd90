//! A container's `securityContext` as CRI wants it: the pod-level and container-level
//! settings merged (the container's win, as upstream's `DetermineEffectiveSecurityContext`),
//! turned into `LinuxContainerSecurityContext` / `LinuxSandboxSecurityContext`, and the
//! `runAsNonRoot` check made against the image's user before a container is created.
//!
//! All pure: the image user comes in from CRI `ImageStatus`.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

use crate::cri::api;

/// The settings that decide how a container runs, after merging pod and container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    /// Pod-level only: `supplementalGroups` then `fsGroup` (upstream adds the fsGroup
    /// so that volume files owned by it are reachable).
    pub supplemental_groups: Vec<i64>,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
}

fn pod_context(pod: &Pod) -> PodSecurityContext {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default()
}

/// Merges the pod's and the container's security contexts.
pub fn effective(pod: &Pod, container: &Container) -> Effective {
    let p = pod_context(pod);
    let c: SecurityContext = container.security_context.clone().unwrap_or_default();
    let mut groups = p.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs) = p.fs_group {
        if !groups.contains(&fs) {
            groups.push(fs);
        }
    }
    let caps = c.capabilities.clone().unwrap_or_default();
    Effective {
        run_as_user: c.run_as_user.or(p.run_as_user),
        run_as_group: c.run_as_group.or(p.run_as_group),
        run_as_non_root: c.run_as_non_root.or(p.run_as_non_root),
        supplemental_groups: groups,
        privileged: c.privileged.unwrap_or(false),
        read_only_root_filesystem: c.read_only_root_filesystem.unwrap_or(false),
        allow_privilege_escalation: c.allow_privilege_escalation,
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
    }
}

/// The CRI security context of a container; `namespaces` come from the pod spec.
pub fn container_context(
    pod: &Pod,
    container: &Container,
    namespaces: api::NamespaceOption,
) -> api::LinuxContainerSecurityContext {
    let e = effective(pod, container);
    let capabilities =
        (!e.add_capabilities.is_empty() || !e.drop_capabilities.is_empty()).then(|| {
            api::Capability {
                add_capabilities: e.add_capabilities.clone(),
                drop_capabilities: e.drop_capabilities.clone(),
                ..Default::default()
            }
        });
    api::LinuxContainerSecurityContext {
        namespace_options: Some(namespaces),
        privileged: e.privileged,
        readonly_rootfs: e.read_only_root_filesystem,
        run_as_user: e.run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: e.run_as_group.map(|value| api::Int64Value { value }),
        supplemental_groups: e.supplemental_groups.clone(),
        // Only an explicit `allowPrivilegeEscalation: false` sets no_new_privs; unset
        // means allowed, as upstream.
        no_new_privs: e.allow_privilege_escalation == Some(false),
        capabilities,
        ..Default::default()
    }
}

/// The sandbox's security context: the pod-level user and groups, and privileged
/// when any container is (containerd refuses a privileged container in an
/// unprivileged sandbox).
pub fn sandbox_context(
    pod: &Pod,
    namespaces: api::NamespaceOption,
) -> api::LinuxSandboxSecurityContext {
    let p = pod_context(pod);
    let privileged = pod.spec.as_ref().is_some_and(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
            .any(|c| {
                c.security_context
                    .as_ref()
                    .and_then(|sc| sc.privileged)
                    .unwrap_or(false)
            })
    });
    let mut groups = p.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs) = p.fs_group {
        if !groups.contains(&fs) {
            groups.push(fs);
        }
    }
    api::LinuxSandboxSecurityContext {
        namespace_options: Some(namespaces),
        run_as_user: p.run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: p.run_as_group.map(|value| api::Int64Value { value }),
        supplemental_groups: groups,
        privileged,
        ..Default::default()
    }
}

/// The user an image runs as, from CRI `ImageStatus`: a uid, or a user name that is
/// not numeric. An image that names no user runs as root (uid 0).
pub fn image_user(image: &api::Image) -> (Option<i64>, String) {
    match (&image.uid, image.username.as_str()) {
        (Some(uid), _) => (Some(uid.value), String::new()),
        (None, "") => (Some(0), String::new()),
        (None, name) => (None, name.to_string()),
    }
}

/// Upstream's `verifyRunAsNonRoot`: with `runAsNonRoot: true`, refuse a container that
/// would run as uid 0 (explicitly, or by the image's user when no `runAsUser` is set),
/// or whose image user is a name that cannot be checked. The error is the message of
/// the container's `CreateContainerConfigError`.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_uid: Option<i64>,
    image_username: &str,
) -> Result<(), String> {
    let e = effective(pod, container);
    if e.run_as_non_root != Some(true) {
        return Ok(());
    }
    let who = format!(
        "pod: {:?}, container: {}",
        format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.uid.as_deref().unwrap_or_default()
        ),
        container.name
    );
    match (e.run_as_user, image_uid) {
        (Some(0), _) => Err(format!("container's runAsUser breaks non-root policy ({who})")),
        (Some(_), _) => Ok(()),
        (None, Some(0)) => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        (None, Some(_)) => Ok(()),
        (None, None) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_username}), cannot verify user is non-root ({who})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(pod_sc: serde_json::Value, sc: serde_json::Value) -> (Pod, Container) {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"securityContext": pod_sc,
                     "containers": [{"name": "a", "image": "i", "securityContext": sc}]},
        }))
        .unwrap();
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        (p, c)
    }

    #[test]
    fn container_settings_win_over_the_pod() {
        // (pod sc, container sc) -> (user, group, groups, no_new_privs, ro, privileged)
        let cases = [
            (
                json!({}),
                json!({}),
                (None, None, vec![], false, false, false),
            ),
            (
                json!({"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000}),
                json!({}),
                (
                    Some(1000),
                    Some(3000),
                    vec![4000, 2000],
                    false,
                    false,
                    false,
                ),
            ),
            (
                json!({"runAsUser": 1000, "runAsGroup": 3000}),
                json!({"runAsUser": 2000, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}),
                (Some(2000), Some(3000), vec![], true, true, false),
            ),
            (
                json!({}),
                json!({"privileged": true, "allowPrivilegeEscalation": true}),
                (None, None, vec![], false, false, true),
            ),
        ];
        for (psc, csc, want) in cases {
            let (p, c) = pod(psc.clone(), csc.clone());
            let got = container_context(&p, &c, api::NamespaceOption::default());
            assert_eq!(
                (
                    got.run_as_user.map(|v| v.value),
                    got.run_as_group.map(|v| v.value),
                    got.supplemental_groups.clone(),
                    got.no_new_privs,
                    got.readonly_rootfs,
                    got.privileged
                ),
                want,
                "{psc} {csc}"
            );
        }
    }

    #[test]
    fn capabilities_pass_through() {
        let (p, c) = pod(
            json!({}),
            json!({"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}),
        );
        let caps = container_context(&p, &c, Default::default())
            .capabilities
            .unwrap();
        assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        let (p, c) = pod(json!({}), json!({}));
        assert!(container_context(&p, &c, Default::default())
            .capabilities
            .is_none());
    }

    #[test]
    fn a_privileged_container_makes_the_sandbox_privileged() {
        let (p, _) = pod(json!({"runAsUser": 7}), json!({"privileged": true}));
        let sb = sandbox_context(&p, Default::default());
        assert!(sb.privileged);
        assert_eq!(sb.run_as_user.map(|v| v.value), Some(7));
        let (p, _) = pod(json!({}), json!({}));
        assert!(!sandbox_context(&p, Default::default()).privileged);
    }

    #[test]
    fn image_user_defaults_to_root() {
        let img = |uid: Option<i64>, name: &str| api::Image {
            uid: uid.map(|value| api::Int64Value { value }),
            username: name.into(),
            ..Default::default()
        };
        assert_eq!(image_user(&img(None, "")), (Some(0), String::new()));
        assert_eq!(
            image_user(&img(Some(65534), "")),
            (Some(65534), String::new())
        );
        assert_eq!(
            image_user(&img(None, "nobody")),
            (None, "nobody".to_string())
        );
    }

    #[test]
    fn run_as_non_root_is_enforced() {
        // (pod sc, container sc, image uid, image user) -> error fragment or ok
        let cases = [
            (json!({}), json!({}), Some(0), "", None),
            (
                json!({"runAsNonRoot": true}),
                json!({}),
                Some(0),
                "",
                Some("image will run as root"),
            ),
            (
                json!({"runAsNonRoot": true}),
                json!({}),
                Some(1000),
                "",
                None,
            ),
            (
                json!({"runAsNonRoot": true}),
                json!({"runAsUser": 1000}),
                Some(0),
                "",
                None,
            ),
            (
                json!({"runAsNonRoot": true, "runAsUser": 1000}),
                json!({}),
                Some(0),
                "",
                None,
            ),
            (
                json!({}),
                json!({"runAsNonRoot": true, "runAsUser": 0}),
                Some(5),
                "",
                Some("runAsUser breaks non-root policy"),
            ),
            (
                json!({"runAsNonRoot": true}),
                json!({}),
                None,
                "nobody",
                Some("non-numeric user (nobody)"),
            ),
            (
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false}),
                Some(0),
                "",
                None,
            ),
        ];
        for (psc, csc, uid, name, want) in cases {
            let (p, c) = pod(psc.clone(), csc.clone());
            let got = verify_run_as_non_root(&p, &c, uid, name);
            match want {
                None => assert!(got.is_ok(), "{psc} {csc}: {got:?}"),
                Some(frag) => {
                    let e = got.unwrap_err();
                    assert!(e.contains(frag), "{psc} {csc}: {e}");
                    assert!(e.contains("container: a"), "{e}");
                }
            }
        }
    }
}
