//! How many tombstones a recency-list read meets after one conversation is
//! updated many times, written exactly as the processor writes its moves
//! (`processor::inbox::moves`: upsert the new minute, delete the old one),
//! one update after another as successive micro-batches would.
//!
//! `INBOXFLOW_LONG_FAULTS=1` runs the 100k-update variant the issue measures.

use std::sync::Arc;

use anyhow::Context;
use inboxflow_tests::faults::long;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use processor::inbox::{ActivityKey, Inbox, moves};
use scylla::value::CqlTimestamp;
use shared::record::now_ms;
use uuid::Uuid;

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Tombstone cells Cassandra's (and ScyllaDB's) read trace reports.
fn tombstones_in(activity: &str) -> Option<u64> {
    let (_, rest) = activity.split_once(" live rows and ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_conversation_leaves_at_most_one_list_tombstone_per_minute() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let ks = env.cfg.cql.keyspace.clone();
    let s = &env.session;
    let ws = "ws_tomb";
    let (hot, quiet) = (Uuid::from_u128(0xa1), Uuid::from_u128(0xb2));
    let updates: i64 = if long() { 100_000 } else { 10_000 };
    let step_ms = 100;
    let start = now_ms() - updates * step_ms - 60_000;

    let set = s
        .prepare(format!(
            "INSERT INTO {ks}.conversation_activity (workspace_id, bucket, slot, conversation_id, \
             last_message_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
    let delete = s
        .prepare(format!(
            "DELETE FROM {ks}.conversation_activity WHERE workspace_id = ? AND bucket = ? \
             AND slot = ? AND conversation_id = ?"
        ))
        .await?;
    let conv = s
        .prepare(format!(
            "UPDATE {ks}.conversations SET last_message_at = ?, unread_count = ? \
             WHERE workspace_id = ? AND conversation_id = ?"
        ))
        .await?;
    let key = |k: ActivityKey| (ws, k.bucket, CqlTimestamp(k.slot_ms), k.conversation_id);
    let quiet_at = start - 86_400_000;
    let (quiet_key, _) = moves(quiet, None, quiet_at);
    let (q0, q1, q2, q3) = key(quiet_key);
    s.execute_unpaged(&set, (q0, q1, q2, q3, CqlTimestamp(quiet_at)))
        .await?;
    s.execute_unpaged(&conv, (CqlTimestamp(quiet_at), 1, ws, quiet))
        .await?;

    let (mut before, mut deletes) = (None, 0u64);
    for i in 0..updates {
        let at = start + i * step_ms;
        let (new, old) = moves(hot, before, at);
        let (k0, k1, k2, k3) = key(new);
        s.execute_unpaged(&set, (k0, k1, k2, k3, CqlTimestamp(at)))
            .await?;
        if let Some(old) = old {
            s.execute_unpaged(&delete, key(old))
                .await
                .context("delete")?;
            deletes += 1;
        }
        before = Some(at);
    }
    let last = before.context("at least one update")?;
    s.execute_unpaged(&conv, (CqlTimestamp(last), 2, ws, hot))
        .await?;

    // The list's first read, traced: the month of the last update, newest first.
    let mut page = s
        .prepare(format!(
            "SELECT slot, conversation_id, last_message_at FROM {ks}.conversation_activity \
             WHERE workspace_id = ? AND bucket = ? AND slot <= ? LIMIT 51"
        ))
        .await?;
    page.set_tracing(true);
    let bucket = ActivityKey::of(hot, last).bucket;
    let traced = s
        .execute_unpaged(&page, (ws, bucket, CqlTimestamp(i64::MAX)))
        .await?;
    let id = traced.tracing_id().context("a tracing id")?;
    // Trace events are written asynchronously: poll until the read's own
    // "Read N live rows and M tombstone cells" event is there.
    let met: u64 = poll::until("the read's tombstone count in its trace", WAIT, || async {
        let trace = s.get_tracing_info(&id).await?;
        let counts: Vec<u64> = trace
            .events
            .iter()
            .filter_map(|e| e.activity.as_deref().and_then(tombstones_in))
            .collect();
        Ok((!counts.is_empty()).then(|| counts.iter().sum()))
    })
    .await?;
    let minutes = deletes + 1;
    println!(
        "[inbox] {updates} updates to one conversation over {:.0} min: {deletes} moves, \
         the list's first read met {met} tombstone cells",
        (updates * step_ms) as f64 / 60_000.0
    );
    assert!(
        deletes < minutes && minutes as i64 <= updates * step_ms / 60_000 + 2,
        "one move per minute"
    );
    assert!(
        met <= 2 * minutes,
        "tombstones met are bounded by minutes, not updates: {met}"
    );

    let inbox = Inbox::new(Arc::clone(&env.session), &ks).await?;
    let first = inbox.list(ws, None, 10, now_ms()).await?;
    let order: Vec<Uuid> = first.items.iter().map(|c| c.conversation_id).collect();
    assert_eq!(
        order,
        vec![hot, quiet],
        "one entry per conversation, newest first"
    );
    env.cleanup().await
}
