//! One micro-batch: decode, dead-letter the poison, run the pipeline for each
//! workspace (concurrently, up to a bound), retrying on database failures.
//!
//! Guarantee: [`BatchProcessor::process`] returns `Ok` only when every record
//! of the batch is either stored or acknowledged by the dead-letter topic;
//! only then may the caller commit. On a database failure it waits with
//! capped exponential backoff and runs the whole batch again (every write is
//! idempotent), for as long as it takes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tracing::{info, warn};

use crate::config::{ConsumerConfig, RetryConfig};
use crate::dead_letter::DeadLetters;
use crate::decode::{self, DecodedRecord, RawRecord};
use crate::metrics::{Metrics, skipped_kind_label};
use crate::pipeline::{self, Faults, Outcome};
use crate::store::{DbStats, Store, StoreError};

/// Why a batch could not be completed. Both stop the consumer without a commit.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("shutdown requested while retrying")]
    Shutdown,
    #[error("injected failure after step {0}")]
    Injected(&'static str),
}

/// What a completed micro-batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub records: usize,
    pub workspaces: usize,
    pub messages_inserted: u64,
    pub duplicates_skipped: u64,
    pub dead_lettered: usize,
    pub db_requests: u64,
    pub db_round_trips: u64,
    pub attempts: u32,
}

/// Everything needed to process micro-batches.
#[derive(Debug, Clone)]
pub struct BatchProcessor {
    pub store: Store,
    pub dead_letters: DeadLetters,
    pub metrics: Metrics,
    pub consumer: ConsumerConfig,
    pub retry: RetryConfig,
    pub faults: Faults,
}

impl BatchProcessor {
    /// Processes `messages`; `wait(backoff)` is awaited between attempts and
    /// returns `false` to abandon (shutdown).
    pub async fn process<W, F>(
        &self,
        messages: &[OwnedMessage],
        mut wait: W,
    ) -> Result<BatchReport, BatchError>
    where
        W: FnMut(Duration) -> F,
        F: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        let mut report = BatchReport {
            records: messages.len(),
            ..BatchReport::default()
        };
        let mut decoded = Vec::with_capacity(messages.len());
        for m in messages {
            match decode_message(m) {
                Ok(d) => decoded.push(d),
                Err(poison) => {
                    let mut backoff = self.retry.initial_backoff;
                    while let Err(err) = self.dead_letters.send(m, &poison.to_string()).await {
                        warn!(cause = %err, "dead-letter write failed; retrying");
                        if !wait(backoff).await {
                            return Err(BatchError::Shutdown);
                        }
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                    }
                    warn!(
                        reason = poison.kind,
                        partition = m.partition(),
                        offset = m.offset(),
                        "record dead-lettered"
                    );
                    self.metrics
                        .dead_lettered
                        .with_label_values(&[poison.kind])
                        .inc();
                    report.dead_lettered += 1;
                }
            }
        }
        let mut by_workspace: BTreeMap<&str, Vec<&DecodedRecord>> = BTreeMap::new();
        for d in &decoded {
            by_workspace
                .entry(d.workspace_id.as_str())
                .or_default()
                .push(d);
        }
        report.workspaces = by_workspace.len();

        let mut backoff = self.retry.initial_backoff;
        let outcomes = loop {
            report.attempts += 1;
            let stats = DbStats::default();
            match self.run_workspaces(&by_workspace, &stats).await {
                Ok(outcomes) => {
                    report.db_requests = stats.requests();
                    report.db_round_trips = outcomes.iter().map(|(_, rt)| *rt).max().unwrap_or(0);
                    self.metrics.db_requests.inc_by(stats.requests());
                    break outcomes;
                }
                Err(StoreError::Injected(step)) => {
                    return Err(BatchError::Injected(step));
                }
                Err(err) => {
                    self.metrics.db_requests.inc_by(stats.requests());
                    self.metrics.db_failures.inc();
                    warn!(cause = %err, backoff_ms = backoff.as_millis() as u64, attempt = report.attempts, "database write failed; nothing committed, retrying");
                    if !wait(backoff).await {
                        return Err(BatchError::Shutdown);
                    }
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
            }
        };
        for (outcome, _) in &outcomes {
            report.messages_inserted += outcome.messages_inserted;
            report.duplicates_skipped += outcome.duplicates_skipped;
        }
        self.record_metrics(&report, &outcomes, started.elapsed());
        Ok(report)
    }

    async fn run_workspaces(
        &self,
        by_workspace: &BTreeMap<&str, Vec<&DecodedRecord>>,
        batch_stats: &DbStats,
    ) -> Result<Vec<(Outcome, u64)>, StoreError> {
        let futures: Vec<_> = by_workspace
            .iter()
            .map(|(ws, records)| self.run_one(ws, records, batch_stats))
            .collect();
        stream::iter(futures)
            .buffer_unordered(self.consumer.workspace_concurrency)
            .try_collect()
            .await
    }

    async fn run_one(
        &self,
        workspace_id: &str,
        records: &[&DecodedRecord],
        batch_stats: &DbStats,
    ) -> Result<(Outcome, u64), StoreError> {
        let stats = DbStats::default();
        let outcome =
            pipeline::run_workspace(&self.store, workspace_id, records, self.faults, &stats).await;
        batch_stats.merge(&stats);
        outcome.map(|o| (o, stats.round_trips()))
    }

    fn record_metrics(&self, report: &BatchReport, outcomes: &[(Outcome, u64)], elapsed: Duration) {
        let m = &self.metrics;
        m.batches.inc();
        m.records_consumed.inc_by(report.records as u64);
        m.batch_records.observe(report.records as f64);
        m.batch_duration.observe(elapsed.as_secs_f64());
        m.db_requests_per_batch.observe(report.db_requests as f64);
        m.db_round_trips_per_batch
            .observe(report.db_round_trips as f64);
        for (o, _) in outcomes {
            m.messages_inserted.inc_by(o.messages_inserted);
            m.duplicates_skipped.inc_by(o.duplicates_skipped);
            m.contacts_created.inc_by(o.contacts_created);
            m.conversations_created.inc_by(o.conversations_created);
            m.statuses_applied.inc_by(o.statuses_applied);
            for kind in &o.skipped_kinds {
                m.events_skipped
                    .with_label_values(&[skipped_kind_label(kind)])
                    .inc();
            }
            for (step, d) in &o.step_durations {
                m.step_duration
                    .with_label_values(&[step.as_str()])
                    .observe(d.as_secs_f64());
            }
        }
        info!(
            duration_ms = elapsed.as_millis() as u64,
            records = report.records,
            workspaces = report.workspaces,
            messages = report.messages_inserted,
            duplicates = report.duplicates_skipped,
            dead_lettered = report.dead_lettered,
            statements = report.db_requests,
            round_trips = report.db_round_trips,
            "micro-batch stored"
        );
    }
}

fn decode_message(m: &OwnedMessage) -> Result<DecodedRecord, decode::Poison> {
    let headers: Vec<(&str, &[u8])> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    decode::decode(&RawRecord {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key(),
        value: m.payload(),
        headers: &headers,
    })
}
