//! The message-and-index raw-write ceiling: only the rows the pipeline must
//! write in any case (each new message and its index row), in one wave, with
//! no lookups, no contacts and no conversations. The pipeline's share of
//! this rate is what every other step and row costs. (The ceiling of all
//! of the pipeline's rows, its write wave alone, is
//! `processor::pipeline::ceiling`, used by `tenants`.)
//!
//! Two shapes of the same writes:
//! - [`write`] and [`write_all`]: the pipeline's own batching ([`Writes`]
//!   and [`Store::write`]: unlogged batches grouped by partition, then
//!   several partitions, of any workspaces, packed into one batch up to 100
//!   statements / 32 KiB), and its concurrency bound;
//! - [`write_per_partition`]: one unlogged batch per partition (never two
//!   partitions in one batch), all sent concurrently under the same bound.
//!   Cassandra warns about multi-partition unlogged batches ("use
//!   asynchronous writes for performance"); this measures whether it is right.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use processor::config::CqlConfig;
use processor::decode::DecodedRecord;
use processor::pipeline::WorkspaceRecords;
use processor::pipeline::identity::Known;
use processor::pipeline::messages::{LocationRow, MessageRow, location_row, message_row};
use processor::pipeline::plan::Plan;
use processor::store::{DbStats, RowWrite, Store, Writes};

/// The message rows and index rows of step 6, built by the pipeline's own
/// row builders (so sizes and partition keys are exactly the pipeline's),
/// for messages placed as if every contact were new.
fn rows(
    workspace_id: &str,
    records: &[&DecodedRecord],
) -> (Vec<RowWrite<MessageRow>>, Vec<RowWrite<LocationRow>>) {
    let mut plan = Plan::build(records);
    plan.place(workspace_id, &Known::default());
    let messages = plan
        .messages
        .iter()
        .map(|m| message_row(workspace_id, m, None))
        .collect();
    let locations = plan
        .messages
        .iter()
        .map(|m| location_row(workspace_id, m))
        .collect();
    (messages, locations)
}

/// Writes the messages of `records` and their index rows with the pipeline's
/// batching; returns how many messages.
pub async fn write(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    stats: &DbStats,
) -> anyhow::Result<u64> {
    write_all(store, &[(workspace_id, records.to_vec())], stats).await
}

/// [`write`] for every workspace of a micro-batch at once, as the pipeline
/// writes them: one wave, rows of every workspace sharing batches
/// ([`Writes`]). Returns how many messages.
pub async fn write_all(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    stats: &DbStats,
) -> anyhow::Result<u64> {
    let s = store.statements();
    // The pipeline's writes carry the batch's write clock; so do these.
    let records = batch.iter().flat_map(|(_, r)| r);
    let at = records.map(|r| r.clock).max().unwrap_or_default();
    let mut writes = Writes::default();
    let mut count = 0;
    for (ws, records) in batch {
        let (messages, locations) = rows(ws, records);
        count += messages.len() as u64;
        writes.add(ws, "message inserts", &s.insert_message, messages, at);
        writes.add(
            ws,
            "message index upserts",
            &s.index_message_location,
            locations,
            at,
        );
    }
    writes.send(store, stats).await?;
    Ok(count)
}

/// The same rows as [`write`], one unlogged batch per partition (at most
/// `max_batch_statements` rows each), all concurrently within
/// `max_concurrent_requests`. Returns (messages, requests).
pub async fn write_per_partition(
    store: &Store,
    cfg: &CqlConfig,
    workspace_id: &str,
    records: &[&DecodedRecord],
) -> anyhow::Result<(u64, u64)> {
    let (messages, locations) = rows(workspace_id, records);
    let count = messages.len() as u64;
    let (s, session) = (store.statements(), store.session());
    let max = cfg.max_batch_statements.max(1);
    let mut batches: Vec<BoxFuture<'_, anyhow::Result<()>>> = Vec::new();
    for values in by_partition(messages, max) {
        batches.push(Box::pin(send(session, &s.insert_message, values)));
    }
    for values in by_partition(locations, max) {
        batches.push(Box::pin(send(session, &s.index_message_location, values)));
    }
    let sent = batches.len() as u64;
    stream::iter(batches)
        .buffer_unordered(cfg.max_concurrent_requests)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((count, sent))
}

/// The rows of each partition, in chunks of at most `max`.
fn by_partition<V>(rows: Vec<RowWrite<V>>, max: usize) -> Vec<Vec<V>> {
    let mut groups: BTreeMap<String, Vec<V>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.partition).or_default().push(row.values);
    }
    let mut out = Vec::new();
    for mut values in groups.into_values() {
        while values.len() > max {
            let rest = values.split_off(max);
            out.push(std::mem::replace(&mut values, rest));
        }
        out.push(values);
    }
    out
}

async fn send<V: SerializeRow>(
    session: &Session,
    statement: &PreparedStatement,
    rows: Vec<V>,
) -> anyhow::Result<()> {
    let mut batch = Batch::new(BatchType::Unlogged);
    batch.set_is_idempotent(true);
    for _ in &rows {
        batch.append_statement(statement.clone());
    }
    session.batch(&batch, rows).await?;
    Ok(())
}
