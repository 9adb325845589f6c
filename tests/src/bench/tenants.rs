//! Multi-tenant micro-batches: batches of 10, 100 and 1000 one-message
//! records drawn from 1 workspace, from 10% and 20% distinct workspaces
//! and from 100% distinct workspaces (the common shape of a SaaS inbox:
//! many tenants, a few messages each per batch window; a drained topic of
//! 1000 workspaces gives about 170 workspaces per batch of 1000). Every
//! record comes from its own sender, so every shape writes `batch`
//! conversations and messages: the number of workspaces is the only thing
//! that changes between shapes.
//!
//! Side by side in one run, steady state (contacts and conversations known):
//! - `cross`: the processor's pipeline as `processor run` runs it, with its
//!   owner cache warm: at most three sequential waves across every
//!   workspace of the batch, each lookup one `IN` over the keys of every
//!   workspace ([`pipeline::run_batch_cached`]);
//! - `uncached`: the same without the cache ([`pipeline::run_batch`]), as
//!   right after a rebalance;
//! - `per_ws`: the earlier design, the pipeline run per workspace, 16
//!   workspaces at a time ([`pipeline::run_workspace`] each);
//! - `naive`: every message on its own, workspace after workspace;
//! - `raw`: only the message and index writes of every workspace, in one
//!   wave, rows of all workspaces sharing batches as the pipeline's do;
//! - `ceiling`: the raw-write ceiling of the same rows: every row `cross`
//!   writes (messages, index, conversations, recency entries, inbound
//!   totals), batched as it batches them, in its one write wave with no
//!   lookup before it ([`pipeline::ceiling::write_wave_only`]).
//!
//! The shapes of one batch size take turns round by round, and the
//! approaches within a shape's round, each in a rotating order. Reports the
//! median round of each, the ratios, the sequential round trips of the
//! cross-workspace pipeline, and each multi-tenant shape's throughput
//! against the single workspace's at the same batch size.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, OwnerCache, WorkspaceRecords};
use processor::store::{DbStats, Store};
use serde_json::{Value, json};

use super::{input, median, ms, naive, raw};

/// (batch size, rounds). With 5 rounds at batch 1000 the 1,000-workspace
/// shape's ratio to one workspace moved from 0.54× to 0.84× between runs.
const SIZES: [(usize, usize); 3] = [(10, 11), (100, 9), (1000, 9)];
/// (name, share of the records that are distinct workspaces).
const SHAPES: [(&str, f64); 4] = [
    ("1 workspace", 0.0),
    ("10% distinct", 0.1),
    ("20% distinct", 0.2),
    ("100% distinct", 1.0),
];
const APPROACHES: [&str; 6] = ["cross", "uncached", "per_ws", "naive", "raw", "ceiling"];
/// The earlier design's bound on workspaces run at once.
const PER_WS_CONCURRENCY: usize = 16;

/// `size` one-message records for `approach`, spread over the shape's
/// workspaces (record `i` in workspace `i % tenants`, from that
/// workspace's sender `i / tenants`).
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
            // Message ids are unique across workspaces, as real ones are.
            let batch_id = format!("{ws}.{round}.{i}");
            input::one_message(&ws, &batch_id, i / tenants, offset + i as i64)
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

/// One batch through one approach.
#[derive(Debug, Default)]
struct Once {
    elapsed: Duration,
    stored: u64,
    round_trips: u64,
    requests: u64,
    /// The cross-workspace pipeline's waves (empty for the others).
    waves: Vec<(&'static str, Duration)>,
}

async fn once(
    store: &Store,
    approach: &str,
    records: &[DecodedRecord],
    cache: &mut OwnerCache,
) -> anyhow::Result<Once> {
    let groups = by_workspace(records);
    let stats = DbStats::default();
    let started = Instant::now();
    let mut waves = Vec::new();
    let stored: u64 = match approach {
        "cross" | "uncached" => {
            let out = if approach == "cross" {
                pipeline::run_batch_cached(store, &groups, &stats, cache).await?
            } else {
                pipeline::run_batch(store, &groups, &stats).await?
            };
            waves = out
                .wave_durations
                .iter()
                .map(|(w, d)| (w.as_str(), *d))
                .collect();
            out.workspaces.iter().map(|o| o.messages_inserted).sum()
        }
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
        "raw" => raw::write_all(store, &groups, &stats).await?,
        "ceiling" => pipeline::ceiling::write_wave_only(store, &groups, &stats, cache)
            .await?
            .ok_or_else(|| anyhow::anyhow!("ceiling: the owner cache missed a key"))?,
        other => anyhow::bail!("unknown approach {other}"),
    };
    Ok(Once {
        elapsed: started.elapsed(),
        stored,
        round_trips: stats.round_trips(),
        requests: stats.requests(),
        waves,
    })
}

/// Prints the table and returns its rows as JSON.
pub async fn run(store: &Store) -> anyhow::Result<Value> {
    println!(
        "\n## Multi-tenant micro-batches (one message per record, steady state, median round)\n"
    );
    println!(
        "| batch | shape | workspaces | cross-workspace pipeline (cached) | uncached | per workspace, 16 at a time | naive | raw, message + index rows | raw ceiling, same rows | cross / per-ws | cross / raw (2 rows) | cross / ceiling | round trips |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (size, rounds) in SIZES {
        let mut runs = Vec::new();
        for (shape, share) in SHAPES {
            // A shape as many workspaces as one before it (10% of 10 is 1)
            // would reuse its workspaces and offsets: skipped.
            let tenants = ((size as f64 * share).round() as usize).max(1);
            if runs.iter().all(|r: &ShapeRun| r.tenants != tenants) {
                runs.push(ShapeRun::seeded(store, size, (shape, tenants)).await?);
            }
        }
        // The shapes take turns within each round (in a rotating order), so
        // the database's growing tables and compactions weigh on all alike.
        for round in 0..rounds {
            for k in 0..runs.len() {
                let i = (round + k) % runs.len();
                runs[i].round(store, round).await?;
            }
        }
        rows.extend(runs.into_iter().map(|r| r.row(rounds)));
    }
    summarize(&rows);
    Ok(Value::Array(rows))
}

/// Prints each multi-tenant shape's throughput against the single
/// workspace's at the same batch size, and the spread of round trips.
fn summarize(rows: &[Value]) {
    let rate = |r: &Value| r["cross"]["msgs_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "\nMulti-tenant throughput against one workspace, same batch size (cross-workspace pipeline):\n"
    );
    for single in rows.iter().filter(|r| r["workspaces"] == 1) {
        let same = rows
            .iter()
            .filter(|r| r["batch"] == single["batch"] && r["workspaces"] != 1);
        let ratios: Vec<String> = same
            .map(|r| {
                format!(
                    "{} workspaces {:.2}×",
                    r["workspaces"],
                    rate(r) / rate(single)
                )
            })
            .collect();
        println!("- batch {}: {}", single["batch"], ratios.join(", "));
    }
    let trips: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["cross_round_trips"].as_u64())
        .collect();
    let lowest = |key: &str| {
        rows.iter()
            .filter_map(|r| r[key].as_f64())
            .fold(f64::INFINITY, f64::min)
            * 100.0
    };
    println!(
        "- round trips per batch: {} to {}; lowest share of the raw ceiling of the same rows: {:.0}% (of the message and index rows alone: {:.0}%)",
        trips.iter().min().unwrap_or(&0),
        trips.iter().max().unwrap_or(&0),
        lowest("cross_vs_ceiling"),
        lowest("cross_vs_raw"),
    );
}

/// One shape of one batch size, measured round by round.
struct ShapeRun {
    shape: &'static str,
    tenants: usize,
    size: usize,
    offset: i64,
    cache: OwnerCache,
    times: [Vec<Duration>; APPROACHES.len()],
    trips: Vec<u64>,
    requests: Vec<u64>,
    waves: BTreeMap<&'static str, Vec<Duration>>,
}

impl ShapeRun {
    /// A shape whose contacts and conversations are stored (and cached).
    async fn seeded(
        store: &Store,
        size: usize,
        (shape, tenants): (&'static str, usize),
    ) -> anyhow::Result<Self> {
        let mut run = ShapeRun {
            shape,
            tenants,
            size,
            offset: 0,
            cache: OwnerCache::default(),
            times: Default::default(),
            trips: Vec::new(),
            requests: Vec::new(),
            waves: BTreeMap::new(),
        };
        for a in APPROACHES {
            let seed = records(a, size, tenants, "seed", 0)?;
            // The ceiling's contacts and conversations are stored (and
            // cached) by the pipeline, as the pipeline's own were.
            let seed_with = if a == "ceiling" { "cross" } else { a };
            once(store, seed_with, &seed, &mut run.cache).await?;
        }
        run.offset = size as i64;
        Ok(run)
    }

    /// One round: every approach once, in an order rotating with `round`.
    async fn round(&mut self, store: &Store, round: usize) -> anyhow::Result<()> {
        let (size, tenants) = (self.size, self.tenants);
        for k in 0..APPROACHES.len() {
            let i = (round + k) % APPROACHES.len();
            let batch = records(
                APPROACHES[i],
                size,
                tenants,
                &format!("r{round}"),
                self.offset,
            )?;
            let one = once(store, APPROACHES[i], &batch, &mut self.cache).await?;
            anyhow::ensure!(
                one.stored == size as u64,
                "{}: stored {} of {size}",
                APPROACHES[i],
                one.stored
            );
            self.times[i].push(one.elapsed);
            if i == 0 {
                self.trips.push(one.round_trips);
                self.requests.push(one.requests);
                for (wave, d) in one.waves {
                    self.waves.entry(wave).or_default().push(d);
                }
            }
        }
        self.offset += size as i64;
        Ok(())
    }

    /// Prints the shape's row and returns it as JSON.
    fn row(mut self, rounds: usize) -> Value {
        let (size, shape, tenants) = (self.size, self.shape, self.tenants);
        self.requests.sort_unstable();
        self.trips.sort_unstable();
        let wave_ms: serde_json::Map<String, Value> = self
            .waves
            .into_iter()
            .map(|(w, ds)| (w.to_owned(), json!(ms(median(ds)))))
            .collect();
        let medians = self.times.map(median);
        let rate = |d: Duration| size as f64 / d.as_secs_f64();
        let cell = |d: Duration| format!("{:.0} msg/s ({:.1} ms)", rate(d), ms(d));
        let vs = |i: usize| rate(medians[0]) / rate(medians[i]);
        let (vs_per_ws, vs_raw, vs_ceiling) = (vs(2), vs(4), vs(5));
        let trips = self.trips[self.trips.len() / 2];
        let cells: Vec<String> = medians.iter().map(|d| cell(*d)).collect();
        println!(
            "| {size} | {shape} | {tenants} | {} | {vs_per_ws:.2}× | {:.0}% | {:.0}% | {trips} |",
            cells.join(" | "),
            vs_raw * 100.0,
            vs_ceiling * 100.0
        );
        let approach = |i: usize| json!({"ms": ms(medians[i]), "msgs_per_s": rate(medians[i])});
        json!({"batch": size, "shape": shape, "workspaces": tenants, "rounds": rounds,
        "cross": approach(0), "uncached": approach(1), "per_ws": approach(2),
        "naive": approach(3), "raw": approach(4), "ceiling": approach(5),
        "cross_vs_per_ws": vs_per_ws, "cross_vs_raw": vs_raw, "cross_vs_ceiling": vs_ceiling,
        "uncached_vs_raw": rate(medians[1]) / rate(medians[4]), "cross_round_trips": trips,
        "cross_requests": self.requests[self.requests.len() / 2], "cross_wave_ms": wave_ms})
    }
}
