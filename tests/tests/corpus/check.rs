//! How each [`Effect`] is checked against a [`Snapshot`] of one workspace.
//! A failed check says what it saw, so a failure line reads "expected …,
//! observed …".

use inboxflow_tests::corpus::{Snapshot, column};
use serde_json::Value;

use crate::effects::{Body, Contact, Effect, Message};

impl Effect {
    /// Checks the effect on `ws`; `Err` says what was observed instead.
    pub fn check(&self, snap: &Snapshot, ws: &str) -> Result<(), String> {
        match self {
            Effect::Message(m) => check_message(m, snap, ws),
            Effect::Status { .. }
            | Effect::StatusErrors { .. }
            | Effect::Edited { .. }
            | Effect::Revoked { .. } => check_index(self, snap, ws),
            Effect::Reaction {
                target,
                reactor,
                emoji,
            } => {
                let row = reaction_row(snap, ws, target, reactor)
                    .ok_or_else(|| format!("no reaction by {reactor} on {target}"))?;
                expect_eq("reaction emoji", Some(*emoji), column(row, "emoji"))
            }
            Effect::NoReaction { target, reactor } => {
                match reaction_row(snap, ws, target, reactor).and_then(|r| column(r, "emoji")) {
                    Some(e) if !e.is_empty() => {
                        Err(format!("reaction {e:?} by {reactor} on {target}"))
                    }
                    _ => Ok(()),
                }
            }
            Effect::ConversationState { .. } | Effect::ConversationWith(_) => {
                check_conversations(self, snap, ws)
            }
            Effect::AccountEvent { field } => {
                let fields: Vec<Option<String>> = snap
                    .rows("account_events", ws)
                    .map(|r| column(r, "field"))
                    .collect();
                if fields.iter().any(|f| f.as_deref() == Some(*field)) {
                    Ok(())
                } else {
                    Err(format!(
                        "no account_events row with field {field}; fields {fields:?}"
                    ))
                }
            }
            // Checked once for the whole corpus, against the processor's metric.
            Effect::Ignored { .. } => Ok(()),
            _ => check_counts(self, snap, ws),
        }
    }
}

/// Effects on `message_index` rows (statuses, edits, revocations).
fn check_index(effect: &Effect, snap: &Snapshot, ws: &str) -> Result<(), String> {
    match effect {
        Effect::Status { id, status } => {
            let row = index_row(snap, ws, id)?;
            expect_eq(
                &format!("status of {id}"),
                Some(*status),
                column(row, "status"),
            )
        }
        Effect::StatusErrors { id } => {
            let row = index_row(snap, ws, id)?;
            set(
                &format!("message_index.errors of {id}"),
                column(row, "errors"),
            )
        }
        Effect::Edited { id, body } => check_edit(snap, ws, id, body),
        Effect::Revoked { id } => {
            let row = index_row(snap, ws, id)?;
            set(&format!("revoked_at of {id}"), column(row, "revoked_at"))
        }
        _ => Ok(()),
    }
}

fn check_conversations(effect: &Effect, snap: &Snapshot, ws: &str) -> Result<(), String> {
    let rows: Vec<&Value> = snap.rows("conversations", ws).collect();
    match effect {
        Effect::ConversationState { kapso_id, state } => {
            let states: Vec<Option<String>> = rows
                .iter()
                .filter(|r| column(r, "kapso_conversation_id").as_deref() == Some(*kapso_id))
                .map(|r| column(r, "state"))
                .collect();
            if !states.is_empty() && states.iter().all(|s| s.as_deref() == Some(*state)) {
                Ok(())
            } else {
                Err(format!(
                    "conversation {kapso_id} states {states:?}, expected {state}"
                ))
            }
        }
        Effect::ConversationWith(contact) => {
            if rows.iter().any(|r| contact_matches(r, *contact).is_ok()) {
                Ok(())
            } else {
                Err(format!(
                    "no conversation with {contact:?} among {}",
                    conversations(&rows)
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Row counts and contact identity of the whole workspace.
fn check_counts(effect: &Effect, snap: &Snapshot, ws: &str) -> Result<(), String> {
    match effect {
        Effect::NothingStored => {
            let counts: Vec<(&str, usize)> =
                ["messages", "contacts", "contact_users", "conversations"]
                    .into_iter()
                    .map(|t| (t, snap.rows(t, ws).count()))
                    .filter(|(_, n)| *n > 0)
                    .collect();
            if counts.is_empty() {
                Ok(())
            } else {
                Err(format!("rows stored: {counts:?}"))
            }
        }
        Effect::MessageCount(n) => {
            let ids: Vec<String> = snap
                .rows("messages", ws)
                .filter_map(|r| column(r, "message_id"))
                .collect();
            if ids.len() == *n {
                Ok(())
            } else {
                Err(format!("{n} message rows expected, found {ids:?}"))
            }
        }
        Effect::UnreadTotal(n) => {
            let unread: Vec<i64> = snap
                .rows("conversations", ws)
                .map(|r| r["unread_count"].as_i64().unwrap_or(0))
                .collect();
            let total: i64 = unread.iter().sum();
            if total == *n {
                Ok(())
            } else {
                Err(format!("unread total {total} ({unread:?}), expected {n}"))
            }
        }
        Effect::ContactCount(n) => {
            let mut ids: Vec<String> = ["contacts", "contact_users"]
                .into_iter()
                .flat_map(|t| snap.rows(t, ws).filter_map(|r| column(r, "contact_id")))
                .collect();
            ids.sort();
            ids.dedup();
            if ids.len() == *n {
                Ok(())
            } else {
                Err(format!("{n} contacts expected, found {ids:?}"))
            }
        }
        Effect::SameContact { phone, other } => {
            let id_of = |p: &str| {
                snap.rows("contacts", ws)
                    .find(|r| column(r, "phone").as_deref() == Some(p))
                    .and_then(|r| column(r, "contact_id"))
            };
            match (id_of(phone), id_of(other)) {
                (Some(a), Some(b)) if a == b => Ok(()),
                (a, b) => Err(format!(
                    "contact ids {phone}: {a:?}, {other}: {b:?} (expected equal)"
                )),
            }
        }
        _ => Ok(()),
    }
}

fn check_message(m: &Message, snap: &Snapshot, ws: &str) -> Result<(), String> {
    let rows: Vec<&Value> = snap
        .rows("messages", ws)
        .filter(|r| column(r, "message_id").as_deref() == Some(m.id))
        .collect();
    let row = match rows.as_slice() {
        [row] => *row,
        [] => return Err(format!("message {} not stored", m.id)),
        more => return Err(format!("message {} stored {} times", m.id, more.len())),
    };
    let mut problems = Vec::new();
    let mut note = |r: Result<(), String>| problems.extend(r.err());
    note(expect_eq(
        "direction",
        Some(m.direction),
        column(row, "direction"),
    ));
    note(expect_eq(
        "message_type",
        Some(m.message_type),
        column(row, "message_type"),
    ));
    match m.body {
        Body::Is(b) => note(expect_eq("body", Some(b), column(row, "body"))),
        Body::Null => note(expect_eq("body", None, column(row, "body"))),
        Body::Unchecked => {}
    }
    if let Some(origin) = m.origin {
        note(expect_eq("origin", Some(origin), column(row, "origin")));
    }
    note(check_context(&m.context, column(row, "context")));
    let errors = column(row, "errors").filter(|e| !matches!(e.as_str(), "" | "[]" | "null"));
    match (m.errors, errors) {
        (true, None) => note(Err("errors not kept".to_owned())),
        (false, Some(e)) => note(Err(format!("unexpected errors {e}"))),
        _ => {}
    }
    if m.sender {
        note(set("sender", column(row, "sender")));
    }
    let payload = column(row, "type_payload").unwrap_or_default();
    for needle in &m.payload_has {
        if !payload.contains(needle) {
            note(Err(format!("type_payload lacks {needle:?}: {payload}")));
        }
    }
    if let Some(seconds) = m.sent_at {
        let at = snap.sent_at(ws, m.id);
        if at != [seconds * 1000] {
            note(Err(format!(
                "sent_at {at:?} ms, expected {}",
                seconds * 1000
            )));
        }
    }
    note(check_conversation(m, snap, ws, row));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("message {}: {}", m.id, problems.join("; ")))
    }
}

fn check_conversation(m: &Message, snap: &Snapshot, ws: &str, row: &Value) -> Result<(), String> {
    let id = column(row, "conversation_id");
    let conversation = snap
        .rows("conversations", ws)
        .find(|c| column(c, "conversation_id") == id)
        .ok_or_else(|| format!("no conversation row {id:?}"))?;
    contact_matches(conversation, m.contact)?;
    if let Some(kapso) = m.kapso_conversation {
        expect_eq(
            "kapso_conversation_id",
            Some(kapso),
            column(conversation, "kapso_conversation_id"),
        )?;
    }
    if let Some(name) = m.contact_name {
        expect_eq("contact_name", name, column(conversation, "contact_name"))?;
    }
    Ok(())
}

fn contact_matches(conversation: &Value, contact: Contact) -> Result<(), String> {
    let (col, want) = match contact {
        Contact::Phone(p) => ("contact_phone", p),
        Contact::User(u) => ("contact_user_id", u),
        Contact::Group(g) => ("group_id", g),
    };
    let seen = ["contact_phone", "contact_user_id", "group_id"]
        .map(|c| format!("{c}={:?}", column(conversation, c)))
        .join(", ");
    match column(conversation, col) {
        Some(v) if v == want => Ok(()),
        _ => Err(format!(
            "conversation contact: expected {col}={want:?}, observed {seen}"
        )),
    }
}

fn check_context(keys: &[(&str, Option<&str>)], context: Option<String>) -> Result<(), String> {
    if keys.is_empty() {
        return Ok(());
    }
    let text = context.unwrap_or_default();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let missing: Vec<String> = keys
        .iter()
        .filter(|(key, want)| match (parsed.get(*key), want) {
            (None | Some(Value::Null), _) => true,
            (Some(_), None) => false,
            (Some(Value::String(s)), Some(w)) => s != w,
            (Some(v), Some(w)) => v.to_string().as_str() != *w,
        })
        .map(|(key, want)| want.map_or_else(|| (*key).to_owned(), |w| format!("{key}={w}")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("context lacks {missing:?}: {text:?}"))
    }
}

fn check_edit(snap: &Snapshot, ws: &str, id: &str, body: &str) -> Result<(), String> {
    let row = index_row(snap, ws, id)?;
    expect_eq(
        &format!("edit_body of {id}"),
        Some(body),
        column(row, "edit_body"),
    )?;
    set(&format!("edited_at of {id}"), column(row, "edited_at"))?;
    match snap
        .rows("messages", ws)
        .find(|r| column(r, "message_id").as_deref() == Some(id))
    {
        Some(original) => expect_eq("edited message body", Some(body), column(original, "body")),
        None => Ok(()),
    }
}

fn index_row<'a>(snap: &'a Snapshot, ws: &'a str, id: &str) -> Result<&'a Value, String> {
    snap.rows("message_index", ws)
        .find(|r| column(r, "message_id").as_deref() == Some(id))
        .ok_or_else(|| format!("no message_index row for {id}"))
}

fn reaction_row<'a>(
    snap: &'a Snapshot,
    ws: &'a str,
    target: &str,
    reactor: &str,
) -> Option<&'a Value> {
    snap.rows("reactions", ws).find(|r| {
        column(r, "message_id").as_deref() == Some(target)
            && column(r, "reactor").as_deref() == Some(reactor)
    })
}

fn conversations(rows: &[&Value]) -> String {
    let seen: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "(phone {:?}, user {:?}, group {:?})",
                column(r, "contact_phone"),
                column(r, "contact_user_id"),
                column(r, "group_id")
            )
        })
        .collect();
    format!("[{}]", seen.join(", "))
}

fn expect_eq(what: &str, want: Option<&str>, seen: Option<String>) -> Result<(), String> {
    if seen.as_deref() == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, observed {seen:?}"))
    }
}

fn set(what: &str, seen: Option<String>) -> Result<(), String> {
    match seen {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(format!("{what}: expected a value, observed none")),
    }
}
