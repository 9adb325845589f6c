//! After a scenario: wait for the consumer group to drain, then compare the
//! database with the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;

use super::load::{Ledger, Scale, SentMessage, expected_conversations};
use crate::processor::ProcessorEnv;
use crate::{kafka, poll};

/// The figures a scenario reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Messages the sender tried to deliver.
    pub sent: u64,
    /// Messages of webhooks answered 200.
    pub acknowledged: u64,
    /// Acknowledged messages found in the database.
    pub found: u64,
    /// Message rows beyond the first for the same message id.
    pub duplicated: u64,
    /// Message ids in the database that were never acknowledged.
    pub extra: u64,
    /// Conversations whose counters or last message differ from a clean run.
    pub conversation_mismatches: Vec<String>,
}

impl Figures {
    /// The line the scenario prints.
    pub fn line(&self, scenario: &str) -> String {
        format!(
            "[faults] {scenario}: sent {}, acknowledged {}, found in database {}, duplicated {}, \
             extra {}, conversations differing from a clean run {}",
            self.sent,
            self.acknowledged,
            self.found,
            self.duplicated,
            self.extra,
            self.conversation_mismatches.len()
        )
    }

    /// Fails unless every webhook sent was acknowledged and [`Self::assert_exact`] holds.
    pub fn assert_complete(&self) {
        assert_eq!(
            self.acknowledged, self.sent,
            "every webhook was acknowledged"
        );
        self.assert_exact();
    }

    /// Fails unless every acknowledged message is stored exactly once, nothing
    /// else is, and every conversation equals a clean run's.
    pub fn assert_exact(&self) {
        assert_eq!(
            self.found, self.acknowledged,
            "acknowledged messages missing"
        );
        assert_eq!(self.duplicated, 0, "messages stored twice");
        assert_eq!(
            self.extra, 0,
            "messages stored that were never acknowledged"
        );
        assert!(
            self.conversation_mismatches.is_empty(),
            "conversations differ from a clean run: {:?}",
            &self.conversation_mismatches[..self.conversation_mismatches.len().min(10)]
        );
    }
}

/// Messages not yet committed by `group` on `topic` (sum over partitions).
pub async fn group_lag(group: &str, topic: &str) -> anyhow::Result<i64> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka::brokers())
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let timeout = Duration::from_secs(5);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition(&topic, *p);
        }
        let committed = consumer.committed_offsets(wanted, timeout)?;
        let mut lag = 0;
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
            let at = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => low,
            };
            lag += (high - at).max(0);
        }
        Ok(lag)
    })
    .await?
}

/// The committed offsets of `group` on `topic`, by partition.
pub async fn committed(group: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let (group, topic) = (group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka::brokers())
            .set("group.id", &group)
            .create()?;
        let timeout = Duration::from_secs(5);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut wanted = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                wanted.add_partition(&topic, p.id());
            }
        }
        let committed = consumer.committed_offsets(wanted, timeout)?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    })
    .await?
}

type ConversationRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<CqlTimestamp>,
    Option<String>,
);

/// How long a scenario may take to drain after its fault.
const SETTLE: Duration = Duration::from_secs(180);

/// Ends a scenario: waits until the consumer group has committed every record
/// of the webhook topic and the test's own CQL session answers (it may still
/// be reconnecting after an outage), then compares the database with the
/// acknowledged messages and prints the figures line.
pub async fn settle_and_verify(
    env: &ProcessorEnv,
    scenario: &str,
    scale: &Scale,
    ledger: &Ledger,
) -> anyhow::Result<Figures> {
    let (sent, acknowledged) = (scale.messages() as u64, ledger.acknowledged());
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    poll::until(
        "the consumer group to commit every record",
        SETTLE,
        || async { Ok((group_lag(group, topic).await? == 0).then_some(())) },
    )
    .await?;
    poll::until("the test's own CQL session to answer", SETTLE, || async {
        env.session
            .query_unpaged("SELECT release_version FROM system.local", &[])
            .await?;
        Ok(Some(()))
    })
    .await?;
    let figures = verify(&env.session, &env.cfg.cql.keyspace, sent, &acknowledged).await?;
    println!("{}", figures.line(scenario));
    Ok(figures)
}

/// Reads every message and conversation row of `keyspace` and compares them
/// with the acknowledged messages.
pub async fn verify(
    session: &Session,
    keyspace: &str,
    sent: u64,
    acknowledged: &[SentMessage],
) -> anyhow::Result<Figures> {
    let stored = stored_messages(session, keyspace).await?;
    let acked: HashSet<(String, String)> = acknowledged
        .iter()
        .map(|m| (m.workspace_id.clone(), m.message_id.clone()))
        .collect();
    let mut figures = Figures {
        sent,
        acknowledged: acked.len() as u64,
        ..Figures::default()
    };
    for (key, copies) in &stored {
        figures.duplicated += copies - 1;
        if acked.contains(key) {
            figures.found += 1;
        } else {
            figures.extra += 1;
        }
    }
    let conversations = stored_conversations(session, keyspace).await?;
    figures.conversation_mismatches = conversation_mismatches(conversations, acknowledged);
    Ok(figures)
}

/// How many rows of `keyspace.messages` each `(workspace_id, message_id)` has.
async fn stored_messages(
    session: &Session,
    keyspace: &str,
) -> anyhow::Result<HashMap<(String, String), u64>> {
    let rows: Vec<(String, String)> = session
        .query_iter(
            format!("SELECT workspace_id, message_id FROM {keyspace}.messages"),
            (),
        )
        .await
        .context("reading the messages")?
        .rows_stream::<(String, String)>()?
        .try_collect()
        .await
        .context("reading the messages")?;
    let mut stored: HashMap<(String, String), u64> = HashMap::new();
    for row in rows {
        *stored.entry(row).or_default() += 1;
    }
    Ok(stored)
}

/// Every row of `keyspace.conversations`.
async fn stored_conversations(
    session: &Session,
    keyspace: &str,
) -> anyhow::Result<Vec<ConversationRow>> {
    session
        .query_iter(
            format!(
                "SELECT workspace_id, phone_number_id, contact_phone, unread_count, \
                 message_count, last_message_at, last_message_id FROM {keyspace}.conversations"
            ),
            (),
        )
        .await
        .context("reading the conversations")?
        .rows_stream::<ConversationRow>()?
        .try_collect()
        .await
        .context("reading the conversations")
}

/// The stored conversations that differ from a clean run of `acknowledged`,
/// then the clean run's conversations that are not stored.
fn conversation_mismatches(
    conversations: Vec<ConversationRow>,
    acknowledged: &[SentMessage],
) -> Vec<String> {
    let mut mismatches = Vec::new();
    let mut expected = expected_conversations(acknowledged);
    for (ws, pn, phone, unread, count, last_at, last_id) in conversations {
        let key = (ws, pn.unwrap_or_default(), phone.unwrap_or_default());
        let actual = (
            unread.unwrap_or(0),
            count.unwrap_or(0),
            last_at.map(|t| t.0),
            last_id,
        );
        match expected.remove(&key) {
            Some(e) if actual == (e.unread, e.messages, Some(e.last.0), Some(e.last.1.clone())) => {
            }
            Some(e) => mismatches.push(format!("{key:?}: stored {actual:?}, clean run {e:?}")),
            None => mismatches.push(format!(
                "{key:?}: stored {actual:?}, absent from a clean run"
            )),
        }
    }
    for (key, e) in expected {
        mismatches.push(format!("{key:?}: missing, clean run {e:?}"));
    }
    mismatches
}
