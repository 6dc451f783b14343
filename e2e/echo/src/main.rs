use std::process::ExitCode;

use clap::Parser;
use weft_echo::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Clients keep stdout for their JSON lines and log only warnings.
    let default_filter = match cli.command {
        None | Some(Command::Serve(_) | Command::Webhook(_)) => "info",
        Some(_) => "warn",
    };
    weft_echo::init_logging(default_filter);
    // The load generator drives every connection from one thread (its
    // pacing must not wait for another thread), the relay is the one-thread
    // floor of the benchmark; the rest use all cores.
    let runtime = match cli.command {
        Some(Command::Load(_) | Command::Relay(_)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(weft_echo::cli::run(cli)),
        Err(e) => {
            eprintln!("weft-echo: cannot start the Tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
