//! The inbox's derived rows, written inside the waves the pipeline already
//! runs (no extra sequential round trip):
//!
//! - step 3 reads the workspace's `workspace_totals` row beside its
//!   conversations (one `IN` per shard of the batch's workspaces);
//! - step 6 moves each conversation whose last message changes in the
//!   recency list (`conversation_activity`), beside the message inserts;
//! - step 7 raises `inbound_total` beside the conversation updates; the
//!   totals of every workspace in one shard share batches, so a batch of a
//!   thousand workspaces writes them into at most 64 partitions.
//!
//! Exactly-once: `inbound_total` carries the same kind of watermark as a
//! conversation (all of a workspace's records live in one Kafka partition),
//! so a record read again is never counted twice. The list moves are
//! idempotent (an upsert of the new entry, a delete of the old one) and
//! share the write wave with the conversation update that moves the
//! watermark, so a failed batch may leave either without the other. Its
//! retry writes the new entry again either way: from the moves, when the
//! update did not land; from the conversation row, when its stored last
//! message is one of the batch's own. Only the delete of the old entry can
//! then be lost, and the list's readers skip an entry whose conversation no
//! longer shows its time ([`crate::inbox`]), so the list stays exact.

use std::collections::{BTreeMap, HashMap};

use scylla::value::CqlTimestamp;
use scylla::{DeserializeRow, SerializeRow};
use uuid::Uuid;

use super::conversations::{ConversationState, ConversationUpdate};
use super::plan::MessageDraft;
use crate::inbox::{ActivityKey, moves};
use crate::store::rows::Applied;
use crate::store::{DbStats, RowWrite, Statements, Store, StoreError, Writes};
use shared::ids;
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
    shard: i32,
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

/// Step 3: the `workspace_totals` rows of every workspace of the batch, in
/// the order of `workspace_ids` (zero when absent): one `IN` per shard the
/// workspaces fall in, of at most `cql.max_batch_statements` ids each.
pub async fn find_totals(
    store: &Store,
    workspace_ids: &[&str],
    stats: &DbStats,
) -> Result<Vec<WorkspaceTotal>, StoreError> {
    let statement = &store.statements().workspace_totals_by_ids;
    let mut by_shard: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for ws in workspace_ids {
        by_shard
            .entry(ids::workspace_shard(ws))
            .or_default()
            .push(ws);
    }
    let chunks = by_shard.iter().flat_map(|(shard, workspaces)| {
        workspaces
            .chunks(store.max_keys_per_request())
            .map(move |chunk| (*shard, chunk.to_vec()))
    });
    let pages = futures::future::try_join_all(
        chunks
            .map(|key| store.read::<_, TotalRow>("workspace total lookup", statement, key, stats)),
    )
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
        .map(|(inbound_total, w)| {
            let shard = ids::workspace_shard(workspace_id);
            RowWrite {
                partition: format!("workspace_totals\u{1f}{shard}"),
                estimated_bytes: 52 + workspace_id.len(),
                values: TotalUpdateRow {
                    inbound_total,
                    applied_partition: w.0,
                    applied_offset: (w.1).0,
                    shard,
                    workspace_id,
                },
            }
        })
        .into_iter()
        .collect();
    let statement = &s.update_workspace_total;
    writes.add_shared("workspace total update", statement, rows, at);
}

/// The list moves of `updates`: (entries to write with their time, entries
/// to delete). A conversation whose stored last message is one of `fresh`
/// (the batch's messages, already counted when its update landed before a
/// failure) gets its entry written again.
pub fn plan_moves(
    updates: &[ConversationUpdate],
    state: &HashMap<Uuid, ConversationState>,
    fresh: &[&MessageDraft],
) -> (Vec<(ActivityKey, i64)>, Vec<ActivityKey>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    let mut moved = std::collections::HashSet::new();
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
        moved.insert(u.conversation_id);
    }
    for m in fresh {
        let id = m.conversation_id;
        let Some(stored) = state.get(&id) else {
            continue;
        };
        let own = stored.last_message_id.as_deref() == Some(m.event.message_id.as_str());
        if let Some(at) = stored.last_message_at_ms.filter(|_| own)
            && moved.insert(id)
        {
            set.push((ActivityKey::of(id, at), at));
        }
    }
    (set, delete)
}

/// Step 6: adds the moves of `updates` in the recency list to `writes`.
pub fn write_moves<'a>(
    writes: &mut Writes<'a>,
    s: &'a Statements,
    workspace_id: &'a str,
    (updates, state, fresh): (
        &[ConversationUpdate],
        &HashMap<Uuid, ConversationState>,
        &[&MessageDraft],
    ),
    at: i64,
) {
    let (set, delete) = plan_moves(updates, state, fresh);
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::webhook::MessageEvent;

    const CONV: Uuid = Uuid::from_u128(7);
    const AT: i64 = 1_700_000_040_000;

    fn draft(id: &str, sent_at_ms: i64) -> MessageDraft {
        MessageDraft {
            event: MessageEvent {
                message_id: id.into(),
                ..MessageEvent::default()
            },
            conversation_id: CONV,
            sent_at_ms,
            bucket: 202311,
            partition: 0,
            offset: 1,
            clock: crate::clocks::unstamped(1),
        }
    }

    fn stored(last_id: &str, last_at: i64) -> HashMap<Uuid, ConversationState> {
        let state = ConversationState {
            last_message_at_ms: Some(last_at),
            last_message_id: Some(last_id.into()),
            ..ConversationState::default()
        };
        HashMap::from([(CONV, state)])
    }

    /// The update of a failed batch landed (the stored last message is the
    /// batch's own, so nothing is counted again): the retry writes the
    /// entry again, or the conversation would vanish from the list.
    #[test]
    fn a_batch_whose_update_already_landed_writes_its_entry_again() {
        let m = draft("m2", AT);
        let (set, delete) = plan_moves(&[], &stored("m2", AT), &[&m]);
        assert_eq!(set, vec![(ActivityKey::of(CONV, AT), AT)]);
        assert!(delete.is_empty());
    }

    #[test]
    fn a_conversation_last_moved_by_an_earlier_batch_is_left_alone() {
        let m = draft("m2", AT - 1_000);
        let (set, delete) = plan_moves(&[], &stored("m9", AT), &[&m]);
        assert!(set.is_empty() && delete.is_empty());
    }
}
