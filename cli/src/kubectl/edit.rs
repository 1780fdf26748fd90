//! `skiff edit TYPE NAME`: opens the object as YAML in `$KUBE_EDITOR`, `$EDITOR` or `vi`,
//! and sends the edited object back with an update (PUT) that carries the
//! resourceVersion it was read at, so a concurrent change is a conflict rather than
//! silently overwritten.

use std::io::Write;

use anyhow::{bail, Context as _};
use clap::Args;
use http::Method;
use serde_json::Value;

use super::client::{ApiFailure, Ctx};
use super::config::KubeFlags;
use super::discovery::parse_targets;

#[derive(Debug, Args)]
pub struct EditArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE NAME or TYPE/NAME
    #[arg(required = true)]
    pub resources: Vec<String>,
}

/// The editor command line: `$KUBE_EDITOR`, then `$EDITOR`, then `vi`.
pub fn editor(kube_editor: Option<String>, editor: Option<String>) -> String {
    kube_editor
        .filter(|e| !e.is_empty())
        .or(editor.filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".into())
}

pub async fn run(ctx: &Ctx, args: &EditArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let discovery = ctx.discovery().await?;
    let targets = parse_targets(&args.resources)?;
    let [t] = targets.as_slice() else {
        bail!("edit one object at a time: e.g. `skiff edit deploy/web`")
    };
    let [name] = t.names.as_slice() else {
        bail!("edit one object at a time: e.g. `skiff edit deploy/web`")
    };
    let r = discovery.resolve(&t.types)?;
    let path = r.object_path(Some(&ctx.namespace), name);
    let original = ctx.get_json(&path).await?;
    let text = super::printer::to_yaml(&original)?;
    let dir = std::env::temp_dir().join(format!("skiff-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("{}-{name}.yaml", r.plural));
    std::fs::write(&file, &text)?;
    let cmd = editor(
        std::env::var("KUBE_EDITOR").ok(),
        std::env::var("EDITOR").ok(),
    );
    // Through the shell, so that EDITOR="code --wait" works as with kubectl.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$1\""))
        .arg("sh")
        .arg(&file)
        .status()
        .await
        .with_context(|| format!("cannot start the editor {cmd:?}; set EDITOR"))?;
    let edited = std::fs::read_to_string(&file)?;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("the editor {cmd:?} exited with {status}; nothing was changed");
    }
    if edited == text {
        eprintln!("Edit cancelled, no changes made.");
        return Ok(());
    }
    // Like kubectl, a refused edit is not lost: the text stays in a file to fix and
    // send again (`skiff apply -f` or `skiff replace`), named in the error.
    let keep = |e: anyhow::Error| -> anyhow::Error {
        let copy = std::env::temp_dir().join(format!(
            "skiff-edit-{}-{}-{name}.yaml",
            std::process::id(),
            r.plural
        ));
        match std::fs::write(&copy, &edited) {
            Ok(()) => anyhow::anyhow!(
                "{e:#}\nA copy of your changes has been stored to \"{}\"",
                copy.display()
            ),
            Err(_) => e,
        }
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(&edited).map_err(|e| {
        keep(anyhow::anyhow!(
            "the edited file is not valid YAML: {e}; nothing was changed, run edit again"
        ))
    })?;
    let mut obj: Value = serde_json::to_value(yaml)?;
    if obj.pointer("/metadata/name") != original.pointer("/metadata/name") {
        return Err(keep(anyhow::anyhow!(
            "metadata.name cannot be changed by edit; nothing was changed"
        )));
    }
    if obj.pointer("/metadata/resourceVersion").is_none() {
        obj["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"].clone();
    }
    match ctx
        .send_json(
            Method::PUT,
            &super::client::with_manager(&path, "edit"),
            "application/json",
            &obj,
        )
        .await
    {
        Ok(_) => writeln!(out, "{}/{name} edited", r.kind_prefix())?,
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.code == 409) =>
        {
            return Err(keep(anyhow::anyhow!(
                "{e:#}; the object changed while you edited it, run edit again"
            )))
        }
        Err(e) => return Err(keep(e)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_choice_follows_kubectl() {
        assert_eq!(editor(Some("nano".into()), Some("vim".into())), "nano");
        assert_eq!(editor(None, Some("vim".into())), "vim");
        assert_eq!(editor(Some(String::new()), None), "vi");
    }
}
