//! `skiff api-resources`: the discovery table (NAME, SHORTNAMES, APIVERSION, NAMESPACED,
//! KIND; `-o wide` adds VERBS and CATEGORIES; `-o name`), filtered by `--namespaced` and
//! `--api-group`.

use std::io::Write;

use clap::Args;

use super::client::Ctx;
use super::config::KubeFlags;
use super::discovery::{Discovery, Resource};
use super::printer::align;

#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only this API group ("" for core).
    #[arg(long)]
    pub api_group: Option<String>,
    #[arg(long)]
    pub no_headers: bool,
    /// Use the cached discovery when fresh instead of asking the server (completion).
    #[arg(long)]
    pub cached: bool,
}

/// The rows, sorted by group then name as kubectl sorts them.
pub fn render(d: &Discovery, args: &ApiResourcesArgs) -> anyhow::Result<String> {
    let mut list: Vec<&Resource> = d
        .resources
        .iter()
        .filter(|r| args.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| args.api_group.as_deref().is_none_or(|g| r.group == g))
        .collect();
    list.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some("name") => {
            return Ok(list
                .iter()
                .map(|r| format!("{}\n", r.qualified_plural()))
                .collect());
        }
        Some(o) => anyhow::bail!("--output {o:?} is not supported; use wide or name"),
    };
    let mut rows = Vec::new();
    if !args.no_headers {
        let mut h: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if wide {
            h.extend(["VERBS".to_string(), "CATEGORIES".to_string()]);
        }
        rows.push(h);
    }
    for r in list {
        let mut row = vec![
            r.plural.clone(),
            r.short_names.join(","),
            r.api_version(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            row.push(format!("[{}]", r.verbs.join(" ")));
            row.push(r.categories.join(","));
        }
        rows.push(row);
    }
    Ok(align(&rows))
}

pub async fn run(ctx: &Ctx, args: &ApiResourcesArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = if args.cached {
        render(ctx.discovery().await?, args)?
    } else {
        render(&Discovery::refresh(ctx).await?, args)?
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_is_sorted_and_filtered() {
        let d = Discovery::from_lists(&[
            json!({"groupVersion": "v1", "resources": [
                {"name": "pods", "namespaced": true, "kind": "Pod", "shortNames": ["po"], "verbs": ["get", "list"]},
                {"name": "nodes", "namespaced": false, "kind": "Node", "shortNames": ["no"]},
            ]}),
            json!({"groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "namespaced": true, "kind": "Deployment", "shortNames": ["deploy"], "categories": ["all"]},
            ]}),
        ]);
        let args = |o: Option<&str>, ns: Option<bool>| ApiResourcesArgs {
            kube: Default::default(),
            output: o.map(str::to_string),
            namespaced: ns,
            api_group: None,
            no_headers: false,
            cached: false,
        };
        assert_eq!(
            render(&d, &args(None, None)).unwrap(),
            "NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             nodes         no           v1           false        Node\n\
             pods          po           v1           true         Pod\n\
             deployments   deploy       apps/v1      true         Deployment\n"
        );
        assert_eq!(
            render(&d, &args(Some("name"), Some(true))).unwrap(),
            "pods\ndeployments.apps\n"
        );
        assert!(render(&d, &args(Some("wide"), None))
            .unwrap()
            .contains("[get list]"));
    }
}
