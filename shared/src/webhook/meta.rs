//! Meta WhatsApp Cloud API webhooks (`object: whatsapp_business_account`).
//!
//! Shape: `entry[].changes[]`, each change a `field` and a `value`. Only
//! `field: "messages"` is normalised; its `value` carries `metadata`
//! (`phone_number_id`, the routing key), `contacts[]`, `messages[]`
//! (inbound) and `statuses[]` (delivery updates of outbound messages).
//!
//! Decisions:
//! - Envelope errors ([`ShapeError`]): a body that is not an object, whose
//!   `object` is not `whatsapp_business_account`, or whose `entry` is not an
//!   array. For routing, also a body without any
//!   `changes[].value.metadata.phone_number_id`, or with one that is neither a
//!   string nor an integer. Everything below the envelope that is malformed is
//!   skipped as an [`Event::Unknown`] with a fixed kind, never an error.
//! - With a non-empty `only`, changes whose `metadata.phone_number_id` is
//!   absent or not listed are skipped without any event.
//! - Other fields (`account_update`, `message_template_status_update`, ...)
//!   become `Unknown { kind: field }` when the field is a known Meta field,
//!   else `Unknown { kind: "other" }`: a kind is always a fixed string.
//! - A message needs a non-empty `id`, a `type` and a valid `timestamp`;
//!   otherwise `Unknown { kind: "malformed_message" }`. Types outside
//!   [`MESSAGE_TYPES`] are `unknown_message_type`. Group messages (`group_id`)
//!   and group statuses are not modelled: `group_message` / `group_status`.
//! - `from` is optional (users with a username may hide their phone, sending
//!   only `from_user_id`); a business-scoped user id is never taken as a phone.
//!   The contact name is `contacts[].profile.name` of the entry whose `wa_id`
//!   equals `from` (or whose `user_id` equals `from_user_id`), else of the
//!   only contact when there is exactly one.
//! - Statuses: `sent`, `delivered`, `read`, `failed` map to [`StatusEvent`]s;
//!   others (`played`, `deleted`, ...) are `Unknown { kind: "status" }`.
//!   `errors` is kept as JSON text for `failed` only.
//! - Other fixed kinds: `malformed_change` (no `field`, or a `messages` change
//!   without a valid `phone_number_id` or `value`), `malformed_status`, and
//!   `messages_without_items` (a `messages` change with neither messages nor
//!   statuses, such as one carrying only `errors`).
use serde_json::{Map, Value};

use super::{
    DeliveryStatus, Direction, Event, MessageEvent, ShapeError, StatusEvent, contact_phone,
    event_timestamp, json_text, phone_number_id_value, text_field,
};

const SOURCE: &str = "meta";

/// Message types stored as [`MessageEvent`]s. `template` only occurs in
/// Kapso's outbound messages, which share this message model.
pub(super) const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
    "unknown",
    "template",
];

/// Change fields reported by name in `Event::Unknown`; any other is `other`.
const KNOWN_FIELDS: &[&str] = &[
    "account_alerts",
    "account_review_update",
    "account_settings_update",
    "account_update",
    "automatic_events",
    "business_capability_update",
    "business_status_update",
    "calls",
    "flows",
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
    "history",
    "message_echoes",
    "message_template_components_update",
    "message_template_quality_update",
    "message_template_status_update",
    "messaging_handovers",
    "partner_solutions",
    "payment_configuration_update",
    "phone_number_name_update",
    "phone_number_quality_update",
    "security",
    "smb_app_state_sync",
    "smb_message_echoes",
    "template_category_update",
    "tracking_events",
    "user_preferences",
];

fn shape(reason: &str) -> ShapeError {
    ShapeError::UnexpectedShape {
        sender: SOURCE,
        reason: reason.to_owned(),
    }
}

fn unknown(kind: &str) -> Event {
    Event::Unknown {
        kind: kind.to_owned(),
    }
}

/// `entry[].changes[]` of a body whose envelope is right.
fn changes(value: &Value) -> Result<impl Iterator<Item = Option<&Map<String, Value>>>, ShapeError> {
    let body = value
        .as_object()
        .ok_or_else(|| shape("body is not a JSON object"))?;
    if body.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return Err(shape("`object` is not \"whatsapp_business_account\""));
    }
    let entries = body.get("entry").and_then(Value::as_array);
    let entries = entries.ok_or_else(|| shape("`entry` is not an array"))?;
    Ok(entries.iter().flat_map(|entry| {
        let changes = entry.get("changes").and_then(Value::as_array);
        // A malformed entry yields one `None`, reported as such by `normalize`.
        let items: Box<dyn Iterator<Item = Option<&Map<String, Value>>>> = match changes {
            Some(changes) => Box::new(changes.iter().map(Value::as_object)),
            None => Box::new(std::iter::once(None)),
        };
        items
    }))
}

fn metadata_phone_number_id(change: &Map<String, Value>) -> Option<&Value> {
    change.get("value")?.get("metadata")?.get("phone_number_id")
}

pub(super) fn phone_number_ids(value: &Value) -> Result<Vec<String>, ShapeError> {
    let mut ids = Vec::new();
    for change in changes(value)?.flatten() {
        if let Some(id) = metadata_phone_number_id(change) {
            ids.push(phone_number_id_value(id).map_err(shape)?);
        }
    }
    if ids.is_empty() {
        return Err(shape("no change has value.metadata.phone_number_id"));
    }
    Ok(ids)
}

pub(super) fn normalize(value: &Value, only: &[String]) -> Result<Vec<Event>, ShapeError> {
    let mut events = Vec::new();
    for change in changes(value)? {
        let Some(change) = change else {
            events.push(unknown("malformed_change"));
            continue;
        };
        let id = metadata_phone_number_id(change).map(phone_number_id_value);
        if !only.is_empty() && !matches!(&id, Some(Ok(id)) if only.contains(id)) {
            continue;
        }
        match change.get("field").and_then(Value::as_str) {
            Some("messages") => {}
            Some(field) => {
                events.push(unknown(
                    KNOWN_FIELDS
                        .iter()
                        .find(|f| **f == field)
                        .unwrap_or(&"other"),
                ));
                continue;
            }
            None => {
                events.push(unknown("malformed_change"));
                continue;
            }
        }
        match (id, change.get("value").and_then(Value::as_object)) {
            (Some(Ok(id)), Some(value)) => messages_change(&id, value, &mut events),
            _ => events.push(unknown("malformed_change")),
        }
    }
    Ok(events)
}

fn messages_change(phone_number_id: &str, value: &Map<String, Value>, events: &mut Vec<Event>) {
    let before = events.len();
    let contacts = value
        .get("contacts")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for message in value
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        events.push(match message.as_object() {
            Some(m) if m.contains_key("group_id") => unknown("group_message"),
            Some(m) => inbound_message(phone_number_id, m, contacts),
            None => unknown("malformed_message"),
        });
    }
    for status in value
        .get("statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        events.push(match status.as_object() {
            Some(s) => status_event(phone_number_id, s),
            None => unknown("malformed_status"),
        });
    }
    if events.len() == before {
        // Only `errors`, or nothing we know: still counted, never silent.
        events.push(unknown("messages_without_items"));
    }
}

fn inbound_message(
    phone_number_id: &str,
    message: &Map<String, Value>,
    contacts: &[Value],
) -> Event {
    let id = text_field(message.get("id"));
    let timestamp = event_timestamp(message.get("timestamp"));
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown("malformed_message");
    };
    let content = match Content::of(message) {
        Ok(content) => content,
        Err(kind) => return unknown(kind),
    };
    let from = contact_phone(message.get("from"));
    Event::Message(MessageEvent {
        phone_number_id: phone_number_id.to_owned(),
        message_id: id.to_owned(),
        direction: Direction::Inbound,
        contact_name: contact_name(contacts, from.as_deref(), message.get("from_user_id")),
        contact_phone: from,
        timestamp,
        message_type: content.message_type,
        text: content.text,
        type_payload: content.type_payload,
        kapso_conversation_id: None,
    })
}

/// The sender's profile name: the contact whose `wa_id` is the sender's phone
/// or whose `user_id` is the sender's user id, else the only contact.
fn contact_name(
    contacts: &[Value],
    from: Option<&str>,
    from_user_id: Option<&Value>,
) -> Option<String> {
    let user_id = text_field(from_user_id);
    let matches = |contact: &&Value| {
        let wa_id = contact_phone(contact.get("wa_id"));
        (from.is_some() && wa_id.as_deref() == from)
            || (user_id.is_some() && text_field(contact.get("user_id")) == user_id)
    };
    let contact = match contacts.iter().find(matches) {
        Some(contact) => contact,
        None if contacts.len() == 1 => contacts.first()?,
        None => return None,
    };
    text_field(contact.get("profile")?.get("name")).map(str::to_owned)
}

fn status_event(phone_number_id: &str, status: &Map<String, Value>) -> Event {
    if status.get("recipient_type").and_then(Value::as_str) == Some("group") {
        return unknown("group_status");
    }
    let Some(delivery) = status
        .get("status")
        .and_then(Value::as_str)
        .and_then(DeliveryStatus::parse)
    else {
        return unknown("status");
    };
    let id = text_field(status.get("id"));
    let timestamp = event_timestamp(status.get("timestamp"));
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown("malformed_status");
    };
    Event::Status(StatusEvent {
        phone_number_id: phone_number_id.to_owned(),
        message_id: id.to_owned(),
        status: delivery,
        timestamp,
        recipient_phone: contact_phone(status.get("recipient_id")),
        errors: (delivery == DeliveryStatus::Failed)
            .then(|| json_text(status.get("errors")))
            .flatten(),
    })
}

/// What a Cloud API message object says, shared with the Kapso normaliser.
#[derive(Debug)]
pub(super) struct Content {
    pub(super) message_type: String,
    pub(super) text: Option<String>,
    pub(super) type_payload: Option<String>,
}

impl Content {
    /// The type, its text and its type object; `Err(kind)` for a missing or
    /// unknown type.
    pub(super) fn of(message: &Map<String, Value>) -> Result<Self, &'static str> {
        let message_type = message
            .get("type")
            .and_then(Value::as_str)
            .ok_or("malformed_message")?;
        let message_type = MESSAGE_TYPES
            .iter()
            .find(|t| **t == message_type)
            .ok_or("unknown_message_type")?;
        let payload = message.get(*message_type);
        Ok(Content {
            message_type: (*message_type).to_owned(),
            text: payload.and_then(|p| type_text(message_type, p)),
            type_payload: json_text(payload),
        })
    }
}

/// The human-readable text of a type object: body, caption, reply title...
fn type_text(message_type: &str, payload: &Value) -> Option<String> {
    let field = |name: &str| text_field(payload.get(name)).map(str::to_owned);
    match message_type {
        "text" | "system" => field("body"),
        "image" | "video" | "document" | "sticker" | "audio" => field("caption"),
        "button" | "order" => field("text"),
        "reaction" => field("emoji"),
        "interactive" => ["button_reply", "list_reply"]
            .iter()
            .find_map(|reply| text_field(payload.get(*reply)?.get("title")))
            .map(str::to_owned),
        "location" => {
            let parts: Vec<&str> = ["name", "address"]
                .iter()
                .filter_map(|f| text_field(payload.get(*f)))
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        "contacts" => {
            let names: Vec<&str> = payload
                .as_array()?
                .iter()
                .filter_map(|c| text_field(c.get("name")?.get("formatted_name")))
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bsuid_sender_is_matched_to_its_contact_by_user_id_and_has_no_phone() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": "pn1"},
            "contacts": [{"profile": {"name": "A"}, "wa_id": "1"}, {"profile": {"name": "Bea"}, "user_id": "US.42"}],
            "messages": [{"from_user_id": "US.42", "id": "wamid.1", "timestamp": "1700000000",
                "type": "text", "text": {"body": "hi"}}]}}]}]});
        let events = normalize(&body, &[]).expect("valid body");
        let [Event::Message(m)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(m.contact_name.as_deref(), Some("Bea"));
        assert_eq!(m.contact_phone, None);
    }

    #[test]
    fn text_is_taken_from_each_type_s_natural_field() {
        let text = |t: &str, p: Value| type_text(t, &p);
        assert_eq!(
            text("interactive", json!({"list_reply": {"title": "Row"}})).as_deref(),
            Some("Row")
        );
        assert_eq!(
            text("location", json!({"name": "Cafe", "address": "Main St"})).as_deref(),
            Some("Cafe, Main St")
        );
        assert_eq!(
            text("reaction", json!({"message_id": "x", "emoji": ""})),
            None
        );
        assert_eq!(text("audio", json!({"id": "m"})), None);
        assert_eq!(
            text("contacts", json!([{"name": {"formatted_name": "Ann"}}])).as_deref(),
            Some("Ann")
        );
    }
}
