//! Offset commits: the last step of a micro-batch.
//!
//! Guarantee: [`commit_owned`] commits, for each partition of the batch that
//! is still assigned to this consumer, the offset after the highest record of
//! the batch, synchronously. Partitions no longer assigned are skipped.

use std::collections::BTreeMap;

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
pub fn commit_owned(
    consumer: &GroupConsumer,
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
        tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync))?;
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
    for elem in tpl.elements() {
        let timeout = std::time::Duration::from_millis(500);
        let watermarks = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(elem.topic(), elem.partition(), timeout)
        });
        if let Ok((_, high)) = watermarks {
            if let Offset::Offset(committed) = elem.offset() {
                metrics
                    .consumer_lag
                    .with_label_values(&[&elem.partition().to_string()])
                    .set((high - committed).max(0));
            }
        }
    }
    Ok(())
}
