//! The `skiff` binary: parses the command line, sets up logging and hands over to one
//! module per subcommand in [`commands`].

mod commands;
mod kubectl;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // kubectl accepts `-n dev` and friends before the subcommand too.
    let cli = commands::Cli::parse_from(kubectl::hoist_global_flags(std::env::args().collect()));
    let daemon = matches!(
        cli.command,
        commands::Command::Server(_) | commands::Command::Agent(_) | commands::Command::Lab(_)
    );
    commands::init_tracing(cli.verbose, daemon);
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (with its causes) instead of a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
