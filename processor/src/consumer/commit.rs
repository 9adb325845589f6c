//! Offset commits: the last step of a micro-batch.
//!
//! Guarantee: [`store_owned`] stores for commit, for each partition of the
//! batch that is still assigned to this consumer, the offset after the
//! highest record of the batch; partitions no longer assigned are skipped.
//! Only stored offsets are ever committed (`enable.auto.offset.store` is
//! off), and storing is local: the loop never waits on the broker.

use std::collections::BTreeMap;

use rdkafka::consumer::Consumer;
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

/// Stores, for commit, the batch's offsets for partitions still owned, then
/// records the end-to-end latency of its records. librdkafka commits stored
/// offsets every `consumer.commit_interval`, before it gives up a partition,
/// and on close; the results reach [`GroupContext`](super::GroupContext).
pub fn store_owned(
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
        consumer.store_offsets(&tpl)?;
        consumer.context().stored(&tpl);
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
    Ok(())
}
