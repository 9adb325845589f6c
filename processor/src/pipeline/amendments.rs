//! Step 8 (part): edits and revokes of earlier messages.
//!
//! Guarantees: idempotent and order-insensitive. The latest edit (by its
//! WhatsApp time, then its text) wins; an edit equal to the stored one is
//! written again, so a retry completes a write a crash cut short. A revoke
//! is sticky. Both
//! are kept on the target's index row; the message row takes them now when
//! it is stored, or in step 6 when it arrives later.

use std::collections::{BTreeMap, HashMap};

use scylla::SerializeRow;
use scylla::value::CqlTimestamp;
use shared::webhook::{AmendEvent, Amendment};
use uuid::Uuid;

use super::message_index::{IndexEntry, Location};
use super::plan::MessageDraft;
use super::statuses::fresh_locations;
use crate::store::{RowWrite, Statements, Writes};

/// What this batch changes on one target message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AmendChange {
    pub edit: Option<(Option<String>, i64)>,
    pub revoked_at_ms: Option<i64>,
    pub location: Option<Location>,
}

/// Folds the amendments into one change per target (pure).
pub fn plan_changes(
    amendments: &[AmendEvent],
    index: &HashMap<String, IndexEntry>,
    fresh: &[&MessageDraft],
) -> BTreeMap<String, AmendChange> {
    let fresh = fresh_locations(fresh);
    let mut changes: BTreeMap<String, AmendChange> = BTreeMap::new();
    for a in amendments {
        let stored = index.get(&a.target_message_id);
        let at_ms = a.timestamp.saturating_mul(1000);
        let change = changes
            .entry(a.target_message_id.clone())
            .or_insert_with(|| AmendChange {
                location: stored
                    .and_then(|i| i.location)
                    .or_else(|| fresh.get(a.target_message_id.as_str()).copied()),
                ..AmendChange::default()
            });
        match &a.amendment {
            Amendment::Edit { body } => {
                // Edits order by (time, text): equal times never depend on
                // arrival order. An edit equal to the stored one is written
                // again (a retry completes a write a crash cut short).
                let key = |e: &(Option<String>, i64)| (e.1, e.0.clone());
                let candidate = (body.clone(), at_ms);
                let newer = match &change.edit {
                    Some(current) => key(&candidate) > key(current),
                    None => stored
                        .and_then(|i| i.edit.as_ref())
                        .is_none_or(|s| key(&candidate) >= key(s)),
                };
                if newer {
                    change.edit = Some(candidate);
                }
            }
            Amendment::Revoke => {
                let first = stored.and_then(|i| i.revoked_at_ms).into_iter();
                let earliest = first.chain(change.revoked_at_ms).chain([at_ms]).min();
                change.revoked_at_ms = earliest;
            }
        }
    }
    changes
}

#[derive(Debug, SerializeRow)]
struct IndexEdit {
    edit_body: Option<String>,
    edited_at: CqlTimestamp,
    workspace_id: String,
    message_id: String,
}

#[derive(Debug, SerializeRow)]
struct IndexRevoke {
    revoked_at: CqlTimestamp,
    workspace_id: String,
    message_id: String,
}

#[derive(Debug, SerializeRow)]
struct MessageEdit {
    body: Option<String>,
    edited_at: CqlTimestamp,
    workspace_id: String,
    conversation_id: Uuid,
    bucket: i32,
    sent_at: CqlTimestamp,
    message_id: String,
}

#[derive(Debug, SerializeRow)]
struct MessageRevoke {
    revoked_at: CqlTimestamp,
    workspace_id: String,
    conversation_id: Uuid,
    bucket: i32,
    sent_at: CqlTimestamp,
    message_id: String,
}

fn row_write<V>(partition: String, bytes: usize, values: V) -> RowWrite<V> {
    RowWrite {
        partition,
        estimated_bytes: bytes,
        values,
    }
}

/// The rows of one wave of amendments.
#[derive(Default)]
struct Rows {
    index_edits: Vec<RowWrite<IndexEdit>>,
    index_revokes: Vec<RowWrite<IndexRevoke>>,
    message_edits: Vec<RowWrite<MessageEdit>>,
    message_revokes: Vec<RowWrite<MessageRevoke>>,
}

impl Rows {
    /// Adds the rows of the change `c` of message `id`.
    fn push(&mut self, ws: &str, id: String, c: AmendChange) {
        let bytes = 96 + ws.len() + id.len();
        if let Some((body, at)) = c.edit {
            let bytes = bytes + body.as_ref().map_or(0, String::len);
            if let Some(l) = c.location {
                let row = MessageEdit {
                    body: body.clone(),
                    edited_at: CqlTimestamp(at),
                    workspace_id: ws.to_owned(),
                    conversation_id: l.conversation_id,
                    bucket: l.bucket,
                    sent_at: CqlTimestamp(l.sent_at_ms),
                    message_id: id.clone(),
                };
                self.message_edits
                    .push(row_write(l.partition_key(), bytes, row));
            }
            let row = IndexEdit {
                edit_body: body,
                edited_at: CqlTimestamp(at),
                workspace_id: ws.to_owned(),
                message_id: id.clone(),
            };
            self.index_edits.push(row_write(id.clone(), bytes, row));
        }
        if let Some(at) = c.revoked_at_ms {
            if let Some(l) = c.location {
                let row = MessageRevoke {
                    revoked_at: CqlTimestamp(at),
                    workspace_id: ws.to_owned(),
                    conversation_id: l.conversation_id,
                    bucket: l.bucket,
                    sent_at: CqlTimestamp(l.sent_at_ms),
                    message_id: id.clone(),
                };
                self.message_revokes
                    .push(row_write(l.partition_key(), bytes, row));
            }
            let row = IndexRevoke {
                revoked_at: CqlTimestamp(at),
                workspace_id: ws.to_owned(),
                message_id: id.clone(),
            };
            self.index_revokes.push(row_write(id, bytes, row));
        }
    }
}

/// Adds the changes (index rows, and message rows where located) to
/// `writes`. Returns how many messages changed.
pub fn apply<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    ws: &str,
    changes: BTreeMap<String, AmendChange>,
    at: i64,
) -> u64 {
    let count = changes.len() as u64;
    let mut rows = Rows::default();
    for (id, c) in changes {
        rows.push(ws, id, c);
    }
    writes.add(ws, "index edits", &s.index_edit, rows.index_edits, at);
    writes.add(ws, "index revokes", &s.index_revoke, rows.index_revokes, at);
    writes.add(ws, "message edits", &s.message_edit, rows.message_edits, at);
    writes.add(
        ws,
        "message revokes",
        &s.message_revoke,
        rows.message_revokes,
        at,
    );
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(body: &str, ts: i64) -> AmendEvent {
        AmendEvent {
            phone_number_id: "pn".into(),
            target_message_id: "m".into(),
            amendment: Amendment::Edit {
                body: Some(body.into()),
            },
            timestamp: ts,
        }
    }

    #[test]
    fn the_latest_edit_wins_in_any_order_and_an_older_one_never_overwrites() {
        let a = plan_changes(&[edit("one", 1), edit("two", 2)], &HashMap::new(), &[]);
        let b = plan_changes(&[edit("two", 2), edit("one", 1)], &HashMap::new(), &[]);
        assert_eq!(a, b);
        assert_eq!(a["m"].edit, Some((Some("two".into()), 2000)));
        let mut index = HashMap::new();
        index.insert(
            "m".to_string(),
            IndexEntry {
                edit: Some((Some("two".into()), 2000)),
                ..IndexEntry::default()
            },
        );
        assert_eq!(plan_changes(&[edit("one", 1)], &index, &[])["m"].edit, None);
        assert!(
            plan_changes(&[edit("two", 2)], &index, &[])["m"]
                .edit
                .is_some()
        );
    }

    #[test]
    fn two_edits_at_the_same_second_end_the_same_in_one_batch_or_two() {
        let both = plan_changes(&[edit("a", 5), edit("b", 5)], &HashMap::new(), &[]);
        let reversed = plan_changes(&[edit("b", 5), edit("a", 5)], &HashMap::new(), &[]);
        assert_eq!(both, reversed);
        let first = plan_changes(&[edit("a", 5)], &HashMap::new(), &[]);
        let stored = IndexEntry {
            edit: first["m"].edit.clone(),
            ..IndexEntry::default()
        };
        let index = HashMap::from([("m".to_string(), stored)]);
        let second = plan_changes(&[edit("b", 5)], &index, &[]);
        assert_eq!(second["m"].edit, both["m"].edit);
    }

    #[test]
    fn a_revoke_keeps_the_earliest_time() {
        let revoke = |ts| AmendEvent {
            amendment: Amendment::Revoke,
            ..edit("", ts)
        };
        let c = plan_changes(&[revoke(5), revoke(3)], &HashMap::new(), &[]);
        assert_eq!(c["m"].revoked_at_ms, Some(3000));
    }
}
