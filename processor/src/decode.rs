//! Turns a Kafka record (as written by the ingress) into normalised events.
//!
//! Guarantee: [`decode`] never panics and never drops a record silently. It
//! returns either the events of the record or a [`Poison`] naming why the
//! record cannot be processed; poison records go to the dead-letter topic.
//! A record holding a message that names no customer at all (no phone, no
//! user id, no group) is poison (`unattributable_message`): storing the rest
//! of it would lose that message without a trace.

use shared::record::{self, Source};
use shared::webhook::{self, Event, Scope};

/// The parts of a Kafka record the processor reads.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Header lookup by name.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A decoded record: where it came from and what it says.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub workspace_id: String,
    pub partition: i32,
    pub offset: i64,
    /// When the ingress received the webhook (ms since epoch), if known.
    pub received_at_ms: Option<i64>,
    pub events: Vec<Event>,
}

/// Why a record is poison. `kind` is a fixed, low-cardinality reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Poison {
    pub kind: &'static str,
    pub detail: String,
}

fn poison(kind: &'static str, detail: impl Into<String>) -> Poison {
    Poison {
        kind,
        detail: detail.into(),
    }
}

fn header<'a>(raw: &RawRecord<'a>, name: &str) -> Option<&'a str> {
    raw.headers
        .iter()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Decodes one record.
pub fn decode(raw: &RawRecord<'_>) -> Result<DecodedRecord, Poison> {
    let version = header(raw, record::SCHEMA_VERSION_HEADER);
    if version != Some(record::SCHEMA_VERSION) {
        return Err(poison(
            "schema_version",
            format!("unsupported schema version {version:?}"),
        ));
    }
    let source = header(raw, record::SOURCE_HEADER)
        .and_then(Source::parse)
        .ok_or_else(|| poison("source", "missing or unknown source header"))?;
    let workspace_id = raw
        .key
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| poison("key", "record key (workspace id) is missing or not UTF-8"))?
        .to_owned();
    let body = raw
        .value
        .ok_or_else(|| poison("value", "record has no value"))?;
    let list = |name: &str| -> Vec<String> {
        header(raw, name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let received_at_ms: Option<i64> =
        header(raw, record::RECEIVED_AT_HEADER).and_then(|v| v.parse().ok());
    let scope = Scope {
        phone_number_ids: list(record::PHONE_NUMBER_IDS_HEADER),
        business_account_ids: list(record::BUSINESS_ACCOUNT_IDS_HEADER),
        fallback_timestamp: received_at_ms.map(|ms| ms.div_euclid(1000)),
    };
    let event_type = header(raw, record::EVENT_HEADER);
    let events = webhook::normalize_in(source, event_type, body, &scope)
        .map_err(|e| poison("shape", e.to_string()))?;
    let unattributable = |e: &Event| matches!(e, Event::Message(m) if !m.contact().is_known() && m.group_id.is_none());
    if let Some(n) = events.iter().position(unattributable) {
        return Err(poison(
            "unattributable_message",
            format!("event {n} is a message that names no customer (no phone, user id or group)"),
        ));
    }
    Ok(DecodedRecord {
        workspace_id,
        partition: raw.partition,
        offset: raw.offset,
        received_at_ms,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(source: &str) -> Vec<(&'static str, &[u8])> {
        let src: &'static str = if source == "kapso" { "kapso" } else { "bogus" };
        vec![
            (record::SCHEMA_VERSION_HEADER, b"1".as_slice()),
            (record::SOURCE_HEADER, src.as_bytes()),
            (record::RECEIVED_AT_HEADER, b"1700000000000".as_slice()),
        ]
    }

    fn raw<'a>(
        h: &'a [(&'a str, &'a [u8])],
        key: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> RawRecord<'a> {
        RawRecord {
            partition: 0,
            offset: 7,
            key,
            value: Some(value),
            headers: h,
        }
    }

    #[test]
    fn a_record_without_workspace_key_is_poison() {
        let h = headers("kapso");
        let err = decode(&raw(&h, None, b"{}")).expect_err("poison");
        assert_eq!(err.kind, "key");
    }

    #[test]
    fn an_unknown_source_is_poison() {
        let h = headers("bogus");
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"{}"))
                .expect_err("poison")
                .kind,
            "source"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_poison_not_a_panic() {
        let h = headers("kapso");
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"\xff\xfe not json"))
                .expect_err("poison")
                .kind,
            "shape"
        );
    }

    #[test]
    fn a_message_naming_no_customer_is_poison_not_a_silent_skip() {
        let h = headers("kapso");
        let body = br#"{"phone_number_id": "pn", "message": {"id": "wamid.1",
            "timestamp": "1700000000", "type": "text", "text": {"body": "hi"},
            "kapso": {"direction": "inbound"}}}"#;
        let err = decode(&raw(&h, Some(b"ws"), body)).expect_err("poison");
        assert_eq!(err.kind, "unattributable_message");
    }

    #[test]
    fn a_message_without_timestamp_takes_the_receive_time() {
        let h = headers("kapso");
        let body =
            br#"{"phone_number_id": "pn", "message": {"id": "wamid.1", "from": "15551234567",
            "type": "text", "text": {"body": "hi"}, "kapso": {"direction": "inbound"}}}"#;
        let decoded = decode(&raw(&h, Some(b"ws"), body)).expect("decoded");
        let [Event::Message(m)] = decoded.events.as_slice() else {
            panic!("{:?}", decoded.events)
        };
        assert_eq!(m.timestamp, 1_700_000_000);
    }

    #[test]
    fn a_missing_schema_version_is_poison() {
        let h = vec![(record::SOURCE_HEADER, b"kapso".as_slice())];
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"{}"))
                .expect_err("poison")
                .kind,
            "schema_version"
        );
    }
}
