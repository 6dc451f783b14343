//! `weftd`: parse flags, set up logging, run until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use weftd::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    weft_api::logging::init_logging(config.log_format);
    match weftd::run::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "weftd stopped");
            ExitCode::FAILURE
        }
    }
}
