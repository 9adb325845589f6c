//! Step 8 (part): apply delivery statuses monotonically.
//!
//! Order of strength: sent < delivered < read < played, and `failed` is
//! terminal. A status never lowers a message's rank, so applying the same
//! statuses again, or in another order, ends in the same state: `read` may
//! arrive without `delivered`, a late `delivered` never downgrades `read`. A
//! status equal to the stored rank is written again: if a crash left the
//! index row updated but not the message row, the retry completes it. A
//! status for a message not stored yet is kept on its index row, and the
//! message takes it when it arrives (step 6).

use std::collections::{BTreeMap, HashMap};

use scylla::SerializeRow;
use scylla::value::{CqlTimestamp, MaybeUnset};
use shared::webhook::{DeliveryStatus, StatusEvent};
use uuid::Uuid;

use super::message_index::{IndexEntry, Location};
use super::plan::MessageDraft;
use crate::store::rows::maybe;
use crate::store::{RowWrite, Statements, Writes};

/// The new state of one message after this batch's statuses.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub message_id: String,
    pub status: DeliveryStatus,
    pub at_ms: i64,
    pub errors: Option<String>,
    pub location: Option<Location>,
}

/// Where each message stored by this batch lives.
pub fn fresh_locations<'a>(fresh: &[&'a MessageDraft]) -> HashMap<&'a str, Location> {
    fresh
        .iter()
        .map(|m| (m.event.message_id.as_str(), m.location()))
        .collect()
}

/// Folds the statuses into at most one change per message (pure).
pub fn plan_changes(
    statuses: &[StatusEvent],
    index: &HashMap<String, IndexEntry>,
    fresh: &[&MessageDraft],
) -> Vec<StatusChange> {
    let fresh_locations = fresh_locations(fresh);
    let mut changes: BTreeMap<&str, StatusChange> = BTreeMap::new();
    let failed = DeliveryStatus::Failed.rank();
    for s in statuses {
        let rank = s.status.rank();
        let stored = index.get(&s.message_id).map_or(0, |i| i.status_rank);
        let weaker = match changes.get(s.message_id.as_str()) {
            Some(c) => c.status.rank() == failed || rank <= c.status.rank(),
            None => (stored == failed && rank != failed) || rank < stored,
        };
        if weaker {
            continue;
        }
        let location = index
            .get(&s.message_id)
            .and_then(|i| i.location)
            .or_else(|| fresh_locations.get(s.message_id.as_str()).copied());
        changes.insert(
            &s.message_id,
            StatusChange {
                message_id: s.message_id.clone(),
                status: s.status,
                at_ms: s.timestamp.saturating_mul(1000),
                errors: s.errors.clone(),
                location,
            },
        );
    }
    changes.into_values().collect()
}

/// The status columns of a `message_index` row (`index_message_status`).
#[derive(Debug, SerializeRow)]
struct IndexStatusRow {
    status: &'static str,
    status_rank: i32,
    status_at: CqlTimestamp,
    errors: MaybeUnset<String>,
    workspace_id: String,
    message_id: String,
}

/// The status of a `messages` row (`message_status`).
#[derive(Debug, SerializeRow)]
struct MessageStatusRow {
    status: &'static str,
    workspace_id: String,
    conversation_id: Uuid,
    bucket: i32,
    sent_at: CqlTimestamp,
    message_id: String,
}

/// Adds to `writes` the changes to the index and, where the message is
/// stored, to its row. Returns how many messages changed.
pub fn apply<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    workspace_id: &str,
    changes: Vec<StatusChange>,
    at: i64,
) -> u64 {
    let mut index_rows: Vec<RowWrite<IndexStatusRow>> = Vec::with_capacity(changes.len());
    let mut message_rows: Vec<RowWrite<MessageStatusRow>> = Vec::new();
    for c in &changes {
        let bytes =
            64 + workspace_id.len() + c.message_id.len() + c.errors.as_ref().map_or(0, String::len);
        index_rows.push(RowWrite {
            partition: c.message_id.clone(),
            estimated_bytes: bytes,
            values: IndexStatusRow {
                status: c.status.as_str(),
                status_rank: c.status.rank(),
                status_at: CqlTimestamp(c.at_ms),
                errors: maybe(c.errors.clone()),
                workspace_id: workspace_id.to_owned(),
                message_id: c.message_id.clone(),
            },
        });
        if let Some(at) = c.location {
            message_rows.push(RowWrite {
                partition: at.partition_key(),
                estimated_bytes: 64 + workspace_id.len() + c.message_id.len(),
                values: MessageStatusRow {
                    status: c.status.as_str(),
                    workspace_id: workspace_id.to_owned(),
                    conversation_id: at.conversation_id,
                    bucket: at.bucket,
                    sent_at: CqlTimestamp(at.sent_at_ms),
                    message_id: c.message_id.clone(),
                },
            });
        }
    }
    let ws = workspace_id;
    writes.add(
        ws,
        "index status updates",
        &s.index_message_status,
        index_rows,
        at,
    );
    writes.add(
        ws,
        "message status updates",
        &s.message_status,
        message_rows,
        at,
    );
    changes.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, s: DeliveryStatus, ts: i64) -> StatusEvent {
        StatusEvent {
            phone_number_id: "pn".into(),
            message_id: id.into(),
            status: s,
            timestamp: ts,
            recipient_phone: None,
            errors: None,
        }
    }

    /// An index holding `status` for message `id`.
    fn stored(id: &str, status: DeliveryStatus) -> HashMap<String, IndexEntry> {
        let entry = IndexEntry {
            status_rank: status.rank(),
            ..Default::default()
        };
        HashMap::from([(id.to_owned(), entry)])
    }

    #[test]
    fn a_late_delivered_never_downgrades_read() {
        let statuses = [
            status("m", DeliveryStatus::Read, 2),
            status("m", DeliveryStatus::Delivered, 1),
        ];
        let changes = plan_changes(&statuses, &HashMap::new(), &[]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].status, DeliveryStatus::Read);
    }

    #[test]
    fn failed_is_terminal_and_stored_rank_is_respected() {
        let index = stored("m", DeliveryStatus::Failed);
        assert!(plan_changes(&[status("m", DeliveryStatus::Read, 5)], &index, &[]).is_empty());
        let index = stored("m", DeliveryStatus::Read);
        assert!(plan_changes(&[status("m", DeliveryStatus::Delivered, 5)], &index, &[]).is_empty());
    }

    #[test]
    fn a_status_equal_to_the_stored_rank_is_written_again_to_complete_a_crashed_write() {
        let index = stored("m", DeliveryStatus::Read);
        let changes = plan_changes(&[status("m", DeliveryStatus::Read, 5)], &index, &[]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].status, DeliveryStatus::Read);
    }

    #[test]
    fn played_follows_read_and_failed_stays_terminal() {
        let statuses = [
            status("m", DeliveryStatus::Played, 3),
            status("m", DeliveryStatus::Read, 2),
        ];
        assert_eq!(
            plan_changes(&statuses, &HashMap::new(), &[])[0].status,
            DeliveryStatus::Played
        );
        let index = stored("m", DeliveryStatus::Failed);
        assert!(plan_changes(&[status("m", DeliveryStatus::Played, 5)], &index, &[]).is_empty());
    }

    #[test]
    fn a_status_for_an_unknown_message_is_kept_without_location() {
        let changes = plan_changes(
            &[status("ghost", DeliveryStatus::Sent, 1)],
            &HashMap::new(),
            &[],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].location, None);
    }
}
