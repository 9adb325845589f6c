//! The items of Meta's phone-level changes: `messages` (messages, reactions,
//! edits, revokes, `request_welcome`, statuses), `history` and
//! `smb_message_echoes`.
//!
//! Decisions:
//! - A message needs an `id` and a `type`; a missing or invalid `timestamp`
//!   falls back to the scope's receive time, else the message is
//!   `malformed_message`. Types outside [`super::content::MESSAGE_TYPES`] are
//!   `unknown_message_type`.
//! - The customer: `from` when it is a phone, and `from_user_id` (Meta's
//!   business-scoped user id). When neither is given, the matching `contacts[]`
//!   entry's `wa_id` / `user_id`; when still none, a non-phone `from` is kept
//!   as an opaque user handle. A message with no identity at all still becomes
//!   an event (the processor dead-letters it with its reason).
//! - The contact name and username are those of the `contacts[]` entry whose
//!   `wa_id` equals the phone (or `user_id` the user id), else of the only
//!   contact. `messages[].contacts` (a shared vCard) never names the sender.
//! - `reaction` → [`ReactionEvent`] (an empty or absent emoji removes it),
//!   by the customer, or by the business (`business`) for outbound items;
//!   `edit` / `revoke` → [`AmendEvent`] of `original_message_id`;
//!   `request_welcome` → a conversation opening, no message.
//! - Group messages (`group_id`) keep the group and their sender. Group
//!   statuses are ignored (`group_status`).
//! - Message-level `errors` are kept; value-level `errors` are given to the
//!   change's messages that have none of their own. A change with neither
//!   messages nor statuses is `messages_without_items`.
//! - Statuses: `sent`, `delivered`, `read`, `played`, `failed`; others are
//!   `Unknown { kind: "status" }`. `errors` is kept for `failed` only.
use serde_json::{Map, Value};

use super::content::{Content, context, type_text};
use super::ignored::IgnoredKind;
use super::meta::unknown;
use super::model::BUSINESS_REACTOR;
use super::{
    AmendEvent, Amendment, ContactRef, ConversationEvent, ConversationState, DeliveryStatus,
    Direction, Event, MessageEvent, Origin, ReactionEvent, Scope, StatusEvent, contact_phone,
    event_timestamp, id_field, json_text, text_field,
};

/// Where a change's items come from, and what is shared by all of them.
struct Items<'a> {
    phone_number_id: &'a str,
    contacts: &'a [Value],
    origin: Origin,
    value_errors: Option<String>,
    fallback_timestamp: Option<i64>,
}

impl<'a> Items<'a> {
    fn new(
        phone_number_id: &'a str,
        value: &'a Map<String, Value>,
        scope: &Scope,
        origin: Origin,
    ) -> Self {
        Items {
            phone_number_id,
            contacts: list(value.get("contacts")),
            origin,
            value_errors: json_text(value.get("errors")),
            fallback_timestamp: scope.fallback_timestamp,
        }
    }
}

fn list(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

pub(super) fn messages_change(
    phone_number_id: &str,
    value: &Map<String, Value>,
    scope: &Scope,
    events: &mut Vec<Event>,
) {
    let items = Items::new(phone_number_id, value, scope, Origin::CloudApi);
    let before = events.len();
    for message in list(value.get("messages")) {
        events.push(match message.as_object() {
            Some(m) => item_event(&items, m, Direction::Inbound, None),
            None => unknown(IgnoredKind::MALFORMED_MESSAGE),
        });
    }
    for status in list(value.get("statuses")) {
        events.push(match status.as_object() {
            Some(s) => status_event(phone_number_id, s),
            None => unknown(IgnoredKind::MALFORMED_STATUS),
        });
    }
    if events.len() == before {
        // Only `errors`, or nothing we know: still counted, never silent.
        events.push(unknown(IgnoredKind::MESSAGES_WITHOUT_ITEMS));
    }
}

/// `smb_message_echoes`: what the business sent from the Business App.
pub(super) fn echoes_change(
    phone_number_id: &str,
    value: &Map<String, Value>,
    scope: &Scope,
    events: &mut Vec<Event>,
) {
    let items = Items::new(phone_number_id, value, scope, Origin::BusinessApp);
    let echoes = list(value.get("message_echoes"));
    if echoes.is_empty() {
        events.push(unknown(IgnoredKind::SMB_MESSAGE_ECHOES));
    }
    for echo in echoes {
        events.push(match echo.as_object() {
            Some(m) => item_event(&items, m, Direction::Outbound, None),
            None => unknown(IgnoredKind::MALFORMED_MESSAGE),
        });
    }
}

/// `history`: past chats, as `history[].threads[].messages[]` (the thread id
/// is the customer) or `messages[]` (a media asset of the sync).
pub(super) fn history_change(
    phone_number_id: &str,
    value: &Map<String, Value>,
    scope: &Scope,
    events: &mut Vec<Event>,
) {
    let items = Items::new(phone_number_id, value, scope, Origin::History);
    let business = value
        .get("metadata")
        .and_then(|m| contact_phone(m.get("display_phone_number")));
    let before = events.len();
    let threads = list(value.get("history"))
        .iter()
        .flat_map(|h| list(h.get("threads")));
    let direct = list(value.get("messages")).iter().map(|m| (None, m));
    let threaded = threads.flat_map(|t| {
        let customer = contact_phone(t.get("id"));
        list(t.get("messages"))
            .iter()
            .map(move |m| (customer.clone(), m))
    });
    for (customer, message) in threaded.chain(direct) {
        let Some(m) = message.as_object() else {
            events.push(unknown(IgnoredKind::MALFORMED_MESSAGE));
            continue;
        };
        let from = contact_phone(m.get("from"));
        let direction = if from.is_some() && from == business {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        events.push(item_event(&items, m, direction, customer));
    }
    if events.len() == before {
        events.push(unknown(IgnoredKind::HISTORY));
    }
}

/// One message object: a message, a reaction, an amendment or an opening.
/// `customer` overrides the identity taken from the object (history threads).
fn item_event(
    items: &Items<'_>,
    m: &Map<String, Value>,
    direction: Direction,
    customer: Option<String>,
) -> Event {
    let id = id_field(m.get("id"));
    let timestamp = event_timestamp(m.get("timestamp")).or(items.fallback_timestamp);
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown(IgnoredKind::MALFORMED_MESSAGE);
    };
    let mut contact = identity(items.contacts, m, direction);
    if customer.is_some() {
        contact.phone = customer;
    }
    let pn = items.phone_number_id.to_owned();
    match m.get("type").and_then(Value::as_str) {
        Some("reaction") => reaction(pn, m, reactor(direction, &contact), timestamp),
        Some(kind @ ("edit" | "revoke")) => amend(pn, m, kind, timestamp),
        Some("request_welcome") => Event::Conversation(ConversationEvent {
            phone_number_id: pn,
            kapso_conversation_id: None,
            contact_phone: contact.phone,
            contact_name: contact.name,
            contact_user_id: contact.user_id,
            state: ConversationState::Created,
            timestamp,
        }),
        _ => message(items, m, id, timestamp, direction, contact),
    }
}

fn message(
    items: &Items<'_>,
    m: &Map<String, Value>,
    id: &str,
    timestamp: i64,
    direction: Direction,
    contact: ContactRef,
) -> Event {
    let content = match Content::of(m) {
        Ok(content) => content,
        Err(kind) => return unknown(kind),
    };
    let group_id = id_field(m.get("group_id")).map(str::to_owned);
    let (contact, sender) = match group_id {
        Some(_) => {
            let sender = contact.phone.clone().or_else(|| contact.user_id.clone());
            (ContactRef::default(), sender)
        }
        None => (contact, None),
    };
    let system_new_phone = m
        .get("system")
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("user_changed_number"))
        .and_then(|s| contact_phone(s.get("wa_id")));
    Event::Message(MessageEvent {
        phone_number_id: items.phone_number_id.to_owned(),
        message_id: id.to_owned(),
        direction,
        contact_phone: contact.phone,
        contact_name: contact.name,
        contact_user_id: contact.user_id,
        contact_username: contact.username,
        group_id,
        sender,
        origin: items.origin,
        timestamp,
        message_type: content.message_type,
        text: content.text,
        type_payload: content.type_payload,
        context: context(m),
        errors: json_text(m.get("errors")).or_else(|| items.value_errors.clone()),
        new_phone: system_new_phone,
        kapso_conversation_id: None,
    })
}

/// Who reacted: the customer (phone, else user id) for inbound reactions;
/// [`BUSINESS_REACTOR`] for the business's own (echoes, outbound), which must
/// never replace or remove the customer's reaction.
pub(super) fn reactor(direction: Direction, contact: &ContactRef) -> Option<String> {
    match direction {
        Direction::Inbound => contact.phone.clone().or_else(|| contact.user_id.clone()),
        Direction::Outbound => Some(BUSINESS_REACTOR.to_owned()),
    }
}

/// A `reaction` message object: set, or removed by an empty or absent emoji.
pub(super) fn reaction(
    phone_number_id: String,
    m: &Map<String, Value>,
    reactor: Option<String>,
    timestamp: i64,
) -> Event {
    let reaction = m.get("reaction");
    let target = id_field(reaction.and_then(|r| r.get("message_id")));
    match (target, reactor) {
        (Some(target), Some(reactor)) => Event::Reaction(ReactionEvent {
            phone_number_id,
            target_message_id: target.to_owned(),
            reactor,
            emoji: text_field(reaction.and_then(|r| r.get("emoji"))).map(str::to_owned),
            timestamp,
        }),
        _ => unknown(IgnoredKind::MALFORMED_REACTION),
    }
}

/// An `edit` or `revoke` message object.
pub(super) fn amend(
    phone_number_id: String,
    m: &Map<String, Value>,
    kind: &str,
    timestamp: i64,
) -> Event {
    let payload = m.get(kind);
    let Some(target) = id_field(payload.and_then(|p| p.get("original_message_id"))) else {
        return unknown(IgnoredKind::MALFORMED_MESSAGE);
    };
    let amendment = match kind {
        "edit" => {
            let edited = payload.and_then(|p| p.get("message"));
            let body = edited.and_then(|e| {
                let t = e.get("type")?.as_str()?;
                type_text(t, e.get(t)?)
            });
            Amendment::Edit { body }
        }
        _ => Amendment::Revoke,
    };
    Event::Amend(AmendEvent {
        phone_number_id,
        target_message_id: target.to_owned(),
        amendment,
        timestamp,
    })
}

/// The customer of a message object (see the module doc).
fn identity(contacts: &[Value], m: &Map<String, Value>, direction: Direction) -> ContactRef {
    let (own, own_user) = match direction {
        Direction::Inbound => ("from", "from_user_id"),
        Direction::Outbound => ("to", "to_user_id"),
    };
    let mut phone = contact_phone(m.get(own));
    let mut user_id = id_field(m.get(own_user)).map(str::to_owned);
    let contact = matching_contact(contacts, phone.as_deref(), user_id.as_deref());
    if phone.is_none() && user_id.is_none() {
        phone = contact.and_then(|c| contact_phone(c.get("wa_id")));
        user_id = contact
            .and_then(|c| id_field(c.get("user_id")))
            .map(str::to_owned);
    }
    if phone.is_none() && user_id.is_none() {
        user_id = id_field(m.get(own)).map(str::to_owned);
    }
    let profile = contact.and_then(|c| c.get("profile"));
    ContactRef {
        phone,
        user_id,
        username: text_field(profile.and_then(|p| p.get("username"))).map(str::to_owned),
        name: text_field(profile.and_then(|p| p.get("name"))).map(str::to_owned),
    }
}

/// The `contacts[]` entry of the sender: by phone, by user id, else the only one.
fn matching_contact<'a>(
    contacts: &'a [Value],
    phone: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'a Value> {
    let matches = |contact: &&Value| {
        let wa_id = contact_phone(contact.get("wa_id"));
        (phone.is_some() && wa_id.as_deref() == phone)
            || (user_id.is_some() && id_field(contact.get("user_id")) == user_id)
    };
    match contacts.iter().find(matches) {
        Some(contact) => Some(contact),
        None if contacts.len() == 1 => contacts.first(),
        None => None,
    }
}

fn status_event(phone_number_id: &str, status: &Map<String, Value>) -> Event {
    if status.get("recipient_type").and_then(Value::as_str) == Some("group") {
        return unknown(IgnoredKind::GROUP_STATUS);
    }
    let Some(delivery) = status
        .get("status")
        .and_then(Value::as_str)
        .and_then(DeliveryStatus::parse)
    else {
        return unknown(IgnoredKind::STATUS);
    };
    let id = id_field(status.get("id"));
    let timestamp = event_timestamp(status.get("timestamp"));
    let (Some(id), Some(timestamp)) = (id, timestamp) else {
        return unknown(IgnoredKind::MALFORMED_STATUS);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::meta::normalize;
    use super::*;

    #[test]
    fn a_bsuid_sender_is_matched_to_its_contact_by_user_id_and_has_no_phone() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": "pn1"},
            "contacts": [{"profile": {"name": "A"}, "wa_id": "1"}, {"profile": {"name": "Bea"}, "user_id": "US.42"}],
            "messages": [{"from_user_id": "US.42", "id": "wamid.1", "timestamp": "1700000000",
                "type": "text", "text": {"body": "hi"}}]}}]}]});
        let events = normalize(&body, &Scope::default()).expect("valid body");
        let [Event::Message(m)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(m.contact_name.as_deref(), Some("Bea"));
        assert_eq!(m.contact_phone, None);
        assert_eq!(m.contact_user_id.as_deref(), Some("US.42"));
    }

    #[test]
    fn a_reaction_the_business_sent_never_takes_the_customer_s_place() {
        let echo = json!({"from": "15550000000", "to": "15551234567", "id": "wamid.r",
            "timestamp": "1700000000", "type": "reaction",
            "reaction": {"message_id": "wamid.m", "emoji": "❤"}});
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "smb_message_echoes", "value": {"metadata": {"phone_number_id": "pn1"},
            "message_echoes": [echo]}}]}]});
        let events = normalize(&body, &Scope::default()).expect("valid body");
        let [Event::Reaction(r)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(r.reactor, BUSINESS_REACTOR);
    }
}
