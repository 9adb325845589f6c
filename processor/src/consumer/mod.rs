//! The consumer-group loop: micro-batches in, offsets out.
//!
//! Delivery promise: a batch's offsets are stored for commit only after
//! [`BatchProcessor`] has stored (or dead-lettered) every record of it, and
//! only for partitions this processor still owns; librdkafka commits nothing
//! but stored offsets (on `consumer.commit_interval`, before a revoke, on
//! close), so the loop never waits on the broker. A partition revoked
//! mid-batch is left uncommitted; its new owner reads those records again,
//! which the idempotent pipeline absorbs. While the database is down the consumer
//! pauses its partitions but keeps polling, so it stays in the group, and it
//! resumes by itself when a retry succeeds. A record polled while paused (from
//! a partition assigned during the wait) is sought back; if the seek fails,
//! the record is held and opens the next batch, so no later commit can pass
//! it unprocessed. A failed commit is logged and counted; librdkafka's next
//! commit carries the same stored offsets again.

mod batch;
mod commit;
mod context;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use tokio::sync::watch;
use tracing::{info, warn};

pub use batch::{BatchError, BatchProcessor, BatchReport};
pub use commit::next_offsets;
pub use context::GroupContext;

use crate::config::{ConsumerConfig, ProcessorConfig};
use crate::metrics::Metrics;
use crate::pipeline::OwnerCache;

pub type GroupConsumer = StreamConsumer<GroupContext>;

/// Creates the group consumer and subscribes it to the webhook topic.
pub fn subscribe(cfg: &ProcessorConfig, metrics: &Metrics) -> anyhow::Result<Arc<GroupConsumer>> {
    let c = &cfg.consumer;
    let consumer: GroupConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &c.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            c.commit_interval.as_millis().to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &c.auto_offset_reset)
        .set(
            "session.timeout.ms",
            c.session_timeout.as_millis().to_string(),
        )
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("fetch.wait.max.ms", "20")
        .set(
            "statistics.interval.ms",
            c.lag_interval.as_millis().to_string(),
        )
        .create_with_context(GroupContext::new(&cfg.kafka.webhook_topic, metrics))?;
    consumer.subscribe(&[&cfg.kafka.webhook_topic])?;
    Ok(Arc::new(consumer))
}

/// Runs until `shutdown` turns true, or (tests only, feature
/// `fault-injection`) a batch fails for good with an injected crash. Returns the number of batches completed.
pub async fn run(
    consumer: Arc<GroupConsumer>,
    processor: BatchProcessor,
    cfg: ConsumerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let mut completed = 0u64;
    let held: Held = Arc::default();
    let mut cache = OwnerCache::default();
    #[cfg(feature = "fault-injection")]
    let faults: SeekFaults = processor.faults;
    #[cfg(not(feature = "fault-injection"))]
    let faults: SeekFaults = ();
    loop {
        let first = std::mem::take(&mut *lock(&held));
        let Some(batch) = next_batch(&consumer, &cfg, &mut shutdown, first).await else {
            info!(batches = completed, "consumer stopping");
            return Ok(completed);
        };
        let waiter = |backoff: Duration| {
            let consumer = Arc::clone(&consumer);
            let mut shutdown = shutdown.clone();
            let held = Arc::clone(&held);
            async move { pause_and_wait(&consumer, backoff, &mut shutdown, &held, faults).await }
        };
        // Another processor may have written since a rebalance.
        cache.follow(consumer.context().rebalances());
        match processor.process(&batch, waiter, &mut cache).await {
            Ok(_report) => {
                // A failed offset store (the partition just revoked, say)
                // must not stop the consumer: the batch is stored, and its
                // records are re-read by their owner, which the pipeline absorbs.
                if let Err(err) = commit::store_owned(&consumer, &batch, &processor.metrics) {
                    warn!(cause = %err, "storing the offsets failed; the records will be read again");
                } else {
                    completed += 1;
                }
                resume_all(&consumer);
            }
            Err(BatchError::Shutdown) => {
                info!("shutdown during retries; batch left uncommitted");
                return Ok(completed);
            }
            Err(BatchError::Layout(err)) => {
                tracing::error!(cause = %err, "the webhook topic changed; stopping without commit");
                return Err(anyhow::Error::new(err));
            }
            #[cfg(feature = "fault-injection")]
            Err(BatchError::Injected(e)) => {
                tracing::error!(cause = %e, "injected failure; stopping without commit");
                return Err(anyhow::anyhow!(e));
            }
        }
    }
}

/// The faults the consumer's seeks obey (tests only, feature `fault-injection`).
#[cfg(feature = "fault-injection")]
type SeekFaults = crate::pipeline::faults::Faults;
#[cfg(not(feature = "fault-injection"))]
type SeekFaults = ();

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
    faults: SeekFaults,
) -> bool {
    pause_all(consumer);
    let deadline = tokio::time::Instant::now() + backoff;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return false,
            () = tokio::time::sleep_until(deadline) => return true,
            received = consumer.recv() => {
                // Paused partitions deliver nothing; a record here comes from a
                // partition assigned during the outage.
                if let Ok(m) = received {
                    seek_back_or_hold(consumer, m, held, &faults);
                    pause_all(consumer);
                }
            }
        }
    }
}

/// A record polled while paused is sought back, so it is re-read after
/// resume (its offset is neither stored nor committed). If the seek fails,
/// the position is already past it: the record is held for the next batch.
fn seek_back_or_hold(
    consumer: &GroupConsumer,
    m: BorrowedMessage<'_>,
    held: &Held,
    faults: &SeekFaults,
) {
    let _ = faults;
    #[cfg(feature = "fault-injection")]
    let seek = if crate::pipeline::faults::seek_fails(faults) {
        Err(rdkafka::error::KafkaError::Seek(
            "injected seek failure".into(),
        ))
    } else {
        seek_back(consumer, &m)
    };
    #[cfg(not(feature = "fault-injection"))]
    let seek = seek_back(consumer, &m);
    if let Err(e) = seek {
        warn!(cause = %e, partition = m.partition(), offset = m.offset(), "seek back failed; holding the record for the next batch");
        lock(held).push(m.detach());
    }
}

fn seek_back(consumer: &GroupConsumer, m: &BorrowedMessage<'_>) -> KafkaResult<()> {
    let to = rdkafka::Offset::Offset(m.offset());
    consumer.seek(m.topic(), m.partition(), to, Duration::from_secs(1))
}

fn pause_all(consumer: &GroupConsumer) {
    if let Ok(assignment) = consumer.assignment()
        && let Err(e) = consumer.pause(&assignment)
    {
        warn!(cause = %e, "pausing partitions failed");
    }
}

fn resume_all(consumer: &GroupConsumer) {
    if let Ok(assignment) = consumer.assignment()
        && let Err(e) = consumer.resume(&assignment)
    {
        warn!(cause = %e, "resuming partitions failed");
    }
}
