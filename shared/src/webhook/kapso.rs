//! Kapso v2 webhooks (phone-number webhooks, `X-Webhook-Payload-Version: v2`).
//!
//! Shapes:
//! - Single event: `{message?, conversation?, is_new_conversation?,
//!   phone_number_id}`; the event type is the `X-Webhook-Event` header.
//!   `message` is a Cloud API message object plus `message.kapso` (direction,
//!   status, content, transcript, statuses[] of raw Meta status objects...).
//!   Conversation events carry `conversation` only (`inactive` adds
//!   `since_message` and `inactivity.minutes`).
//! - Batch (message buffering, `X-Webhook-Batch: true`): `{type, batch: true,
//!   data: [single events], batch_info}`. The body's `type` names the event
//!   (the header is the fallback).
//! - Project events (`whatsapp.phone_number.created`, `workflow.execution.*`,
//!   ...) have neither `message` nor `conversation` and become
//!   `Unknown { kind: <event type> }`.
//!
//! Decisions:
//! - Envelope errors ([`ShapeError`]): not an object; a batch whose `data` is
//!   not a non-empty array; a single body with neither `message` nor
//!   `conversation` (unless it is a known project event); a missing or
//!   malformed `phone_number_id` (top level, else `conversation.`, else
//!   `message.kapso.phone_number_id`). A batch item with such faults is
//!   skipped as `Unknown { kind: "malformed_item" }` by [`normalize`] (routing
//!   still rejects the body).
//! - `whatsapp.message.received` → an inbound [`MessageEvent`].
//! - `.sent` / `.delivered` / `.read` / `.failed` → a [`MessageEvent`]
//!   (outbound; the store upserts it idempotently, so a status that arrives
//!   first still creates the message) and a [`StatusEvent`]. The status time
//!   and `errors` come from the matching entry of `message.kapso.statuses[]`
//!   when present (its `recipient_id` too), else from the message; the message
//!   time is that of the `sent` entry when present, since Kapso stamps the
//!   message with its latest status time.
//! - `message.kapso.direction`, when `inbound` or `outbound`, overrides the
//!   direction implied by the event type. Without an event type (no header,
//!   no batch `type`), a message's event is inferred from `kapso.direction`
//!   and `kapso.status`.
//! - Contact phone: inbound `from`, outbound `to`, then
//!   `conversation.phone_number`, then `message.kapso.phone_number`; none is
//!   guaranteed. Contact name: `conversation.kapso.contact_name`, then
//!   `conversation.contact_name` (older v2 payloads), then
//!   `message.kapso.contact_name`.
//! - Text: the type's own text (see [`super::meta::Content`]); for audio
//!   without one, `message.kapso.transcript.text`; for messages without media,
//!   `message.kapso.content` (the rendering of templates and the like). The
//!   media `content` string (with Kapso media URLs) is never used.
//! - Conversation events: `created` is timed by `created_at`, `ended` by
//!   `updated_at`, `inactive` by `last_active_at` + `inactivity.minutes`
//!   (falling back to `updated_at` / `last_active_at`), all RFC 3339.
//! - `Unknown` kinds are fixed strings: a known event type, `other` for any
//!   other type, `missing_event_type`, `malformed_message`, `malformed_status`,
//!   `malformed_conversation`, `malformed_item`, `unknown_message_type`.
use serde_json::{Map, Value};

use super::content::{Content, context};
use super::ignored::IgnoredKind;
use super::meta_message::{amend, reaction, reactor};
use super::{
    AccountEvent, ConversationEvent, ConversationState, DeliveryStatus, Direction, Event,
    MessageEvent, Origin, Scope, ShapeError, StatusEvent, contact_phone, event_timestamp, id_field,
    json_text, parse_timestamp, phone_number_id_value, text_field,
};

const SOURCE: &str = "kapso";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Received,
    Status(DeliveryStatus),
    Conversation(ConversationState),
    /// Not stored: a fixed, low-cardinality name for `Event::Unknown`.
    Other(IgnoredKind),
}

fn classify(event_type: &str) -> Kind {
    match event_type {
        "whatsapp.message.received" => Kind::Received,
        "whatsapp.message.sent" => Kind::Status(DeliveryStatus::Sent),
        "whatsapp.message.delivered" => Kind::Status(DeliveryStatus::Delivered),
        "whatsapp.message.read" => Kind::Status(DeliveryStatus::Read),
        "whatsapp.message.failed" => Kind::Status(DeliveryStatus::Failed),
        "whatsapp.conversation.created" => Kind::Conversation(ConversationState::Created),
        "whatsapp.conversation.ended" => Kind::Conversation(ConversationState::Ended),
        "whatsapp.conversation.inactive" => Kind::Conversation(ConversationState::Inactive),
        other => Kind::Other(IgnoredKind::kapso_event(other)),
    }
}

fn shape(reason: &str) -> ShapeError {
    ShapeError::UnexpectedShape {
        sender: SOURCE,
        reason: reason.to_owned(),
    }
}

fn unknown(kind: IgnoredKind) -> Event {
    Event::Unknown { kind }
}

/// `Some(items)` when the body is a batch (`batch: true`, or a `data` array
/// with neither `message` nor `conversation`).
fn batch_items(body: &Map<String, Value>) -> Option<Result<&[Value], ShapeError>> {
    let single = body.contains_key("message") || body.contains_key("conversation");
    let flagged = body.get("batch").and_then(Value::as_bool) == Some(true);
    let data = body.get("data");
    if !flagged && (single || !data.is_some_and(Value::is_array)) {
        return None;
    }
    Some(match data.and_then(Value::as_array) {
        Some(items) if !items.is_empty() => Ok(items.as_slice()),
        _ => Err(shape("batch `data` is not a non-empty array")),
    })
}

/// The business number of one event: top level, else the conversation's, else
/// the message's `kapso.phone_number_id`.
fn item_phone_number_id(item: &Value) -> Result<String, &'static str> {
    let candidates = [
        item.get("phone_number_id"),
        item.get("conversation")
            .and_then(|c| c.get("phone_number_id")),
        item.get("message")
            .and_then(|m| m.get("kapso"))
            .and_then(|k| k.get("phone_number_id")),
    ];
    match candidates.into_iter().flatten().find(|v| !v.is_null()) {
        Some(id) => phone_number_id_value(id),
        None => Err("phone_number_id is missing"),
    }
}

pub(super) fn phone_number_ids(value: &Value) -> Result<Vec<String>, ShapeError> {
    let body = envelope(value)?;
    if is_project_event(body) && body.get("phone_number_id").is_none() {
        // A project event (`workflow.execution.*`) names no number.
        return Ok(Vec::new());
    }
    match batch_items(body) {
        Some(items) => items?
            .iter()
            .map(|item| item_phone_number_id(item).map_err(shape))
            .collect(),
        None => Ok(vec![item_phone_number_id(value).map_err(shape)?]),
    }
}

/// Normalises a Kapso body. When `only` is non-empty, batch items of other
/// phone numbers are skipped: a batch spanning workspaces is stored once per
/// workspace, and each copy handles its own numbers.
pub(super) fn normalize(
    event_type: Option<&str>,
    value: &Value,
    scope: &Scope,
) -> Result<Vec<Event>, ShapeError> {
    let body = envelope(value)?;
    // The signed body's own event name wins over the unsigned header.
    let event_type = text_field(body.get("type"))
        .or_else(|| text_field(body.get("event")))
        .or(event_type);
    if let Some(items) = batch_items(body) {
        let mut events = Vec::new();
        for item in items? {
            match item_phone_number_id(item) {
                Ok(id) if !scope.has_phone(&id) => {}
                Ok(id) if is_event(item) => {
                    events.extend(normalize_item(event_type, &id, item, scope));
                }
                _ => events.push(unknown(IgnoredKind::MALFORMED_ITEM)),
            }
        }
        return Ok(events);
    }
    if !is_event(value) {
        return match event_type.map(classify) {
            Some(Kind::Other(kind)) if kind != IgnoredKind::OTHER => {
                Ok(vec![project_event(kind, body)])
            }
            _ => Err(shape(
                "body has neither `message`, `conversation` nor batch `data`",
            )),
        };
    }
    let id = item_phone_number_id(value).map_err(shape)?;
    Ok(normalize_item(event_type, &id, value, scope))
}

/// The body as an object, refusing Kapso's legacy v1 payloads.
fn envelope(value: &Value) -> Result<&Map<String, Value>, ShapeError> {
    let body = value
        .as_object()
        .ok_or_else(|| shape("body is not a JSON object"))?;
    if body.contains_key("whatsapp_config") {
        return Err(shape(
            "Kapso v1 payload (nested `whatsapp_config`): set the webhook's payload_version to v2",
        ));
    }
    Ok(body)
}

/// A project event (`whatsapp.phone_number.created`, `workflow.execution.*`),
/// kept whole.
fn project_event(kind: IgnoredKind, body: &Map<String, Value>) -> Event {
    let project = body.get("project").and_then(|p| p.get("id"));
    let account_id = id_field(body.get("project_id"))
        .or_else(|| id_field(project))
        .map(str::to_owned);
    match json_text(Some(&Value::Object(body.clone()))) {
        Some(value) => Event::Account(AccountEvent {
            source: crate::record::Source::Kapso,
            account_id,
            field: kind.as_str().to_owned(),
            value,
            timestamp: body.get("occurred_at").and_then(parse_timestamp),
        }),
        None => unknown(kind),
    }
}

/// A project-level event: no message, conversation or batch data, and an
/// `event` name or a project reference.
fn is_project_event(body: &Map<String, Value>) -> bool {
    let item = !["message", "conversation", "data", "batch"]
        .iter()
        .any(|k| body.contains_key(*k));
    let named = body.get("event").is_some_and(Value::is_string)
        || ["project", "project_id"]
            .iter()
            .any(|k| body.contains_key(*k));
    item && named
}

fn is_event(item: &Value) -> bool {
    item.get("message").is_some_and(Value::is_object)
        || item.get("conversation").is_some_and(Value::is_object)
}

fn normalize_item(
    event_type: Option<&str>,
    phone_number_id: &str,
    item: &Value,
    scope: &Scope,
) -> Vec<Event> {
    let message = item.get("message").and_then(Value::as_object);
    let conversation = item.get("conversation").and_then(Value::as_object);
    // What the signed message says of itself beats the event name.
    let kind = match (message.map(inferred_kind), event_type) {
        (Some(kind @ (Kind::Received | Kind::Status(_))), _) => kind,
        (_, Some(event_type)) => classify(event_type),
        (Some(kind), None) => kind,
        (None, None) => return vec![unknown(IgnoredKind::MISSING_EVENT_TYPE)],
    };
    let kind = match kind {
        Kind::Other(kind) => return vec![unknown(kind)],
        Kind::Conversation(state) => {
            return vec![match conversation {
                Some(c) => conversation_event(phone_number_id, state, c, item),
                None => unknown(IgnoredKind::MALFORMED_CONVERSATION),
            }];
        }
        kind => kind,
    };
    let Some(message) = message else {
        return vec![unknown(IgnoredKind::MALFORMED_MESSAGE)];
    };
    let direction = match (message_kapso(message, "direction"), kind) {
        (Some("inbound"), _) => Direction::Inbound,
        (Some("outbound"), _) => Direction::Outbound,
        (_, Kind::Received) => Direction::Inbound,
        _ => Direction::Outbound,
    };
    let mut events = vec![message_event(
        phone_number_id,
        direction,
        message,
        conversation,
        scope,
    )];
    if let Kind::Status(status) = kind {
        events.push(status_event(phone_number_id, status, message, conversation));
    }
    events
}

fn message_kapso<'a>(message: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    message.get("kapso")?.get(field)?.as_str()
}

/// Without an event type: inbound messages are `received`, outbound ones are
/// named by their `kapso.status`.
fn inferred_kind(message: &Map<String, Value>) -> Kind {
    match (
        message_kapso(message, "direction"),
        message_kapso(message, "status"),
    ) {
        (Some("inbound"), _) => Kind::Received,
        (Some("outbound"), Some(status)) => DeliveryStatus::parse(status)
            .map_or(Kind::Other(IgnoredKind::MISSING_EVENT_TYPE), Kind::Status),
        _ => Kind::Other(IgnoredKind::MISSING_EVENT_TYPE),
    }
}

fn conversation_contact_name(conversation: Option<&Map<String, Value>>) -> Option<&str> {
    let conversation = conversation?;
    text_field(
        conversation
            .get("kapso")
            .and_then(|k| k.get("contact_name")),
    )
    .or_else(|| text_field(conversation.get("contact_name")))
}

/// The customer's phone and business-scoped user id: the message's own
/// `from`/`to` fields first, then the conversation's and Kapso's.
fn customer(
    direction: Direction,
    message: &Map<String, Value>,
    conversation: Option<&Map<String, Value>>,
) -> (Option<String>, Option<String>) {
    let (own_phone, own_user) = match direction {
        Direction::Inbound => ("from", "from_user_id"),
        Direction::Outbound => ("to", "to_user_id"),
    };
    let conversation_field = |f: &str| conversation.and_then(|c| c.get(f));
    let kapso = message.get("kapso");
    let phone = contact_phone(message.get(own_phone))
        .or_else(|| contact_phone(conversation_field("phone_number")))
        .or_else(|| contact_phone(kapso.and_then(|k| k.get("phone_number"))));
    let user_id = id_field(message.get(own_user))
        .or_else(|| id_field(conversation_field("business_scoped_user_id")))
        .map(str::to_owned);
    (phone, user_id)
}

fn origin(kapso: Option<&Value>) -> Origin {
    match kapso.and_then(|k| k.get("origin")).and_then(Value::as_str) {
        Some("business_app") => Origin::BusinessApp,
        Some("history_sync") => Origin::History,
        _ => Origin::CloudApi,
    }
}

fn message_event(
    phone_number_id: &str,
    direction: Direction,
    message: &Map<String, Value>,
    conversation: Option<&Map<String, Value>>,
    scope: &Scope,
) -> Event {
    let kapso = message.get("kapso");
    let id = id_field(message.get("id"));
    let timestamp = status_entry(message, DeliveryStatus::Sent)
        .and_then(|s| event_timestamp(s.get("timestamp")))
        .or_else(|| event_timestamp(message.get("timestamp")))
        .or(scope.fallback_timestamp);
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown(IgnoredKind::MALFORMED_MESSAGE);
    };
    let (phone, user_id) = customer(direction, message, conversation);
    let conversation_field = |f: &str| conversation.and_then(|c| c.get(f));
    match message.get("type").and_then(Value::as_str) {
        Some("reaction") => {
            let who = super::ContactRef {
                phone: phone.clone(),
                user_id,
                ..super::ContactRef::default()
            };
            let reactor = reactor(direction, &who);
            return reaction(phone_number_id.to_owned(), message, reactor, timestamp);
        }
        Some(kind @ ("edit" | "revoke")) => {
            return amend(phone_number_id.to_owned(), message, kind, timestamp);
        }
        _ => {}
    }
    let content = match Content::of(message) {
        Ok(content) => content,
        Err(kind) => return unknown(kind),
    };
    Event::Message(MessageEvent {
        phone_number_id: phone_number_id.to_owned(),
        message_id: id.to_owned(),
        direction,
        contact_phone: phone,
        contact_name: conversation_contact_name(conversation)
            .or_else(|| text_field(kapso.and_then(|k| k.get("contact_name"))))
            .map(str::to_owned),
        contact_user_id: user_id,
        contact_username: text_field(conversation_field("username")).map(str::to_owned),
        origin: origin(kapso),
        timestamp,
        text: text_of(&content, kapso),
        message_type: content.message_type,
        type_payload: content.type_payload,
        context: context(message),
        errors: json_text(message.get("errors")),
        kapso_conversation_id: conversation_id(conversation),
        ..MessageEvent::default()
    })
}

/// The type's own text; for audio without one, Kapso's transcript; for
/// messages without media, Kapso's `content` rendering.
fn text_of(content: &Content, kapso: Option<&Value>) -> Option<String> {
    content.text.clone().or_else(|| {
        let kapso = kapso?;
        let has_media = kapso.get("has_media").and_then(Value::as_bool) == Some(true);
        let fallback = match content.message_type.as_str() {
            "audio" => kapso.get("transcript").and_then(|t| t.get("text")),
            _ if !has_media => kapso.get("content"),
            _ => None,
        };
        text_field(fallback).map(str::to_owned)
    })
}

/// The last entry of `message.kapso.statuses[]` with the given status.
fn status_entry(message: &Map<String, Value>, status: DeliveryStatus) -> Option<&Value> {
    let statuses = message.get("kapso")?.get("statuses")?.as_array()?;
    statuses
        .iter()
        .rev()
        .find(|s| s.get("status").and_then(Value::as_str) == Some(status.as_str()))
}

fn status_event(
    phone_number_id: &str,
    status: DeliveryStatus,
    message: &Map<String, Value>,
    conversation: Option<&Map<String, Value>>,
) -> Event {
    let entry = status_entry(message, status);
    let id = id_field(message.get("id"));
    let timestamp = entry
        .and_then(|e| event_timestamp(e.get("timestamp")))
        .or_else(|| event_timestamp(message.get("timestamp")));
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown(IgnoredKind::MALFORMED_STATUS);
    };
    let errors = (status == DeliveryStatus::Failed)
        .then(|| {
            json_text(entry.and_then(|e| e.get("errors")))
                .or_else(|| json_text(message.get("errors")))
                .or_else(|| json_text(message.get("kapso").and_then(|k| k.get("errors"))))
        })
        .flatten();
    Event::Status(StatusEvent {
        phone_number_id: phone_number_id.to_owned(),
        message_id: id.to_owned(),
        status,
        timestamp,
        recipient_phone: contact_phone(entry.and_then(|e| e.get("recipient_id")))
            .or_else(|| contact_phone(message.get("to")))
            .or_else(|| contact_phone(conversation.and_then(|c| c.get("phone_number")))),
        errors,
    })
}

fn conversation_id(conversation: Option<&Map<String, Value>>) -> Option<String> {
    text_field(conversation?.get("id")).map(str::to_owned)
}

fn conversation_event(
    phone_number_id: &str,
    state: ConversationState,
    conversation: &Map<String, Value>,
    item: &Value,
) -> Event {
    let at = |field: &str| event_timestamp(conversation.get(field));
    let timestamp = match state {
        ConversationState::Created => at("created_at").or_else(|| at("updated_at")),
        ConversationState::Ended => at("updated_at").or_else(|| at("last_active_at")),
        ConversationState::Inactive => {
            let minutes = item.get("inactivity").and_then(|i| i.get("minutes"));
            let minutes = minutes
                .and_then(Value::as_i64)
                .filter(|m| (0..=525_600).contains(m));
            at("last_active_at")
                .zip(minutes)
                .map(|(last, minutes)| last + minutes * 60)
                .or_else(|| at("updated_at"))
                .or_else(|| at("last_active_at"))
        }
    };
    let Some(timestamp) = timestamp else {
        return unknown(IgnoredKind::MALFORMED_CONVERSATION);
    };
    Event::Conversation(ConversationEvent {
        phone_number_id: phone_number_id.to_owned(),
        kapso_conversation_id: conversation_id(Some(conversation)),
        contact_phone: contact_phone(conversation.get("phone_number")),
        contact_user_id: id_field(conversation.get("business_scoped_user_id")).map(str::to_owned),
        contact_name: conversation_contact_name(Some(conversation)).map(str::to_owned),
        state,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_outside_the_known_set_become_a_fixed_kind() {
        assert_eq!(
            classify("workflow.execution.failed"),
            Kind::Other(IgnoredKind::WORKFLOW_EXECUTION_FAILED)
        );
        assert_eq!(
            classify("whatsapp.message.exploded"),
            Kind::Other(IgnoredKind::OTHER)
        );
        assert_eq!(
            classify(&"x".repeat(10_000)),
            Kind::Other(IgnoredKind::OTHER)
        );
        assert_eq!(
            classify("whatsapp.message.read"),
            Kind::Status(DeliveryStatus::Read)
        );
    }
}
