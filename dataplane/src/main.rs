//! `weft-proxy`: parse the command line, run the subcommand.

use clap::{Parser, Subcommand};
use weft_proxy::init::{self, InitArgs};

/// Weft's proxy.
#[derive(Debug, Parser)]
#[command(name = "weft-proxy", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `debug`, `weft_proxy=trace`).
    #[arg(long, env = "WEFT_LOG_LEVEL", default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Program the pod's traffic capture (iptables); run by the injected init container.
    Init(InitArgs),
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match cli.command {
        Command::Init(args) => match init::run(&args) {
            Ok(rules) => {
                if args.dry_run {
                    for (family, text) in rules {
                        println!("# {family:?}\n{text}");
                    }
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, label = e.label(), "weft-proxy init failed");
                eprintln!("weft-proxy init: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
