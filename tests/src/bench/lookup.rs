//! `IN` queries against concurrent single-partition lookups, on the contacts
//! table with 1000 rows present (the measurement behind the processor's
//! choice of `IN` lookups, see schemas/README.md).
//!
//! The `IN` side is the processor's own [`Store::lookup`]; the concurrent
//! side lives only here: one prepared single-partition statement per key,
//! at most `cql.max_concurrent_requests` in flight.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use processor::config::CqlConfig;
use processor::pipeline;
use processor::store::rows::FoundContact;
use processor::store::{DbStats, Store};
use scylla::statement::prepared::PreparedStatement;
use serde_json::{Value, json};

use super::{input, median, ms};

const ROUNDS: usize = 15;

/// Prints the table and returns its rows as JSON.
pub async fn run(cfg: &CqlConfig) -> anyhow::Result<Value> {
    let store = Store::connect(cfg).await?;
    let by_one = store
        .session()
        .prepare(format!(
            "SELECT workspace_id, identity_id, phone, contact_id FROM {}.contacts \
             WHERE identity_id = ?",
            cfg.keyspace
        ))
        .await?;
    // Seed 1000 contacts through the pipeline itself.
    let seed = input::batch("ws_lookup", "seed", 1000, 1000, 0, &[])?;
    let stats = DbStats::default();
    pipeline::run_workspace(&store, "ws_lookup", &input::refs(&seed), &stats).await?;
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
            t_in.push(timed(keys, by_in(&store, &phones)).await?);
            let one = concurrent(&store, &by_one, &phones, cfg.max_concurrent_requests);
            t_conc.push(timed(keys, one).await?);
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

/// How long `lookup` took; fails unless it found `keys` rows.
async fn timed(
    keys: usize,
    lookup: impl Future<Output = anyhow::Result<Vec<FoundContact>>>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let found = lookup.await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        found.len() == keys,
        "expected {keys} rows, got {}",
        found.len()
    );
    Ok(elapsed)
}

/// The processor's lookup: chunked `IN` queries.
async fn by_in(store: &Store, phones: &[String]) -> anyhow::Result<Vec<FoundContact>> {
    let s = store.statements();
    let stats = DbStats::default();
    let keys: Vec<uuid::Uuid> = phones
        .iter()
        .map(|p| shared::ids::contact_id("ws_lookup", p))
        .collect();
    Ok(store
        .lookup("bench", &s.contacts_by_identities, keys, &stats)
        .await?)
}

/// One single-partition statement per key, `bound` in flight.
async fn concurrent(
    store: &Store,
    by_one: &PreparedStatement,
    phones: &[String],
    bound: usize,
) -> anyhow::Result<Vec<FoundContact>> {
    let session = store.session();
    let pages: Vec<Vec<FoundContact>> = stream::iter(phones)
        .map(|phone| async move {
            let result = session
                .execute_unpaged(by_one, (shared::ids::contact_id("ws_lookup", phone),))
                .await?;
            let rows = result.into_rows_result()?;
            let found: Vec<FoundContact> =
                rows.rows::<FoundContact>()?.collect::<Result<_, _>>()?;
            anyhow::Ok(found)
        })
        .buffer_unordered(bound.max(1))
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}
