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
//! arrived first), so arrival order never matters, folded with those of the
//! batch itself: a row's values then reflect every record up to the batch's
//! last, as its write clock says (a re-run of fewer records, at a lower
//! clock, cannot be needed to complete it).

use std::collections::{BTreeMap, HashMap, HashSet};

use scylla::value::CqlTimestamp;

use super::amendments::AmendChange;
pub use super::message_index::{IndexEntry, LocationRow, find_index, location_row};
use super::plan::{MessageDraft, Plan};
use super::statuses::StatusChange;
pub use crate::store::rows::MessageRow;
use crate::store::rows::maybe;
use crate::store::{RowWrite, Statements, Writes};
use shared::webhook::DeliveryStatus;

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
            Some(entry) if entry.stored_by_other(m.watermark()) => duplicates += 1,
            _ => fresh.push(m),
        }
    }
    (fresh, duplicates)
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
        partition: m.location().partition_key(),
        estimated_bytes: bytes,
        values: MessageRow {
            workspace_id: workspace_id.to_owned(),
            conversation_id: m.conversation_id,
            bucket: m.bucket,
            sent_at: CqlTimestamp(m.sent_at_ms),
            message_id: e.message_id.clone(),
            direction: e.direction.as_str(),
            message_type: e.message_type.clone(),
            body: maybe(body),
            type_payload: maybe(e.type_payload.clone()),
            status: maybe(status),
            sender: maybe(e.sender.clone()),
            origin: e.origin.as_str(),
            context: maybe(e.context.clone()),
            errors: maybe(e.errors.clone()),
            edited_at: maybe(edit.map(|(_, at)| CqlTimestamp(at))),
            revoked_at: maybe(index.and_then(|i| i.revoked_at_ms).map(CqlTimestamp)),
        },
    }
}

/// The batch's own statuses and amendments, folded to one change per
/// message: step 8 writes them, and step 6 folds them into the rows it
/// inserts (computed once, after step 5).
#[derive(Debug, Default)]
pub struct BatchChanges {
    pub statuses: Vec<StatusChange>,
    pub amendments: BTreeMap<String, AmendChange>,
}

impl BatchChanges {
    /// The changes of `plan`, given the index and the fresh messages (pure).
    /// A change of a fresh message goes to its index row only: the message's
    /// own insert carries it ([`Self::fold`]), in the same wave, so no write
    /// can land on a message row before the insert that creates it.
    pub fn plan(plan: &Plan, index: &HashMap<String, IndexEntry>, fresh: &[&MessageDraft]) -> Self {
        let mut changes = BatchChanges {
            statuses: super::statuses::plan_changes(&plan.statuses, index, fresh),
            amendments: super::amendments::plan_changes(&plan.amendments, index, fresh),
        };
        let inserted: HashSet<&str> = fresh.iter().map(|m| m.event.message_id.as_str()).collect();
        for s in &mut changes.statuses {
            if inserted.contains(s.message_id.as_str()) {
                s.location = None;
            }
        }
        for (id, a) in &mut changes.amendments {
            if inserted.contains(id.as_str()) {
                a.location = None;
            }
        }
        changes
    }

    /// What each fresh message's row should hold: its index entry with
    /// these changes of it folded in (pure).
    pub fn fold(
        &self,
        fresh: &[&MessageDraft],
        index: &HashMap<String, IndexEntry>,
    ) -> HashMap<String, IndexEntry> {
        let mut folded: HashMap<String, IndexEntry> = fresh
            .iter()
            .map(|m| {
                let id = &m.event.message_id;
                (id.clone(), index.get(id).cloned().unwrap_or_default())
            })
            .collect();
        for change in &self.statuses {
            if let Some(entry) = folded.get_mut(&change.message_id) {
                entry.status_rank = change.status.rank();
            }
        }
        for (id, change) in &self.amendments {
            if let Some(entry) = folded.get_mut(id) {
                if change.edit.is_some() {
                    entry.edit.clone_from(&change.edit);
                }
                entry.revoked_at_ms = change.revoked_at_ms.or(entry.revoked_at_ms);
            }
        }
        folded
    }
}

/// Adds the new messages and their index rows to `writes`.
pub fn insert<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    workspace_id: &str,
    (fresh, changes, index): (
        &[&MessageDraft],
        &BatchChanges,
        &HashMap<String, IndexEntry>,
    ),
    at: i64,
) {
    let folded = changes.fold(fresh, index);
    let messages: Vec<_> = fresh
        .iter()
        .map(|m| message_row(workspace_id, m, folded.get(&m.event.message_id)))
        .collect();
    let locations: Vec<_> = fresh
        .iter()
        .map(|m| location_row(workspace_id, m))
        .collect();
    let ws = workspace_id;
    writes.add(ws, "message inserts", &s.insert_message, messages, at);
    writes.add(
        ws,
        "message index upserts",
        &s.index_message_location,
        locations,
        at,
    );
}
