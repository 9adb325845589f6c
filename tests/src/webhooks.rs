//! Builders of realistic webhook bodies and the Kafka records the ingress
//! would write for them, for tests and benchmarks.

use serde_json::{Value, json};
use shared::record::{self, EnvelopeKey, RecordHeaders, Source};

/// An inbound text message for [`meta_body`].
#[derive(Debug, Clone)]
pub struct Inbound {
    pub id: String,
    pub from: String,
    pub name: Option<String>,
    pub timestamp: i64,
    pub text: String,
}

impl Inbound {
    pub fn new(id: impl Into<String>, from: impl Into<String>, timestamp: i64) -> Self {
        let from = from.into();
        Self {
            id: id.into(),
            name: Some(format!("Contact {from}")),
            from,
            timestamp,
            text: "hello".into(),
        }
    }
}

/// A status update for [`meta_body`].
#[derive(Debug, Clone)]
pub struct Status {
    pub id: String,
    pub status: &'static str,
    pub timestamp: i64,
    pub recipient: String,
}

/// A Meta Cloud API body with one change for `phone_number_id`.
pub fn meta_body(phone_number_id: &str, messages: &[Inbound], statuses: &[Status]) -> Vec<u8> {
    let mut contacts: Vec<Value> = Vec::new();
    for m in messages {
        if !contacts.iter().any(|c| c["wa_id"] == m.from.as_str()) {
            contacts.push(json!({"profile": {"name": m.name}, "wa_id": m.from}));
        }
    }
    let msgs: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({"from": m.from, "id": m.id, "timestamp": m.timestamp.to_string(),
                   "type": "text", "text": {"body": m.text}})
        })
        .collect();
    let sts: Vec<Value> = statuses
        .iter()
        .map(|s| {
            json!({"id": s.id, "status": s.status, "timestamp": s.timestamp.to_string(),
                   "recipient_id": s.recipient})
        })
        .collect();
    let mut value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id}});
    if !msgs.is_empty() {
        value["contacts"] = Value::Array(contacts);
        value["messages"] = Value::Array(msgs);
    }
    if !sts.is_empty() {
        value["statuses"] = Value::Array(sts);
    }
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The headers the ingress writes for a routed record.
/// The record envelope key every test ingress and processor shares.
pub const ENVELOPE_KEY: &str = "inboxflow-test-envelope-key";

/// [`ENVELOPE_KEY`] as a key.
pub fn envelope_key() -> EnvelopeKey {
    shared::config::Secret::new(ENVELOPE_KEY).envelope_key()
}

/// `headers` sealed for a record with this key and body, as Kafka headers.
pub fn sealed(key: &str, headers: RecordHeaders, body: &[u8]) -> rdkafka::message::OwnedHeaders {
    envelope_key()
        .sealed(Some(key.as_bytes()), headers, body)
        .to_kafka()
}

pub fn record_headers(source: Source, workspace_id: &str, phone_number_id: &str) -> RecordHeaders {
    RecordHeaders {
        event: Some(record::META_EVENT.to_owned()),
        idempotency_key: Some(uuid::Uuid::new_v4().to_string()),
        received_at_ms: Some(record::now_ms()),
        content_type: Some("application/json".to_owned()),
        phone_number_ids: vec![phone_number_id.to_owned()],
        workspace_id: Some(workspace_id.to_owned()),
        ..RecordHeaders::new(source)
    }
}
