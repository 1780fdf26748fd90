//! Connection flags shared by every kubectl-like command (`--kubeconfig`, `--context`,
//! `--server`, `--token`, `--insecure-skip-tls-verify`, `-n`, `-A`) and the kubeconfig
//! handling behind them, including `skiff config view|use-context`.
//!
//! Precedence follows kubectl: flags, then the `KUBECONFIG` files (merged), then
//! `~/.kube/config`; with no kubeconfig at all `--server` alone is enough.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::client::Ctx;

/// Flags accepted before or after the subcommand's own arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The address of the API server (overrides the kubeconfig's).
    #[arg(short = 's', long = "server", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for authentication (overrides the kubeconfig's).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Do not verify the server's certificate (insecure).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// The namespace to use.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

/// Reads the kubeconfig the flags point at; `Ok(None)` when there is none at all.
pub fn load_kubeconfig(flags: &KubeFlags) -> anyhow::Result<Option<Kubeconfig>> {
    if let Some(path) = &flags.kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            anyhow!(
                "cannot read kubeconfig {}: {e}; check the path given to --kubeconfig",
                path.display()
            )
        })?;
        return Ok(Some(kc));
    }
    if let Some(paths) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let mut merged: Option<Kubeconfig> = None;
        for path in std::env::split_paths(&paths) {
            if !path.exists() {
                continue;
            }
            let kc = Kubeconfig::read_from(&path).map_err(|e| {
                anyhow!(
                    "cannot read kubeconfig {} (from KUBECONFIG): {e}",
                    path.display()
                )
            })?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m
                    .merge(kc)
                    .map_err(|e| anyhow!("cannot merge the KUBECONFIG files: {e}"))?,
            });
        }
        if merged.is_some() {
            return Ok(merged);
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(path) = home.map(|h| h.join(".kube/config")).filter(|p| p.exists()) {
        let kc = Kubeconfig::read_from(&path)
            .map_err(|e| anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
        return Ok(Some(kc));
    }
    Ok(None)
}

/// The path `config use-context` writes to: the flag, the first KUBECONFIG entry, or
/// ~/.kube/config.
fn kubeconfig_path(flags: &KubeFlags) -> anyhow::Result<PathBuf> {
    if let Some(p) = &flags.kubeconfig {
        return Ok(p.clone());
    }
    if let Some(paths) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        if let Some(p) = std::env::split_paths(&paths).next() {
            return Ok(p);
        }
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --kubeconfig"))?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

/// Builds the client context from the flags.
pub async fn connect(flags: &KubeFlags) -> anyhow::Result<Ctx> {
    let kubeconfig = load_kubeconfig(flags)?;
    let mut config = match kubeconfig {
        Some(kc) => {
            if let Some(ctx) = &flags.context {
                if !kc.contexts.iter().any(|c| &c.name == ctx) {
                    bail!("context \"{ctx}\" not found in the kubeconfig; `skiff config view` lists the contexts");
                }
            } else if kc.current_context.as_deref().unwrap_or("").is_empty()
                && flags.server.is_none()
            {
                bail!("the kubeconfig has no current-context; pass --context or run `skiff config use-context NAME`");
            }
            let opts = KubeConfigOptions {
                context: flags.context.clone(),
                ..Default::default()
            };
            match kube::Config::from_custom_kubeconfig(kc, &opts).await {
                Ok(c) => c,
                Err(e) if flags.server.is_some() => {
                    tracing::debug!(
                        "ignoring an unusable kubeconfig because --server was given: {e}"
                    );
                    kube::Config::new(parse_server(flags.server.as_deref().unwrap_or_default())?)
                }
                Err(e) => {
                    bail!("the kubeconfig is not usable: {e}; fix it or pass --server and --token")
                }
            }
        }
        None => match &flags.server {
            Some(s) => kube::Config::new(parse_server(s)?),
            None => bail!(
                "no configuration found: set KUBECONFIG or pass --kubeconfig (skiff server writes \
                 admin.kubeconfig into its data dir), or pass --server"
            ),
        },
    };
    if let Some(s) = &flags.server {
        config.cluster_url = parse_server(s)?;
    }
    if let Some(t) = &flags.token {
        config.auth_info.token = Some(t.clone().into());
        config.auth_info.token_file = None;
    }
    if flags.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
        config.root_cert = None;
    }
    let credential = credential_source(flags, &config);
    if config.connect_timeout.is_none() {
        config.connect_timeout = Some(std::time::Duration::from_secs(10));
    }
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let namespace = flags
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    // Writes other than apply (scale, label, edit...) are recorded in managedFields under
    // the manager the API server derives from this: "skiff".
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("skiff/", env!("CARGO_PKG_VERSION"))),
    ));
    let client = kube::Client::try_from(config).map_err(|e| {
        anyhow!("cannot build a client for {server}: {e}; check the kubeconfig's certificates")
    })?;
    let mut ctx = Ctx::new(
        client,
        server,
        namespace,
        flags.namespace.is_some(),
        flags.all_namespaces,
    );
    ctx.credential = credential;
    Ok(ctx)
}

/// Where the credential sent to the server came from, for a 401 to name it.
fn credential_source(flags: &KubeFlags, config: &kube::Config) -> String {
    if flags.token.is_some() {
        return "the token from the --token flag".into();
    }
    let file = kubeconfig_path(flags)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "the kubeconfig".into());
    let context = flags
        .context
        .clone()
        .or_else(|| {
            load_kubeconfig(flags)
                .ok()
                .flatten()
                .and_then(|kc| kc.current_context)
        })
        .unwrap_or_default();
    let auth = &config.auth_info;
    let what = if auth.token.is_some() {
        "the token"
    } else if let Some(f) = &auth.token_file {
        return format!("the token file {f} named by kubeconfig {file}");
    } else if auth.client_certificate.is_some() || auth.client_certificate_data.is_some() {
        "the client certificate"
    } else if auth.exec.is_some() {
        "the exec credential plugin"
    } else {
        return format!(
            "no credential: kubeconfig {file} (context {context:?}) has no token or certificate"
        );
    };
    format!("{what} of context {context:?} in kubeconfig {file}")
}

fn parse_server(s: &str) -> anyhow::Result<http::Uri> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    with_scheme
        .parse::<http::Uri>()
        .with_context(|| format!("--server {s:?} is not a URL; use e.g. https://127.0.0.1:6443"))
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the merged kubeconfig (secrets redacted unless --raw).
    View {
        /// Show tokens and keys.
        #[arg(long)]
        raw: bool,
        /// Only the current context's entries.
        #[arg(long)]
        minify: bool,
    },
    /// Set the current-context in the kubeconfig file.
    UseContext { name: String },
    /// Print the current-context.
    CurrentContext,
    /// List the contexts.
    GetContexts,
}

pub fn run_config(
    flags: &KubeFlags,
    cmd: &ConfigCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let kc = load_kubeconfig(flags)?
        .ok_or_else(|| anyhow!("no kubeconfig found: set KUBECONFIG or pass --kubeconfig"))?;
    match cmd {
        ConfigCommand::View { raw, minify } => {
            let mut doc = serde_yaml::to_value(&kc)?;
            if *minify {
                minify_config(
                    &mut doc,
                    flags.context.as_deref().or(kc.current_context.as_deref()),
                );
            }
            if !raw {
                redact(&mut doc);
            }
            // kubectl prints the keys sorted (apiVersion, clusters, contexts, ...).
            let doc = serde_json::to_value(&doc)?;
            out.write_all(super::printer::to_yaml(&doc)?.as_bytes())?;
        }
        ConfigCommand::CurrentContext => {
            let cur = kc.current_context.as_deref().filter(|c| !c.is_empty());
            writeln!(
                out,
                "{}",
                cur.ok_or_else(|| anyhow!("current-context is not set"))?
            )?;
        }
        ConfigCommand::GetContexts => {
            let cur = kc.current_context.clone().unwrap_or_default();
            let mut rows = vec![vec![
                "CURRENT".to_string(),
                "NAME".into(),
                "CLUSTER".into(),
                "AUTHINFO".into(),
                "NAMESPACE".into(),
            ]];
            for c in &kc.contexts {
                let inner = c.context.clone().unwrap_or_default();
                rows.push(vec![
                    if c.name == cur {
                        "*".into()
                    } else {
                        String::new()
                    },
                    c.name.clone(),
                    inner.cluster,
                    inner.user.unwrap_or_default(),
                    inner.namespace.unwrap_or_default(),
                ]);
            }
            out.write_all(super::printer::align(&rows).as_bytes())?;
        }
        ConfigCommand::UseContext { name } => {
            if !kc.contexts.iter().any(|c| &c.name == name) {
                bail!("no context exists with the name: \"{name}\"; `skiff config get-contexts` lists them");
            }
            let path = kubeconfig_path(flags)?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut doc: serde_yaml::Value = serde_yaml::from_str(&text)
                .with_context(|| format!("{} is not valid YAML", path.display()))?;
            // Edit the one key in place so nothing else in the user's file changes.
            doc["current-context"] = serde_yaml::Value::String(name.clone());
            std::fs::write(&path, serde_yaml::to_string(&doc)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "Switched to context \"{name}\".")?;
        }
    }
    Ok(())
}

/// Replaces secrets the way kubectl does (`DATA+OMITTED`, `REDACTED`).
fn redact(doc: &mut serde_yaml::Value) {
    if let Some(users) = doc.get_mut("users").and_then(|u| u.as_sequence_mut()) {
        for u in users {
            if let Some(user) = u.get_mut("user").and_then(|v| v.as_mapping_mut()) {
                for key in ["token", "password"] {
                    if user.contains_key(key) {
                        user.insert(key.into(), "REDACTED".into());
                    }
                }
                for key in ["client-certificate-data", "client-key-data"] {
                    if user.contains_key(key) {
                        user.insert(key.into(), "DATA+OMITTED".into());
                    }
                }
            }
        }
    }
    if let Some(clusters) = doc.get_mut("clusters").and_then(|u| u.as_sequence_mut()) {
        for c in clusters {
            if let Some(cluster) = c.get_mut("cluster").and_then(|v| v.as_mapping_mut()) {
                if cluster.contains_key("certificate-authority-data") {
                    cluster.insert("certificate-authority-data".into(), "DATA+OMITTED".into());
                }
            }
        }
    }
}

fn minify_config(doc: &mut serde_yaml::Value, context: Option<&str>) {
    let Some(context) = context else { return };
    let mut cluster = String::new();
    let mut user = String::new();
    if let Some(ctxs) = doc.get_mut("contexts").and_then(|c| c.as_sequence_mut()) {
        ctxs.retain(|c| c.get("name").and_then(|n| n.as_str()) == Some(context));
        if let Some(c) = ctxs.first() {
            cluster = c["context"]["cluster"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            user = c["context"]["user"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
    }
    for (key, keep) in [("clusters", cluster), ("users", user)] {
        if let Some(list) = doc.get_mut(key).and_then(|c| c.as_sequence_mut()) {
            list.retain(|c| c.get("name").and_then(|n| n.as_str()) == Some(keep.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_without_scheme_defaults_to_https() {
        assert_eq!(
            parse_server("127.0.0.1:6443").unwrap().to_string(),
            "https://127.0.0.1:6443/"
        );
        assert_eq!(
            parse_server("http://h:1").unwrap().scheme_str(),
            Some("http")
        );
        assert!(parse_server("bad url with spaces").is_err());
    }

    #[test]
    fn redaction_hides_tokens_and_keys_only() {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(
            "users:\n- name: a\n  user:\n    token: secret\n    username: bob\nclusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority-data: AAA\n",
        )
        .unwrap();
        redact(&mut doc);
        assert_eq!(doc["users"][0]["user"]["token"].as_str(), Some("REDACTED"));
        assert_eq!(doc["users"][0]["user"]["username"].as_str(), Some("bob"));
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
            Some("DATA+OMITTED")
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://x")
        );
    }
}
