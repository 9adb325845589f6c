//! Meta WhatsApp Cloud API webhooks (`object: whatsapp_business_account`):
//! the envelope, routing keys and the dispatch of each change by `field`.
//!
//! Shape: `entry[]` (`id` = business account, `time`), each with `changes[]`,
//! each change a `field` and a `value`. Phone-level changes carry
//! `value.metadata.phone_number_id` (the routing key); account-level ones
//! (`account_update`, `message_template_status_update`, `security`, ...)
//! carry none and are routed by the entry's business account id.
//!
//! Decisions:
//! - Envelope errors ([`ShapeError`]): a body that is not an object, whose
//!   `object` is not `whatsapp_business_account`, or whose `entry` is not an
//!   array. For routing, also a body that names neither a
//!   `metadata.phone_number_id` nor, for an account-level change, an entry id;
//!   or a phone_number_id that is neither a string nor an integer. Everything
//!   below the envelope that is malformed is an [`Event::Unknown`] with a
//!   fixed kind, never an error.
//! - Scope: a phone-level change is handled when its number is in the
//!   [`Scope`], an account-level one when its entry's account is.
//! - `messages` → messages, reactions, edits, revokes, statuses (see
//!   [`super::meta_message`]); `history` → past messages (origin `history`);
//!   `smb_message_echoes` → outbound messages (origin `business_app`).
//! - Any account-level change → an [`Event::Account`] holding the raw value.
//! - Other phone-level fields (`calls`, `user_preferences`,
//!   `smb_app_state_sync`, `group_*`) are ignored: `Unknown { kind: field }`
//!   when the field is a known Meta field, else `Unknown { kind: "other" }`.
//! - Other fixed kinds: `malformed_change` (no `field`, or a `messages` change
//!   without a valid `phone_number_id` or `value`).
use serde_json::{Map, Value};

use super::ignored::IgnoredKind;
use super::meta_message::{echoes_change, history_change, messages_change};
use super::{
    AccountEvent, Event, RoutingKeys, Scope, ShapeError, id_field, json_text, parse_timestamp,
    phone_number_id_value,
};

const SOURCE: &str = "meta";

fn shape(reason: &str) -> ShapeError {
    ShapeError::UnexpectedShape {
        sender: SOURCE,
        reason: reason.to_owned(),
    }
}

pub(super) fn unknown(kind: IgnoredKind) -> Event {
    Event::Unknown { kind }
}

/// One change with its entry's business account id and time.
struct Change<'a> {
    account_id: Option<String>,
    entry_time: Option<i64>,
    /// `None` for a malformed change (or an entry without `changes`).
    body: Option<&'a Map<String, Value>>,
}

/// Every change of a body whose envelope is right.
fn changes(value: &Value) -> Result<Vec<Change<'_>>, ShapeError> {
    let body = value
        .as_object()
        .ok_or_else(|| shape("body is not a JSON object"))?;
    if body.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err(shape("`object` is not \"whatsapp_business_account\""));
    }
    let entries = body.get("entry").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| shape("`entry` is not an array"))?;
    let mut out = Vec::new();
    for entry in entries {
        let account_id = entry
            .get("id")
            .and_then(|id| phone_number_id_value(id).ok());
        let entry_time = entry.get("time").and_then(parse_timestamp);
        let change = |body| Change {
            account_id: account_id.clone(),
            entry_time,
            body,
        };
        match entry.get("changes").and_then(Value::as_array) {
            Some(list) => out.extend(list.iter().map(|c| change(c.as_object()))),
            None => out.push(change(None)),
        }
    }
    Ok(out)
}

fn metadata_phone_number_id(change: &Map<String, Value>) -> Option<&Value> {
    change.get("value")?.get("metadata")?.get("phone_number_id")
}

pub(super) fn routing_keys(value: &Value) -> Result<RoutingKeys, ShapeError> {
    let mut keys = RoutingKeys::default();
    for change in changes(value)? {
        let Some(body) = change.body else { continue };
        match metadata_phone_number_id(body) {
            Some(id) => keys
                .phone_number_ids
                .push(phone_number_id_value(id).map_err(shape)?),
            None => keys.business_account_ids.extend(change.account_id),
        }
    }
    if keys.is_empty() {
        return Err(shape(
            "no change has value.metadata.phone_number_id, and no account-level change has an entry id",
        ));
    }
    Ok(keys)
}

pub(super) fn normalize(value: &Value, scope: &Scope) -> Result<Vec<Event>, ShapeError> {
    let mut events = Vec::new();
    for change in changes(value)? {
        let Some(body) = change.body else {
            events.push(unknown(IgnoredKind::MALFORMED_CHANGE));
            continue;
        };
        let field = body.get("field").and_then(Value::as_str);
        match metadata_phone_number_id(body).map(phone_number_id_value) {
            Some(Ok(id)) if scope.has_phone(&id) => {
                phone_change(&id, field, body, scope, &mut events)
            }
            Some(Err(_)) if scope.is_open() => events.push(unknown(IgnoredKind::MALFORMED_CHANGE)),
            Some(Ok(_) | Err(_)) => {}
            None if scope.has_account(change.account_id.as_deref()) => {
                events.push(account_change(&change, field, body));
            }
            None => {}
        }
    }
    Ok(events)
}

fn phone_change(
    phone_number_id: &str,
    field: Option<&str>,
    change: &Map<String, Value>,
    scope: &Scope,
    events: &mut Vec<Event>,
) {
    let value = change.get("value").and_then(Value::as_object);
    match (field, value) {
        (Some("messages"), Some(v)) => messages_change(phone_number_id, v, scope, events),
        (Some("history"), Some(v)) => history_change(phone_number_id, v, scope, events),
        (Some("smb_message_echoes"), Some(v)) => echoes_change(phone_number_id, v, scope, events),
        (Some(field), _) if field != "messages" => {
            events.push(unknown(IgnoredKind::meta_field(field)))
        }
        _ => events.push(unknown(IgnoredKind::MALFORMED_CHANGE)),
    }
}

/// An account-level change, kept whole.
fn account_change(change: &Change<'_>, field: Option<&str>, body: &Map<String, Value>) -> Event {
    let Some(field) = id_field(field.map(Value::from).as_ref()).map(str::to_owned) else {
        return unknown(IgnoredKind::MALFORMED_CHANGE);
    };
    let value = body.get("value");
    let timestamp = value
        .and_then(|v| v.get("timestamp"))
        .and_then(parse_timestamp)
        .or(change.entry_time);
    match json_text(value) {
        Some(value) => Event::Account(AccountEvent {
            source: crate::record::Source::Meta,
            account_id: change.account_id.clone(),
            field,
            value,
            timestamp,
        }),
        None => unknown(IgnoredKind::MALFORMED_CHANGE),
    }
}
