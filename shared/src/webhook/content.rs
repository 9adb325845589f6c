//! What a Cloud API message object says: its type, its human-readable text
//! and its raw type object. Shared by the Meta and Kapso normalisers (Kapso
//! passes Meta's message objects through).
//!
//! Guarantee: only types in [`MESSAGE_TYPES`] become message content; the
//! text is bounded by the field helpers of the parent module.

use serde_json::{Map, Value};

use super::ignored::IgnoredKind;
use super::{json_text, text_field};

/// Message types stored as messages. `template` only occurs in Kapso's
/// outbound messages; `media_placeholder` in Meta's history sync.
/// Reactions, edits, revokes and `request_welcome` are not messages (see
/// `meta_message`).
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
    "order",
    "system",
    "unsupported",
    "unknown",
    "template",
    "media_placeholder",
];

/// The content of one message object.
#[derive(Debug)]
pub(super) struct Content {
    pub(super) message_type: String,
    pub(super) text: Option<String>,
    pub(super) type_payload: Option<String>,
}

impl Content {
    /// The type, its text and its type object; `Err(kind)` for a missing or
    /// unknown type.
    pub(super) fn of(message: &Map<String, Value>) -> Result<Self, IgnoredKind> {
        let message_type = message
            .get("type")
            .and_then(Value::as_str)
            .ok_or(IgnoredKind::MALFORMED_MESSAGE)?;
        let message_type = MESSAGE_TYPES
            .iter()
            .find(|t| **t == message_type)
            .ok_or(IgnoredKind::UNKNOWN_MESSAGE_TYPE)?;
        let payload = message.get(*message_type);
        Ok(Content {
            message_type: (*message_type).to_owned(),
            text: payload.and_then(|p| type_text(message_type, p)),
            type_payload: json_text(payload),
        })
    }
}

/// The human-readable text of a type object: body, caption, reply title...
pub(super) fn type_text(message_type: &str, payload: &Value) -> Option<String> {
    let field = |name: &str| text_field(payload.get(name)).map(str::to_owned);
    match message_type {
        "text" | "system" => field("body"),
        "image" | "video" | "document" | "sticker" | "audio" => field("caption"),
        "button" | "order" => field("text"),
        "reaction" => field("emoji"),
        "interactive" => ["button_reply", "list_reply", "nfm_reply"]
            .iter()
            .find_map(|reply| {
                let reply = payload.get(*reply)?;
                text_field(reply.get("title")).or_else(|| text_field(reply.get("body")))
            })
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

/// The inbox context of a message object, as a JSON object (see
/// `MessageEvent::context`); `None` when there is none.
pub(super) fn context(message: &Map<String, Value>) -> Option<String> {
    let mut out = Map::new();
    if let Some(ctx) = message.get("context").and_then(Value::as_object) {
        if let Some(id) = text_field(ctx.get("id")) {
            out.insert("reply_to".into(), id.into());
        }
        if let Some(from) = text_field(ctx.get("from")) {
            out.insert("reply_from".into(), from.into());
        }
        for flag in ["forwarded", "frequently_forwarded"] {
            if ctx.get(flag).and_then(Value::as_bool) == Some(true) {
                out.insert(flag.into(), true.into());
            }
        }
        if let Some(product) = ctx.get("referred_product").filter(|p| p.is_object()) {
            out.insert("referred_product".into(), product.clone());
        }
    }
    for key in ["referral", "identity"] {
        if let Some(v) = message.get(key).filter(|v| v.is_object()) {
            out.insert(key.into(), v.clone());
        }
    }
    let system = message.get("system");
    if system.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("user_changed_number")
        && let Some(new) = text_field(system.and_then(|s| s.get("wa_id")))
    {
        out.insert("new_wa_id".into(), new.into());
    }
    (!out.is_empty())
        .then(|| json_text(Some(&Value::Object(out))))
        .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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

    #[test]
    fn context_keeps_reply_forwarding_referral_and_product() {
        let m = json!({"context": {"id": "wamid.q", "from": "1", "forwarded": true,
            "referred_product": {"catalog_id": "c", "product_retailer_id": "p"}},
            "referral": {"source_id": "ad"}});
        let ctx: Value =
            serde_json::from_str(&context(m.as_object().expect("object")).expect("some"))
                .expect("json");
        assert_eq!(ctx["reply_to"], "wamid.q");
        assert_eq!(ctx["forwarded"], true);
        assert_eq!(ctx["referred_product"]["catalog_id"], "c");
        assert_eq!(ctx["referral"]["source_id"], "ad");
        assert!(context(json!({"type": "text"}).as_object().expect("object")).is_none());
    }
}
