//! Statements (database requests) and sequential round trips per micro-batch,
//! from [`DbStats`], at 10, 100, 1000 and 10000 messages (about five per
//! sender; 10 messages come from 3 senders, the reference design's example),
//! in three states of one workspace:
//!
//! - first time: every contact and conversation is new;
//! - steady: the same senders again, new message ids (the owner cache
//!   holds the contacts, conversations and total, as in a running processor);
//! - steady + statuses: as steady, plus `delivered` statuses for a tenth of
//!   the previous batch's messages (step 8 has work);
//! - after a rebalance: as steady, with the owner cache emptied (every
//!   lookup goes to the database).
//!
//! The naive per-message design runs the first two states on the same input
//! (up to 1000 messages; 10000 would take minutes), where every statement is
//! a sequential round trip.

use std::time::{Duration, Instant};

use processor::pipeline::{self, OwnerCache};
use processor::store::{DbStats, Store};
use serde_json::{Value, json};

use super::{input, ms, naive};

const SIZES: [usize; 4] = [10, 100, 1000, 10000];
const NAIVE_UP_TO: usize = 1000;

async fn pipeline_batch(
    store: &Store,
    ws: &str,
    batch_id: &str,
    size: usize,
    offset: i64,
    (statuses_for, cache): (&[String], &mut OwnerCache),
) -> anyhow::Result<(u64, u64, Duration)> {
    // Message ids are unique across workspaces, as real ones are.
    let records = input::batch(
        ws,
        &format!("{ws}.{batch_id}"),
        size,
        input::senders_for(size),
        offset,
        statuses_for,
    )?;
    let stats = DbStats::default();
    let started = Instant::now();
    let batch = [(ws, input::refs(&records))];
    let out = pipeline::run_batch_cached(store, &batch, &stats, cache).await?;
    let elapsed = started.elapsed();
    let out = &out.workspaces[0];
    anyhow::ensure!(
        out.messages_inserted == size as u64,
        "{ws}: stored {}",
        out.messages_inserted
    );
    Ok((stats.requests(), stats.round_trips(), elapsed))
}

async fn naive_batch(
    store: &Store,
    ws: &str,
    batch_id: &str,
    size: usize,
    offset: i64,
) -> anyhow::Result<u64> {
    let batch_id = format!("{ws}.{batch_id}");
    let records = input::batch(ws, &batch_id, size, input::senders_for(size), offset, &[])?;
    Ok(naive::run(store, ws, &input::refs(&records))
        .await?
        .statements)
}

/// Prints the table and returns its rows as JSON.
pub async fn run(store: &Store) -> anyhow::Result<Value> {
    println!("\n## Statements and sequential round trips per micro-batch (one workspace)\n");
    println!(
        "| messages | senders | state | pipeline statements | pipeline round trips | \
         batch time | naive statements (= round trips) |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for size in SIZES {
        let ws = format!("ws_rt_{size}");
        let naive_ws = format!("ws_rtn_{size}");
        let step = size.div_ceil(10) as i64 + 1;
        let previous: Vec<String> = (0..size)
            .step_by(10)
            .map(|n| input::message_id(&format!("{ws}.steady"), n))
            .collect();
        let states: [(&str, &str, &[String]); 4] = [
            ("first time", "first", &[]),
            ("steady", "steady", &[]),
            ("steady + statuses", "statuses", &previous),
            ("after a rebalance", "rebalanced", &[]),
        ];
        let mut cache = OwnerCache::default();
        for (i, (state, batch_id, statuses)) in states.into_iter().enumerate() {
            let offset = i as i64 * step;
            if batch_id == "rebalanced" {
                cache.clear();
            }
            let (requests, round_trips, elapsed) =
                pipeline_batch(store, &ws, batch_id, size, offset, (statuses, &mut cache)).await?;
            let naive = if size <= NAIVE_UP_TO && statuses.is_empty() && i < 2 {
                Some(naive_batch(store, &naive_ws, batch_id, size, offset).await?)
            } else {
                None
            };
            println!(
                "| {size} | {} | {state} | {requests} | {round_trips} | {:.1} ms | {} |",
                input::senders_for(size),
                ms(elapsed),
                naive.map_or("n/a".to_owned(), |n| n.to_string())
            );
            rows.push(json!({
                "messages": size, "senders": input::senders_for(size), "state": state,
                "statuses": statuses.len(), "statements": requests, "round_trips": round_trips,
                "batch_ms": ms(elapsed), "naive_statements": naive,
            }));
        }
    }
    Ok(Value::Array(rows))
}
