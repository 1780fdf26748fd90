//! The `skiff` binary: parses the command line, sets up logging and hands over to one
//! module per subcommand in [`commands`].

mod commands;
mod kubectl;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // kubectl accepts `-n dev` and friends before the subcommand too.
    let args = kubectl::hoist_global_flags(std::env::args().collect());
    let cli = commands::Cli::parse_from(args.clone());
    let daemon = matches!(
        cli.command,
        commands::Command::Server(_) | commands::Command::Agent(_) | commands::Command::Lab(_)
    );
    commands::init_tracing(cli.verbose, daemon);
    let mut result = commands::run(cli).await;
    // A type the cached discovery did not know may be new on the server (a CRD just
    // created): drop the cache and try once more with fresh discovery, as kubectl does.
    if let Err(e) = &result {
        if kubectl::discovery::invalidate_on_stale_miss(e) {
            result = commands::run(commands::Cli::parse_from(args)).await;
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `exec` exits with the remote command's code, as kubectl does.
            if let Some(exit) = e.downcast_ref::<kubectl::channel::RemoteExit>() {
                eprintln!("{exit}");
                return std::process::ExitCode::from(u8::try_from(exit.0).unwrap_or(1));
            }
            // `skiff get pods | head -1`: the reader left, nothing to report.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return std::process::ExitCode::SUCCESS;
            }
            // The completion script falls back to its static part on a quiet exit 1.
            if e.downcast_ref::<kubectl::completion::NoCandidates>()
                .is_some()
            {
                return std::process::ExitCode::FAILURE;
            }
            // One clear line (with its causes) instead of a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
