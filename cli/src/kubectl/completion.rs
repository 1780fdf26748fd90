//! `skiff completion bash|zsh`: the shell completion script for every subcommand and
//! flag (generated from the clap definitions), plus completion of resource types and
//! names, which the script asks the server for at completion time (`skiff api-resources
//! -o name`, `skiff get TYPE -o name`) so they are never stale.

use std::io::Write;

use anyhow::bail;
use clap::{Args, CommandFactory};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash or zsh
    pub shell: String,
}

/// Commands whose first argument is a resource type and the next ones its names.
const RESOURCE_COMMANDS: &str = "get describe delete edit label annotate scale wait";

/// The bash glue: after the generated `_skiff`, offer types or names for the
/// resource-taking commands when no flag is being completed.
fn bash_resources() -> String {
    format!(
        r#"
_skiff_resources() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" typ="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ "$w" == -* ]] && continue
        if [[ -z "$cmd" ]]; then cmd="$w"; elif [[ -z "$typ" ]]; then typ="$w"; fi
    done
    case " {RESOURCE_COMMANDS} " in *" $cmd "*) ;; *) _skiff "$@"; return ;; esac
    if [[ "$cur" == -* ]]; then _skiff "$@"; return; fi
    if [[ -z "$typ" ]]; then
        COMPREPLY=( $(compgen -W "$(skiff api-resources -o name 2>/dev/null | sed 's/\..*//') all" -- "$cur") )
    else
        COMPREPLY=( $(compgen -W "$(skiff get "$typ" -o name 2>/dev/null | sed 's|.*/||')" -- "$cur") )
    fi
}}
complete -F _skiff_resources -o bashdefault -o default skiff
"#
    )
}

pub fn run(args: &CompletionArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = crate::commands::Cli::command();
    match args.shell.as_str() {
        "bash" => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "skiff", out);
            out.write_all(bash_resources().as_bytes())?;
        }
        "zsh" => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "skiff", out),
        other => bail!("unsupported shell {other:?}; use bash or zsh"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_script_completes_commands_and_resources() {
        let mut out = Vec::new();
        run(
            &CompletionArgs {
                shell: "bash".into(),
            },
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("_skiff()"), "generated function present");
        assert!(text.contains("api-resources"), "subcommands listed");
        assert!(
            text.contains("complete -F _skiff_resources"),
            "resource names wired"
        );
        assert!(run(
            &CompletionArgs {
                shell: "fish".into()
            },
            &mut Vec::new()
        )
        .is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        // clap checks flag clashes (e.g. two `-n`) only when asked or at runtime.
        crate::commands::Cli::command().debug_assert();
    }
}
