//! The `message_index` table: one row per (workspace, message id), the
//! meeting point of a message and everything that targets it.
//!
//! Guarantees: the index row records where the message is stored (once it
//! is) and which Kafka record stored it, so a message read again from
//! another record is recognised as a duplicate while the same record read
//! again is not; statuses, edits and revokes that arrive before their
//! message wait on it, and the message takes them when it is stored.

use std::collections::HashMap;

use scylla::value::CqlTimestamp;
use scylla::{DeserializeRow, SerializeRow};
use uuid::Uuid;

use super::plan::{MessageDraft, Plan};
pub use crate::store::rows::Location;
use crate::store::rows::Watermark;
use crate::store::{DbStats, RowWrite, Store, StoreError, WorkspaceKey};

/// The index row of a message id, as found in step 5.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntry {
    /// Set once the message itself is stored.
    pub location: Option<Location>,
    pub source: Option<Watermark>,
    pub status_rank: i32,
    /// The latest edit: its text and time (ms).
    pub edit: Option<(Option<String>, i64)>,
    pub revoked_at_ms: Option<i64>,
}

/// A `message_index` row as step 5 reads it (`INDEX_COLUMNS`).
#[derive(Debug, DeserializeRow)]
pub struct IndexRow {
    pub workspace_id: String,
    pub message_id: String,
    pub conversation_id: Option<Uuid>,
    pub bucket: Option<i32>,
    pub sent_at: Option<CqlTimestamp>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub status_rank: Option<i32>,
    pub edit_body: Option<String>,
    pub edited_at: Option<CqlTimestamp>,
    pub revoked_at: Option<CqlTimestamp>,
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
            source: Watermark::from_columns(r.source_partition, r.source_offset),
            status_rank: r.status_rank.unwrap_or(0),
            edit: r.edited_at.map(|t| (r.edit_body, t.0)),
            revoked_at_ms: r.revoked_at.map(|t| t.0),
        }
    }
}

impl IndexEntry {
    /// Whether the message is stored already, by a record other than `source`.
    pub fn stored_by_other(&self, source: Watermark) -> bool {
        self.location.is_some() && self.source != Some(source)
    }
}

impl WorkspaceKey<String> for IndexRow {
    fn workspace_id(&self) -> &str {
        &self.workspace_id
    }
    fn key(&self) -> &String {
        &self.message_id
    }
}

/// The message ids a plan looks up: its messages, and the targets of its
/// statuses and amendments.
fn looked_up(plan: &Plan) -> Vec<String> {
    let mut ids: Vec<String> = plan.message_ids.clone();
    ids.extend(plan.statuses.iter().map(|s| s.message_id.clone()));
    ids.extend(plan.amendments.iter().map(|a| a.target_message_id.clone()));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Reads the index rows of every message id and status or amendment target
/// of every workspace's plan (needs no placement: it may run beside step
/// 1), in one cross-workspace lookup; one map per workspace, in order.
pub async fn find_index(
    store: &Store,
    batch: &[(&str, &Plan)],
    stats: &DbStats,
) -> Result<Vec<HashMap<String, IndexEntry>>, StoreError> {
    let wanted: Vec<(&str, Vec<String>)> = batch
        .iter()
        .map(|(ws, plan)| (*ws, looked_up(plan)))
        .collect();
    let s = store.statements();
    let found: Vec<Vec<IndexRow>> = store
        .lookup_across(
            "message index lookup",
            &s.index_by_message_ids,
            &wanted,
            stats,
        )
        .await?;
    Ok(found
        .into_iter()
        .map(|rows| {
            rows.into_iter()
                .map(|row| (row.message_id.clone(), row.into()))
                .collect()
        })
        .collect())
}

/// A `message_index` location (step 6).
#[derive(Debug, SerializeRow)]
pub struct LocationRow {
    pub conversation_id: Uuid,
    pub bucket: i32,
    pub sent_at: CqlTimestamp,
    pub direction: &'static str,
    pub source_partition: i32,
    pub source_offset: i64,
    pub workspace_id: String,
    pub message_id: String,
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
