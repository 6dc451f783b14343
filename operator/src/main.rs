//! weft-operator: parse flags, run until SIGTERM.

use clap::Parser;
use weft_operator::config::Config;
use weft_operator::run;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    weft_api::logging::init_logging(config.log_format);
    match run::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "weft-operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
