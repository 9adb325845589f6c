//! `processor migrate` applies the CQL schema and carries the rows of a
//! replaced table (`workspace_inbox` into `workspace_totals`) over (with
//! `--from-keyspace`, then copies a keyspace of the layout before
//! cross-workspace keys into it);
//! `processor run` consumes;
//! `processor inbox` reads the inbox; `processor clocks rebase` moves the
//! write clocks on after the webhook topic changed.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use processor::app::{self, RunningProcessor};
use processor::config::ProcessorConfig;
use processor::inbox::cli::{self, InboxCommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "inboxflow processor: Kafka micro-batches into Cassandra/ScyllaDB"
)]
struct Cli {
    /// TOML config file (overridden by INBOXFLOW_* environment variables).
    #[arg(long, env = "INBOXFLOW_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply schemas/cql/schema.cql to the configured keyspace and carry the
    /// rows of replaced tables (workspace_inbox) over (idempotent; run it
    /// before starting the processors of this release).
    Migrate {
        /// Then copy this keyspace, of the layout before cross-workspace
        /// keys, into the configured one (run with every processor stopped;
        /// the processors then go on in the new keyspace with the same
        /// consumer group).
        #[arg(long)]
        from_keyspace: Option<String>,
    },
    /// Consume the webhook topic until SIGTERM or ctrl-c.
    Run,
    /// Read a workspace's inbox (conversations, history, unread totals) or mark a conversation read.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// The write clocks of the webhook topic.
    #[command(subcommand)]
    Clocks(ClocksCommand),
}

#[derive(Debug, Subcommand)]
enum ClocksCommand {
    /// After adding partitions to the webhook topic or re-creating it (which
    /// `processor run` refuses): record the new layout and move every
    /// partition's clock past all clocks written so far. Run it with every
    /// processor stopped; with partitions added, drain the topic first.
    Rebase {
        /// Skip the check that every old partition is fully processed.
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = ProcessorConfig::load(cli.config.as_deref()).context("loading configuration")?;
    cfg.validate()?;
    shared::telemetry::init(&cfg.telemetry);
    match cli.command {
        Command::Migrate { from_keyspace } => match from_keyspace {
            Some(from) => {
                let report = app::migrate_from(&cfg.cql, &cfg.retry, &from).await?;
                for (table, rows) in report {
                    println!("{table}: {rows} rows copied from {from}");
                }
            }
            None => {
                app::migrate(&cfg.cql, &cfg.retry).await?;
            }
        },
        Command::Run => {
            let running = RunningProcessor::start(cfg).await?;
            let stop = running.stop_signal();
            stop.on_os_signal();
            stop.wait().await;
            running.stop().await?;
        }
        Command::Clocks(ClocksCommand::Rebase { force }) => {
            let r = app::rebase_clocks(&cfg, force).await?;
            println!(
                "topic {}: {} partitions (was {}), epoch {}, next clock {}",
                r.topic,
                r.partitions,
                r.previous_partitions
                    .map_or_else(|| "unrecorded".to_owned(), |n| n.to_string()),
                r.epoch,
                r.first_clock
            );
        }
        Command::Inbox(command) => {
            cli::run(&cfg.cql, command, &mut std::io::stdout().lock()).await?;
        }
    }
    Ok(())
}
