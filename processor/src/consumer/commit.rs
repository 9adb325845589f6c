//! Offset commits: the last step of a micro-batch.
//!
//! Guarantee: [`commit_owned`] commits, for each partition of the batch that
//! is still assigned to this consumer, the offset after the highest record of
//! the batch, synchronously. Partitions no longer assigned are skipped.
//! The blocking librdkafka calls (the commit and the watermark queries) run
//! on tokio's blocking pool (`spawn_blocking`), as the ingress's flush does,
//! so they never stall the runtime's workers and need no multi-thread runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use shared::record;

use super::GroupConsumer;
use crate::metrics::Metrics;

/// For each (topic, partition) of `batch`, the next offset to read (pure).
pub fn next_offsets(batch: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut next = BTreeMap::new();
    for m in batch {
        let entry = next
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert(m.offset() + 1);
        *entry = (*entry).max(m.offset() + 1);
    }
    next
}

/// Commits the batch's offsets for partitions still owned, then updates the
/// lag and end-to-end latency metrics.
pub async fn commit_owned(
    consumer: &Arc<GroupConsumer>,
    batch: &[OwnedMessage],
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let assignment = consumer.assignment()?;
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next_offsets(batch) {
        if assignment.find_partition(&topic, partition).is_some() {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        } else {
            tracing::info!(
                partition,
                "partition revoked mid-batch; its offsets are left to the new owner"
            );
        }
    }
    if tpl.count() > 0 {
        let tpl = tpl.clone();
        blocking(consumer, move |c| c.commit(&tpl, CommitMode::Sync)).await??;
    }
    let now = record::now_ms();
    for m in batch {
        let received = m
            .headers()
            .and_then(|hs| record::received_at_ms(hs).ok().flatten());
        if let Some(received) = received {
            metrics
                .end_to_end_latency
                .observe((now - received).max(0) as f64 / 1000.0);
        }
    }
    let committed: Vec<(String, i32, Offset)> = tpl
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition(), e.offset()))
        .collect();
    for (topic, partition, offset) in committed {
        let label = partition.to_string();
        let watermarks = blocking(consumer, move |c| {
            c.fetch_watermarks(&topic, partition, Duration::from_millis(500))
        })
        .await;
        if let (Ok(Ok((_, high))), Offset::Offset(committed)) = (watermarks, offset) {
            metrics
                .consumer_lag
                .with_label_values(&[&label])
                .set((high - committed).max(0));
        }
    }
    Ok(())
}

/// Runs a blocking call on the consumer on tokio's blocking pool.
async fn blocking<T, F>(consumer: &Arc<GroupConsumer>, call: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&GroupConsumer) -> T + Send + 'static,
{
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || call(&consumer))
        .await
        .context("blocking consumer call panicked")
}
