//! `skiff completion bash|zsh`: the shell completion script for every subcommand and
//! flag (generated from the clap definitions), plus dynamic completion of resource
//! types and names: the script calls the hidden `skiff __complete WORDS...`, which
//! decides what the next word is ([`what_to_complete`], pure) and answers from the
//! cached discovery (types) or a list call (names), so names are never stale. When
//! nothing dynamic applies it exits 1 and the script falls back to the static part.

use std::io::Write;

use anyhow::bail;
use clap::{Args, CommandFactory};
use serde_json::Value;

use super::config::KubeFlags;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash or zsh
    pub shell: String,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The words typed after `skiff`, without the one being completed.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Nothing dynamic to offer: `main` exits 1 quietly so the script uses its static part.
#[derive(Debug)]
pub struct NoCandidates;

impl std::fmt::Display for NoCandidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no dynamic completion for these words")
    }
}

impl std::error::Error for NoCandidates {}

/// What the next word should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A resource type (`get <TAB>`).
    Types,
    /// A name of this type (`get deploy <TAB>`, `-n <TAB>` for namespaces).
    Names(String),
    /// Nothing the server knows: subcommands, flags, files.
    Static,
}

/// Commands whose first argument is a resource type and the next ones its names.
const TYPE_THEN_NAMES: &[&str] = &[
    "get", "describe", "delete", "edit", "label", "annotate", "scale", "wait",
];
/// Commands whose first argument is a pod.
const POD_FIRST: &[&str] = &["exec", "logs", "port-forward", "attach"];
/// Flags whose next word is their value, and the type of that value when it names an
/// object.
const VALUE_FLAGS: &[(&str, Option<&str>)] = &[
    ("-n", Some("namespaces")),
    ("--namespace", Some("namespaces")),
    ("-c", None),
    ("--container", None),
    ("-o", None),
    ("--output", None),
    ("-l", None),
    ("--selector", None),
    ("--kubeconfig", None),
    ("--context", None),
    ("-s", None),
    ("--server", None),
    ("--token", None),
    ("--for", None),
    ("--timeout", None),
    ("--replicas", None),
    ("--api-version", None),
    ("--field-selector", None),
    ("--tail", None),
    ("--since", None),
    ("--cascade", None),
    ("--address", None),
];

/// Decides what the word after `words` is, the way kubectl's completion does.
pub fn what_to_complete(words: &[String]) -> Want {
    let mut positional: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if w == "--" {
            return Want::Static;
        }
        if let Some((_, typ)) = VALUE_FLAGS.iter().find(|(f, _)| *f == w) {
            if i + 1 == words.len() {
                // Completing the flag's value.
                return typ.map_or(Want::Static, |t| Want::Names(t.to_string()));
            }
            i += 2;
            continue;
        }
        if !w.starts_with('-') {
            positional.push(w);
        }
        i += 1;
    }
    let Some((cmd, args)) = positional.split_first() else {
        return Want::Static;
    };
    let cmd = *cmd;
    if TYPE_THEN_NAMES.contains(&cmd) {
        match args.first() {
            None => Want::Types,
            // `TYPE/NAME` items or a list of types: no single type to name.
            Some(t) if t.contains('/') || t.contains(',') => Want::Static,
            Some(t) => Want::Names(t.to_string()),
        }
    } else if cmd == "explain" && args.is_empty() {
        Want::Types
    } else if POD_FIRST.contains(&cmd) && args.is_empty() {
        Want::Names("pods".into())
    } else {
        Want::Static
    }
}

/// The connection flags among the typed words (`-n dev`, `--kubeconfig=k`, ...), so
/// names come from the namespace and cluster the command line names.
pub fn flags_from_words(words: &[String]) -> KubeFlags {
    let mut flags = KubeFlags::default();
    let mut i = 0;
    while i < words.len() {
        let (flag, inline) = match words[i].split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (words[i].as_str(), None),
        };
        let takes_value = matches!(
            flag,
            "-n" | "--namespace" | "--kubeconfig" | "--context" | "-s" | "--server" | "--token"
        );
        let value = if takes_value && inline.is_none() {
            i += 1;
            words.get(i).cloned()
        } else {
            inline
        };
        match flag {
            "-n" | "--namespace" => flags.namespace = value,
            "--kubeconfig" => flags.kubeconfig = value.map(Into::into),
            "--context" => flags.context = value,
            "-s" | "--server" => flags.server = value,
            "--token" => flags.token = value,
            "--insecure-skip-tls-verify" => flags.insecure_skip_tls_verify = true,
            _ => {}
        }
        i += 1;
    }
    flags
}

/// `skiff __complete WORDS...`: one candidate per line.
pub async fn complete(args: &CompleteArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let want = what_to_complete(&args.words);
    if want == Want::Static {
        return Err(NoCandidates.into());
    }
    let ctx = super::config::connect(&flags_from_words(&args.words)).await?;
    let discovery = ctx.discovery().await?;
    match want {
        Want::Types => {
            let mut names: Vec<&str> = discovery
                .resources
                .iter()
                .filter(|r| r.verbs.is_empty() || r.verbs.iter().any(|v| v == "list"))
                .map(|r| r.plural.as_str())
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                writeln!(out, "{n}")?;
            }
        }
        Want::Names(typ) => {
            let r = discovery.resolve(&typ)?;
            let list = ctx
                .get_json(&r.collection_path(Some(&ctx.namespace)))
                .await?;
            for item in list["items"].as_array().into_iter().flatten() {
                if let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) {
                    writeln!(out, "{name}")?;
                }
            }
        }
        Want::Static => unreachable!("handled above"),
    }
    Ok(())
}

/// The bash glue: ask `skiff __complete` first, fall back to the generated `_skiff`.
const BASH_DYNAMIC: &str = r#"
_skiff_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out
    if [[ "$cur" != -* ]]; then
        if out=$(skiff __complete "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null); then
            COMPREPLY=( $(compgen -W "$out" -- "$cur") )
            return
        fi
    fi
    _skiff "$@"
}
complete -F _skiff_dynamic -o bashdefault -o default skiff
"#;

/// The zsh glue, same idea: `words[2,CURRENT-1]` are the words after `skiff`.
const ZSH_DYNAMIC: &str = r#"
_skiff_dynamic() {
    local out
    if [[ "${words[CURRENT]}" != -* ]]; then
        if out=$(skiff __complete "${(@)words[2,CURRENT-1]}" 2>/dev/null); then
            local -a candidates
            candidates=(${(f)out})
            compadd -a candidates
            return
        fi
    fi
    _skiff "$@"
}
compdef _skiff_dynamic skiff
"#;

pub fn run(args: &CompletionArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = crate::commands::Cli::command();
    match args.shell.as_str() {
        "bash" => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "skiff", out);
            out.write_all(BASH_DYNAMIC.as_bytes())?;
        }
        "zsh" => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "skiff", out);
            out.write_all(ZSH_DYNAMIC.as_bytes())?;
        }
        other => bail!("unsupported shell {other:?}; use bash or zsh"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: &str) -> String {
        let mut out = Vec::new();
        run(
            &CompletionArgs {
                shell: shell.into(),
            },
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scripts_complete_commands_and_ask_for_resources() {
        let bash = script("bash");
        assert!(bash.contains("_skiff()"), "generated function present");
        assert!(
            bash.contains("port-forward") && bash.contains("explain"),
            "subcommands listed"
        );
        assert!(
            bash.contains("complete -F _skiff_dynamic"),
            "dynamic part wired"
        );
        let zsh = script("zsh");
        assert!(zsh.contains("#compdef skiff"), "{}", &zsh[..80]);
        assert!(zsh.contains("skiff __complete") && zsh.contains("compdef _skiff_dynamic skiff"));
        assert!(run(
            &CompletionArgs {
                shell: "fish".into()
            },
            &mut Vec::new()
        )
        .is_err());
    }

    #[test]
    fn the_next_word_is_decided_like_kubectl() {
        let w = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
        let names = |t: &str| Want::Names(t.to_string());
        let cases = [
            ("", Want::Static),
            ("get", Want::Types),
            ("-n dev get", Want::Types),
            ("get deploy", names("deploy")),
            ("get -o wide deploy", names("deploy")),
            ("get deploy web", names("deploy")),
            ("get deploy/web", Want::Static),
            ("get pods,svc", Want::Static),
            ("describe -n", names("namespaces")),
            ("get pods --namespace", names("namespaces")),
            ("get pods -o", Want::Static),
            ("explain", Want::Types),
            ("explain deploy", Want::Static),
            ("exec", names("pods")),
            ("exec -it", names("pods")),
            ("exec web -c", Want::Static),
            ("exec web --", Want::Static),
            ("logs -f", names("pods")),
            ("port-forward", names("pods")),
            ("apply -f", Want::Static),
            ("version", Want::Static),
        ];
        for (input, want) in cases {
            assert_eq!(what_to_complete(&w(input)), want, "{input:?}");
        }
    }

    #[test]
    fn connection_flags_are_read_from_the_words() {
        let w: Vec<String> = [
            "get",
            "-n",
            "dev",
            "--kubeconfig=/k",
            "--context",
            "c",
            "pods",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = flags_from_words(&w);
        assert_eq!(f.namespace.as_deref(), Some("dev"));
        assert_eq!(f.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(f.context.as_deref(), Some("c"));
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        // clap checks flag clashes (e.g. two `-n`) only when asked or at runtime.
        crate::commands::Cli::command().debug_assert();
    }
}
