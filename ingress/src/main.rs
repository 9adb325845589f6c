//! The ingress binary: parse arguments, load and validate configuration,
//! start telemetry, then either serve webhooks until SIGTERM or ctrl-c (the
//! default, `ingress serve`) or replay a topic (`ingress replay`).
//! Everything else lives in the library (`ingress::Application`,
//! `ingress::replay`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingress::registry::Registry;
use ingress::replay::{ReplayOptions, replay};
use ingress::{Application, IngressConfig};

#[derive(Debug, Parser)]
#[command(about = "Verified WhatsApp webhooks (Kapso, Meta) into Kafka")]
struct Args {
    /// TOML configuration file (overridden by INBOXFLOW_* variables).
    #[arg(long, env = "INBOXFLOW_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the webhook routes (the default).
    Serve,
    /// Re-inject unrouted or dead-lettered records into the webhook topic,
    /// routed with the current registry. Exit status 2 when it stopped at a
    /// record that still cannot be routed.
    Replay {
        /// The unrouted or dead-letter topic to read.
        #[arg(long)]
        from: String,
        /// Read at most this many records.
        #[arg(long)]
        max: Option<u64>,
        /// Skip (count and report) records that still cannot be routed
        /// instead of stopping at the first one.
        #[arg(long)]
        skip_unroutable: bool,
        /// Also replay records without a valid envelope MAC (written before
        /// envelopes existed). Only for topics whose writers you trust.
        #[arg(long)]
        accept_unsealed: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let config = IngressConfig::load(args.config.as_deref()).context("loading configuration")?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            config.validate().context("invalid configuration")?;
            shared::telemetry::init(&config.telemetry);
            let app = Application::build(config).await?;
            app.stop_signal().on_os_signal();
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            from,
            max,
            skip_unroutable,
            accept_unsealed,
        } => {
            // Replay needs Kafka and the registry, not the webhook secrets.
            config.kafka.validate().context("invalid configuration")?;
            shared::telemetry::init(&config.telemetry);
            let registry = Registry::load(&config.registry_path)?;
            let options = ReplayOptions {
                from_topic: from,
                max,
                skip_unroutable,
                accept_unsealed,
            };
            let report = replay(&config, &registry, &options).await?;
            print!("{report}");
            Ok(if report.stopped_at.is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
