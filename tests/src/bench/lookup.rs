//! `IN` queries against concurrent single-partition lookups, on the contacts
//! table with 1000 rows present (the measurement behind `cql.lookup`, see
//! schemas/README.md).

use std::time::Instant;

use processor::config::{CqlConfig, LookupStrategy};
use processor::pipeline;
use processor::store::{DbStats, Store};
use serde_json::{Value, json};

use super::{input, median, ms};

const ROUNDS: usize = 15;

/// Prints the table and returns its rows as JSON.
pub async fn run(cql: &CqlConfig) -> anyhow::Result<Value> {
    let mut cfg = cql.clone();
    cfg.lookup = LookupStrategy::In;
    let by_in = Store::connect(&cfg).await?;
    cfg.lookup = LookupStrategy::Concurrent;
    let concurrent = Store::connect(&cfg).await?;
    // Seed 1000 contacts through the pipeline itself.
    let seed = input::batch("ws_lookup", "seed", 1000, 1000, 0, &[])?;
    let stats = DbStats::default();
    pipeline::run_workspace(&by_in, "ws_lookup", &input::refs(&seed), &stats).await?;
    println!(
        "\n## Lookup: IN against concurrent single-partition statements \
         (contacts, {ROUNDS} rounds, median)\n"
    );
    println!("| keys | IN | concurrent | concurrent / IN |");
    println!("|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for keys in [10usize, 100, 1000] {
        let phones: Vec<String> = (0..keys).map(input::sender_phone).collect();
        let (mut t_in, mut t_conc) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (store, times) in [(&by_in, &mut t_in), (&concurrent, &mut t_conc)] {
                let s = store.statements();
                let started = Instant::now();
                let found: Vec<(String, uuid::Uuid, Option<String>)> = store
                    .lookup(
                        "bench",
                        &s.contacts_by_phones,
                        &s.contact_by_phone,
                        "ws_lookup",
                        phones.clone(),
                        &DbStats::default(),
                    )
                    .await?;
                times.push(started.elapsed());
                anyhow::ensure!(
                    found.len() == keys,
                    "expected {keys} rows, got {}",
                    found.len()
                );
            }
        }
        let (a, b) = (median(t_in), median(t_conc));
        let ratio = b.as_secs_f64() / a.as_secs_f64();
        println!(
            "| {keys} | {:.2} ms | {:.2} ms | {ratio:.2} |",
            ms(a),
            ms(b)
        );
        rows.push(json!({"keys": keys, "in_ms": ms(a), "concurrent_ms": ms(b), "ratio": ratio}));
    }
    Ok(Value::Array(rows))
}
