//! The Kafka writer.
//!
//! Guarantee: [`KafkaWriter::write`] returns `Ok` only after Kafka has
//! acknowledged every record of the request with `acks=all` from an
//! idempotent producer; otherwise it returns a [`WriteError`] no later than
//! the ack deadline (`message.timeout.ms` bounds each record, and a tokio
//! timeout around all of them is the second guard). The HTTP layer answers
//! 200 on `Ok`, and otherwise 503 for a failure that may pass, or the
//! status of the [`Refusal`] when Kafka refused a record for good (a retry
//! would fail the same way), so a webhook is never acknowledged before it is
//! durably stored. A record that times out here may still be delivered
//! later; the sender's retry then makes a duplicate record, whose messages the
//! processor recognises by their WhatsApp message ids (at-least-once, never
//! at-most-once). The idempotency-key header is carried for operators and
//! replay; the processor does not read it.

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use shared::record::{self, EnvelopeKey, RecordHeaders, Trust};

use crate::config::IngressConfig;
use crate::metrics::{IngressMetrics, TopicKind};
use crate::routing::PlannedRecord;

/// Room for headers and protocol framing on top of the largest body.
pub const RECORD_OVERHEAD_BYTES: u64 = 64 * 1024;

/// The largest record the ingress writes: `max_body_bytes` + 64 KiB. Every
/// topic it writes must accept records this large (`max.message.bytes`).
pub fn largest_record_bytes(cfg: &IngressConfig) -> u64 {
    cfg.max_body_bytes.saturating_add(RECORD_OVERHEAD_BYTES)
}

/// Why Kafka refused a record for good: retrying the same body cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The record is larger than the topic or broker accepts.
    TooLarge,
    /// The topic or cluster refuses the record whatever its size (unknown or
    /// invalid topic, authorization, policy): a deployment fault.
    Rejected,
}

impl Refusal {
    pub const ALL: &[Refusal] = &[Refusal::TooLarge, Refusal::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Rejected => "rejected",
        }
    }

    /// The refusal an error code means, `None` when a retry may succeed.
    pub fn of(code: RDKafkaErrorCode) -> Option<Self> {
        use RDKafkaErrorCode as C;
        match code {
            C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize => {
                Some(Self::TooLarge)
            }
            C::InvalidTopic
            | C::UnknownTopic
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::InvalidRecord
            | C::PolicyViolation
            | C::InvalidRequiredAcks
            | C::UnsupportedForMessageFormat => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// Why a request's records were not all acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Kafka did not acknowledge every record within {0:?}")]
    Deadline(Duration),
    #[error("Kafka refused a record: {0}")]
    Kafka(#[from] KafkaError),
}

impl WriteError {
    /// Whether Kafka refused a record for good, and why.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Deadline(_) => None,
            Self::Kafka(err) => err.rdkafka_error_code().and_then(Refusal::of),
        }
    }
}

/// Builds the idempotent, `acks=all` producer (no broker contact yet).
pub fn create_producer(cfg: &IngressConfig) -> Result<FutureProducer, KafkaError> {
    client_config(cfg).create()
}

/// The connection settings of every client the ingress makes (producer and
/// admin): the brokers and the overrides that name security settings.
pub fn connection_config(cfg: &IngressConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("client.id", "inboxflow-ingress");
    for (key, value) in &cfg.producer_overrides {
        if ["security.", "sasl.", "ssl."]
            .iter()
            .any(|p| key.starts_with(p))
        {
            client.set(key, value);
        }
    }
    client
}

fn client_config(cfg: &IngressConfig) -> ClientConfig {
    let ack_ms = cfg.ack_timeout.as_millis().max(1).to_string();
    let max_message = largest_record_bytes(cfg).to_string();
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("client.id", "inboxflow-ingress")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", &ack_ms)
        .set("message.max.bytes", &max_message)
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "131072");
    for (key, value) in &cfg.producer_overrides {
        client.set(key, value);
    }
    // Set last: the durability promise is not configurable (validate() also refuses it).
    client.set("enable.idempotence", "true").set("acks", "all");
    client
}

/// What every record of one request carries, besides its own routing.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub source: record::Source,
    pub event: String,
    pub idempotency_key: String,
    pub received_at_ms: i64,
    pub content_type: String,
    /// Which secrets verified the body (the [`record::SIGNED_BY_HEADER`]).
    pub trust: Trust,
}

impl Envelope {
    /// The typed headers of one planned record.
    pub fn record_headers(&self, planned: &PlannedRecord) -> RecordHeaders {
        RecordHeaders {
            event: Some(self.event.clone()),
            idempotency_key: Some(self.idempotency_key.clone()),
            received_at_ms: Some(self.received_at_ms),
            content_type: Some(self.content_type.clone()),
            phone_number_ids: planned.phone_number_ids.clone(),
            business_account_ids: planned.business_account_ids.clone(),
            signed_by: Some(self.trust.clone()),
            workspace_id: planned.workspace_id.as_deref().map(str::to_owned),
            reason: planned.reason.clone(),
            ..RecordHeaders::new(self.source)
        }
    }

    /// The Kafka headers of one planned record carrying `body`, sealed with
    /// `key` (written by [`RecordHeaders`]).
    pub fn headers(&self, planned: &PlannedRecord, key: &EnvelopeKey, body: &[u8]) -> OwnedHeaders {
        let headers = self.record_headers(planned);
        key.sealed(Some(planned.key.as_bytes()), headers, body)
            .to_kafka()
    }
}

/// The three topics a record may go to.
#[derive(Debug, Clone)]
pub struct Topics {
    pub routed: String,
    pub unrouted: String,
    pub dead_letter: String,
}

impl Topics {
    /// Every topic the ingress writes to.
    pub fn all(&self) -> [&str; 3] {
        [&self.routed, &self.unrouted, &self.dead_letter]
    }

    fn of(&self, kind: TopicKind) -> &str {
        match kind {
            TopicKind::Routed => &self.routed,
            TopicKind::Unrouted => &self.unrouted,
            TopicKind::DeadLetter => &self.dead_letter,
        }
    }
}

/// Writes a request's records and waits for every acknowledgement.
#[derive(Clone)]
pub struct KafkaWriter {
    producer: FutureProducer,
    envelope_key: EnvelopeKey,
    topics: Topics,
    ack_timeout: Duration,
    metrics: IngressMetrics,
}

impl std::fmt::Debug for KafkaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWriter")
            .field("topics", &self.topics)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaWriter {
    pub fn new(
        producer: FutureProducer,
        envelope_key: EnvelopeKey,
        topics: Topics,
        ack_timeout: Duration,
        metrics: IngressMetrics,
    ) -> Self {
        Self {
            producer,
            envelope_key,
            topics,
            ack_timeout,
            metrics,
        }
    }

    /// Produces every planned record concurrently (same body each time) and
    /// waits for all acknowledgements, within the ack deadline.
    pub async fn write(
        &self,
        envelope: &Envelope,
        body: &[u8],
        plan: &[PlannedRecord],
    ) -> Result<(), WriteError> {
        let started = Instant::now();
        let sends = plan.iter().map(|planned| {
            let record = FutureRecord::to(self.topics.of(planned.kind))
                .key(planned.key.as_str())
                .payload(body)
                .headers(envelope.headers(planned, &self.envelope_key, body));
            async move {
                let result = self
                    .producer
                    .send(record, Timeout::After(self.ack_timeout))
                    .await;
                (planned.kind, result)
            }
        });
        let outcome = tokio::time::timeout(self.ack_timeout, join_all(sends)).await;
        self.metrics.produce_done(started.elapsed().as_secs_f64());
        let results = outcome.map_err(|_| WriteError::Deadline(self.ack_timeout))?;
        let mut first_error = None;
        for (kind, result) in results {
            match result {
                Ok(_) => self.metrics.written(kind),
                Err((err, _)) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), |err| Err(WriteError::Kafka(err)))
    }

    /// Waits (off the async threads) until queued records are delivered or
    /// `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use rdkafka::message::Headers;

    use super::*;

    fn as_map(headers: &OwnedHeaders) -> HashMap<String, String> {
        headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn routed_records_carry_every_contract_header() {
        let envelope = Envelope {
            source: record::Source::Meta,
            event: record::META_EVENT.into(),
            idempotency_key: "abc".into(),
            received_at_ms: 1_700_000_000_000,
            content_type: "application/json".into(),
            trust: Trust::Workspace(Arc::from("ws_a")),
        };
        let planned = PlannedRecord {
            kind: TopicKind::Routed,
            key: "ws_a".into(),
            workspace_id: Some(Arc::from("ws_a")),
            phone_number_ids: vec!["1".into(), "2".into()],
            business_account_ids: Vec::new(),
            reason: None,
            reason_kind: None,
        };
        let key = shared::config::Secret::new("test-envelope-key-0123").envelope_key();
        let h = as_map(&envelope.headers(&planned, &key, b"{}"));
        let read =
            RecordHeaders::from_kafka(&envelope.headers(&planned, &key, b"{}")).expect("valid");
        assert_eq!(
            key.verify(Some(b"ws_a"), &read, b"{}"),
            Ok(()),
            "sealed under the record key"
        );
        assert_eq!(h[record::SOURCE_HEADER], "meta");
        assert_eq!(h[record::EVENT_HEADER], record::META_EVENT);
        assert_eq!(h[record::IDEMPOTENCY_KEY_HEADER], "abc");
        assert_eq!(h[record::RECEIVED_AT_HEADER], "1700000000000");
        assert_eq!(h[record::CONTENT_TYPE_HEADER], "application/json");
        assert_eq!(h[record::SCHEMA_VERSION_HEADER], record::SCHEMA_VERSION);
        assert_eq!(h[record::PHONE_NUMBER_IDS_HEADER], "1,2");
        assert_eq!(h[record::WORKSPACE_HEADER], "ws_a");
        assert_eq!(h[record::SIGNED_BY_HEADER], "workspace:ws_a");
        assert!(!h.contains_key(record::REASON_HEADER));
    }

    #[test]
    fn only_errors_a_retry_cannot_fix_are_refusals() {
        use RDKafkaErrorCode as C;
        assert_eq!(Refusal::of(C::MessageSizeTooLarge), Some(Refusal::TooLarge));
        assert_eq!(
            Refusal::of(C::MessageBatchTooLarge),
            Some(Refusal::TooLarge)
        );
        assert_eq!(
            Refusal::of(C::TopicAuthorizationFailed),
            Some(Refusal::Rejected)
        );
        for transient in [
            C::MessageTimedOut,
            C::NotEnoughReplicas,
            C::BrokerTransportFailure,
        ] {
            assert_eq!(Refusal::of(transient), None, "{transient:?}");
        }
        let err = WriteError::Kafka(KafkaError::MessageProduction(C::MessageSizeTooLarge));
        assert_eq!(err.refusal(), Some(Refusal::TooLarge));
        assert_eq!(WriteError::Deadline(Duration::from_secs(1)).refusal(), None);
    }

    #[test]
    fn the_largest_record_is_the_body_limit_plus_the_header_room() {
        assert_eq!(largest_record_bytes(&IngressConfig::default()), 4_259_840);
    }

    #[test]
    fn the_durability_settings_cannot_be_overridden() {
        let mut cfg = IngressConfig::default();
        cfg.producer_overrides.insert("acks".into(), "0".into());
        cfg.producer_overrides
            .insert("linger.ms".into(), "1".into());
        let client = client_config(&cfg);
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("linger.ms"), Some("1"), "other overrides apply");
        assert_eq!(client.get("message.timeout.ms"), Some("5000"));
        assert!(create_producer(&cfg).is_ok(), "creation needs no broker");
    }
}
