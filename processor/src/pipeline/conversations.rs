//! Steps 3, 4 and 7: find the batch's conversations, create the missing
//! ones, and update each touched conversation once.
//!
//! Exactly-once effect: a conversation row carries a watermark, the write
//! clock ([`crate::clocks`]) of the last record already counted in its
//! `unread_count`, `message_count` and `last_message_*` fields. The update
//! counts only messages of records past the watermark and moves the watermark
//! in the same single-row write (atomic in Cassandra and ScyllaDB), so a
//! record read again after a crash is never counted twice, and a record whose
//! count was never written is counted when read again.

use std::collections::{BTreeMap, HashMap};

use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::plan::{MessageDraft, Plan, preview};
use crate::store::rows::{
    Applied, ConversationRow, ConversationUpdateRow, CreateConversationRow, maybe,
};
use crate::store::{DbStats, RowWrite, Statements, Store, StoreError, Writes};
use shared::webhook::{Direction, Origin};

/// The parts of an existing conversation row the update needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationState {
    /// Whether step 4 wrote the row's identity columns. Steps 4 and 7 share
    /// the write wave, so a failed batch may leave a row holding only the
    /// update; its retry then writes the identity columns again.
    pub created: bool,
    pub state_at_ms: Option<i64>,
    pub first_message_at_ms: Option<i64>,
    pub last_message_at_ms: Option<i64>,
    pub last_message_id: Option<String>,
    pub unread_count: i32,
    pub message_count: i32,
    pub applied: Option<Applied>,
}

impl ConversationState {
    /// Whether the record with write clock `clock` is already counted.
    fn covers(&self, clock: i64) -> bool {
        self.applied.is_some_and(|w| w.covers(clock))
    }
}

impl From<ConversationRow> for ConversationState {
    fn from(r: ConversationRow) -> Self {
        ConversationState {
            created: r.phone_number_id.is_some(),
            state_at_ms: r.state_at.map(|t| t.0),
            first_message_at_ms: r.first_message_at.map(|t| t.0),
            last_message_at_ms: r.last_message_at.map(|t| t.0),
            last_message_id: r.last_message_id,
            unread_count: r.unread_count.unwrap_or(0),
            message_count: r.message_count.unwrap_or(0),
            applied: Applied::from_column(r.applied_offset),
        }
    }
}

/// The conversations of each workspace's keys that already exist, with
/// their state: one cross-workspace lookup, in the order of `wanted`.
pub async fn find_existing(
    store: &Store,
    wanted: &[(&str, Vec<Uuid>)],
    stats: &DbStats,
) -> Result<Vec<HashMap<Uuid, ConversationState>>, StoreError> {
    let s = store.statements();
    let found: Vec<Vec<ConversationRow>> = store
        .lookup_across(
            "conversations lookup",
            &s.conversations_by_ids,
            wanted,
            stats,
        )
        .await?;
    Ok(found
        .into_iter()
        .map(|rows| {
            rows.into_iter()
                .map(|row| (row.conversation_id, row.into()))
                .collect()
        })
        .collect())
}

/// Adds to `writes` the conversations not in `existing`, or there without
/// their identity columns (identity columns only, so a re-run never resets
/// counters); returns how many.
pub fn create_missing<'a>(
    writes: &mut Writes<'a>,
    s: &'a Statements,
    workspace_id: &'a str,
    (plan, existing): (&'a Plan, &HashMap<Uuid, ConversationState>),
    at: i64,
) -> u64 {
    let rows: Vec<RowWrite<CreateConversationRow<'a>>> = plan
        .conversations
        .iter()
        .filter(|(id, _)| !existing.get(*id).is_some_and(|c| c.created))
        .map(|(id, d)| RowWrite {
            partition: id.to_string(),
            estimated_bytes: 96
                + d.phone_number_id.len()
                + [&d.contact_phone, &d.contact_user_id, &d.group_id]
                    .iter()
                    .flat_map(|o| o.as_ref())
                    .map(String::len)
                    .sum::<usize>()
                + workspace_id.len(),
            values: CreateConversationRow {
                phone_number_id: &d.phone_number_id,
                contact_id: maybe(d.contact_id),
                contact_phone: maybe(d.contact_phone.as_deref()),
                contact_user_id: maybe(d.contact_user_id.as_deref()),
                group_id: maybe(d.group_id.as_deref()),
                created_at: CqlTimestamp(d.first_seen_ms),
                workspace_id,
                conversation_id: *id,
            },
        })
        .collect();
    let created = rows.len() as u64;
    let statement = &s.create_conversation;
    writes.add(workspace_id, "conversation inserts", statement, rows, at);
    created
}

/// The single write that brings one conversation up to date.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationUpdate {
    pub conversation_id: Uuid,
    pub contact_name: Option<String>,
    pub last_message: Option<(i64, String, String, Direction)>,
    /// Set when this batch holds a message older than any counted before.
    pub first_message_at: Option<i64>,
    pub unread_count: i32,
    pub message_count: i32,
    /// (partition, write clock) of the last record counted.
    pub applied: (i32, i64),
    pub kapso_conversation_id: Option<String>,
    pub state: Option<(String, i64)>,
}

/// Computes the updates (pure): `new_messages` are the messages stored by
/// this batch (not duplicates), `state` the rows found in step 3.
pub fn plan_updates(
    plan: &Plan,
    new_messages: &[&MessageDraft],
    state: &HashMap<Uuid, ConversationState>,
) -> Vec<ConversationUpdate> {
    let mut updates: BTreeMap<Uuid, ConversationUpdate> = BTreeMap::new();
    count_messages(&mut updates, new_messages, state);
    apply_events(&mut updates, plan, state);
    updates.into_values().collect()
}

/// Counts the messages past each conversation's watermark and keeps the
/// latest as its last message.
fn count_messages(
    updates: &mut BTreeMap<Uuid, ConversationUpdate>,
    new_messages: &[&MessageDraft],
    state: &HashMap<Uuid, ConversationState>,
) {
    let empty = ConversationState::default();
    for m in new_messages {
        let base = state.get(&m.conversation_id).unwrap_or(&empty);
        if base.covers(m.clock) {
            continue;
        }
        let u = updates
            .entry(m.conversation_id)
            .or_insert_with(|| start(m.conversation_id, base));
        u.message_count += 1;
        if m.event.direction == Direction::Inbound {
            // Imported history was read long ago: it never raises unread counts.
            if m.event.origin != Origin::History {
                u.unread_count += 1;
            }
            // A group message names its sender, not the conversation.
            if m.event.group_id.is_none() && m.event.contact_name.is_some() {
                u.contact_name.clone_from(&m.event.contact_name);
            }
        }
        u.applied = max_applied(u.applied, (m.partition, m.clock));
        take_if_last(u, base, m);
        if u.first_message_at
            .or(base.first_message_at_ms)
            .is_none_or(|t| m.sent_at_ms < t)
        {
            u.first_message_at = Some(m.sent_at_ms);
        }
        if m.event.kapso_conversation_id.is_some() {
            u.kapso_conversation_id
                .clone_from(&m.event.kapso_conversation_id);
        }
    }
}

/// Makes `m` the conversation's last message if it is later (by time, then
/// id) than the last one stored or counted.
fn take_if_last(u: &mut ConversationUpdate, base: &ConversationState, m: &MessageDraft) {
    let key = (m.sent_at_ms, m.event.message_id.clone());
    let current = u
        .last_message
        .as_ref()
        .map(|(at, id, _, _)| (*at, id.clone()))
        .or_else(|| {
            base.last_message_at_ms
                .map(|at| (at, base.last_message_id.clone().unwrap_or_default()))
        });
    if current.is_none_or(|c| key > c) {
        u.last_message = Some((
            m.sent_at_ms,
            m.event.message_id.clone(),
            preview(&m.event),
            m.event.direction,
        ));
    }
}

/// Applies the conversation events past each watermark: the latest state
/// wins, names and Kapso ids are taken as they come.
fn apply_events(
    updates: &mut BTreeMap<Uuid, ConversationUpdate>,
    plan: &Plan,
    state: &HashMap<Uuid, ConversationState>,
) {
    let empty = ConversationState::default();
    for e in &plan.conversation_events {
        let base = state.get(&e.conversation_id).unwrap_or(&empty);
        if base.covers(e.clock) {
            continue;
        }
        let u = updates
            .entry(e.conversation_id)
            .or_insert_with(|| start(e.conversation_id, base));
        u.applied = max_applied(u.applied, (e.partition, e.clock));
        let at = e.event.timestamp.saturating_mul(1000);
        let newest = u.state.as_ref().map(|(_, t)| *t).or(base.state_at_ms);
        if newest.is_none_or(|t| at >= t) {
            u.state = Some((e.event.state.as_str().to_owned(), at));
        }
        if e.event.contact_name.is_some() {
            u.contact_name.clone_from(&e.event.contact_name);
        }
        if e.event.kapso_conversation_id.is_some() {
            u.kapso_conversation_id
                .clone_from(&e.event.kapso_conversation_id);
        }
    }
}

fn start(conversation_id: Uuid, base: &ConversationState) -> ConversationUpdate {
    ConversationUpdate {
        conversation_id,
        contact_name: None,
        last_message: None,
        first_message_at: None,
        unread_count: base.unread_count,
        message_count: base.message_count,
        applied: (i32::MIN, base.applied.map_or(i64::MIN, |w| w.0)),
        kapso_conversation_id: None,
        state: None,
    }
}

fn max_applied(a: (i32, i64), b: (i32, i64)) -> (i32, i64) {
    if a.1 >= b.1 { a } else { b }
}

/// Adds the updates to `writes`.
pub fn write_updates<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    workspace_id: &str,
    updates: Vec<ConversationUpdate>,
    at: i64,
) {
    let rows: Vec<RowWrite<ConversationUpdateRow>> = updates
        .into_iter()
        .map(|u| {
            let (last_at, last_id, last_preview, last_dir) = match u.last_message {
                Some((at, id, p, d)) => {
                    (Some(CqlTimestamp(at)), Some(id), Some(p), Some(d.as_str()))
                }
                None => (None, None, None, None),
            };
            let (state, state_at) = match u.state {
                Some((s, at)) => (Some(s), Some(CqlTimestamp(at))),
                None => (None, None),
            };
            let bytes = 160 + workspace_id.len() + last_preview.as_ref().map_or(0, String::len);
            RowWrite {
                partition: u.conversation_id.to_string(),
                estimated_bytes: bytes,
                values: ConversationUpdateRow {
                    contact_name: maybe(u.contact_name),
                    first_message_at: maybe(u.first_message_at.map(CqlTimestamp)),
                    last_message_at: maybe(last_at),
                    last_message_id: maybe(last_id),
                    last_message_preview: maybe(last_preview),
                    last_message_direction: maybe(last_dir),
                    unread_count: u.unread_count,
                    message_count: u.message_count,
                    applied_partition: u.applied.0,
                    applied_offset: u.applied.1,
                    kapso_conversation_id: maybe(u.kapso_conversation_id),
                    state: maybe(state),
                    state_at: maybe(state_at),
                    workspace_id: workspace_id.to_owned(),
                    conversation_id: u.conversation_id,
                },
            }
        })
        .collect();
    let statement = &s.update_conversation;
    writes.add(workspace_id, "conversation updates", statement, rows, at);
}
