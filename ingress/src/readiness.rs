//! `/readyz` and `/healthz`: Kafka is reachable, every topic the ingress
//! writes to exists and accepts its largest record, and the producer has not
//! hit a fatal error.
//!
//! A background task probes every `readiness_interval` and sets the shared
//! [`Readiness`] with a typed [`NotReady`] reason (shown by `/readyz`, logged
//! when it changes: a topic too small for `max_body_bytes` + 64 KiB is an
//! error at start-up). The flag is advisory (load balancers stop sending
//! traffic while it is down); the durability promise does not depend on it,
//! because each request still waits for Kafka's acknowledgements.
//!
//! Guarantee: a fatal producer error (an idempotent producer that can no
//! longer keep its ordering promise refuses every record) marks the process
//! unhealthy (`/healthz` 503) and fires the stop signal; the application
//! then shuts down and `run_until_stopped` returns the error, so the process
//! exits non-zero and its supervisor starts a fresh one.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};
use shared::metrics::Readiness;
use shared::shutdown::Shutdown;

use crate::producer::Topics;
use crate::topic_limits::{Admin, record_limits};

/// Why the ingress is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The brokers do not answer a metadata request.
    KafkaUnreachable,
    /// A topic the ingress writes to does not exist.
    TopicMissing,
    /// A topic's configs (`max.message.bytes`) cannot be read.
    LimitUnknown,
    /// A topic accepts smaller records than the ingress writes.
    TopicTooSmall,
    /// The producer hit a fatal error; the process is stopping.
    ProducerFatal,
}

impl NotReady {
    pub const ALL: &[NotReady] = &[
        NotReady::KafkaUnreachable,
        NotReady::TopicMissing,
        NotReady::LimitUnknown,
        NotReady::TopicTooSmall,
        NotReady::ProducerFatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KafkaUnreachable => "kafka_unreachable",
            Self::TopicMissing => "topic_missing",
            Self::LimitUnknown => "limit_unknown",
            Self::TopicTooSmall => "topic_too_small",
            Self::ProducerFatal => "producer_fatal",
        }
    }
}

/// A failed probe: the typed reason and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Problem {
    pub reason: NotReady,
    pub detail: String,
}

fn problem(reason: NotReady, detail: String) -> Problem {
    Problem { reason, detail }
}

/// What the probe checks.
#[derive(Clone)]
pub struct Probe {
    pub producer: FutureProducer,
    pub admin: std::sync::Arc<Admin>,
    pub topics: Topics,
    /// The largest record the ingress writes (`max_body_bytes` + 64 KiB).
    pub largest_record: u64,
    pub timeout: Duration,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("topics", &self.topics)
            .field("largest_record", &self.largest_record)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// One probe: fatal error, then metadata, then each topic's record limit.
    pub async fn check(&self) -> Result<(), Problem> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            let detail = format!("producer fatal error {code:?}: {reason}");
            return Err(problem(NotReady::ProducerFatal, detail));
        }
        let (producer, topics, timeout) =
            (self.producer.clone(), self.topics.clone(), self.timeout);
        let broker = tokio::task::spawn_blocking(move || metadata(&producer, &topics, timeout))
            .await
            .map_err(|e| problem(NotReady::KafkaUnreachable, e.to_string()))??;
        let names = self.topics.all();
        let limits = record_limits(&self.admin, &names, broker, self.timeout)
            .await
            .map_err(|detail| problem(NotReady::LimitUnknown, detail))?;
        for (topic, limit) in names.iter().zip(limits) {
            if limit < self.largest_record {
                let detail = format!(
                    "topic {topic} accepts records up to {limit} bytes (max.message.bytes) but \
                     the ingress writes up to {} (max_body_bytes + 64 KiB): raise the topic's \
                     max.message.bytes or lower max_body_bytes",
                    self.largest_record
                );
                return Err(problem(NotReady::TopicTooSmall, detail));
            }
        }
        Ok(())
    }
}

/// Checks that every topic exists; returns a broker id to ask for defaults.
fn metadata(producer: &FutureProducer, topics: &Topics, timeout: Duration) -> Result<i32, Problem> {
    let mut broker = None;
    for topic in topics.all() {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| {
                problem(
                    NotReady::KafkaUnreachable,
                    format!("metadata request failed: {e}"),
                )
            })?;
        let found = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !found {
            return Err(problem(
                NotReady::TopicMissing,
                format!("topic {topic} does not exist"),
            ));
        }
        broker = broker.or_else(|| metadata.brokers().first().map(|b| b.id()));
    }
    broker.ok_or_else(|| {
        problem(
            NotReady::KafkaUnreachable,
            "no broker in the metadata".into(),
        )
    })
}

/// Probes until `stop` fires, or until a fatal producer error (which marks
/// the process unhealthy and fires `stop` itself).
pub async fn watch_kafka(probe: Probe, readiness: Readiness, interval: Duration, stop: Shutdown) {
    loop {
        match probe.check().await {
            Ok(()) => {
                if !readiness.is_ready() {
                    tracing::info!("Kafka is ready");
                }
                readiness.set(true);
            }
            Err(failed) if failed.reason == NotReady::ProducerFatal => {
                tracing::error!(reason = failed.reason.as_str(), cause = %failed.detail, "the Kafka producer hit a fatal error; stopping the ingress");
                readiness.set_unhealthy(failed.to_string());
                stop.trigger();
                return;
            }
            Err(failed) => report(&readiness, &failed),
        }
        tokio::select! {
            biased;
            () = stop.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Logs a problem when it is new (an error for a too-small topic, which no
/// retry fixes), and shows it on `/readyz`.
fn report(readiness: &Readiness, failed: &Problem) {
    let text = failed.to_string();
    if readiness.not_ready_reason().as_deref() != Some(text.as_str()) {
        let reason = failed.reason.as_str();
        match failed.reason {
            NotReady::TopicTooSmall | NotReady::LimitUnknown => {
                tracing::error!(reason, cause = %failed.detail, "Kafka cannot take every webhook; /readyz answers 503");
            }
            _ => {
                tracing::warn!(reason, cause = %failed.detail, "Kafka is not ready; /readyz answers 503")
            }
        }
    }
    readiness.set_not_ready(text);
}
