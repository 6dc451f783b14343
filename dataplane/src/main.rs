//! `weft-proxy`: parse flags, build options, run.

use clap::Parser;
use weft_proxy::cli::{Cli, Command, Source, source};
use weft_proxy::xds_client::ProxyMode;
use weft_proxy::{connected, init, run};

fn main() -> anyhow::Result<()> {
    weft_proxy::cli::init_logging();
    let cli = Cli::parse();
    let concurrency = cli.concurrency();
    let runtime = weft_proxy::cli::runtime()?;
    runtime.block_on(async {
        match cli.command {
            Command::Sidecar(args) => {
                let mut opts = args.options()?;
                opts.settings.workers = weft_proxy::cli::workers(concurrency)?;
                match source(&args.files, &args.weftd, &args.common, ProxyMode::Sidecar)? {
                    Source::Static(files) => run::sidecar(files, opts).await?,
                    Source::Weftd(settings) => connected::sidecar(*settings, opts).await?,
                }
            }
            Command::Gateway(args) => {
                let mut opts = args.options();
                opts.settings.workers = weft_proxy::cli::workers(concurrency)?;
                match source(&args.files, &args.weftd, &args.common, ProxyMode::Gateway)? {
                    Source::Static(files) => run::gateway(files, opts).await?,
                    Source::Weftd(settings) => connected::gateway(*settings, opts).await?,
                }
            }
            Command::Init(args) => {
                let rules = init::run(&args).inspect_err(|e| {
                    tracing::error!(error = %e, label = e.label(), "weft-proxy init failed");
                })?;
                if args.dry_run {
                    for (family, text) in rules {
                        println!("# {family:?}\n{text}");
                    }
                }
            }
        }
        Ok(())
    })
}
