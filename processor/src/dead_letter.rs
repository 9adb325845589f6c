//! Poison records to the dead-letter topic.
//!
//! Guarantee: [`DeadLetters::send`] returns only once Kafka has acknowledged
//! the copy; the consumer commits past a poison record only after that. The
//! copy keeps the original key, value and headers, and adds the reason and
//! the source topic, partition and offset. The producer accepts records as
//! large as the ingress writes (`consumer.max_record_bytes`). Should the
//! broker still refuse the copy as too large (a dead-letter topic with a
//! smaller `max.message.bytes`), a copy without the value is written instead,
//! marked [`record::DLQ_VALUE_OMITTED_HEADER`]: its headers name the source
//! record, which stays in the source topic for its retention. Either way the
//! poison never blocks the partition. The copy's headers are written by
//! [`record::DeadLetterOrigin`]; [`PoisonReason`] names why a record is here.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared::record;

/// Why a record goes to the dead-letter topic: the `reason` label of the
/// dead-lettered counter and the first word of the reason header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoisonReason {
    /// The schema-version header is missing or names another version.
    SchemaVersion,
    /// The source header is missing or unknown.
    Source,
    /// Another contract header is malformed (not UTF-8, not a number, ...).
    Headers,
    /// The key (the workspace id) is missing or not UTF-8.
    Key,
    /// The record has no value.
    Value,
    /// The envelope MAC is missing or does not verify.
    Envelope,
    /// The body is not a webhook shape we know.
    Shape,
    /// A message that names no customer at all.
    UnattributableMessage,
    /// The database refuses the record for good.
    DatabasePermanent,
}

impl PoisonReason {
    pub const ALL: &[PoisonReason] = &[
        PoisonReason::SchemaVersion,
        PoisonReason::Source,
        PoisonReason::Headers,
        PoisonReason::Key,
        PoisonReason::Value,
        PoisonReason::Envelope,
        PoisonReason::Shape,
        PoisonReason::UnattributableMessage,
        PoisonReason::DatabasePermanent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoisonReason::SchemaVersion => "schema_version",
            PoisonReason::Source => "source",
            PoisonReason::Headers => "headers",
            PoisonReason::Key => "key",
            PoisonReason::Value => "value",
            PoisonReason::Envelope => "envelope",
            PoisonReason::Shape => "shape",
            PoisonReason::UnattributableMessage => "unattributable_message",
            PoisonReason::DatabasePermanent => "database_permanent",
        }
    }
}

impl std::fmt::Display for PoisonReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A producer for the dead-letter topic.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub fn new(brokers: &str, topic: &str, max_record_bytes: usize) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("message.max.bytes", max_record_bytes.to_string())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Writes a copy of `message` with the reason; waits for the ack.
    pub async fn send(&self, message: &OwnedMessage, reason: &str) -> anyhow::Result<()> {
        match self.write(message, reason, true).await {
            Err(e) if is_too_large(&e) => {
                tracing::warn!(
                    partition = message.partition(),
                    offset = message.offset(),
                    "dead-letter copy too large for the topic; writing it without its value"
                );
                self.write(message, reason, false).await
            }
            other => other,
        }
        .map_err(|e| anyhow::anyhow!("writing to dead-letter topic {}: {e}", self.topic))
    }

    async fn write(
        &self,
        message: &OwnedMessage,
        reason: &str,
        with_value: bool,
    ) -> Result<(), KafkaError> {
        let headers = copy_headers(message, reason, with_value);
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            out = out.key(key);
        }
        if let Some(payload) = message.payload().filter(|_| with_value) {
            out = out.payload(payload);
        }
        self.producer
            .send(out, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

fn is_too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// The original headers, verbatim, plus the reason and the source coordinates.
fn copy_headers(message: &OwnedMessage, reason: &str, with_value: bool) -> OwnedHeaders {
    let origin = record::DeadLetterOrigin {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        value_omitted: !with_value,
    };
    origin.append_to(record::copy_verbatim(message.headers()), reason)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_poison_reason_has_its_own_label() {
        let labels: HashSet<&str> = PoisonReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), PoisonReason::ALL.len());
        assert!(labels.contains("database_permanent"));
    }
}
