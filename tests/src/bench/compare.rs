//! Messages/s of the batched pipeline against the naive per-message design
//! and against the raw-write ceiling, on the same input, at batch sizes 10,
//! 100 and 1000; plus the raw writes sent as single-partition batches, to
//! measure the pipeline's multi-partition batching against the alternative.
//!
//! The pipeline runs as `processor run` does, with its owner cache (warm
//! in the measured rounds, as in a running processor).
//!
//! Each approach has its own workspace (every key starts with the workspace
//! id, so they never see each other's rows) and gets the same records: the
//! same senders, message ids, texts and offsets. A first, unmeasured round
//! creates the contacts and conversations; the measured rounds are steady
//! state (known senders, new message ids), the common case. Within a round
//! the approaches run one after another, in an order that rotates between
//! rounds, so that background noise spreads evenly; the report gives the
//! median round of each and the ratios of those medians. With the database's
//! pid, the database's CPU time per message of each approach is reported too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use processor::config::CqlConfig;
use processor::pipeline::{self, OwnerCache};
use processor::store::{DbStats, Store};
use serde_json::{Value, json};

use super::{input, median, ms, naive, raw};
use crate::loadgen::stats::{clock_ticks_per_second, cpu_ticks};

/// Batch sizes and their measured rounds (fewer for the slow naive 1000).
const SIZES: [(usize, usize); 3] = [(10, 15), (100, 9), (1000, 5)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approach {
    Pipeline,
    Naive,
    Raw,
    RawPerPartition,
}

const APPROACHES: [Approach; 4] = [
    Approach::Pipeline,
    Approach::Naive,
    Approach::Raw,
    Approach::RawPerPartition,
];

impl Approach {
    fn name(self) -> &'static str {
        match self {
            Approach::Pipeline => "pipeline",
            Approach::Naive => "naive",
            Approach::Raw => "raw",
            Approach::RawPerPartition => "raw_per_partition",
        }
    }
}

/// Where the approaches run.
#[derive(Debug)]
pub struct Bench<'a> {
    pub store: &'a Store,
    pub cql: &'a CqlConfig,
    /// The database server's pid, for its CPU time.
    pub db_pid: Option<String>,
    /// The pipeline's owner cache.
    pub cache: std::sync::Mutex<OwnerCache>,
}

/// One batch through one approach.
struct Once {
    elapsed: Duration,
    statements: u64,
    db_ticks: Option<u64>,
    /// The pipeline's wave durations (empty for the others).
    steps: Vec<(&'static str, Duration)>,
}

impl Bench<'_> {
    async fn once(
        &self,
        approach: Approach,
        size: usize,
        batch_id: &str,
        offset: i64,
    ) -> anyhow::Result<Once> {
        let store = self.store;
        let ws = format!("ws_{}_{size}", approach.name());
        // Message ids are unique across workspaces, as real ones are.
        let batch_id = format!("{ws}.{batch_id}");
        let senders = input::senders_for(size);
        let records = input::batch(&ws, &batch_id, size, senders, offset, &[])?;
        let records = input::refs(&records);
        let stats = DbStats::default();
        let ticks = || self.db_pid.as_deref().and_then(cpu_ticks);
        let ticks_before = ticks();
        let started = Instant::now();
        let mut steps = Vec::new();
        let (stored, statements) = match approach {
            Approach::Pipeline => {
                let batch = [(ws.as_str(), records.clone())];
                let mut cache = std::mem::take(&mut *self.cache.lock().expect("cache"));
                let out = pipeline::run_batch_cached(store, &batch, &stats, &mut cache).await?;
                *self.cache.lock().expect("cache") = cache;
                steps = out
                    .wave_durations
                    .iter()
                    .map(|(w, d)| (w.as_str(), *d))
                    .collect();
                let stored = out.workspaces.iter().map(|w| w.messages_inserted).sum();
                (stored, stats.requests())
            }
            Approach::Naive => {
                let out = naive::run(store, &ws, &records).await?;
                (out.inserted, out.statements)
            }
            Approach::Raw => (
                raw::write(store, &ws, &records, &stats).await?,
                stats.requests(),
            ),
            Approach::RawPerPartition => {
                raw::write_per_partition(store, self.cql, &ws, &records).await?
            }
        };
        let elapsed = started.elapsed();
        let db_ticks = ticks()
            .zip(ticks_before)
            .map(|(after, before)| after - before);
        anyhow::ensure!(
            stored == size as u64,
            "{ws}: stored {stored} of {size} messages"
        );
        Ok(Once {
            elapsed,
            statements,
            db_ticks,
            steps,
        })
    }

    /// Prints the comparison table and returns its rows as JSON.
    pub async fn run(&self) -> anyhow::Result<Value> {
        println!(
            "\n## Pipeline against naive per-message and the raw-write ceiling \
             (steady state, median round)\n"
        );
        println!(
            "| batch | senders | rounds | pipeline | naive | raw ceiling | raw, 1 partition \
             per batch | pipeline / naive | pipeline / raw |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let tck = clock_ticks_per_second() as f64;
        let mut rows = Vec::new();
        for (size, rounds) in SIZES {
            let measured = self.rounds(size, rounds).await?;
            rows.push(measured.row(size, rounds, tck));
        }
        Ok(Value::Array(rows))
    }

    /// The unmeasured seed round, then `rounds` measured rounds of every
    /// approach at batch size `size`, in an order that rotates per round.
    async fn rounds(&self, size: usize, rounds: usize) -> anyhow::Result<Rounds> {
        let records_per_batch = size.div_ceil(10) as i64;
        let mut offset = 0;
        for approach in APPROACHES {
            self.once(approach, size, "seed", offset).await?;
        }
        offset += records_per_batch;
        let mut out = Rounds {
            times: Default::default(),
            statements: [0u64; 4],
            db_ticks: [Some(0); 4],
            steps: BTreeMap::new(),
        };
        for round in 0..rounds {
            let batch_id = format!("b{size}r{round}");
            for k in 0..APPROACHES.len() {
                let i = (round + k) % APPROACHES.len();
                let one = self.once(APPROACHES[i], size, &batch_id, offset).await?;
                out.add(i, one);
            }
            offset += records_per_batch;
        }
        Ok(out)
    }
}

/// The measured rounds of every approach (indexed as [`APPROACHES`]) at one batch size.
struct Rounds {
    times: [Vec<Duration>; 4],
    /// Statements of one batch.
    statements: [u64; 4],
    /// The database's CPU ticks over all rounds (`None` without its pid).
    db_ticks: [Option<u64>; 4],
    /// The pipeline's wave durations, one per round.
    steps: BTreeMap<&'static str, Vec<Duration>>,
}

impl Rounds {
    fn add(&mut self, i: usize, one: Once) {
        self.times[i].push(one.elapsed);
        self.statements[i] = one.statements;
        self.db_ticks[i] = self.db_ticks[i].zip(one.db_ticks).map(|(a, b)| a + b);
        for (step, d) in one.steps {
            self.steps.entry(step).or_default().push(d);
        }
    }

    /// Prints the table row of batch size `size` and returns it as JSON
    /// (`tck`: clock ticks per second of the database's CPU time).
    fn row(self, size: usize, rounds: usize, tck: f64) -> Value {
        let medians = self.times.map(median);
        let rate = |d: Duration| size as f64 / d.as_secs_f64();
        let (p, n, r, pp) = (medians[0], medians[1], medians[2], medians[3]);
        let (vs_naive, vs_raw) = (rate(p) / rate(n), rate(p) / rate(r));
        let cell = |d: Duration| format!("{:.0} msg/s ({:.1} ms)", rate(d), ms(d));
        println!(
            "| {size} | {} | {rounds} | {} | {} | {} | {} | {vs_naive:.1}× | {:.0}% |",
            input::senders_for(size),
            cell(p),
            cell(n),
            cell(r),
            cell(pp),
            vs_raw * 100.0
        );
        let messages = (size * rounds) as f64;
        let approach = |i: usize| {
            let db_us = self.db_ticks[i].map(|t| t as f64 / tck / messages * 1e6);
            json!({"ms": ms(medians[i]), "msgs_per_s": rate(medians[i]),
                "statements": self.statements[i], "db_cpu_us_per_msg": db_us})
        };
        let step_ms: serde_json::Map<String, Value> = self
            .steps
            .into_iter()
            .map(|(step, ds)| (step.to_owned(), json!(ms(median(ds)))))
            .collect();
        json!({
            "batch": size, "senders": input::senders_for(size), "rounds": rounds,
            "pipeline": approach(0), "naive": approach(1), "raw": approach(2),
            "raw_per_partition": approach(3),
            "pipeline_vs_naive": vs_naive, "pipeline_vs_raw": vs_raw,
            "pipeline_wave_ms": step_ms,
        })
    }
}
