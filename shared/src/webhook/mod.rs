//! The webhook model: what Kapso and Meta send, and the normalised events the
//! processor stores.
//!
//! - [`routing_phone_number_ids`] is all the ingress needs: the business
//!   phone_number_ids a body mentions, for workspace routing. It fails with a
//!   [`ShapeError`] when the body is not JSON of the expected shape.
//! - [`normalize`] turns one body into [`Event`]s for the processor.
//!
//! Guarantees: neither function panics on any input; unknown event or message
//! types are reported as [`Event::Unknown`] (counted and skipped downstream),
//! never as errors; optional fields (`from`, contact names) stay `Option`.

mod kapso;
mod meta;

use serde_json::Value;

use crate::record::Source;

/// Why a body is not a webhook we understand. Such bodies are dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not a {sender} webhook: {reason}")]
    UnexpectedShape {
        sender: &'static str,
        reason: String,
    },
}

/// Direction of a message relative to the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A WhatsApp message, inbound or outbound.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEvent {
    /// The business number it was sent to or from.
    pub phone_number_id: String,
    /// WhatsApp message id (`wamid...`).
    pub message_id: String,
    pub direction: Direction,
    /// The customer's phone (sender of inbound, recipient of outbound), digits only.
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
    /// Seconds since the Unix epoch, as WhatsApp reports it.
    pub timestamp: i64,
    /// `text`, `image`, `audio`, ...
    pub message_type: String,
    /// The text body or media caption, when there is one.
    pub text: Option<String>,
    /// The raw type object (for example the `image` object), as JSON text.
    pub type_payload: Option<String>,
    /// Kapso's conversation id, when the body came from Kapso.
    pub kapso_conversation_id: Option<String>,
}

/// Delivery state of an outbound message, in monotonic rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    Sent = 1,
    Delivered = 2,
    Read = 3,
    /// Terminal: nothing replaces it.
    Failed = 4,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn rank(self) -> i32 {
        self as i32
    }
}

/// A status update for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    pub phone_number_id: String,
    pub message_id: String,
    pub status: DeliveryStatus,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    pub recipient_phone: Option<String>,
    /// The `errors` array as JSON text, for `failed`.
    pub errors: Option<String>,
}

/// Kapso conversation lifecycle events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    Created,
    Ended,
    Inactive,
}

impl ConversationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Created => "active",
            ConversationState::Ended => "ended",
            ConversationState::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEvent {
    pub phone_number_id: String,
    pub kapso_conversation_id: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
    pub state: ConversationState,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// One normalised thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(MessageEvent),
    Status(StatusEvent),
    Conversation(ConversationEvent),
    /// Something we do not handle; `kind` is low-cardinality (an event or
    /// message type name) and safe as a metric label.
    Unknown {
        kind: String,
    },
}

/// The business phone_number_ids a body mentions, in first-seen order, without
/// duplicates. Kapso: top-level `phone_number_id` (each `data[]` item for
/// batches); Meta: `entry[].changes[].value.metadata.phone_number_id`.
pub fn routing_phone_number_ids(source: Source, body: &[u8]) -> Result<Vec<String>, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError::NotJson(e.to_string()))?;
    let ids = match source {
        Source::Kapso => kapso::phone_number_ids(&value)?,
        Source::Meta => meta::phone_number_ids(&value)?,
    };
    let mut seen = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    Ok(seen)
}

/// Decodes one body into events. `event_type` is the `X-Webhook-Event` value
/// for Kapso (ignored for Meta). When `only_phone_number_ids` is non-empty,
/// Meta changes for other numbers are skipped (a multi-workspace body is
/// stored once per workspace, and each copy handles its own numbers).
pub fn normalize(
    source: Source,
    event_type: Option<&str>,
    body: &[u8],
    only_phone_number_ids: &[String],
) -> Result<Vec<Event>, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError::NotJson(e.to_string()))?;
    match source {
        Source::Kapso => kapso::normalize(event_type, &value),
        Source::Meta => meta::normalize(&value, only_phone_number_ids),
    }
}

/// Parses WhatsApp's timestamp forms: a string or number of seconds, or an
/// RFC 3339 date (Kapso's conversation fields). Returns seconds.
pub(crate) fn parse_timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    }
}
