//! The inbox's derived rows, written inside the waves the pipeline already
//! runs (no extra sequential round trip):
//!
//! - step 3 reads the workspace's `workspace_inbox` row beside its
//!   conversations;
//! - step 6 moves each conversation whose last message changes in the
//!   recency list (`conversation_activity`), beside the message inserts;
//! - step 7 raises `inbound_total` beside the conversation updates.
//!
//! Exactly-once: `inbound_total` carries the same kind of watermark as a
//! conversation (all of a workspace's records live in one Kafka partition),
//! so a record read again is never counted twice. The list moves are
//! idempotent (an upsert of the new entry, a delete of the old one) and come
//! before the conversation update that moves the watermark: if the batch
//! fails in between, its retry computes the same moves from the same
//! conversation rows and writes them again.

use std::collections::HashMap;

use scylla::value::CqlTimestamp;
use scylla::{DeserializeRow, SerializeRow};
use uuid::Uuid;

use super::conversations::{ConversationState, ConversationUpdate};
use super::plan::MessageDraft;
use crate::inbox::{ActivityKey, moves};
use crate::store::rows::Applied;
use crate::store::{DbStats, RowWrite, Statements, Store, StoreError, Writes};
use shared::webhook::{Direction, Origin};

/// A workspace's inbound total as step 3 finds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkspaceTotal {
    pub inbound_total: i64,
    /// The partition and write clock of the last record counted.
    pub applied: Option<(i32, Applied)>,
}

#[derive(Debug, DeserializeRow)]
struct TotalRow {
    workspace_id: String,
    inbound_total: Option<i64>,
    applied_partition: Option<i32>,
    applied_offset: Option<i64>,
}

#[derive(Debug, SerializeRow)]
struct TotalUpdateRow<'a> {
    inbound_total: i64,
    applied_partition: i32,
    applied_offset: i64,
    workspace_id: &'a str,
}

#[derive(Debug, SerializeRow)]
struct ActivityRow<'a> {
    workspace_id: &'a str,
    bucket: i32,
    slot: CqlTimestamp,
    conversation_id: Uuid,
    last_message_at: CqlTimestamp,
}

#[derive(Debug, SerializeRow)]
struct ActivityKeyRow<'a> {
    workspace_id: &'a str,
    bucket: i32,
    slot: CqlTimestamp,
    conversation_id: Uuid,
}

/// Step 3: the `workspace_inbox` rows of every workspace of the batch, in
/// the order of `workspace_ids` (zero when absent), in `IN` lists of
/// `cql.max_batch_statements` ids.
pub async fn find_totals(
    store: &Store,
    workspace_ids: &[&str],
    stats: &DbStats,
) -> Result<Vec<WorkspaceTotal>, StoreError> {
    let statement = &store.statements().workspace_inboxes_by_ids;
    let chunks = workspace_ids.chunks(store.max_keys_per_request());
    let pages = futures::future::try_join_all(chunks.map(|ids| {
        store.read::<_, TotalRow>("workspace inbox lookup", statement, (ids.to_vec(),), stats)
    }))
    .await?;
    let mut found: HashMap<String, WorkspaceTotal> = pages
        .into_iter()
        .flatten()
        .map(|r| {
            let total = WorkspaceTotal {
                inbound_total: r.inbound_total.unwrap_or(0),
                applied: Applied::from_column(r.applied_offset)
                    .map(|a| (r.applied_partition.unwrap_or_default(), a)),
            };
            (r.workspace_id, total)
        })
        .collect();
    Ok(workspace_ids
        .iter()
        .map(|ws| found.remove(*ws).unwrap_or_default())
        .collect())
}

/// The new total and watermark, when this batch counts any inbound message
/// past the workspace's watermark (the messages that raise a conversation's
/// `unread_count`: inbound, not imported history).
pub fn plan_total(base: &WorkspaceTotal, fresh: &[&MessageDraft]) -> Option<WorkspaceTotal> {
    let mut total = *base;
    let mut counted = false;
    for m in fresh {
        if base.applied.is_some_and(|(_, w)| w.covers(m.clock)) {
            continue;
        }
        if m.event.direction == Direction::Inbound && m.event.origin != Origin::History {
            total.inbound_total += 1;
            counted = true;
        }
        if !total.applied.is_some_and(|(_, w)| w.covers(m.clock)) {
            total.applied = Some((m.partition, Applied(m.clock)));
        }
    }
    counted.then_some(total)
}

/// Step 7: adds the new total, if any, to `writes`.
pub fn write_total<'a>(
    writes: &mut Writes<'a>,
    s: &'a Statements,
    workspace_id: &'a str,
    total: Option<WorkspaceTotal>,
    at: i64,
) {
    let rows: Vec<RowWrite<TotalUpdateRow<'_>>> = total
        .and_then(|t| t.applied.map(|w| (t.inbound_total, w)))
        .map(|(inbound_total, w)| RowWrite {
            partition: workspace_id.to_owned(),
            estimated_bytes: 48 + workspace_id.len(),
            values: TotalUpdateRow {
                inbound_total,
                applied_partition: w.0,
                applied_offset: (w.1).0,
                workspace_id,
            },
        })
        .into_iter()
        .collect();
    let statement = &s.update_workspace_inbox;
    writes.add(workspace_id, "workspace inbox update", statement, rows, at);
}

/// The list moves of `updates`: (entries to write with their time, entries to delete).
pub fn plan_moves(
    updates: &[ConversationUpdate],
    state: &HashMap<Uuid, ConversationState>,
) -> (Vec<(ActivityKey, i64)>, Vec<ActivityKey>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    for u in updates {
        let Some((at, ..)) = &u.last_message else {
            continue;
        };
        let before = state
            .get(&u.conversation_id)
            .and_then(|s| s.last_message_at_ms);
        let (new, old) = moves(u.conversation_id, before, *at);
        set.push((new, *at));
        delete.extend(old);
    }
    (set, delete)
}

/// Step 6: adds the moves of `updates` in the recency list to `writes`.
pub fn write_moves<'a>(
    writes: &mut Writes<'a>,
    s: &'a Statements,
    workspace_id: &'a str,
    (updates, state): (&[ConversationUpdate], &HashMap<Uuid, ConversationState>),
    at: i64,
) {
    let (set, delete) = plan_moves(updates, state);
    let bytes = 64 + workspace_id.len();
    let set: Vec<_> = set
        .into_iter()
        .map(|(k, at)| RowWrite {
            partition: k.bucket.to_string(),
            estimated_bytes: bytes,
            values: ActivityRow {
                workspace_id,
                bucket: k.bucket,
                slot: CqlTimestamp(k.slot_ms),
                conversation_id: k.conversation_id,
                last_message_at: CqlTimestamp(at),
            },
        })
        .collect();
    let delete: Vec<_> = delete
        .into_iter()
        .map(|k| RowWrite {
            partition: k.bucket.to_string(),
            estimated_bytes: bytes,
            values: ActivityKeyRow {
                workspace_id,
                bucket: k.bucket,
                slot: CqlTimestamp(k.slot_ms),
                conversation_id: k.conversation_id,
            },
        })
        .collect();
    writes.add(workspace_id, "activity upserts", &s.activity_set, set, at);
    writes.add(
        workspace_id,
        "activity deletes",
        &s.activity_delete,
        delete,
        at,
    );
}
