//! The ingress binary: parse arguments, load and validate configuration,
//! start telemetry, run until SIGTERM or ctrl-c. Everything else lives in the
//! library (`ingress::Application`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ingress::{Application, IngressConfig};

#[derive(Debug, Parser)]
#[command(about = "Verified WhatsApp webhooks (Kapso, Meta) into Kafka")]
struct Args {
    /// TOML configuration file (overridden by INBOXFLOW_* variables).
    #[arg(long, env = "INBOXFLOW_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = IngressConfig::load(args.config.as_deref()).context("loading configuration")?;
    config.validate().context("invalid configuration")?;
    shared::telemetry::init(&config.telemetry);
    let app = Application::build(config).await?;
    let stop = app.stop_signal();
    tokio::spawn(async move {
        shared::shutdown::signal().await;
        stop.trigger();
    });
    app.run_until_stopped().await
}
