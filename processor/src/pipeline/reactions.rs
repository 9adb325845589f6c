//! Step 8 (part): reactions and account events, blind idempotent writes.
//!
//! Guarantees:
//! - A reaction is one row per (target message, reactor); an empty emoji
//!   deletes it. Both carry a client timestamp derived from the reaction's
//!   WhatsApp time (microseconds, with the record offset as the tie-break
//!   within one second), so the later of a reaction and its removal wins in
//!   whatever order they arrive, and re-writing either changes nothing. A
//!   reaction creates no message and leaves unread counts alone.
//! - An account event is one row whose id is derived from its content and
//!   whose time is the body's, so a redelivery rewrites the same row. (An
//!   event whose body carries no time at all is timed by its receipt, so a
//!   redelivery of it is a second row.)

use scylla::SerializeRow;
use scylla::value::CqlTimestamp;
use shared::ids;

use super::plan::{AccountDraft, ReactionDraft, month_bucket};
use crate::store::{RowWrite, Statements, Writes};

/// The client timestamp (µs) of a reaction write.
pub fn write_timestamp(r: &ReactionDraft) -> i64 {
    r.event
        .timestamp
        .saturating_mul(1_000_000)
        .saturating_add(r.offset.rem_euclid(1_000_000))
}

/// A reaction (`reaction_set`). The database names the marker of
/// `USING TIMESTAMP ?` `[timestamp]`.
#[derive(Debug, SerializeRow)]
struct ReactionSet {
    #[scylla(rename = "[timestamp]")]
    write_timestamp: i64,
    emoji: String,
    reacted_at: CqlTimestamp,
    workspace_id: String,
    message_id: String,
    reactor: String,
}

/// A reaction's removal (`reaction_delete`).
#[derive(Debug, SerializeRow)]
struct ReactionDelete {
    #[scylla(rename = "[timestamp]")]
    write_timestamp: i64,
    workspace_id: String,
    message_id: String,
    reactor: String,
}

#[derive(Debug, SerializeRow)]
struct AccountRow {
    workspace_id: String,
    bucket: i32,
    occurred_at: CqlTimestamp,
    event_id: uuid::Uuid,
    source: &'static str,
    account_id: Option<String>,
    field: String,
    value: String,
}

/// Adds the batch's reactions and account events to `writes`.
pub fn write<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    ws: &str,
    (reactions, accounts): (&[ReactionDraft], &[AccountDraft]),
    at: i64,
) {
    let mut sets: Vec<RowWrite<ReactionSet>> = Vec::new();
    let mut deletes: Vec<RowWrite<ReactionDelete>> = Vec::new();
    for r in reactions {
        let e = &r.event;
        let partition = e.target_message_id.clone();
        let bytes = 96 + ws.len() + e.target_message_id.len() + e.reactor.len();
        let (ws, target, reactor) = (ws.to_owned(), partition.clone(), e.reactor.clone());
        match &e.emoji {
            Some(emoji) => sets.push(RowWrite {
                partition,
                estimated_bytes: bytes + emoji.len(),
                values: ReactionSet {
                    write_timestamp: write_timestamp(r),
                    emoji: emoji.clone(),
                    reacted_at: CqlTimestamp(e.timestamp.saturating_mul(1000)),
                    workspace_id: ws,
                    message_id: target,
                    reactor,
                },
            }),
            None => deletes.push(RowWrite {
                partition,
                estimated_bytes: bytes,
                values: ReactionDelete {
                    write_timestamp: write_timestamp(r),
                    workspace_id: ws,
                    message_id: target,
                    reactor,
                },
            }),
        }
    }
    let events: Vec<RowWrite<AccountRow>> = accounts.iter().map(|a| account_row(ws, a)).collect();
    writes.add(ws, "reaction upserts", &s.reaction_set, sets, at);
    writes.add(ws, "reaction removals", &s.reaction_delete, deletes, at);
    writes.add(ws, "account events", &s.insert_account_event, events, at);
}

fn account_row(ws: &str, a: &AccountDraft) -> RowWrite<AccountRow> {
    let e = &a.event;
    let account = e.account_id.as_deref().unwrap_or("");
    let id = ids::account_event_id(ws, &[e.source.as_str(), account, &e.field, &e.value]);
    let bucket = month_bucket(a.occurred_ms.div_euclid(1000));
    RowWrite {
        partition: format!("{bucket}"),
        estimated_bytes: 128 + ws.len() + account.len() + e.field.len() + e.value.len(),
        values: AccountRow {
            workspace_id: ws.to_owned(),
            bucket,
            occurred_at: CqlTimestamp(a.occurred_ms),
            event_id: id,
            source: e.source.as_str(),
            account_id: e.account_id.clone(),
            field: e.field.clone(),
            value: e.value.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use shared::webhook::ReactionEvent;

    use super::*;

    fn reaction(ts: i64, offset: i64) -> ReactionDraft {
        ReactionDraft {
            event: ReactionEvent {
                phone_number_id: "pn".into(),
                target_message_id: "m".into(),
                reactor: "1".into(),
                emoji: None,
                timestamp: ts,
            },
            offset,
        }
    }

    #[test]
    fn a_later_reaction_always_has_the_later_write_timestamp() {
        assert!(write_timestamp(&reaction(2, 0)) > write_timestamp(&reaction(1, 999_999)));
        assert!(write_timestamp(&reaction(1, 8)) > write_timestamp(&reaction(1, 7)));
    }
}
