//! Poison records to the dead-letter topic.
//!
//! Guarantee: [`DeadLetters::send`] returns only once Kafka has acknowledged
//! the copy; the consumer commits past a poison record only after that. The
//! copy keeps the original key, value and headers, and adds the reason and
//! the source topic, partition and offset.

use std::time::Duration;

use rdkafka::ClientConfig;
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
    pub fn new(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
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
        headers = headers
            .insert(Header {
                key: record::REASON_HEADER,
                value: Some(reason),
            })
            .insert(Header {
                key: record::DLQ_SOURCE_TOPIC_HEADER,
                value: Some(message.topic()),
            })
            .insert(Header {
                key: record::DLQ_SOURCE_PARTITION_HEADER,
                value: Some(&partition),
            })
            .insert(Header {
                key: record::DLQ_SOURCE_OFFSET_HEADER,
                value: Some(&offset),
            });
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            out = out.key(key);
        }
        if let Some(payload) = message.payload() {
            out = out.payload(payload);
        }
        self.producer
            .send(out, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| anyhow::anyhow!("writing to dead-letter topic {}: {e}", self.topic))
    }
}
