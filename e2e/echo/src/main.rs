use std::process::ExitCode;

use clap::Parser;
use weft_echo::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Clients keep stdout for their JSON lines and log only warnings.
    let default_filter = match cli.command {
        None | Some(Command::Serve(_) | Command::Webhook(_)) => "info",
        Some(_) => "warn",
    };
    weft_echo::init_logging(default_filter);
    weft_echo::cli::run(cli).await
}
