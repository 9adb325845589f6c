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
/// Meta changes and Kapso batch items for other numbers are skipped (a multi-workspace body is
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
        Source::Kapso => kapso::normalize(event_type, &value, only_phone_number_ids),
        Source::Meta => meta::normalize(&value, only_phone_number_ids),
    }
}

/// Parses WhatsApp's timestamp forms: a string or number of seconds, or an
/// RFC 3339 date (Kapso's conversation fields). Returns seconds.
pub(crate) fn parse_timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok().or_else(|| parse_rfc3339(s)),
        _ => None,
    }
}

// ---- Field helpers shared by the Kapso and Meta normalisers. ----

/// 9999-12-31T23:59:59Z: later timestamps are treated as malformed, so that
/// converting a stored timestamp to milliseconds can never overflow.
const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// [`parse_timestamp`], restricted to `1..=MAX_TIMESTAMP` (an item whose
/// timestamp is missing, unparseable or absurd is skipped as malformed).
pub(super) fn event_timestamp(value: Option<&Value>) -> Option<i64> {
    value
        .and_then(parse_timestamp)
        .filter(|ts| (1..=MAX_TIMESTAMP).contains(ts))
}

/// A business phone_number_id: a non-empty string of at most 128 characters
/// without control characters, or a non-negative JSON integer (converted to
/// its decimal string). Anything else is an error message for a [`ShapeError`].
pub(super) fn phone_number_id_value(value: &Value) -> Result<String, &'static str> {
    match value {
        Value::String(s)
            if !s.trim().is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        Value::String(_) => Err("phone_number_id is empty, too long or has control characters"),
        Value::Number(n) => n
            .as_u64()
            .map(|n| n.to_string())
            .ok_or("phone_number_id is a number but not a non-negative integer"),
        _ => Err("phone_number_id is neither a string nor a number"),
    }
}

/// A customer phone, digits only (see [`crate::ids::normalize_phone`]).
/// `None` when absent, empty, longer than 20 digits, or when the string has
/// letters: a business-scoped user id (`US.1234...`) or username is not a
/// phone, and keeping its digits would merge unrelated contacts.
pub(super) fn contact_phone(value: Option<&Value>) -> Option<String> {
    let digits = match value? {
        Value::String(s) if !s.chars().any(char::is_alphabetic) => crate::ids::normalize_phone(s),
        Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    (!digits.is_empty() && digits.len() <= 20).then_some(digits)
}

/// A non-blank string field, trimmed.
pub(super) fn text_field(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A JSON value as compact JSON text; `None` for absent or `null`.
pub(super) fn json_text(value: Option<&Value>) -> Option<String> {
    value.filter(|v| !v.is_null()).map(Value::to_string)
}

/// Seconds since the epoch of an RFC 3339 date-time such as
/// `2025-10-28T14:25:01Z` or `2025-12-30T13:11:53.123-03:00`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let is = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(is(4, b"-") && is(7, b"-") && is(10, b"Tt ") && is(13, b":") && is(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = b.get(19..)?;
    if let Some((b'.', fraction)) = rest.split_first() {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        rest = fraction.get(len..).filter(|_| len > 0)?;
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: &u8, b: &u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (two(h1, h2)?, two(m1, m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // Days since 1970-01-01 in the proleptic Gregorian calendar.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}
