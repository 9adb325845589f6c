//! Processor benchmarks on the real local database, measured side by side in
//! one run and reported as medians and ratios (no assertions):
//!
//! - `lookup`: `IN` queries against concurrent single-partition statements,
//!   for 10, 100 and 1000 keys;
//! - `compare`: messages/s of the batched pipeline against the naive
//!   per-message design and the raw-write ceiling, at batches of 10, 100 and
//!   1000 messages;
//! - `tenants`: multi-tenant batches of 10, 100 and 1000 one-message
//!   records from 1 workspace, 10%, 20% and 100% distinct workspaces, through the
//!   cross-workspace pipeline, the per-workspace design, naive and raw;
//! - `inbox`: the inbox's list page and unread totals on a workspace with
//!   100k conversations (median and p90 of repeated calls);
//! - `statements`: database requests and sequential round trips per
//!   micro-batch at 10, 100, 1000 and 10000 messages, first time, steady
//!   state and with statuses, against the naive design's.
//!
//! Each run migrates a fresh keyspace and drops it at the end.
//!
//! Run: `cargo run --release -p inboxflow-tests --bin processor-bench -- [lookup|compare|statements|tenants|inbox|all] [--json FILE]`

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use inboxflow_tests::bench::{compare, inbox, lookup, round_trips, tenants};
use inboxflow_tests::{cql, unique_name};
use processor::config::ProcessorConfig;
use processor::store::Store;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Lookup,
    #[value(alias = "pipeline")]
    Compare,
    Statements,
    Tenants,
    Inbox,
    All,
}

#[derive(Debug, Parser)]
#[command(about = "Processor benchmarks on the local CQL database")]
struct Args {
    #[arg(value_enum, default_value_t = Which::All)]
    which: Which,
    /// The database server's pid: its CPU time per message is reported.
    #[arg(long)]
    db_pid: Option<u32>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("bench");
    processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    let wants = |w: Which| args.which == w || args.which == Which::All;
    let result = async {
        let mut out = json!({"keyspace": cfg.cql.keyspace, "cql": {
            "lookup": "In",
            "max_batch_statements": cfg.cql.max_batch_statements,
            "max_batch_bytes": cfg.cql.max_batch_bytes,
            "max_concurrent_requests": cfg.cql.max_concurrent_requests}});
        if wants(Which::Lookup) {
            out["lookup"] = lookup::run(&cfg.cql).await?;
        }
        let store = Store::connect(&cfg.cql).await?;
        if wants(Which::Compare) {
            let bench = compare::Bench {
                store: &store,
                cql: &cfg.cql,
                db_pid: args.db_pid.map(|p| p.to_string()),
                cache: Default::default(),
            };
            out["compare"] = bench.run().await?;
        }
        if wants(Which::Statements) {
            out["statements"] = round_trips::run(&store).await?;
        }
        if wants(Which::Tenants) {
            out["tenants"] = tenants::run(&store).await?;
        }
        if wants(Which::Inbox) {
            out["inbox"] = inbox::run(&store).await?;
        }
        anyhow::Ok(out)
    }
    .await;
    let session = cql::session().await?;
    cql::drop_keyspace(&session, &cfg.cql.keyspace).await?;
    let out = result?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
