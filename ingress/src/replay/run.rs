//! Replaying one partition: read records up to the start-time watermark,
//! write their routed copies, and commit past them only once every copy of
//! the window is acknowledged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::try_join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use shared::record::EnvelopeKey;

use super::route::{EnvelopeCheck, replay_headers, route};
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
    pub(super) envelope_key: EnvelopeKey,
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

/// Whether to go on reading the partition after a record.
enum Next {
    Continue,
    Stop,
}

impl Run<'_> {
    /// Replays one partition from `range.start` towards `range.end`.
    pub(super) async fn partition(&mut self, range: &Range) -> anyhow::Result<()> {
        if range.start >= range.end {
            return Ok(());
        }
        self.assign(range)?;
        let mut next = range.start;
        let mut window = Window::default();
        while next < range.end && self.options.max.is_none_or(|max| self.report.read < max) {
            let message = self.receive(range.partition, next).await?;
            if message.partition() != range.partition || message.offset() < next {
                continue;
            }
            next = message.offset() + 1;
            if let Next::Stop = self.replay_record(&mut window, &message).await? {
                break;
            }
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

    fn assign(&self, range: &Range) -> anyhow::Result<()> {
        let topic = &self.options.from_topic;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, range.partition, Offset::Offset(range.start))?;
        self.consumer
            .assign(&assignment)
            .with_context(|| format!("assigning {topic}/{}", range.partition))
    }

    /// The next record of the assigned partition, within [`RECORD_TIMEOUT`].
    async fn receive(&self, partition: i32, next: i64) -> anyhow::Result<OwnedMessage> {
        let topic = &self.options.from_topic;
        let message = tokio::time::timeout(RECORD_TIMEOUT, self.consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no record arrived from {topic}/{partition} at offset {next} within {RECORD_TIMEOUT:?}"
                )
            })?
            .with_context(|| format!("reading {topic}/{partition}"))?;
        Ok(message.detach())
    }

    /// Routes one record and queues its copies; `Stop` before a record that
    /// is still unroutable, unless those are skipped.
    async fn replay_record(
        &mut self,
        window: &mut Window,
        message: &OwnedMessage,
    ) -> anyhow::Result<Next> {
        let check = if self.options.accept_unsealed {
            EnvelopeCheck::AcceptUnsealed
        } else {
            EnvelopeCheck::Verify(&self.envelope_key)
        };
        let routed = route(message, self.registry, check);
        match &routed.unroutable {
            Some(reason) => {
                if let Next::Stop = self.unroutable(message, reason) {
                    return Ok(Next::Stop);
                }
            }
            None => self.report.replayed += 1,
        }
        if let Some(original) = &routed.headers {
            let replayed_from = format!(
                "{}/{}/{}",
                self.options.from_topic,
                message.partition(),
                message.offset()
            );
            for planned in &routed.records {
                let body = message.payload().unwrap_or_default();
                let sealing = (&self.envelope_key, body);
                let headers = replay_headers(original, planned, &replayed_from, sealing);
                self.send(window, message, planned, headers).await?;
            }
        }
        self.report.read += 1;
        Ok(Next::Continue)
    }

    /// Records a still unroutable record: the stop, or one more skipped.
    fn unroutable(&mut self, message: &OwnedMessage, reason: &str) -> Next {
        let stop = Unroutable {
            partition: message.partition(),
            offset: message.offset(),
            reason: reason.to_owned(),
        };
        if !self.options.skip_unroutable {
            tracing::warn!(partition = stop.partition, offset = stop.offset, reason = %stop.reason, "record still unroutable; stopping before it");
            self.report.stopped_at = Some(stop);
            return Next::Stop;
        }
        tracing::warn!(partition = stop.partition, offset = stop.offset, reason = %stop.reason, "record still unroutable; skipped");
        self.report.skipped += 1;
        Next::Continue
    }

    /// Queues one routed copy (settling the window first when the queue is full).
    async fn send(
        &mut self,
        window: &mut Window,
        message: &OwnedMessage,
        planned: &PlannedRecord,
        headers: OwnedHeaders,
    ) -> anyhow::Result<()> {
        let body = message.payload().unwrap_or_default();
        loop {
            let record = FutureRecord::to(self.target)
                .key(planned.key.as_str())
                .payload(body)
                .headers(headers.clone());
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
