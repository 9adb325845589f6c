//! Multi-tenant micro-batches: batches of 10, 100 and 1000 one-message
//! records drawn from 1 workspace, from 10% distinct workspaces and from
//! 100% distinct workspaces (the common shape of a SaaS inbox: many
//! tenants, a few messages each per batch window).
//!
//! Side by side in one run, steady state (contacts and conversations known):
//! - `cross`: the processor's pipeline, one wave per step across every
//!   workspace of the batch ([`pipeline::run_batch`]);
//! - `per_ws`: the earlier design, the eight steps run per workspace, 16
//!   workspaces at a time ([`pipeline::run_workspace`] each);
//! - `naive`: every message on its own, workspace after workspace;
//! - `raw`: only the message and index writes of every workspace, in one wave.
//!
//! Reports the median round of each, the ratios, and the sequential round
//! trips of the cross-workspace pipeline.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, WorkspaceRecords};
use processor::store::{DbStats, Store};
use serde_json::{Value, json};

use super::{input, median, ms, naive, raw};

const SIZES: [(usize, usize); 3] = [(10, 11), (100, 7), (1000, 5)];
/// (name, share of the records that are distinct workspaces).
const SHAPES: [(&str, f64); 3] = [
    ("1 workspace", 0.0),
    ("10% distinct", 0.1),
    ("100% distinct", 1.0),
];
const APPROACHES: [&str; 4] = ["cross", "per_ws", "naive", "raw"];
/// The earlier design's bound on workspaces run at once.
const PER_WS_CONCURRENCY: usize = 16;

/// `size` one-message records for `approach`, spread over the shape's
/// workspaces (record `i` in workspace `i % tenants`).
fn records(
    approach: &str,
    size: usize,
    tenants: usize,
    round: &str,
    offset: i64,
) -> anyhow::Result<Vec<DecodedRecord>> {
    (0..size)
        .map(|i| {
            let ws = format!("ws_t_{approach}_{size}_{tenants}_{}", i % tenants);
            let mut r = input::batch(&ws, &format!("{round}.{i}"), 1, 1, offset + i as i64, &[])?;
            r.pop().ok_or_else(|| anyhow::anyhow!("no record"))
        })
        .collect()
}

fn by_workspace(records: &[DecodedRecord]) -> Vec<WorkspaceRecords<'_>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&DecodedRecord>> = Default::default();
    for r in records {
        groups.entry(r.workspace_id.as_str()).or_default().push(r);
    }
    groups.into_iter().collect()
}

/// One batch through one approach: (elapsed, messages stored, round trips).
async fn once(
    store: &Store,
    approach: &str,
    records: &[DecodedRecord],
) -> anyhow::Result<(Duration, u64, u64)> {
    let groups = by_workspace(records);
    let stats = DbStats::default();
    let started = Instant::now();
    let stored: u64 = match approach {
        "cross" => pipeline::run_batch(store, &groups, &stats)
            .await?
            .workspaces
            .iter()
            .map(|o| o.messages_inserted)
            .sum(),
        "per_ws" => {
            let runs = groups
                .iter()
                .map(|(ws, r)| pipeline::run_workspace(store, ws, r, &stats));
            let outs: Vec<_> = stream::iter(runs)
                .buffer_unordered(PER_WS_CONCURRENCY)
                .try_collect()
                .await?;
            outs.iter().map(|o| o.messages_inserted).sum()
        }
        "naive" => {
            let mut n = 0;
            for (ws, r) in &groups {
                n += naive::run(store, ws, r).await?.inserted;
            }
            n
        }
        _ => {
            let writes = groups
                .iter()
                .map(|(ws, r)| raw::write(store, ws, r, &stats));
            futures::future::try_join_all(writes)
                .await?
                .into_iter()
                .sum()
        }
    };
    Ok((started.elapsed(), stored, stats.round_trips()))
}

/// Prints the table and returns its rows as JSON.
pub async fn run(store: &Store) -> anyhow::Result<Value> {
    println!(
        "\n## Multi-tenant micro-batches (one message per record, steady state, median round)\n"
    );
    println!(
        "| batch | shape | workspaces | cross-workspace pipeline | per workspace, 16 at a time | naive | raw ceiling | cross / per-ws | cross / raw | round trips |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (size, rounds) in SIZES {
        for (shape, share) in SHAPES {
            rows.push(shape_row(store, size, rounds, shape, share).await?);
        }
    }
    Ok(Value::Array(rows))
}

async fn shape_row(
    store: &Store,
    size: usize,
    rounds: usize,
    shape: &str,
    share: f64,
) -> anyhow::Result<Value> {
    let tenants = ((size as f64 * share).round() as usize).max(1);
    let mut offset = 0i64;
    for a in APPROACHES {
        once(store, a, &records(a, size, tenants, "seed", offset)?).await?;
    }
    offset += size as i64;
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut trips = Vec::new();
    for round in 0..rounds {
        for k in 0..APPROACHES.len() {
            let i = (round + k) % APPROACHES.len();
            let batch = records(APPROACHES[i], size, tenants, &format!("r{round}"), offset)?;
            let (elapsed, stored, round_trips) = once(store, APPROACHES[i], &batch).await?;
            anyhow::ensure!(
                stored == size as u64,
                "{}: stored {stored} of {size}",
                APPROACHES[i]
            );
            times[i].push(elapsed);
            if i == 0 {
                trips.push(round_trips);
            }
        }
        offset += size as i64;
    }
    let medians = times.map(median);
    let rate = |d: Duration| size as f64 / d.as_secs_f64();
    let cell = |d: Duration| format!("{:.0} msg/s ({:.1} ms)", rate(d), ms(d));
    let (vs_per_ws, vs_raw) = (
        rate(medians[0]) / rate(medians[1]),
        rate(medians[0]) / rate(medians[3]),
    );
    trips.sort_unstable();
    let trips = trips[trips.len() / 2];
    println!(
        "| {size} | {shape} | {tenants} | {} | {} | {} | {} | {vs_per_ws:.2}× | {:.0}% | {trips} |",
        cell(medians[0]),
        cell(medians[1]),
        cell(medians[2]),
        cell(medians[3]),
        vs_raw * 100.0
    );
    let approach = |i: usize| json!({"ms": ms(medians[i]), "msgs_per_s": rate(medians[i])});
    Ok(
        json!({"batch": size, "shape": shape, "workspaces": tenants, "rounds": rounds,
        "cross": approach(0), "per_ws": approach(1), "naive": approach(2), "raw": approach(3),
        "cross_vs_per_ws": vs_per_ws, "cross_vs_raw": vs_raw, "cross_round_trips": trips}),
    )
}
