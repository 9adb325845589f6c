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
//! poison never blocks the partition.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared::record;

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

/// The original headers plus the reason and the source coordinates.
fn copy_headers(message: &OwnedMessage, reason: &str, with_value: bool) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    let mut pairs = vec![
        (record::REASON_HEADER, reason),
        (record::DLQ_SOURCE_TOPIC_HEADER, message.topic()),
        (record::DLQ_SOURCE_PARTITION_HEADER, partition.as_str()),
        (record::DLQ_SOURCE_OFFSET_HEADER, offset.as_str()),
    ];
    if !with_value {
        pairs.push((record::DLQ_VALUE_OMITTED_HEADER, "too_large"));
    }
    for (key, value) in pairs {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
