//! `processor migrate --from-keyspace OLD` on the real CQL database: a
//! keyspace of the layout before cross-workspace keys (the schema of that
//! release, `tests/fixtures/`) is copied into a new keyspace with every
//! value and write time kept, and the pipeline goes on from it: a message
//! stored before the copy is a duplicate after it, and the counters carry on.
//! `processor migrate` on a keyspace of the release before `workspace_totals`
//! carries its `workspace_inbox` rows over, and migrating again never undoes
//! what the pipeline counted since.

use std::sync::Arc;

use inboxflow_tests::webhooks::{Inbound, meta_body};
use inboxflow_tests::{cql, unique_name};
use processor::config::ProcessorConfig;
use processor::decode::DecodedRecord;
use processor::pipeline::{self, plan::month_bucket};
use processor::store::{DbStats, Store, statements_of};
use scylla::client::session::Session;
use serde_json::Value;
use shared::record::Source;

const OLD_SCHEMA: &str = include_str!("../fixtures/schema-before-cross-workspace-keys.cql");
const WS: &str = "ws_copy";
const PN: &str = "pn-copy";
const PHONE: &str = "5511977770000";
const SENT_S: i64 = 1_700_000_000;
/// The tables the old rows are written to, and the tables they are
/// compared in after the copy.
const TABLES: [(&str, &str); 7] = [
    ("contacts", "contacts"),
    ("contact_users", "contact_users"),
    ("conversations", "conversations"),
    ("messages", "messages"),
    ("message_index", "message_index"),
    ("conversation_reads", "conversation_reads"),
    ("workspace_inbox", "workspace_totals"),
];
/// `workspace_inbox` as the release before `workspace_totals` created it.
const INBOX_TABLE: &str = "CREATE TABLE {keyspace}.workspace_inbox (workspace_id text, \
    inbound_total bigint, applied_partition int, applied_offset bigint, PRIMARY KEY (workspace_id))";

/// The old keyspace, with one workspace's contact (by phone and by user
/// id), conversation (2 unread, counted up to the record at offset 4), a
/// message with its index row, a read marker and the inbound total.
async fn old_keyspace(session: &Session, ks: &str) -> anyhow::Result<()> {
    let repl = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
    for statement in statements_of(OLD_SCHEMA, ks, repl) {
        if !statement.starts_with("ALTER") {
            session.query_unpaged(statement, &[]).await?;
        }
    }
    let contact = shared::ids::contact_id(WS, PHONE);
    let conversation = shared::ids::conversation_id(WS, PN, contact);
    let watermark = processor::clocks::unstamped(4);
    let (bucket, sent_ms) = (month_bucket(SENT_S), SENT_S * 1000);
    let rows: [(String, i64); 7] = [
        (
            format!(
                "INSERT INTO {ks}.contacts (workspace_id, phone, contact_id, name, created_at) VALUES ('{WS}', '{PHONE}', {contact}, 'Ana', {sent_ms})"
            ),
            1_000,
        ),
        (
            format!(
                "INSERT INTO {ks}.contact_users (workspace_id, user_id, contact_id, phone) VALUES ('{WS}', 'US.ana', {contact}, '{PHONE}')"
            ),
            1_000,
        ),
        (
            format!(
                "INSERT INTO {ks}.conversations (workspace_id, conversation_id, phone_number_id, contact_id, contact_phone, unread_count, message_count, last_message_at, last_message_id, applied_partition, applied_offset) VALUES ('{WS}', {conversation}, '{PN}', {contact}, '{PHONE}', 2, 2, {sent_ms}, 'wamid.old', 0, {watermark})"
            ),
            2_000,
        ),
        (
            format!(
                "INSERT INTO {ks}.messages (workspace_id, conversation_id, bucket, sent_at, message_id, direction, message_type, body, origin) VALUES ('{WS}', {conversation}, {bucket}, {sent_ms}, 'wamid.old', 'inbound', 'text', 'hello', 'cloud_api')"
            ),
            1_500,
        ),
        (
            format!(
                "INSERT INTO {ks}.message_index (workspace_id, message_id, conversation_id, bucket, sent_at, direction, source_partition, source_offset, status, status_rank) VALUES ('{WS}', 'wamid.old', {conversation}, {bucket}, {sent_ms}, 'inbound', 0, 4, 'read', 3)"
            ),
            1_500,
        ),
        (
            format!(
                "INSERT INTO {ks}.conversation_reads (workspace_id, shard, conversation_id, read_count, read_total) VALUES ('{WS}', 3, {conversation}, 1, 1)"
            ),
            2_500,
        ),
        (inbox_insert(ks), 2_000),
    ];
    for (insert, at) in rows {
        session
            .query_unpaged(format!("{insert} USING TIMESTAMP {at}"), &[])
            .await?;
    }
    Ok(())
}

/// The inbound total of the old keyspace: 2, counted up to offset 4.
fn inbox_insert(ks: &str) -> String {
    let watermark = processor::clocks::unstamped(4);
    format!(
        "INSERT INTO {ks}.workspace_inbox (workspace_id, inbound_total, applied_partition, applied_offset) VALUES ('{WS}', 2, 0, {watermark})"
    )
}

/// Every row of `table`, as JSON without the new key columns, sorted.
async fn rows(session: &Session, ks: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let result = session
        .query_unpaged(format!("SELECT JSON * FROM {ks}.{table}"), &[])
        .await?;
    let mut rows = Vec::new();
    for row in result.into_rows_result()?.rows::<(String,)>()? {
        let mut json: Value = serde_json::from_str(&row?.0)?;
        if let Some(object) = json.as_object_mut() {
            object.remove("identity_id");
            if table == "workspace_totals" {
                object.remove("shard");
            }
        }
        rows.push(json.to_string());
    }
    rows.sort();
    Ok(rows)
}

fn record(offset: i64, message_id: &str) -> anyhow::Result<DecodedRecord> {
    let body = meta_body(PN, &[Inbound::new(message_id, PHONE, SENT_S + offset)], &[]);
    Ok(DecodedRecord {
        workspace_id: WS.to_owned(),
        partition: 0,
        offset,
        clock: processor::clocks::unstamped(offset),
        received_at_ms: None,
        events: shared::webhook::normalize(Source::Meta, None, &body, &[])?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_keyspace_is_copied_with_its_values_and_write_times_and_the_pipeline_goes_on()
-> anyhow::Result<()> {
    let session = cql::session().await?;
    let old = unique_name("old_copy");
    old_keyspace(&session, &old).await?;
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("copied");
    let new = cfg.cql.keyspace.clone();

    let report = processor::app::migrate_from(&cfg.cql, &cfg.retry, &old).await?;

    for (table, target) in TABLES {
        assert_eq!(report.get(target), Some(&1), "{target}: {report:?}");
        let (before, after) = (
            rows(&session, &old, table).await?,
            rows(&session, &new, target).await?,
        );
        assert_eq!(after, before, "{table} -> {target}: the same values");
    }
    let written: (i64,) = session
        .query_unpaged(
            format!("SELECT WRITETIME(unread_count) FROM {new}.conversations"),
            &[],
        )
        .await?
        .into_rows_result()?
        .single_row()?;
    assert_eq!(written, (2_000,), "the write time is kept");

    let store = Store::with_session(session.clone(), &cfg.cql).await?;
    let (again, fresh) = (record(10, "wamid.old")?, record(11, "wamid.new")?);
    let batch = [(WS, vec![&again, &fresh])];
    let outcome = pipeline::run_batch(&store, &batch, &DbStats::default()).await?;
    let ws = &outcome.workspaces[0];
    assert_eq!(
        (ws.messages_inserted, ws.duplicates_skipped),
        (1, 1),
        "{ws:?}"
    );
    assert_eq!(
        ws.contacts_created + ws.conversations_created,
        0,
        "both found: {ws:?}"
    );
    let unread: (Option<i32>,) = session
        .query_unpaged(format!("SELECT unread_count FROM {new}.conversations"), &[])
        .await?
        .into_rows_result()?
        .single_row()?;
    assert_eq!(unread, (Some(3),), "the counters carry on");
    assert_eq!(
        inbound_total(&session, &new).await?,
        3,
        "the total carries on"
    );
    cql::drop_keyspace(&session, &old).await?;
    cql::drop_keyspace(&session, &new).await
}

/// The workspace's total as the inbox reads it.
async fn inbound_total(session: &Arc<Session>, ks: &str) -> anyhow::Result<i64> {
    let inbox = processor::inbox::Inbox::new(Arc::clone(session), ks).await?;
    Ok(inbox.totals(WS).await?.inbound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_carries_the_totals_of_workspace_inbox_and_never_undoes_a_later_count()
-> anyhow::Result<()> {
    let session = cql::session().await?;
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("carry");
    let ks = cfg.cql.keyspace.clone();
    processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    let repl = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
    for statement in statements_of(INBOX_TABLE, &ks, repl) {
        session.query_unpaged(statement, &[]).await?;
    }
    let insert = format!("{} USING TIMESTAMP 2000", inbox_insert(&ks));
    session.query_unpaged(insert, &[]).await?;

    processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    assert_eq!(inbound_total(&session, &ks).await?, 2, "carried over");
    let store = Store::with_session(session.clone(), &cfg.cql).await?;
    let (counted, fresh) = (record(3, "wamid.counted")?, record(11, "wamid.new")?);
    let batch = [(WS, vec![&counted, &fresh])];
    pipeline::run_batch(&store, &batch, &DbStats::default()).await?;
    assert_eq!(
        inbound_total(&session, &ks).await?,
        3,
        "the record under the carried watermark is not counted again"
    );
    processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    assert_eq!(
        inbound_total(&session, &ks).await?,
        3,
        "carrying again keeps the later count"
    );
    cql::drop_keyspace(&session, &ks).await
}
