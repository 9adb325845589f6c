//! The inbox's list page on a workspace with 100k conversations (their rows
//! and recency-list entries written directly, as the processor leaves them),
//! and the unread totals: median and p90 latency over repeated calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use processor::inbox::{Inbox, moves};
use processor::store::Store;
use scylla::value::CqlTimestamp;
use serde_json::{Value, json};
use shared::record::now_ms;
use uuid::Uuid;

use super::{median, ms};

const CONVERSATIONS: u128 = 100_000;
/// Last-message times spread over 30 days, newest first.
const SPACING_MS: i64 = 26_000;
const PAGE: usize = 50;
const ROUNDS: usize = 30;

fn p90(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() * 9 / 10).copied().unwrap_or_default()
}

/// Writes the conversations and their list entries.
async fn populate(store: &Store, ws: &str, now: i64) -> anyhow::Result<()> {
    let s = store.session();
    let ks = store.keyspace();
    let conv = s
        .prepare(format!(
            "UPDATE {ks}.conversations SET last_message_at = ?, unread_count = ?, \
             last_message_preview = ?, contact_phone = ? WHERE workspace_id = ? AND conversation_id = ?"
        ))
        .await?;
    let entry = s
        .prepare(format!(
            "INSERT INTO {ks}.conversation_activity (workspace_id, bucket, slot, conversation_id, \
             last_message_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
    let (conv, entry) = (Arc::new(conv), Arc::new(entry));
    stream::iter(0..CONVERSATIONS)
        .map(|i| {
            let (conv, entry) = (Arc::clone(&conv), Arc::clone(&entry));
            async move {
                let id = Uuid::from_u128(i + 1);
                let at = now - i64::try_from(i).unwrap_or(0) * SPACING_MS;
                let (k, _) = moves(id, None, at);
                let phone = format!("1555{i:07}");
                let values = (CqlTimestamp(at), 1, "hello", phone, ws, id);
                s.execute_unpaged(&conv, values).await?;
                let values = (ws, k.bucket, CqlTimestamp(k.slot_ms), id, CqlTimestamp(at));
                s.execute_unpaged(&entry, values).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(128)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Times `rounds` calls of `call`.
async fn timed<F, Fut>(rounds: usize, mut call: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        call().await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

pub async fn run(store: &Store) -> anyhow::Result<Value> {
    let ws = "bench_inbox";
    let now = now_ms();
    let t = Instant::now();
    populate(store, ws, now).await?;
    let populated = t.elapsed();
    let inbox = Inbox::new(Arc::clone(store.session()), store.keyspace()).await?;
    let first = timed(ROUNDS, || async {
        let page = inbox.list(ws, None, PAGE, now).await?;
        anyhow::ensure!(page.items.len() == PAGE, "a full first page");
        Ok(())
    })
    .await?;
    // Deep pages: walk on from page 100 (5,000 conversations in).
    let mut cursor = None;
    for _ in 0..100 {
        cursor = inbox.list(ws, cursor.as_deref(), PAGE, now).await?.next;
    }
    let mut deep = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let page = inbox.list(ws, cursor.as_deref(), PAGE, now).await?;
        deep.push(t.elapsed());
        cursor = page.next;
    }
    let totals = timed(ROUNDS, || async {
        inbox.totals(ws).await.map(|_| ()).map_err(Into::into)
    })
    .await?;
    let row = |name: &str, xs: Vec<Duration>| {
        let (m, p) = (ms(median(xs.clone())), ms(p90(xs)));
        println!("  {name:<28} median {m:>7.2} ms   p90 {p:>7.2} ms");
        json!({"median_ms": m, "p90_ms": p})
    };
    println!(
        "\ninbox: {CONVERSATIONS} conversations over 30 days, pages of {PAGE}, {ROUNDS} calls each \
         (populated in {:.1} s)",
        populated.as_secs_f64()
    );
    Ok(json!({
        "conversations": CONVERSATIONS as u64,
        "page": PAGE,
        "first_page": row("list, first page", first),
        "deep_page": row("list, pages 101-130", deep),
        "totals": row("unread totals", totals),
    }))
}
