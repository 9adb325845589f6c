//! Replaying one partition: read records up to the start-time watermark,
//! write their routed copies, and commit past them only once every copy of
//! the window is acknowledged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::try_join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::route::{replay_headers, route};
use super::{Range, ReplayOptions, ReplayReport, Unroutable, blocking};
use crate::registry::Registry;
use crate::routing::PlannedRecord;

/// Records acknowledged (and committed) together.
const WINDOW_RECORDS: usize = 256;
/// Bytes of body in flight at once (well under the producer's 128 MiB queue).
const WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// Longest wait for the next record below the start-time high watermark.
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);

/// The state of one run: what it writes with, and what it did so far.
pub(super) struct Run<'a> {
    pub(super) consumer: Arc<StreamConsumer>,
    pub(super) producer: FutureProducer,
    pub(super) registry: &'a Registry,
    pub(super) options: &'a ReplayOptions,
    pub(super) target: &'a str,
    pub(super) ack_timeout: Duration,
    pub(super) report: ReplayReport,
}

/// Records written but not yet acknowledged, and the offset to commit once they are.
#[derive(Default)]
struct Window {
    deliveries: Vec<DeliveryFuture>,
    bytes: usize,
    handled: u64,
    commit_next: Option<i64>,
}

impl Run<'_> {
    /// Replays one partition from `range.start` towards `range.end`.
    pub(super) async fn partition(&mut self, range: &Range) -> anyhow::Result<()> {
        let topic = self.options.from_topic.clone();
        if range.start >= range.end {
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, range.partition, Offset::Offset(range.start))?;
        self.consumer
            .assign(&assignment)
            .with_context(|| format!("assigning {topic}/{}", range.partition))?;
        let mut next = range.start;
        let mut window = Window::default();
        while next < range.end && self.options.max.is_none_or(|max| self.report.read < max) {
            let message = tokio::time::timeout(RECORD_TIMEOUT, self.consumer.recv())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no record arrived from {topic}/{} at offset {next} within {RECORD_TIMEOUT:?}",
                        range.partition
                    )
                })?
                .with_context(|| format!("reading {topic}/{}", range.partition))?
                .detach();
            if message.partition() != range.partition || message.offset() < next {
                continue;
            }
            next = message.offset() + 1;
            let routed = route(&message, self.registry);
            if let Some(reason) = &routed.unroutable {
                let stop = Unroutable {
                    partition: message.partition(),
                    offset: message.offset(),
                    reason: reason.clone(),
                };
                if !self.options.skip_unroutable {
                    tracing::warn!(partition = stop.partition, offset = stop.offset, reason = %stop.reason, "record still unroutable; stopping before it");
                    self.report.stopped_at = Some(stop);
                    break;
                }
                tracing::warn!(partition = stop.partition, offset = stop.offset, reason = %stop.reason, "record still unroutable; skipped");
                self.report.skipped += 1;
            } else {
                self.report.replayed += 1;
            }
            let replayed_from = format!("{topic}/{}/{}", message.partition(), message.offset());
            for planned in &routed.records {
                self.send(&mut window, &message, planned, &replayed_from)
                    .await?;
            }
            self.report.read += 1;
            window.handled += 1;
            window.commit_next = Some(next);
            if window.deliveries.len() >= WINDOW_RECORDS || window.bytes >= WINDOW_BYTES {
                self.settle(&mut window, range.partition).await?;
            }
        }
        self.settle(&mut window, range.partition).await?;
        self.consumer
            .unassign()
            .context("releasing the partition")?;
        Ok(())
    }

    /// Queues one routed copy (settling the window first when the queue is full).
    async fn send(
        &mut self,
        window: &mut Window,
        message: &OwnedMessage,
        planned: &PlannedRecord,
        replayed_from: &str,
    ) -> anyhow::Result<()> {
        let body = message.payload().unwrap_or_default();
        loop {
            let record = FutureRecord::to(self.target)
                .key(planned.key.as_str())
                .payload(body)
                .headers(replay_headers(message, planned, replayed_from));
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    window.deliveries.push(delivery);
                    window.bytes += body.len();
                    self.report.written += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if !window.deliveries.is_empty() =>
                {
                    let pending = std::mem::take(&mut window.deliveries);
                    self.await_acks(pending).await?;
                    window.bytes = 0;
                }
                Err((err, _)) => {
                    return Err(err).with_context(|| format!("writing to {}", self.target));
                }
            }
        }
    }

    async fn await_acks(&self, deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
        let acks = tokio::time::timeout(
            self.ack_timeout + Duration::from_secs(1),
            try_join_all(deliveries),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "Kafka did not acknowledge the replayed records within {:?}",
                self.ack_timeout
            )
        })?
        .context("a replayed record was cancelled")?;
        for ack in acks {
            ack.map_err(|(err, _)| err)
                .with_context(|| format!("Kafka refused a replayed record for {}", self.target))?;
        }
        Ok(())
    }

    /// Waits for every ack of the window, then commits past its records.
    async fn settle(&mut self, window: &mut Window, partition: i32) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut window.deliveries);
        self.await_acks(pending).await?;
        window.bytes = 0;
        if let Some(next) = window.commit_next.take() {
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(
                &self.options.from_topic,
                partition,
                Offset::Offset(next),
            )?;
            blocking(&self.consumer, move |c| {
                c.commit(&offsets, CommitMode::Sync)
                    .context("committing the replay offsets")
            })
            .await?;
            tracing::debug!(
                partition,
                next,
                records = window.handled,
                "replay progress committed"
            );
            window.handled = 0;
        }
        Ok(())
    }
}
