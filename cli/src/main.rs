//! The `skiff` binary: parses the command line, sets up logging and hands over to one
//! module per subcommand in [`commands`].

mod commands;
mod kubectl;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    commands::init_tracing(cli.verbose);
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (with its causes) instead of a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
