//! The consumer's librdkafka callbacks (rebalances, commit results,
//! statistics) and the record of which stored offsets await their commit.
//! Nothing here blocks: each callback only logs and sets metrics.
//!
//! Guarantees:
//! - `assigned_partitions` is the live assignment after every rebalance, and a
//!   revoked partition's `consumer_lag` series is removed (its new owner
//!   reports it).
//! - Every commit librdkafka makes (on its interval, before a revoke, on
//!   close) is counted in `offset_commits_total{result}`; a failure is logged.
//! - `offsets_pending_commit` counts the owned partitions whose stored offset
//!   (see [`GroupContext::stored`]) is ahead of the offset a commit has
//!   confirmed; 0 means everything stored is committed.
//! - [`GroupContext::rebalances`] counts every rebalance (revoke, assign or
//!   error) before its callback returns, so a reader that sees the same count
//!   before and after some work knows no rebalance began in between.
//! - `consumer_lag{partition}` is librdkafka's own figure (high watermark
//!   minus committed offset) from its periodic statistics, for partitions this
//!   consumer is assigned and has committed on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use prometheus::{IntCounter, IntGauge, IntGaugeVec};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Per owned partition: the offset stored for commit, and the last one a
/// commit confirmed.
#[derive(Debug, Default, Clone, Copy)]
struct Offsets {
    stored: i64,
    committed: i64,
}

/// The callbacks of the processor's group consumer.
#[derive(Debug)]
pub struct GroupContext {
    topic: String,
    offsets: Mutex<BTreeMap<i32, Offsets>>,
    rebalances: AtomicU64,
    assigned: IntGauge,
    lag: IntGaugeVec,
    commits_ok: IntCounter,
    commits_failed: IntCounter,
    pending: IntGauge,
}

impl GroupContext {
    /// Callbacks for a consumer of `topic` that report into `metrics`.
    pub fn new(topic: &str, metrics: &Metrics) -> Self {
        Self {
            topic: topic.to_owned(),
            offsets: Mutex::default(),
            rebalances: AtomicU64::new(0),
            assigned: metrics.assigned_partitions.clone(),
            lag: metrics.consumer_lag.clone(),
            commits_ok: metrics.offset_commits.with_label_values(&["ok"]),
            commits_failed: metrics.offset_commits.with_label_values(&["failed"]),
            pending: metrics.offsets_pending_commit.clone(),
        }
    }

    /// How many rebalances have begun.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::SeqCst)
    }

    /// Notes offsets just stored for commit (those of `tpl` on our topic).
    pub fn stored(&self, tpl: &TopicPartitionList) {
        self.update(|offsets| {
            for (partition, offset) in self.ours(tpl) {
                offsets.entry(partition).or_default().stored = offset;
            }
        });
    }

    fn confirmed(&self, tpl: &TopicPartitionList) {
        self.update(|offsets| {
            for (partition, offset) in self.ours(tpl) {
                // A revoked partition is no longer tracked; its late commit
                // result does not bring it back.
                if let Some(o) = offsets.get_mut(&partition) {
                    o.committed = o.committed.max(offset);
                }
            }
        });
    }

    fn ours<'a>(&'a self, tpl: &'a TopicPartitionList) -> impl Iterator<Item = (i32, i64)> + 'a {
        tpl.elements_for_topic(&self.topic)
            .into_iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<i32, Offsets>)) {
        let mut offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut offsets);
        let pending = offsets.values().filter(|o| o.stored > o.committed).count();
        self.pending.set(pending as i64);
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (id, p) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; a negative
            // lag means no committed offset yet.
            if *id >= 0 && p.desired && p.consumer_lag >= 0 {
                self.lag
                    .with_label_values(&[&id.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Revoke(tpl) => {
                info!(partitions = tpl.count(), "partitions revoked");
                self.update(|offsets| {
                    for elem in tpl.elements() {
                        offsets.remove(&elem.partition());
                    }
                });
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

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.commits_ok.inc();
                self.confirmed(offsets);
            }
            Err(e) => {
                self.commits_failed.inc();
                warn!(
                    cause = %e,
                    partitions = offsets.count(),
                    "offset commit failed; the next commit retries these offsets"
                );
            }
        }
    }
}
