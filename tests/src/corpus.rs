//! The real-world corpus harness: replays payloads that no one on this
//! project wrote (`shared/corpus/real-world`, described by its `SOURCES.md`)
//! through a real ingress into a real processor, then reads the database back.
//!
//! Each corpus file gets a workspace of its own (`meta/01-…` → `ws_m01`,
//! `kapso/03-…` → `ws_k03`) and an in-process ingress whose registry holds
//! only that workspace, so the many files that reuse the same phone number or
//! message id never meet. Routing ids (phone_number_ids, and Meta entry ids for
//! account-level changes without metadata) are read from the test input itself,
//! never from the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use serde_json::{Value, json};
use shared::signing::kapso_signature;

use crate::faults::check::group_lag;
use crate::ingress::TestIngress;
use crate::kafka::{self, ReadRecord};
use crate::pipeline::spawn_ingress_for;
use crate::poll;
use crate::processor::ProcessorEnv;

/// Every corpus workspace's own Kapso secret (each ingress holds one workspace).
pub const KAPSO_WORKSPACE_SECRET: &str = "corpus-kapso-secret";

/// Tables read back after the run; all are keyed by `workspace_id` first.
pub const TABLES: [&str; 7] = [
    "contacts",
    "contact_users",
    "conversations",
    "messages",
    "message_index",
    "reactions",
    "account_events",
];

/// The shared corpus next to the repository (`../shared/corpus/real-world`),
/// where the project's machines keep it.
pub fn shared_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/real-world")
}

/// The verbatim copy kept in the repository (`tests/corpus/real-world`), so
/// a clone alone can run the test.
pub fn vendored_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/real-world")
}

/// The corpus folder: `INBOXFLOW_CORPUS_DIR`, else the shared corpus when
/// it exists (so a file added there without an expectation fails the test),
/// else the vendored copy.
pub fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("INBOXFLOW_CORPUS_DIR") {
        return PathBuf::from(dir);
    }
    let shared = shared_corpus_dir();
    if shared.is_dir() {
        shared
    } else {
        vendored_corpus_dir()
    }
}

/// Every `.json` file under `dir`, as `/`-separated paths relative to it, sorted.
pub fn json_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(dir).context("corpus path")?;
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// How a file is delivered to the ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `POST /webhooks/meta`, signed with the test's Meta app secret.
    Meta,
    /// `POST /webhooks/kapso/{workspace}` with this `X-Webhook-Event`.
    Kapso(&'static str),
    /// As [`Delivery::Kapso`], plus `X-Webhook-Batch: true`.
    KapsoBatch(&'static str),
    /// A docs fragment (a message object only), wrapped in a received envelope.
    KapsoFragment(&'static str),
}

/// The workspace of a corpus file: `meta/01-text.json` → `ws_m01`.
pub fn workspace_of(file: &str) -> String {
    let (folder, name) = file.rsplit_once('/').unwrap_or(("", file));
    let letter = folder.chars().next().unwrap_or('x');
    let number: String = name.chars().take_while(char::is_ascii_digit).collect();
    format!("ws_{letter}{number}")
}

/// The body sent for `raw` (fragments are wrapped, everything else is verbatim).
pub fn body_for(raw: &[u8], delivery: Delivery) -> anyhow::Result<Vec<u8>> {
    let Delivery::KapsoFragment(_) = delivery else {
        return Ok(raw.to_vec());
    };
    let fragment: Value = serde_json::from_slice(raw).context("parsing the fragment")?;
    let message = fragment.get("message").cloned().unwrap_or(fragment);
    Ok(serde_json::to_vec(&json!({
        "message": message,
        "conversation": {"id": "conv_frag", "phone_number": "+15551234567",
                         "phone_number_id": "123456789012345", "status": "active"},
        "is_new_conversation": false,
        "phone_number_id": "123456789012345"
    }))?)
}

/// The ids a registry needs to route `body`: (phone_number_ids, business_account_ids).
pub fn routing_ids(body: &[u8], delivery: Delivery) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let v: Value = serde_json::from_slice(body).context("parsing the body")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mut phones = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    if delivery == Delivery::Meta {
        for entry in v["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                match text(change.pointer("/value/metadata/phone_number_id")) {
                    Some(id) => phones.insert(id),
                    None => text(entry.get("id")).is_some_and(|id| accounts.insert(id)),
                };
            }
        }
    } else {
        let items: Vec<&Value> = match v["data"].as_array() {
            Some(items) => items.iter().collect(),
            None => vec![&v],
        };
        for item in items {
            for pointer in [
                "/phone_number_id",
                "/conversation/phone_number_id",
                "/message/kapso/phone_number_id",
            ] {
                phones.extend(text(item.pointer(pointer)));
            }
        }
    }
    Ok((phones.into_iter().collect(), accounts.into_iter().collect()))
}

/// A registry holding one workspace.
pub fn registry_toml(workspace: &str, phones: &[String], accounts: &[String]) -> String {
    let list = |ids: &[String]| {
        let quoted: Vec<String> = ids.iter().map(|id| format!("{id:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut toml = format!(
        "[[workspace]]\nid = {workspace:?}\nphone_number_ids = {}\nkapso_secrets = [{:?}]\n",
        list(phones),
        KAPSO_WORKSPACE_SECRET
    );
    if !accounts.is_empty() {
        toml.push_str(&format!("business_account_ids = {}\n", list(accounts)));
    }
    toml
}

/// What the ingress answered for one file.
#[derive(Debug, Clone)]
pub struct Answer {
    pub file: String,
    pub status: u16,
    pub body: String,
}

/// Delivers one file through its own ingress and returns the answer.
pub async fn deliver(
    env: &ProcessorEnv,
    dir: &Path,
    file: &str,
    delivery: Delivery,
) -> anyhow::Result<Answer> {
    let raw = std::fs::read(dir.join(file)).with_context(|| format!("reading {file}"))?;
    let body = body_for(&raw, delivery).with_context(|| file.to_owned())?;
    let (phones, accounts) = routing_ids(&body, delivery).with_context(|| file.to_owned())?;
    let workspace = workspace_of(file);
    let registry = registry_toml(&workspace, &phones, &accounts);
    let ingress = spawn_ingress_for(env, &registry, |cfg| cfg)
        .await
        .with_context(|| format!("starting the ingress of {file} (registry:\n{registry})"))?;
    let response = post(&ingress, &workspace, &body, delivery)
        .await
        .with_context(|| format!("posting {file}"))?;
    let answer = Answer {
        file: file.to_owned(),
        status: response.status().as_u16(),
        body: response.text().await.unwrap_or_default(),
    };
    ingress
        .shutdown()
        .await
        .with_context(|| format!("stopping the ingress of {file}"))?;
    Ok(answer)
}

async fn post(
    ingress: &TestIngress,
    workspace: &str,
    body: &[u8],
    delivery: Delivery,
) -> anyhow::Result<reqwest::Response> {
    let (event, batch) = match delivery {
        Delivery::Meta => return ingress.post_meta(body).await,
        Delivery::Kapso(event) | Delivery::KapsoFragment(event) => (event, false),
        Delivery::KapsoBatch(event) => (event, true),
    };
    let mut request = ingress
        .client
        .post(ingress.url(&format!("/webhooks/kapso/{workspace}")))
        .header("content-type", "application/json")
        .header(
            "x-webhook-signature",
            kapso_signature(KAPSO_WORKSPACE_SECRET, body),
        )
        .header("x-webhook-event", event)
        .header("x-webhook-payload-version", "v2")
        .header("x-idempotency-key", uuid::Uuid::new_v4().to_string());
    if batch {
        request = request.header("x-webhook-batch", "true");
    }
    Ok(request.body(body.to_vec()).send().await?)
}

/// Delivers every file, `concurrency` at a time; answers in no particular order.
/// A file that cannot be delivered (its ingress does not start, the request
/// fails) gets status 0 and the error as body, so one file cannot hide the rest.
pub async fn deliver_all(
    env: &ProcessorEnv,
    dir: &Path,
    files: &[(&'static str, Delivery)],
    concurrency: usize,
) -> Vec<Answer> {
    futures::stream::iter(files.iter().map(|(file, delivery)| async move {
        deliver(env, dir, file, *delivery)
            .await
            .unwrap_or_else(|e| Answer {
                file: (*file).to_owned(),
                status: 0,
                body: format!("{e:#}"),
            })
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await
}

/// Waits until the processor's consumer group has committed every record.
pub async fn drain(env: &ProcessorEnv, timeout: Duration) -> anyhow::Result<()> {
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    poll::until(
        "the processor to commit every corpus record",
        timeout,
        || async { Ok((group_lag(group, topic).await? == 0).then_some(())) },
    )
    .await
}

/// Every record now in `topic`.
pub async fn records_in(topic: &str) -> anyhow::Result<Vec<ReadRecord>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || kafka::read_all(&topic, Duration::from_secs(20))).await?
}

/// `inboxflow_processor_events_skipped_total` by `kind`, from the admin `/metrics`.
pub async fn skipped_kinds(admin: SocketAddr) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .context("reading the processor's /metrics")?
        .text()
        .await?;
    let prefix = "inboxflow_processor_events_skipped_total{kind=\"";
    Ok(text
        .lines()
        .filter_map(|line| {
            let (kind, rest) = line.strip_prefix(prefix)?.split_once("\"}")?;
            let value: f64 = rest.trim().parse().ok()?;
            Some((kind.to_owned(), value as u64))
        })
        .filter(|(_, n)| *n > 0)
        .collect())
}

/// Every row of [`TABLES`] as JSON (`SELECT JSON *`), so the check does not
/// depend on column types; tables that cannot be read are listed, not fatal.
#[derive(Debug, Default)]
pub struct Snapshot {
    tables: BTreeMap<&'static str, Vec<Value>>,
    /// `(workspace, message_id)` → `messages.sent_at` in ms.
    sent_at: BTreeMap<(String, String), Vec<i64>>,
    /// Tables (or queries) that failed, with the error.
    pub unreadable: Vec<String>,
}

impl Snapshot {
    pub async fn read(session: &Session, keyspace: &str) -> Self {
        let mut snap = Self::default();
        for table in TABLES {
            match json_rows(session, &format!("SELECT JSON * FROM {keyspace}.{table}")).await {
                Ok(rows) => {
                    snap.tables.insert(table, rows);
                }
                Err(e) => snap.unreadable.push(format!("{table}: {e:#}")),
            }
        }
        let cql = format!("SELECT workspace_id, message_id, sent_at FROM {keyspace}.messages");
        match typed_rows::<(String, String, Option<CqlTimestamp>)>(session, &cql).await {
            Ok(rows) => {
                for (ws, id, at) in rows {
                    let at = at.map_or(i64::MIN, |t| t.0);
                    snap.sent_at.entry((ws, id)).or_default().push(at);
                }
            }
            Err(e) => snap.unreadable.push(format!("messages.sent_at: {e:#}")),
        }
        snap
    }

    /// The rows of `table` that belong to `workspace`.
    pub fn rows<'a>(&'a self, table: &str, workspace: &'a str) -> impl Iterator<Item = &'a Value> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .filter(move |row| row["workspace_id"].as_str() == Some(workspace))
    }

    /// Whether `table` could be read at all.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// `messages.sent_at` (ms) of every row with this id in `workspace`.
    pub fn sent_at(&self, workspace: &str, message_id: &str) -> &[i64] {
        self.sent_at
            .get(&(workspace.to_owned(), message_id.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

/// A column as text: strings as they are, other non-null values as JSON.
pub fn column(row: &Value, name: &str) -> Option<String> {
    match row.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

async fn json_rows(session: &Session, cql: &str) -> anyhow::Result<Vec<Value>> {
    let texts: Vec<(String,)> = typed_rows(session, cql).await?;
    texts
        .into_iter()
        .map(|(t,)| serde_json::from_str(&t).context("a JSON row"))
        .collect()
}

async fn typed_rows<R>(session: &Session, cql: &str) -> anyhow::Result<Vec<R>>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    session
        .query_iter(cql, ())
        .await
        .with_context(|| cql.to_owned())?
        .rows_stream::<R>()?
        .try_collect()
        .await
        .with_context(|| cql.to_owned())
}
