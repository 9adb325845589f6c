//! Steps 5 and 6: drop messages that are already stored, insert the rest.
//!
//! Deduplication reads the message-id index once for the whole batch. A
//! message counts as already stored when its index row has a location and
//! names a different source record; the same record read again (after a
//! crash) is not a duplicate, so its writes are simply repeated with the same
//! values. Messages go in unlogged batches grouped by their
//! (workspace, conversation, month) partition; index rows follow in the same
//! round trip.

use std::collections::HashMap;

use scylla::value::{CqlTimestamp, MaybeUnset};
use uuid::Uuid;

use super::plan::{MessageDraft, Plan};
use crate::store::{DbStats, RowWrite, Store, StoreError, WriteSet};
use shared::webhook::DeliveryStatus;

/// The index row of a message id, as found in step 5.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntry {
    /// (conversation, bucket, sent_at ms), once the message itself is stored.
    pub location: Option<(Uuid, i32, i64)>,
    pub source: Option<(i32, i64)>,
    pub status_rank: i32,
}

type IndexRow = (
    String,
    Option<Uuid>,
    Option<i32>,
    Option<CqlTimestamp>,
    Option<i32>,
    Option<i64>,
    Option<i32>,
);

/// Reads the index rows of every message id and status target in the plan.
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
        .map(|(id, conv, bucket, sent_at, part, off, rank)| {
            let location = match (conv, bucket, sent_at) {
                (Some(c), Some(b), Some(t)) => Some((c, b, t.0)),
                _ => None,
            };
            (
                id,
                IndexEntry {
                    location,
                    source: part.zip(off),
                    status_rank: rank.unwrap_or(0),
                },
            )
        })
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

type MessageRow = (
    String,
    Uuid,
    i32,
    CqlTimestamp,
    String,
    &'static str,
    String,
    MaybeUnset<String>,
    MaybeUnset<String>,
    MaybeUnset<&'static str>,
);
type LocationRow = (
    Uuid,
    i32,
    CqlTimestamp,
    &'static str,
    i32,
    i64,
    String,
    String,
);

/// Inserts the new messages and their index rows: one sequential round trip.
pub async fn insert(
    store: &Store,
    workspace_id: &str,
    fresh: &[&MessageDraft],
    index: &HashMap<String, IndexEntry>,
    stats: &DbStats,
) -> Result<(), StoreError> {
    let mut messages: Vec<RowWrite<MessageRow>> = Vec::with_capacity(fresh.len());
    let mut locations: Vec<RowWrite<LocationRow>> = Vec::with_capacity(fresh.len());
    for m in fresh {
        let e = &m.event;
        let status = index
            .get(&e.message_id)
            .and_then(|i| status_from_rank(i.status_rank))
            .map(DeliveryStatus::as_str);
        let bytes = 96
            + workspace_id.len()
            + e.message_id.len()
            + e.message_type.len()
            + e.text.as_ref().map_or(0, String::len)
            + e.type_payload.as_ref().map_or(0, String::len);
        messages.push(RowWrite {
            partition: format!("{}:{}", m.conversation_id, m.bucket),
            estimated_bytes: bytes,
            values: (
                workspace_id.to_owned(),
                m.conversation_id,
                m.bucket,
                CqlTimestamp(m.sent_at_ms),
                e.message_id.clone(),
                e.direction.as_str(),
                e.message_type.clone(),
                e.text.clone().map_or(MaybeUnset::Unset, MaybeUnset::Set),
                e.type_payload
                    .clone()
                    .map_or(MaybeUnset::Unset, MaybeUnset::Set),
                status.map_or(MaybeUnset::Unset, MaybeUnset::Set),
            ),
        });
        locations.push(RowWrite {
            partition: e.message_id.clone(),
            estimated_bytes: 96 + workspace_id.len() + e.message_id.len(),
            values: (
                m.conversation_id,
                m.bucket,
                CqlTimestamp(m.sent_at_ms),
                e.direction.as_str(),
                m.partition,
                m.offset,
                workspace_id.to_owned(),
                e.message_id.clone(),
            ),
        });
    }
    let s = store.statements();
    let insert_messages = store.write(
        vec![WriteSet {
            what: "message inserts",
            statement: &s.insert_message,
            rows: messages,
        }],
        stats,
    );
    let index_rows = store.write(
        vec![WriteSet {
            what: "message index upserts",
            statement: &s.index_message_location,
            rows: locations,
        }],
        stats,
    );
    let (a, b) = futures::join!(insert_messages, index_rows);
    a.and(b)
}

/// The status of a stored rank (0 means none yet).
pub fn status_from_rank(rank: i32) -> Option<DeliveryStatus> {
    [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
    ]
    .into_iter()
    .find(|s| s.rank() == rank)
}
