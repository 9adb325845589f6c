//! What the write clocks need to know of the webhook topic, read from
//! Kafka's metadata: its partition count, a partition's offsets, and a
//! group's committed offsets. Each call blocks a pool thread (never an async
//! worker) for at most the probe's timeout.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::ClockError;

/// A metadata-only Kafka client (it joins no group and reads no records).
#[derive(Clone)]
pub struct TopicProbe {
    client: Arc<BaseConsumer>,
    timeout: Duration,
}

impl std::fmt::Debug for TopicProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicProbe")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TopicProbe {
    /// A probe of `brokers`; `group` (for [`Self::committed`]) may be empty.
    pub fn new(brokers: &str, group: &str, timeout: Duration) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("client.id", "inboxflow-processor-clocks")
            .set("enable.auto.commit", "false");
        if !group.is_empty() {
            config.set("group.id", group);
        }
        Ok(Self {
            client: Arc::new(config.create()?),
            timeout,
        })
    }

    /// The topic's partition count.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, ClockError> {
        self.blocking(topic, |client, topic, timeout| {
            let metadata = client.fetch_metadata(Some(topic), timeout)?;
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            match found {
                Some(t) if t.error().is_none() => {
                    Ok(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
                }
                _ => Err(KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                )),
            }
        })
        .await
    }

    /// The partition's (low, high) watermarks.
    pub async fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), ClockError> {
        self.blocking(topic, move |client, topic, timeout| {
            client.fetch_watermarks(topic, partition, timeout)
        })
        .await
    }

    /// The partition's high watermark: the offset its next record will take.
    pub async fn high_watermark(&self, topic: &str, partition: i32) -> Result<i64, ClockError> {
        Ok(self.watermarks(topic, partition).await?.1)
    }

    /// The probe's group's committed offset of each of `partitions`
    /// (`None` where the group has none).
    pub async fn committed(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<Option<i64>>, ClockError> {
        self.blocking(topic, move |client, topic, timeout| {
            let mut list = TopicPartitionList::new();
            for p in 0..partitions {
                list.add_partition(topic, p);
            }
            let committed = client.committed_offsets(list, timeout)?;
            Ok((0..partitions)
                .map(
                    |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    },
                )
                .collect())
        })
        .await
    }

    async fn blocking<T, F>(&self, topic: &str, call: F) -> Result<T, ClockError>
    where
        T: Send + 'static,
        F: FnOnce(&BaseConsumer, &str, Duration) -> Result<T, KafkaError> + Send + 'static,
    {
        let (client, timeout, name) = (Arc::clone(&self.client), self.timeout, topic.to_owned());
        let result = tokio::task::spawn_blocking(move || call(&client, &name, timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled));
        result.map_err(|source| ClockError::Kafka {
            topic: topic.to_owned(),
            source,
        })
    }
}
