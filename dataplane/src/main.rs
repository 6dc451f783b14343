//! `weft-proxy`: parse flags, build options, run.

use clap::Parser;
use weft_proxy::cli::{Cli, Command};
use weft_proxy::run;

fn main() -> anyhow::Result<()> {
    weft_proxy::cli::init_logging();
    let cli = Cli::parse();
    let runtime = weft_proxy::cli::runtime(cli.concurrency())?;
    runtime.block_on(async {
        match cli.command {
            Command::Sidecar(args) => run::sidecar(args.files.files(), args.options()?).await?,
            Command::Gateway(args) => run::gateway(args.files.files(), args.options()).await?,
        }
        Ok(())
    })
}
