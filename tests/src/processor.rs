//! A processor test environment: its own topics, consumer group and keyspace,
//! the schema migrated, and helpers to produce webhooks and read rows back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use processor::app::{self, RunningProcessor};
use processor::config::ProcessorConfig;
use processor::pipeline::faults::Faults;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scylla::client::session::Session;
use shared::record::{RecordHeaders, Source};

use crate::{cql, kafka, unique_name, webhooks};

/// Isolated Kafka topics, group and keyspace for one test.
#[allow(missing_debug_implementations)]
pub struct ProcessorEnv {
    pub cfg: ProcessorConfig,
    pub session: Arc<Session>,
    producer: FutureProducer,
}

impl ProcessorEnv {
    /// Creates the topics (`partitions` for the webhook topic) and migrates a fresh keyspace.
    pub async fn new(partitions: i32) -> anyhow::Result<Self> {
        crate::init_test_logging();
        let mut cfg = ProcessorConfig::default();
        let name = unique_name("proc");
        cfg.kafka.brokers = kafka::brokers();
        cfg.kafka.webhook_topic = format!("{name}_webhooks");
        cfg.kafka.dead_letter_topic = format!("{name}_dlq");
        cfg.kafka.unrouted_topic = format!("{name}_unrouted");
        cfg.consumer.group_id = format!("{name}_group");
        cfg.consumer.session_timeout = Duration::from_secs(6);
        cfg.consumer.lag_interval = Duration::from_millis(200);
        cfg.kafka.envelope_key = shared::config::Secret::new(webhooks::ENVELOPE_KEY);
        cfg.cql.nodes = cql::nodes();
        cfg.cql.keyspace = name.clone();
        cfg.admin_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        cfg.retry.max_backoff = Duration::from_millis(500);
        cfg.validate()?;
        kafka::create_topics(&[&cfg.kafka.webhook_topic], partitions).await?;
        kafka::create_topics(
            &[&cfg.kafka.dead_letter_topic, &cfg.kafka.unrouted_topic],
            1,
        )
        .await?;
        let session = cql::session().await?;
        app::migrate(&cfg.cql, &cfg.retry)
            .await
            .context("migrating the test keyspace")?;
        Ok(Self {
            cfg,
            session,
            producer: kafka::producer()?,
        })
    }

    pub async fn start(&self, faults: Faults) -> anyhow::Result<RunningProcessor> {
        RunningProcessor::start_with_faults(self.cfg.clone(), faults).await
    }

    /// Writes a Meta body for `workspace_id` as the ingress would.
    pub async fn produce_meta(
        &self,
        workspace_id: &str,
        phone_number_id: &str,
        body: &[u8],
    ) -> anyhow::Result<(i32, i64)> {
        let headers = webhooks::record_headers(Source::Meta, workspace_id, phone_number_id);
        self.produce_record(workspace_id, body, &headers).await
    }

    /// [`Self::produce_meta`], into `partition` of the webhook topic.
    pub async fn produce_meta_to(
        &self,
        partition: i32,
        workspace_id: &str,
        phone_number_id: &str,
        body: &[u8],
    ) -> anyhow::Result<i64> {
        let headers = webhooks::record_headers(Source::Meta, workspace_id, phone_number_id);
        let topic = &self.cfg.kafka.webhook_topic;
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(workspace_id)
            .payload(body)
            .headers(webhooks::sealed(workspace_id, headers, body));
        let delivery = self
            .producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}[{partition}]: {e}"))?;
        Ok(delivery.offset)
    }

    /// Writes a record with contract headers (written by `RecordHeaders`),
    /// sealed as the ingress seals them.
    pub async fn produce_record(
        &self,
        key: &str,
        body: &[u8],
        headers: &RecordHeaders,
    ) -> anyhow::Result<(i32, i64)> {
        kafka::produce_headers(
            &self.producer,
            &self.cfg.kafka.webhook_topic,
            key,
            body,
            webhooks::sealed(key, headers.clone(), body),
        )
        .await
    }

    /// Writes an arbitrary record (for poison tests), sealed when its
    /// headers are valid, so it is refused for what the test is about.
    pub async fn produce_raw(
        &self,
        key: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(i32, i64)> {
        let raw = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let headers = match RecordHeaders::from_kafka(&raw) {
            Ok(parsed) => webhooks::sealed(key, parsed, body),
            Err(_) => raw,
        };
        let topic = &self.cfg.kafka.webhook_topic;
        kafka::produce_headers(&self.producer, topic, key, body, headers).await
    }

    fn ks(&self) -> &str {
        &self.cfg.cql.keyspace
    }

    /// Number of message rows of a workspace.
    pub async fn message_count(&self, workspace_id: &str) -> anyhow::Result<usize> {
        Ok(self.message_ids(workspace_id).await?.len())
    }

    /// Message ids stored for a workspace (with repeats, if any were doubled).
    pub async fn message_ids(&self, workspace_id: &str) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(String, String)> = self
            .rows(&format!(
                "SELECT workspace_id, message_id FROM {}.messages",
                self.ks()
            ))
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(ws, _)| ws == workspace_id)
            .map(|(_, id)| id)
            .collect())
    }

    /// Sum of unread counts and number of conversations of a workspace.
    pub async fn unread_total(&self, workspace_id: &str) -> anyhow::Result<(i64, usize)> {
        let rows: Vec<(String, Option<i32>)> = self
            .rows(&format!(
                "SELECT workspace_id, unread_count FROM {}.conversations",
                self.ks()
            ))
            .await?;
        let mine: Vec<i32> = rows
            .into_iter()
            .filter(|(ws, _)| ws == workspace_id)
            .map(|(_, u)| u.unwrap_or(0))
            .collect();
        Ok((mine.iter().map(|u| i64::from(*u)).sum(), mine.len()))
    }

    pub async fn contact_count(&self, workspace_id: &str) -> anyhow::Result<usize> {
        let rows: Vec<(String, String)> = self
            .rows(&format!(
                "SELECT workspace_id, phone FROM {}.contacts",
                self.ks()
            ))
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(ws, _)| ws == workspace_id)
            .count())
    }

    /// The status stored for a message id on its index row.
    pub async fn status_of(
        &self,
        workspace_id: &str,
        message_id: &str,
    ) -> anyhow::Result<Option<String>> {
        let cql = format!(
            "SELECT status FROM {}.message_index WHERE workspace_id = ? AND message_id = ?",
            self.ks()
        );
        let result = self
            .session
            .query_unpaged(cql, (workspace_id, message_id))
            .await?;
        let rows = result.into_rows_result()?;
        Ok(rows
            .maybe_first_row::<(Option<String>,)>()?
            .and_then(|(s,)| s))
    }

    /// Every row of the pipeline's tables (contacts, conversations, messages,
    /// the index and the inbound totals; not the recency list, which may
    /// keep a leftover entry its readers skip), as sorted text.
    pub async fn snapshot(&self) -> anyhow::Result<Vec<String>> {
        let ks = self.ks();
        let mut out = Vec::new();
        for table in [
            "contacts",
            "conversations",
            "messages",
            "message_index",
            "workspace_totals",
        ] {
            let result = self
                .session
                .query_unpaged(format!("SELECT JSON * FROM {ks}.{table}"), &[])
                .await
                .with_context(|| format!("reading {table}"))?;
            let rows: Vec<(String,)> = result
                .into_rows_result()?
                .rows::<(String,)>()?
                .collect::<Result<_, _>>()?;
            for (json,) in rows {
                let json = self.clock_as_offset(&json).await?;
                out.push(format!("{table} {json}"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// [`Self::snapshot`], plus what it leaves out: the user-id identities,
    /// the inbound totals' values, every recency-list entry (leftovers
    /// included) and each of `workspaces`' inbox list as of `now_ms`, so two
    /// keyspaces written alike compare equal row for row.
    pub async fn all_rows(&self, workspaces: &[&str], now_ms: i64) -> anyhow::Result<Vec<String>> {
        let mut rows = self.snapshot().await?;
        let ks = self.ks();
        for (table, columns) in [
            ("contact_users", "*"),
            ("workspace_totals", "workspace_id, inbound_total"),
            ("conversation_activity", "*"),
        ] {
            let found: Vec<(String,)> = self
                .rows(&format!("SELECT JSON {columns} FROM {ks}.{table}"))
                .await?;
            rows.extend(found.into_iter().map(|(json,)| format!("~{table} {json}")));
        }
        let inbox = processor::inbox::Inbox::new(Arc::clone(&self.session), ks).await?;
        for ws in workspaces {
            let page = inbox.list(ws, None, 100, now_ms).await?;
            for (i, c) in page.items.iter().enumerate() {
                rows.push(format!("~list {ws} {i}: {c:?}"));
            }
        }
        Ok(rows)
    }

    /// A row's JSON with its watermark (`applied_offset`, a write clock that
    /// depends on when the partition was first seen) replaced by the Kafka
    /// offset it stands for, so independent runs compare equal.
    async fn clock_as_offset(&self, json: &str) -> anyhow::Result<String> {
        let row: serde_json::Value = serde_json::from_str(json)?;
        let clock = row
            .get("applied_offset")
            .and_then(serde_json::Value::as_i64);
        let partition = row
            .get("applied_partition")
            .and_then(serde_json::Value::as_i64);
        let (Some(clock), Some(partition)) = (clock, partition) else {
            return Ok(json.to_owned());
        };
        let bases: Vec<(Option<i64>,)> = self
            .rows(&format!(
                "SELECT base_us FROM {}.partition_clocks WHERE topic = '{}' AND partition = {partition}",
                self.ks(),
                self.cfg.kafka.webhook_topic
            ))
            .await?;
        let base = bases
            .first()
            .and_then(|(b,)| *b)
            .unwrap_or(processor::clocks::CLOCK_FLOOR_US);
        let offset = (clock - base) / processor::clocks::SLOTS_PER_RECORD;
        Ok(json.replace(
            &format!("\"applied_offset\": {clock}"),
            &format!("\"applied_offset\": \"record offset {offset}\""),
        ))
    }

    async fn rows<R>(&self, cql: &str) -> anyhow::Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let result = self
            .session
            .query_unpaged(cql, &[])
            .await
            .with_context(|| cql.to_owned())?;
        Ok(result
            .into_rows_result()?
            .rows::<R>()?
            .collect::<Result<_, _>>()?)
    }

    /// Drops the keyspace.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        cql::drop_keyspace(&self.session, self.ks()).await
    }
}
