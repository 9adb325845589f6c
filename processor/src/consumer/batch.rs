//! One micro-batch: decode, dead-letter the poison, run the pipeline for each
//! workspace (concurrently, up to a bound), retrying on database failures.
//!
//! Guarantee: [`BatchProcessor::process`] returns `Ok` only when every record
//! of the batch is either stored or acknowledged by the dead-letter topic;
//! only then may the caller commit. On a transient database failure it waits
//! with capped exponential backoff and runs the whole batch again (every
//! write is idempotent), for as long as it takes. On a permanent one (see
//! [`StoreError::is_permanent`]) it splits each workspace's records in
//! halves, in offset order, until the records the database refuses are
//! alone; those are dead-lettered (reason [`PoisonReason::DatabasePermanent`], with the
//! error and their source coordinates) and the rest are stored. One bad
//! record therefore never holds back the others, nor is it retried forever.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};
use shared::backoff::Backoff;
use shared::record::EnvelopeKey;
use tracing::{info, warn};

use crate::clocks::{ClockError, Clocks};
use crate::config::{ConsumerConfig, RetryConfig};
use crate::dead_letter::{DeadLetters, PoisonReason};
use crate::decode::{self, DecodedRecord, RawRecord};
use crate::metrics::Metrics;
use crate::pipeline::{self, BatchOutcome, Outcome, OwnerCache, WorkspaceRecords};
use crate::store::{DbStats, Store, StoreError};

/// Why a batch could not be completed. Both stop the consumer without a commit.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("shutdown requested while retrying")]
    Shutdown,
    /// The webhook topic changed under the write clocks: nothing of the
    /// batch is stored; the processor stops ([`ClockError::is_layout_change`]).
    #[error(transparent)]
    Layout(ClockError),
    /// Tests only (feature `fault-injection`): an injected crash.
    #[cfg(feature = "fault-injection")]
    #[error(transparent)]
    Injected(StoreError),
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
    /// Verifies each record's envelope MAC.
    pub envelope_key: EnvelopeKey,
    /// Gives each record its write clock.
    pub clocks: Clocks,
    /// Tests only (feature `fault-injection`): the faults to inject.
    #[cfg(feature = "fault-injection")]
    pub faults: pipeline::faults::Faults,
}

impl BatchProcessor {
    /// Processes `messages`; `wait(backoff)` is awaited between attempts and
    /// returns `false` to abandon (shutdown). `cache` is the consumer's
    /// [`OwnerCache`], emptied here when an attempt fails.
    pub async fn process<W, F>(
        &self,
        messages: &[OwnedMessage],
        mut wait: W,
        cache: &mut OwnerCache,
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
            match decode_message(m, &self.envelope_key) {
                Ok(d) => decoded.push(d),
                Err(poison) => {
                    self.dead_letter(m, &poison.to_string(), poison.kind, &mut wait)
                        .await?;
                    report.dead_lettered += 1;
                }
            }
        }
        self.stamp(&mut decoded, &mut wait).await?;
        let mut by_workspace: BTreeMap<&str, Vec<&DecodedRecord>> = BTreeMap::new();
        for d in &decoded {
            by_workspace
                .entry(d.workspace_id.as_str())
                .or_default()
                .push(d);
        }
        report.workspaces = by_workspace.len();
        let outcome = self
            .store_all(&by_workspace, messages, (&mut report, cache), &mut wait)
            .await?;
        for ws in &outcome.workspaces {
            report.messages_inserted += ws.messages_inserted;
            report.duplicates_skipped += ws.duplicates_skipped;
        }
        self.clocks.note_progress(&decoded);
        self.record_metrics(&report, &outcome, started.elapsed());
        Ok(report)
    }

    /// Gives every record its write clock, waiting out database and Kafka
    /// failures; a changed topic stops the batch ([`BatchError::Layout`]).
    async fn stamp<W, F>(
        &self,
        decoded: &mut [DecodedRecord],
        wait: &mut W,
    ) -> Result<(), BatchError>
    where
        W: FnMut(Duration) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut backoff = self.backoff();
        loop {
            match self.clocks.stamp(decoded).await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_layout_change() => return Err(BatchError::Layout(err)),
                Err(err) => {
                    // A database outage often shows first here, on a
                    // partition not yet seen: it counts like a failed write.
                    if matches!(err, ClockError::Store(_)) {
                        self.metrics.db_failures.inc();
                    }
                    warn!(cause = %err, "reading the write clocks failed; nothing committed, retrying");
                    if !wait(backoff.next()).await {
                        return Err(BatchError::Shutdown);
                    }
                }
            }
        }
    }

    /// Runs the pipeline until it succeeds: transient failures are retried
    /// with capped backoff (nothing committed meanwhile); a permanent one
    /// isolates and dead-letters the records that cause it.
    async fn store_all<W, F>(
        &self,
        by_workspace: &BTreeMap<&str, Vec<&DecodedRecord>>,
        messages: &[OwnedMessage],
        (report, cache): (&mut BatchReport, &mut OwnerCache),
        wait: &mut W,
    ) -> Result<BatchOutcome, BatchError>
    where
        W: FnMut(Duration) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut backoff = self.backoff();
        // Without the records an isolation dead-lettered: a retry after a
        // later transient error neither stores nor dead-letters them again.
        let mut live = by_workspace.clone();
        loop {
            report.attempts += 1;
            let stats = DbStats::default();
            let batch: Vec<WorkspaceRecords<'_>> =
                live.iter().map(|(ws, r)| (*ws, r.clone())).collect();
            let mut result = self.run_batch(&batch, &stats, cache).await;
            if let Err(err) = &result {
                // Some of its writes may have landed: the cache may differ.
                cache.clear();
                if err.is_permanent() {
                    warn!(cause = %err, "permanent database error; isolating the records that cause it");
                    let mut dead = Vec::new();
                    result = self
                        .isolate(&live, messages, &stats, &mut dead, report, wait)
                        .await?;
                    for records in live.values_mut() {
                        records.retain(|r| !dead.contains(&(r.partition, r.offset)));
                    }
                }
            }
            self.metrics.db_requests.inc_by(stats.requests());
            match result {
                Ok(outcome) => {
                    report.db_requests = stats.requests();
                    report.db_round_trips = outcome.round_trips;
                    return Ok(outcome);
                }
                #[cfg(feature = "fault-injection")]
                Err(e @ (StoreError::Injected(_) | StoreError::InjectedWithin { .. })) => {
                    return Err(BatchError::Injected(e));
                }
                Err(err) => {
                    self.metrics.db_failures.inc();
                    let delay = backoff.next();
                    warn!(cause = %err, backoff_ms = delay.as_millis() as u64, attempt = report.attempts, "database write failed; nothing committed, retrying");
                    if !wait(delay).await {
                        return Err(BatchError::Shutdown);
                    }
                }
            }
        }
    }

    /// Re-runs each workspace's records in ever smaller runs, in offset
    /// order, until every run either succeeds or is one record that fails
    /// permanently; those are dead-lettered with the error. A transient
    /// error stops the isolation (the caller retries the whole batch).
    async fn isolate<W, F>(
        &self,
        by_workspace: &BTreeMap<&str, Vec<&DecodedRecord>>,
        messages: &[OwnedMessage],
        stats: &DbStats,
        dead: &mut Vec<(i32, i64)>,
        report: &mut BatchReport,
        wait: &mut W,
    ) -> Result<Result<BatchOutcome, StoreError>, BatchError>
    where
        W: FnMut(Duration) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut outcome = BatchOutcome::default();
        for (ws, records) in by_workspace {
            let mut runs: VecDeque<&[&DecodedRecord]> = VecDeque::from([records.as_slice()]);
            while let Some(run) = runs.pop_front() {
                match self.run_workspace(ws, run, stats).await {
                    Ok(one) => outcome.workspaces.push(one),
                    Err(err) if err.is_permanent() && run.len() == 1 => {
                        let source = messages.iter().find(|m| {
                            m.partition() == run[0].partition && m.offset() == run[0].offset
                        });
                        if let Some(m) = source {
                            let reason = format!("database refused the record: {err}");
                            self.dead_letter(m, &reason, PoisonReason::DatabasePermanent, wait)
                                .await?;
                            report.dead_lettered += 1;
                            dead.push((run[0].partition, run[0].offset));
                        }
                    }
                    Err(err) if err.is_permanent() => {
                        let (first, second) = run.split_at(run.len() / 2);
                        runs.push_front(second);
                        runs.push_front(first);
                    }
                    Err(err) => return Ok(Err(err)),
                }
            }
        }
        outcome.round_trips = stats.round_trips();
        Ok(Ok(outcome))
    }

    /// Writes `m` to the dead-letter topic, retrying until Kafka has it.
    async fn dead_letter<W, F>(
        &self,
        m: &OwnedMessage,
        reason: &str,
        kind: PoisonReason,
        wait: &mut W,
    ) -> Result<(), BatchError>
    where
        W: FnMut(Duration) -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut backoff = self.backoff();
        while let Err(err) = self.dead_letters.send(m, reason).await {
            warn!(cause = %err, "dead-letter write failed; retrying");
            if !wait(backoff.next()).await {
                return Err(BatchError::Shutdown);
            }
        }
        warn!(
            reason = kind.as_str(),
            partition = m.partition(),
            offset = m.offset(),
            "record dead-lettered"
        );
        self.metrics
            .dead_lettered
            .with_label_values(&[kind.as_str()])
            .inc();
        Ok(())
    }

    async fn run_batch(
        &self,
        batch: &[WorkspaceRecords<'_>],
        stats: &DbStats,
        cache: &mut OwnerCache,
    ) -> Result<BatchOutcome, StoreError> {
        #[cfg(feature = "fault-injection")]
        let run = pipeline::faults::run_batch(&self.store, batch, self.faults, stats, Some(cache));
        #[cfg(not(feature = "fault-injection"))]
        let run = pipeline::run_batch_cached(&self.store, batch, stats, cache);
        run.await
    }

    async fn run_workspace(
        &self,
        ws: &str,
        records: &[&DecodedRecord],
        stats: &DbStats,
    ) -> Result<Outcome, StoreError> {
        #[cfg(feature = "fault-injection")]
        let run = pipeline::faults::run_workspace(&self.store, ws, records, self.faults, stats);
        #[cfg(not(feature = "fault-injection"))]
        let run = pipeline::run_workspace(&self.store, ws, records, stats);
        run.await
    }

    /// The delays between attempts, from `retry`.
    fn backoff(&self) -> Backoff {
        Backoff::new(self.retry.initial_backoff, self.retry.max_backoff)
    }

    fn record_metrics(&self, report: &BatchReport, outcome: &BatchOutcome, elapsed: Duration) {
        let m = &self.metrics;
        m.batches.inc();
        m.records_consumed.inc_by(report.records as u64);
        m.batch_records.observe(report.records as f64);
        m.batch_duration.observe(elapsed.as_secs_f64());
        m.db_requests_per_batch.observe(report.db_requests as f64);
        m.db_round_trips_per_batch
            .observe(report.db_round_trips as f64);
        let keys = outcome.lookup_keys;
        m.lookup_keys
            .with_label_values(&["cache"])
            .inc_by(keys.cache);
        m.lookup_keys
            .with_label_values(&["database"])
            .inc_by(keys.database);
        for (wave, d) in &outcome.wave_durations {
            m.wave_duration
                .with_label_values(&[wave.as_str()])
                .observe(d.as_secs_f64());
        }
        for o in &outcome.workspaces {
            m.messages_inserted.inc_by(o.messages_inserted);
            m.duplicates_skipped.inc_by(o.duplicates_skipped);
            m.contacts_created.inc_by(o.contacts_created);
            m.conversations_created.inc_by(o.conversations_created);
            m.statuses_applied.inc_by(o.statuses_applied);
            m.amendments_applied.inc_by(o.amendments_applied);
            m.reactions_written.inc_by(o.reactions_written);
            m.account_events_stored.inc_by(o.account_events_stored);
            for kind in &o.skipped_kinds {
                m.events_skipped.with_label_values(&[kind.as_str()]).inc();
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
            keys_cached = outcome.lookup_keys.cache,
            keys_read = outcome.lookup_keys.database,
            "micro-batch stored"
        );
    }
}

fn decode_message(m: &OwnedMessage, key: &EnvelopeKey) -> Result<DecodedRecord, decode::Poison> {
    let raw = RawRecord {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key(),
        value: m.payload(),
        headers: m.headers(),
    };
    decode::decode(&raw, key)
}
