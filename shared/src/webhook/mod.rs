//! The webhook model: what Kapso and Meta send, and the normalised events the
//! processor stores.
//!
//! - [`routing_keys`] is all the ingress needs: the business phone_number_ids
//!   and (for Meta's account-level fields) the business account ids a body
//!   mentions, for workspace routing. It fails with a [`ShapeError`] when the
//!   body is not JSON of the expected shape.
//! - [`normalize`] / [`normalize_in`] turn one body into [`Event`]s for the
//!   processor.
//! - [`is_meta_payload`]: whether a body is a raw Meta payload (Kapso's "meta"
//!   webhook kind forwards those on the Kapso route).
//!
//! Guarantees: no function here panics on any input; unknown event or message
//! types are reported as [`Event::Unknown`] (counted as ignored downstream),
//! never as errors; optional fields (`from`, contact names) stay `Option`;
//! ids are at most [`MAX_ID_BYTES`] and texts at most [`MAX_TEXT_BYTES`].

mod content;
mod ignored;
mod kapso;
mod meta;
mod meta_message;
mod model;

pub use ignored::IgnoredKind;
pub use model::*;
use serde_json::Value;

use crate::record::Source;

/// Longest id (message, phone_number_id, user id, group id) taken from a body.
pub const MAX_ID_BYTES: usize = 256;
/// Longest text (body, caption, type payload) taken from a body; longer ones
/// are cut on a character boundary.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Most distinct routing keys (phone_number_ids plus business account ids)
/// one body may name. Real bodies name one or a few; the cap bounds what a
/// signed body can make the ingress do (and keeps the id headers of a record
/// far under the 64 KiB of header room a record is allowed).
pub const MAX_ROUTING_KEYS: usize = 1000;

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
    #[error("body names more than {limit} distinct phone_number_ids and accounts")]
    TooManyRoutingKeys { limit: usize },
}

/// What a body names for routing, in first-seen order, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingKeys {
    /// Kapso: top-level `phone_number_id` (each `data[]` item for batches);
    /// Meta: `entry[].changes[].value.metadata.phone_number_id`.
    pub phone_number_ids: Vec<String>,
    /// Meta: `entry[].id` of entries with an account-level change (one
    /// without `value.metadata`), such as `account_update`.
    pub business_account_ids: Vec<String>,
}

impl RoutingKeys {
    pub fn is_empty(&self) -> bool {
        self.phone_number_ids.is_empty() && self.business_account_ids.is_empty()
    }
}

/// The routing keys of a body. A Kapso project event without any
/// phone_number_id has none (it can be routed only by a workspace's own
/// secret); a Meta body with none at all is a [`ShapeError`].
pub fn routing_keys(source: Source, body: &[u8]) -> Result<RoutingKeys, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError::NotJson(e.to_string()))?;
    let mut keys = match source {
        Source::Kapso => RoutingKeys {
            phone_number_ids: kapso::phone_number_ids(&value)?,
            business_account_ids: Vec::new(),
        },
        Source::Meta => meta::routing_keys(&value)?,
    };
    dedup(&mut keys.phone_number_ids);
    dedup(&mut keys.business_account_ids);
    if keys.phone_number_ids.len() + keys.business_account_ids.len() > MAX_ROUTING_KEYS {
        return Err(ShapeError::TooManyRoutingKeys {
            limit: MAX_ROUTING_KEYS,
        });
    }
    Ok(keys)
}

/// The business phone_number_ids of [`routing_keys`].
pub fn routing_phone_number_ids(source: Source, body: &[u8]) -> Result<Vec<String>, ShapeError> {
    routing_keys(source, body).map(|k| k.phone_number_ids)
}

/// Drops repeated ids, keeping first-seen order, in linear time.
fn dedup(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.retain(|id| seen.insert(id.clone()));
}

/// Whether `body` is a raw Meta Cloud API payload (`object:
/// whatsapp_business_account`), as Kapso's "meta" webhook kind forwards.
pub fn is_meta_payload(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        object: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Envelope<'_>>(body)
        .is_ok_and(|e| e.object.as_deref() == Some("whatsapp_business_account"))
}

/// Decodes one body into events. `event_type` is the `X-Webhook-Event` value
/// for Kapso (ignored for Meta, and for Kapso bodies that name their own
/// type). With a non-empty `only_phone_number_ids`, Meta changes and Kapso
/// batch items for other numbers are skipped (a multi-workspace body is stored
/// once per workspace, and each copy handles its own numbers).
pub fn normalize(
    source: Source,
    event_type: Option<&str>,
    body: &[u8],
    only_phone_number_ids: &[String],
) -> Result<Vec<Event>, ShapeError> {
    normalize_in(
        source,
        event_type,
        body,
        &Scope::phones(only_phone_number_ids),
    )
}

/// [`normalize`] within a full [`Scope`].
pub fn normalize_in(
    source: Source,
    event_type: Option<&str>,
    body: &[u8],
    scope: &Scope,
) -> Result<Vec<Event>, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError::NotJson(e.to_string()))?;
    match source {
        Source::Kapso => kapso::normalize(event_type, &value, scope),
        Source::Meta => meta::normalize(&value, scope),
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

/// A non-blank string field, trimmed, cut to [`MAX_TEXT_BYTES`].
pub(super) fn text_field(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, MAX_TEXT_BYTES))
}

/// An id: a non-blank string of at most [`MAX_ID_BYTES`] without control
/// characters, trimmed. Longer or odd ids are refused, never cut (a cut id
/// would name another message).
pub(super) fn id_field(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control))
}

/// A JSON value as compact JSON text; `None` for absent or `null`, and for a
/// value longer than [`MAX_TEXT_BYTES`] (it cannot be cut and stay JSON).
pub(super) fn json_text(value: Option<&Value>) -> Option<String> {
    value
        .filter(|v| !v.is_null())
        .map(Value::to_string)
        .filter(|s| s.len() <= MAX_TEXT_BYTES)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
