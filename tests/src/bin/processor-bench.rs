//! Processor benchmarks on the real local database, measured side by side in
//! one run and reported as medians and ratios (no assertions):
//!
//! - `lookup`: `IN` queries against concurrent single-partition statements,
//!   for 10, 100 and 1000 keys;
//! - `pipeline`: messages/s of the eight-step pipeline, and the database
//!   requests and sequential round trips per micro-batch, for batches of 10,
//!   100 and 1000 messages.
//!
//! Run: `cargo run --release -p inboxflow-tests --bin processor-bench -- [lookup|pipeline|all]`

use std::time::{Duration, Instant};

use inboxflow_tests::webhooks::{Inbound, meta_body};
use inboxflow_tests::{cql, unique_name};
use processor::config::{LookupStrategy, ProcessorConfig};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, Faults};
use processor::store::{DbStats, Store};
use shared::record::Source;

const ROUNDS: usize = 15;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

async fn store_with(cfg: &ProcessorConfig, lookup: LookupStrategy) -> anyhow::Result<Store> {
    let mut cql_cfg = cfg.cql.clone();
    cql_cfg.lookup = lookup;
    Store::connect(&cql_cfg).await.map_err(Into::into)
}

fn batch(prefix: &str, size: usize, senders: usize, offset: i64) -> anyhow::Result<DecodedRecord> {
    let messages: Vec<Inbound> = (0..size)
        .map(|n| {
            Inbound::new(
                format!("wamid.{prefix}.{n}"),
                format!("55119{:08}", n % senders),
                1_700_000_000 + n as i64,
            )
        })
        .collect();
    let body = meta_body("pn-bench", &messages, &[]);
    let events = shared::webhook::normalize(Source::Meta, None, &body, &[])?;
    Ok(DecodedRecord {
        workspace_id: "ws_bench".into(),
        partition: 0,
        offset,
        received_at_ms: None,
        events,
    })
}

async fn bench_lookup(cfg: &ProcessorConfig) -> anyhow::Result<()> {
    let by_in = store_with(cfg, LookupStrategy::In).await?;
    let concurrent = store_with(cfg, LookupStrategy::Concurrent).await?;
    // Seed 1000 contacts through the pipeline itself.
    let seed = batch("seed", 1000, 1000, 0)?;
    pipeline::run_workspace(
        &by_in,
        "ws_bench",
        &[&seed],
        Faults::default(),
        &DbStats::default(),
    )
    .await?;
    println!(
        "\n## Lookup: IN against concurrent single-partition statements (contacts, {ROUNDS} rounds, median)\n"
    );
    println!("| keys | IN | concurrent | concurrent / IN |");
    println!("|---:|---:|---:|---:|");
    for keys in [10usize, 100, 1000] {
        let phones: Vec<String> = (0..keys).map(|n| format!("55119{n:08}")).collect();
        let (mut t_in, mut t_conc) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (store, times) in [(&by_in, &mut t_in), (&concurrent, &mut t_conc)] {
                let s = store.statements();
                let started = Instant::now();
                let rows: Vec<(String, uuid::Uuid, Option<String>)> = store
                    .lookup(
                        "bench",
                        &s.contacts_by_phones,
                        &s.contact_by_phone,
                        "ws_bench",
                        phones.clone(),
                        &DbStats::default(),
                    )
                    .await?;
                times.push(started.elapsed());
                anyhow::ensure!(
                    rows.len() == keys,
                    "expected {keys} rows, got {}",
                    rows.len()
                );
            }
        }
        let (a, b) = (median(t_in), median(t_conc));
        println!(
            "| {keys} | {:.2} ms | {:.2} ms | {:.2} |",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    Ok(())
}

async fn bench_pipeline(cfg: &ProcessorConfig) -> anyhow::Result<()> {
    let store = store_with(cfg, cfg.cql.lookup).await?;
    println!(
        "\n## Pipeline: one workspace, 3 senders, fresh messages each round ({ROUNDS} rounds, median)\n"
    );
    println!("| batch | duration | messages/s | DB requests | sequential round trips |");
    println!("|---:|---:|---:|---:|---:|");
    let mut offset = 1;
    for size in [10usize, 100, 1000] {
        let mut times = Vec::new();
        let mut last = (0, 0);
        for round in 0..ROUNDS {
            let record = batch(&format!("p{size}r{round}"), size, 3, offset)?;
            offset += 1;
            let stats = DbStats::default();
            let started = Instant::now();
            let out =
                pipeline::run_workspace(&store, "ws_bench", &[&record], Faults::default(), &stats)
                    .await?;
            times.push(started.elapsed());
            anyhow::ensure!(out.messages_inserted == size as u64);
            last = (stats.requests(), stats.round_trips());
        }
        let m = median(times);
        println!(
            "| {size} | {:.1} ms | {:.0} | {} | {} |",
            ms(m),
            size as f64 / m.as_secs_f64(),
            last.0,
            last.1
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("bench");
    processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    let result = async {
        if matches!(which.as_str(), "lookup" | "all") {
            bench_lookup(&cfg).await?;
        }
        if matches!(which.as_str(), "pipeline" | "all") {
            bench_pipeline(&cfg).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let session = cql::session().await?;
    cql::drop_keyspace(&session, &cfg.cql.keyspace).await?;
    result
}
