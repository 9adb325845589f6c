//! The consumer-group loop: micro-batches in, offsets out.
//!
//! Delivery promise: offsets are committed only after [`BatchProcessor`] has
//! stored (or dead-lettered) every record of the batch, and only for
//! partitions this processor still owns. A partition revoked mid-batch is
//! left uncommitted; its new owner reads those records again, which the
//! idempotent pipeline absorbs. While the database is down the consumer
//! pauses its partitions but keeps polling, so it stays in the group, and it
//! resumes by itself when a retry succeeds. A record polled while paused (from
//! a partition assigned during the wait) is sought back; if the seek fails,
//! the record is held and opens the next batch, so no later commit can pass
//! it unprocessed. A failed commit is logged and the loop goes on (the batch
//! is stored; the next commit covers it).

mod batch;
mod commit;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGauge, IntGaugeVec};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message};
use tokio::sync::watch;
use tracing::{info, warn};

pub use batch::{BatchError, BatchProcessor, BatchReport};
pub use commit::next_offsets;

use crate::config::{ConsumerConfig, ProcessorConfig};
use crate::metrics::Metrics;

/// Logs rebalances and tracks how many partitions this processor owns; the
/// loop checks the live assignment again before committing.
#[derive(Debug)]
pub struct RebalanceLogger {
    assigned: IntGauge,
    lag: IntGaugeVec,
}

impl ClientContext for RebalanceLogger {}

impl ConsumerContext for RebalanceLogger {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                info!(partitions = tpl.count(), "partitions revoked");
                // The new owner reports these partitions' lag from now on.
                for elem in tpl.elements() {
                    let _ = self
                        .lag
                        .remove_label_values(&[&elem.partition().to_string()]);
                }
            }
            Rebalance::Assign(tpl) => info!(partitions = tpl.count(), "partitions being assigned"),
            Rebalance::Error(e) => warn!(cause = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        if let Ok(assignment) = consumer.assignment() {
            self.assigned.set(assignment.count() as i64);
        }
    }
}

pub type GroupConsumer = StreamConsumer<RebalanceLogger>;

/// Creates the group consumer and subscribes it to the webhook topic.
pub fn subscribe(cfg: &ProcessorConfig, metrics: &Metrics) -> anyhow::Result<Arc<GroupConsumer>> {
    let c = &cfg.consumer;
    let consumer: GroupConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &c.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &c.auto_offset_reset)
        .set(
            "session.timeout.ms",
            c.session_timeout.as_millis().to_string(),
        )
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("fetch.wait.max.ms", "20")
        .create_with_context(RebalanceLogger {
            assigned: metrics.assigned_partitions.clone(),
            lag: metrics.consumer_lag.clone(),
        })?;
    consumer.subscribe(&[&cfg.kafka.webhook_topic])?;
    Ok(Arc::new(consumer))
}

/// Runs until `shutdown` turns true, or (tests only, feature
/// `fault-injection`) a batch fails for good with an injected crash. Returns the number of batches committed.
pub async fn run(
    consumer: Arc<GroupConsumer>,
    processor: BatchProcessor,
    cfg: ConsumerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let mut committed = 0u64;
    let held: Held = Arc::default();
    loop {
        let first = std::mem::take(&mut *lock(&held));
        let Some(batch) = next_batch(&consumer, &cfg, &mut shutdown, first).await else {
            info!(batches = committed, "consumer stopping");
            return Ok(committed);
        };
        let waiter = |backoff: Duration| {
            let consumer = Arc::clone(&consumer);
            let mut shutdown = shutdown.clone();
            let held = Arc::clone(&held);
            async move { pause_and_wait(&consumer, backoff, &mut shutdown, &held).await }
        };
        match processor.process(&batch, waiter).await {
            Ok(_report) => {
                // A failed commit (the broker restarting, say) must not stop
                // the consumer: the batch is stored, a later batch's commit
                // covers its offsets, and if none comes they are re-read
                // after a restart or rebalance, which the pipeline absorbs.
                if let Err(err) = commit::commit_owned(&consumer, &batch, &processor.metrics) {
                    warn!(cause = %err, "offset commit failed; the next commit covers this batch");
                } else {
                    committed += 1;
                }
                resume_all(&consumer);
            }
            Err(BatchError::Shutdown) => {
                info!("shutdown during retries; batch left uncommitted");
                return Ok(committed);
            }
            #[cfg(feature = "fault-injection")]
            Err(BatchError::Injected(e)) => {
                tracing::error!(cause = %e, "injected failure; stopping without commit");
                return Err(anyhow::anyhow!(e));
            }
        }
    }
}

/// Records polled during a pause whose seek back failed: they open the next batch.
type Held = Arc<std::sync::Mutex<Vec<OwnedMessage>>>;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, Vec<OwnedMessage>> {
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Collects up to `max_records` records (after `first`), closing the batch
/// `max_wait` after its first one. Returns `None` on shutdown.
async fn next_batch(
    consumer: &GroupConsumer,
    cfg: &ConsumerConfig,
    shutdown: &mut watch::Receiver<bool>,
    first: Vec<OwnedMessage>,
) -> Option<Vec<OwnedMessage>> {
    let mut batch = first;
    while batch.is_empty() {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            received = consumer.recv() => match received {
                Ok(m) => batch.push(m.detach()),
                Err(e) => warn!(cause = %e, "kafka receive error"),
            },
        }
    }
    let deadline = tokio::time::Instant::now() + cfg.max_wait;
    while batch.len() < cfg.max_records {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            () = tokio::time::sleep_until(deadline) => break,
            received = consumer.recv() => match received {
                Ok(m) => batch.push(m.detach()),
                Err(e) => warn!(cause = %e, "kafka receive error"),
            },
        }
    }
    Some(batch)
}

/// Between retries: pause every assigned partition (so nothing new arrives),
/// keep polling (so the group does not evict us), wait out the backoff.
async fn pause_and_wait(
    consumer: &GroupConsumer,
    backoff: Duration,
    shutdown: &mut watch::Receiver<bool>,
    held: &Held,
) -> bool {
    if let Ok(assignment) = consumer.assignment() {
        if let Err(e) = consumer.pause(&assignment) {
            warn!(cause = %e, "pausing partitions failed");
        }
    }
    let deadline = tokio::time::Instant::now() + backoff;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return false,
            () = tokio::time::sleep_until(deadline) => return true,
            received = consumer.recv() => {
                // Paused partitions deliver nothing; a record here comes from a
                // partition assigned during the outage and is re-read after
                // resume, since its offset is neither stored nor committed.
                // If the seek fails, the record is kept for the next batch.
                if let Ok(m) = received {
                    let seek = consumer.seek(m.topic(), m.partition(), rdkafka::Offset::Offset(m.offset()), Duration::from_secs(1));
                    if let Err(e) = seek {
                        warn!(cause = %e, partition = m.partition(), offset = m.offset(), "seek back failed; holding the record for the next batch");
                        lock(held).push(m.detach());
                    }
                    if let Ok(assignment) = consumer.assignment() {
                        let _ = consumer.pause(&assignment);
                    }
                }
            }
        }
    }
}

fn resume_all(consumer: &GroupConsumer) {
    if let Ok(assignment) = consumer.assignment() {
        if let Err(e) = consumer.resume(&assignment) {
            warn!(cause = %e, "resuming partitions failed");
        }
    }
}
