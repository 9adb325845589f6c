//! Kafka helpers on the real broker (`KAFKA_BROKERS`, default 127.0.0.1:9092).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::START_SERVICES;

/// The broker list tests use.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Fails with a clear message if Kafka does not answer a metadata request.
pub fn require_kafka() -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .context("creating a Kafka client")?;
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| {
            anyhow::anyhow!(
                "Kafka is not reachable at {} ({e}). Start it with `{START_SERVICES}`.",
                brokers()
            )
        })?;
    Ok(())
}

/// Creates topics with `partitions` partitions each and waits until they exist.
pub async fn create_topics(names: &[&str], partitions: i32) -> anyhow::Result<()> {
    require_kafka()?;
    let admin = admin()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &admin_options())
        .await
        .context("creating topics")?;
    for r in results {
        if let Err((topic, code)) = r
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            bail!("creating topic {topic}: {code}");
        }
    }
    Ok(())
}

/// An admin client of the test broker.
fn admin() -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()?)
}

/// The options of every admin call: a 10 s operation timeout.
fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Grows `topic` to `total` partitions.
pub async fn add_partitions(topic: &str, total: usize) -> anyhow::Result<()> {
    require_kafka()?;
    let admin = admin()?;
    let options = admin_options();
    let results = admin
        .create_partitions(
            &[rdkafka::admin::NewPartitions::new(topic, total)],
            &options,
        )
        .await
        .context("adding partitions")?;
    for r in results {
        if let Err((topic, code)) = r {
            bail!("adding partitions to {topic}: {code}");
        }
    }
    Ok(())
}

/// Deletes `topic` and creates it again with `partitions`, retrying the
/// creation (with a deadline) while the broker still finishes the deletion.
pub async fn recreate_topic(topic: &str, partitions: i32) -> anyhow::Result<()> {
    require_kafka()?;
    let admin = admin()?;
    let options = admin_options();
    for r in admin.delete_topics(&[topic], &options).await? {
        if let Err((topic, code)) = r {
            bail!("deleting {topic}: {code}");
        }
    }
    crate::poll::until(
        "the topic to be created again",
        Duration::from_secs(60),
        || async {
            let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
            let results = admin.create_topics(&[new], &options).await?;
            Ok(results.into_iter().all(|r| r.is_ok()).then_some(()))
        },
    )
    .await
}

/// A record as read back from Kafka.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads records from the start of `topic` until `count` have arrived or
/// `timeout` passes (then fails, saying how many arrived).
pub fn read_records(
    topic: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<ReadRecord>> {
    let consumer = reader(topic)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count {
        if std::time::Instant::now() >= deadline {
            bail!(
                "read {} of {count} expected records from {topic} before the deadline",
                out.len()
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(to_read_record(&m?));
        }
    }
    Ok(out)
}

/// Reads every record currently in `topic` (up to the high watermarks at call time).
pub fn read_all(topic: &str, timeout: Duration) -> anyhow::Result<Vec<ReadRecord>> {
    let consumer = reader(topic)?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut expected = 0usize;
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?;
            expected += usize::try_from(high - low).unwrap_or(0);
        }
    }
    drop(consumer);
    read_records(topic, expected, timeout)
}

/// Reads every record now in `topic` on the brokers `bootstrap`, partition by
/// partition up to the high watermarks at call time, without a consumer group
/// (so without a group coordinator: it works while some brokers are down).
/// Fails after `timeout`, saying how many records arrived.
pub fn read_all_assigned(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<ReadRecord>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka wants a group id even for assign(); nothing is committed.
        .set("group.id", crate::unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "5242880")
        .create()
        .context("creating a Kafka reader")?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            ends.insert(p.id(), high);
        }
    }
    let partitions = ends.len();
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let (mut out, mut last_error) = (Vec::new(), None);
    while !ends.is_empty() {
        if std::time::Instant::now() >= deadline {
            bail!(
                "read {} records of {topic} before the deadline; {} of {} partitions \
                 not read to their end (last error: {last_error:?})",
                out.len(),
                ends.len(),
                partitions
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            // A dead broker shows as transport errors here, while the
            // partitions are fetched from their live leaders: keep reading.
            let m = match m {
                Ok(m) => m,
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            let record = to_read_record(&m);
            // Records written after the call are not asked for.
            let Some(&end) = ends.get(&record.partition) else {
                continue;
            };
            if record.offset + 1 >= end {
                ends.remove(&record.partition);
            }
            out.push(record);
        }
    }
    Ok(out)
}

fn reader(topic: &str) -> anyhow::Result<BaseConsumer> {
    require_kafka()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", crate::unique_name("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

fn to_read_record(m: &rdkafka::message::BorrowedMessage<'_>) -> ReadRecord {
    let mut headers = HashMap::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let v = h
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            headers.insert(h.key.to_owned(), v);
        }
    }
    ReadRecord {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}

/// A plain producer for tests that write records directly; it takes records
/// up to the local broker's limit (5 MiB), as the ingress does.
pub fn producer() -> anyhow::Result<FutureProducer> {
    require_kafka()?;
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "5242880")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?)
}

/// Produces one record with string headers and waits for the broker's ack.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: &[(&str, &str)],
) -> anyhow::Result<(i32, i64)> {
    let mut hs = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for (k, v) in headers {
        hs = hs.insert(rdkafka::message::Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    produce_headers(producer, topic, key, value, hs).await
}

/// Produces one record with the given headers (for contract headers, from
/// `RecordHeaders::to_kafka`) and waits for the broker's ack.
pub async fn produce_headers(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: rdkafka::message::OwnedHeaders,
) -> anyhow::Result<(i32, i64)> {
    let delivery = producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok((delivery.partition, delivery.offset))
}
