//! Steps 5 and 6: drop messages that are already stored, insert the rest.
//!
//! Deduplication reads the message-id index once for the whole batch (for
//! the messages, and for the targets of statuses and amendments). A message
//! counts as already stored when its index row has a location and names a
//! different source record; the same record read again (after a crash) is
//! not a duplicate, so its writes are simply repeated with the same values.
//! Messages go in unlogged batches grouped by their (workspace, conversation,
//! month) partition; index rows follow in the same round trip. A message
//! takes the status, edit and revoke its index row already holds (they
//! arrived first), so arrival order never matters.

use std::collections::HashMap;

use scylla::value::{CqlTimestamp, MaybeUnset};
use scylla::{DeserializeRow, SerializeRow};
use uuid::Uuid;

use super::plan::{MessageDraft, Plan};
use crate::store::{DbStats, RowWrite, Store, StoreError};
use shared::webhook::DeliveryStatus;

/// Where a stored message lives: its full primary key but the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub conversation_id: Uuid,
    pub bucket: i32,
    pub sent_at_ms: i64,
}

/// The index row of a message id, as found in step 5.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntry {
    /// Set once the message itself is stored.
    pub location: Option<Location>,
    pub source: Option<(i32, i64)>,
    pub status_rank: i32,
    /// The latest edit: its text and time (ms).
    pub edit: Option<(Option<String>, i64)>,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Debug, DeserializeRow)]
struct IndexRow {
    message_id: String,
    conversation_id: Option<Uuid>,
    bucket: Option<i32>,
    sent_at: Option<CqlTimestamp>,
    source_partition: Option<i32>,
    source_offset: Option<i64>,
    status_rank: Option<i32>,
    edit_body: Option<String>,
    edited_at: Option<CqlTimestamp>,
    revoked_at: Option<CqlTimestamp>,
}

impl From<IndexRow> for IndexEntry {
    fn from(r: IndexRow) -> Self {
        let location = match (r.conversation_id, r.bucket, r.sent_at) {
            (Some(conversation_id), Some(bucket), Some(t)) => Some(Location {
                conversation_id,
                bucket,
                sent_at_ms: t.0,
            }),
            _ => None,
        };
        IndexEntry {
            location,
            source: r.source_partition.zip(r.source_offset),
            status_rank: r.status_rank.unwrap_or(0),
            edit: r.edited_at.map(|t| (r.edit_body, t.0)),
            revoked_at_ms: r.revoked_at.map(|t| t.0),
        }
    }
}

/// Reads the index rows of every message id and status or amendment target
/// in the plan.
pub async fn find_index(
    store: &Store,
    workspace_id: &str,
    plan: &Plan,
    stats: &DbStats,
) -> Result<HashMap<String, IndexEntry>, StoreError> {
    let mut ids: Vec<String> = plan
        .messages
        .iter()
        .map(|m| m.event.message_id.clone())
        .collect();
    ids.extend(plan.statuses.iter().map(|s| s.message_id.clone()));
    ids.extend(plan.amendments.iter().map(|a| a.target_message_id.clone()));
    ids.sort_unstable();
    ids.dedup();
    let s = store.statements();
    let rows: Vec<IndexRow> = store
        .lookup(
            "message index lookup",
            &s.index_by_message_ids,
            &s.index_by_message_id,
            workspace_id,
            ids,
            stats,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.message_id.clone(), row.into()))
        .collect())
}

/// Splits the plan's messages into those to store and the count of
/// duplicates of messages stored by other records (pure).
pub fn split_new<'p>(
    plan: &'p Plan,
    index: &HashMap<String, IndexEntry>,
) -> (Vec<&'p MessageDraft>, u64) {
    let mut fresh = Vec::with_capacity(plan.messages.len());
    let mut duplicates = 0;
    for m in &plan.messages {
        match index.get(&m.event.message_id) {
            Some(entry)
                if entry.location.is_some() && entry.source != Some((m.partition, m.offset)) =>
            {
                duplicates += 1;
            }
            _ => fresh.push(m),
        }
    }
    (fresh, duplicates)
}

/// A `messages` row (step 6).
#[derive(Debug, SerializeRow)]
pub struct MessageRow {
    workspace_id: String,
    conversation_id: Uuid,
    bucket: i32,
    sent_at: CqlTimestamp,
    message_id: String,
    direction: &'static str,
    message_type: String,
    body: MaybeUnset<String>,
    type_payload: MaybeUnset<String>,
    status: MaybeUnset<&'static str>,
    sender: MaybeUnset<String>,
    origin: &'static str,
    context: MaybeUnset<String>,
    errors: MaybeUnset<String>,
    edited_at: MaybeUnset<CqlTimestamp>,
    revoked_at: MaybeUnset<CqlTimestamp>,
}

/// A `message_index` location (step 6).
#[derive(Debug, SerializeRow)]
pub struct LocationRow {
    conversation_id: Uuid,
    bucket: i32,
    sent_at: CqlTimestamp,
    direction: &'static str,
    source_partition: i32,
    source_offset: i64,
    workspace_id: String,
    message_id: String,
}

fn set<T>(v: Option<T>) -> MaybeUnset<T> {
    v.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

/// The message row of `m`, taking what `index` already holds for it.
pub fn message_row(
    workspace_id: &str,
    m: &MessageDraft,
    index: Option<&IndexEntry>,
) -> RowWrite<MessageRow> {
    let e = &m.event;
    let status = index
        .and_then(|i| DeliveryStatus::from_rank(i.status_rank))
        .map(DeliveryStatus::as_str);
    let edit = index.and_then(|i| i.edit.clone());
    let body = match &edit {
        Some((edited, _)) => edited.clone(),
        None => e.text.clone(),
    };
    let optional = [&body, &e.type_payload, &e.context, &e.errors, &e.sender];
    let bytes = 128
        + workspace_id.len()
        + e.message_id.len()
        + e.message_type.len()
        + optional
            .iter()
            .flat_map(|o| o.as_ref())
            .map(String::len)
            .sum::<usize>();
    RowWrite {
        partition: format!("{}:{}", m.conversation_id, m.bucket),
        estimated_bytes: bytes,
        values: MessageRow {
            workspace_id: workspace_id.to_owned(),
            conversation_id: m.conversation_id,
            bucket: m.bucket,
            sent_at: CqlTimestamp(m.sent_at_ms),
            message_id: e.message_id.clone(),
            direction: e.direction.as_str(),
            message_type: e.message_type.clone(),
            body: set(body),
            type_payload: set(e.type_payload.clone()),
            status: set(status),
            sender: set(e.sender.clone()),
            origin: e.origin.as_str(),
            context: set(e.context.clone()),
            errors: set(e.errors.clone()),
            edited_at: set(edit.map(|(_, at)| CqlTimestamp(at))),
            revoked_at: set(index.and_then(|i| i.revoked_at_ms).map(CqlTimestamp)),
        },
    }
}

/// The index location row of `m`.
pub fn location_row(workspace_id: &str, m: &MessageDraft) -> RowWrite<LocationRow> {
    RowWrite {
        partition: m.event.message_id.clone(),
        estimated_bytes: 96 + workspace_id.len() + m.event.message_id.len(),
        values: LocationRow {
            conversation_id: m.conversation_id,
            bucket: m.bucket,
            sent_at: CqlTimestamp(m.sent_at_ms),
            direction: m.event.direction.as_str(),
            source_partition: m.partition,
            source_offset: m.offset,
            workspace_id: workspace_id.to_owned(),
            message_id: m.event.message_id.clone(),
        },
    }
}

/// Inserts the new messages and their index rows: one sequential round trip.
pub async fn insert(
    store: &Store,
    workspace_id: &str,
    fresh: &[&MessageDraft],
    index: &HashMap<String, IndexEntry>,
    stats: &DbStats,
) -> Result<(), StoreError> {
    let messages = fresh
        .iter()
        .map(|m| message_row(workspace_id, m, index.get(&m.event.message_id)))
        .collect();
    let locations = fresh
        .iter()
        .map(|m| location_row(workspace_id, m))
        .collect();
    let s = store.statements();
    let insert_messages = store.write("message inserts", &s.insert_message, messages, stats);
    let index_rows = store.write(
        "message index upserts",
        &s.index_message_location,
        locations,
        stats,
    );
    futures::try_join!(insert_messages, index_rows).map(|_| ())
}
