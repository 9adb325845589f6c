//! `ingress replay --from <topic>`: re-injects unrouted or dead-lettered
//! records into the webhook topic once their cause is fixed (the number is
//! registered, the parser bug is fixed).
//!
//! Delivery promise: a source record's offset is committed, in the consumer
//! group `inboxflow-replay-<topic>`, only after Kafka acknowledged every
//! record it was routed to (`acks=all`, the ingress's idempotent producer).
//! A second run therefore continues where the first stopped, and re-injects
//! nothing that was already replayed. A crash between an acknowledgement and
//! the commit replays that record again on the next run, which the processor
//! absorbs (same message ids: at least once, exactly-once effect).
//!
//! What a record becomes: its body is routed again with the *current*
//! registry, exactly as the ingress routes a delivery ([`routing::plan`]),
//! restricted to the phone_number_ids the record was about (its
//! `inboxflow-phone-number-ids` header, when not empty) and within the trust
//! it was verified with (its [`shared::record::SIGNED_BY_HEADER`]): a body signed with one
//! workspace's own Kapso secret is never replayed into another workspace.
//! Routed copies keep the original's contract headers (received-at,
//! idempotency key, source, event, content type, schema version, signer),
//! get the new workspace and numbers, lose the previous hop's reason and
//! dead-letter headers, and gain [`REPLAYED_FROM_HEADER`] =
//! `<topic>/<partition>/<offset>`. Headers are read and written only through
//! [`shared::record::RecordHeaders`], so a header outside the contract is
//! not copied.
//!
//! Only the configured unrouted and dead-letter topics can be replayed, and
//! only records whose envelope MAC verifies (see
//! [`shared::record::EnvelopeKey`]): whoever can write to those topics
//! cannot inject into a workspace through a replay. Copies are sealed anew.
//! `accept_unsealed` (`--accept-unsealed`) lifts the check for records
//! written before envelopes existed.
//!
//! A record that still cannot be routed (a number still unknown, a body the
//! parser still refuses, a header missing, an envelope that does not verify) is never written anywhere. By
//! default the run stops at the first one, commits nothing past it and says
//! why ([`ReplayReport::stopped_at`]); with `skip_unroutable` it is counted,
//! logged with its offset, and committed past (it stays in the source topic,
//! where that offset finds it). A record whose numbers are only partly
//! routable counts as unroutable: in the default mode nothing of it is
//! written; with `skip_unroutable` its routable part is written.
//!
//! Only the records present when the run starts are read (up to the high
//! watermarks read at start), so a run always ends.

//!
//! ## Layout
//! - this module: the options, the report, and the run over the source
//!   topic's partitions (start offsets from the replay group, end at the
//!   start-time high watermarks).
//! - `route`: one source record → the routed copies and their headers (pure).
//! - `run`: reading one partition, writing routed copies in acknowledged
//!   windows, committing after each window.

mod route;
mod run;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::IngressConfig;
use crate::producer::create_producer;
use crate::registry::Registry;
use run::Run;

pub use shared::record::REPLAYED_FROM_HEADER;

/// Deadline of metadata, offset and commit requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The unrouted or dead-letter topic to read.
    pub from_topic: String,
    /// Read at most this many source records in this run.
    pub max: Option<u64>,
    /// Count and skip records that still cannot be routed, instead of stopping.
    pub skip_unroutable: bool,
    /// Replay records without a valid envelope MAC (those written before
    /// envelopes existed): the operator vouches for the topic's writers.
    pub accept_unsealed: bool,
}

impl ReplayOptions {
    /// The consumer group that remembers how far replays of `from_topic` got.
    pub fn group_id(&self) -> String {
        format!("inboxflow-replay-{}", self.from_topic)
    }
}

/// A source record that could not be routed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unroutable {
    pub partition: i32,
    pub offset: i64,
    /// A fixed text (no body, number or secret in it).
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub from_topic: String,
    pub to_topic: String,
    /// Source records read and handled (replayed or skipped).
    pub read: u64,
    /// Source records whose every number was routed.
    pub replayed: u64,
    /// Records written to the webhook topic (one per workspace of a body).
    pub written: u64,
    /// Source records skipped as still unroutable (`skip_unroutable`).
    pub skipped: u64,
    /// The record the run stopped at (default mode); it and the records after
    /// it are left uncommitted.
    pub stopped_at: Option<Unroutable>,
    /// Source records left below the start-time watermarks (`max` reached or stopped).
    pub remaining: u64,
}

impl ReplayReport {
    /// Whether every record present at the start was handled.
    pub fn complete(&self) -> bool {
        self.stopped_at.is_none() && self.remaining == 0
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replay {} -> {}: read {}, replayed {} ({} records written), skipped {} unroutable, {} left",
            self.from_topic,
            self.to_topic,
            self.read,
            self.replayed,
            self.written,
            self.skipped,
            self.remaining
        )?;
        if let Some(stop) = &self.stopped_at {
            writeln!(
                f,
                "stopped at {}/{}/{}: {}; nothing after it was committed. Register the \
                 number or fix the cause and run again, or pass --skip-unroutable.",
                self.from_topic, stop.partition, stop.offset, stop.reason
            )?;
        }
        Ok(())
    }
}

/// Replay reads only the configured unrouted and dead-letter topics.
fn check_source(config: &IngressConfig, source: &str) -> anyhow::Result<()> {
    let kafka = &config.kafka;
    if source != kafka.unrouted_topic && source != kafka.dead_letter_topic {
        bail!(
            "--from {source} is neither the unrouted topic ({}) nor the dead-letter topic ({}); \
             replay reads only those",
            kafka.unrouted_topic,
            kafka.dead_letter_topic
        );
    }
    Ok(())
}

/// Replays `options.from_topic` into the configured webhook topic, routing
/// with `registry`. Uses the configured brokers and the ingress producer.
pub async fn replay(
    config: &IngressConfig,
    registry: &Registry,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayReport> {
    let source = &options.from_topic;
    let target = &config.kafka.webhook_topic;
    check_source(config, source)?;
    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.brokers)
            .set("group.id", options.group_id())
            .set("client.id", "inboxflow-replay")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.message.max.bytes", "5242880")
            .create()
            .context("creating the replay consumer")?,
    );
    let producer = create_producer(config).context("creating the Kafka producer")?;
    let ranges = start_ranges(&consumer, source).await?;
    let mut run = Run {
        consumer: Arc::clone(&consumer),
        producer,
        registry,
        options,
        target,
        envelope_key: config.kafka.envelope_key.envelope_key(),
        ack_timeout: config.ack_timeout,
        report: ReplayReport {
            from_topic: source.clone(),
            to_topic: target.clone(),
            ..ReplayReport::default()
        },
    };
    for range in &ranges {
        let budget_left = options.max.is_none_or(|max| run.report.read < max);
        if run.report.stopped_at.is_none() && budget_left {
            run.partition(range).await?;
        }
    }
    run.report.remaining = remaining(&consumer, source, &ranges).await?;
    tracing::info!(
        from = %source,
        read = run.report.read,
        replayed = run.report.replayed,
        written = run.report.written,
        skipped = run.report.skipped,
        remaining = run.report.remaining,
        stopped = run.report.stopped_at.is_some(),
        "replay finished"
    );
    Ok(run.report)
}

/// One partition's records to read: `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Range {
    partition: i32,
    start: i64,
    end: i64,
}

/// Runs a blocking librdkafka call off the async threads.
async fn blocking<T: Send + 'static>(
    consumer: &Arc<StreamConsumer>,
    call: impl FnOnce(&StreamConsumer) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || call(&consumer))
        .await
        .context("a Kafka request task failed")?
}

/// For each partition: from the group's committed offset (else the log
/// start) to the high watermark now.
async fn start_ranges(consumer: &Arc<StreamConsumer>, topic: &str) -> anyhow::Result<Vec<Range>> {
    let topic = topic.to_owned();
    blocking(consumer, move |c| {
        let metadata = c
            .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
            .with_context(|| format!("reading the metadata of {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            bail!("topic {topic} does not exist");
        }
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition(&topic, *p);
        }
        let committed = c
            .committed_offsets(wanted, REQUEST_TIMEOUT)
            .with_context(|| format!("reading the replay group's offsets on {topic}"))?;
        let mut ranges = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (low, high) = c
                .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
                .with_context(|| format!("reading the watermarks of {topic}/{partition}"))?;
            let start = match committed
                .find_partition(&topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o.max(low),
                _ => low,
            };
            ranges.push(Range {
                partition,
                start,
                end: high,
            });
        }
        Ok(ranges)
    })
    .await
}

/// Records still below the start-time watermarks after the run.
async fn remaining(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    ranges: &[Range],
) -> anyhow::Result<u64> {
    let topic = topic.to_owned();
    let ranges = ranges.to_vec();
    blocking(consumer, move |c| {
        let mut wanted = TopicPartitionList::new();
        for r in &ranges {
            wanted.add_partition(&topic, r.partition);
        }
        let committed = c.committed_offsets(wanted, REQUEST_TIMEOUT)?;
        Ok(ranges
            .iter()
            .map(|r| {
                let at = match committed
                    .find_partition(&topic, r.partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o.max(r.start),
                    _ => r.start,
                };
                u64::try_from(r.end - at).unwrap_or(0)
            })
            .sum())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_where_it_stopped_and_what_to_do() {
        let report = ReplayReport {
            from_topic: "u".into(),
            to_topic: "w".into(),
            read: 3,
            replayed: 3,
            written: 4,
            stopped_at: Some(Unroutable {
                partition: 0,
                offset: 3,
                reason: "unknown phone_number_id".into(),
            }),
            remaining: 2,
            ..ReplayReport::default()
        };
        let text = report.to_string();
        assert!(
            text.contains("read 3, replayed 3 (4 records written)"),
            "{text}"
        );
        assert!(
            text.contains("stopped at u/0/3: unknown phone_number_id"),
            "{text}"
        );
        assert!(!report.complete());
    }
}
