//! Turns a Kafka record (as written by the ingress) into normalised events.
//!
//! Guarantee: [`decode`] never panics and never drops a record silently. It
//! returns either the events of the record or a [`Poison`] naming why the
//! record cannot be processed; poison records go to the dead-letter topic.
//! A record holding a message that names no customer at all (no phone, no
//! user id, no group) is poison (`unattributable_message`): storing the rest
//! of it would lose that message without a trace. Headers are read only
//! through [`RecordHeaders::from_kafka`]: a record that breaks the header
//! contract is poison, named after the header at fault (`schema_version`,
//! `source`, or `headers` for any other). A record whose envelope MAC is
//! missing or does not verify (not written by the ingress or replay, or
//! altered) is poison (`envelope`) before its body is read.

use rdkafka::message::OwnedHeaders;
use shared::record::{self, EnvelopeKey, HeaderError, RecordHeaders};
use shared::webhook::{self, Event, Scope};

use crate::dead_letter::PoisonReason;

/// The parts of a Kafka record the processor reads.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's headers, read through [`RecordHeaders::from_kafka`].
    pub headers: Option<&'a OwnedHeaders>,
}

/// A decoded record: where it came from and what it says.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub workspace_id: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's write clock (µs): the client timestamp of the writes it
    /// makes. [`decode`] sets [`crate::clocks::unstamped`]; the consumer
    /// replaces it with the partition's clock ([`crate::clocks::Clocks`]).
    pub clock: i64,
    /// When the ingress received the webhook (ms since epoch), if known.
    pub received_at_ms: Option<i64>,
    pub events: Vec<Event>,
}

/// Why a record is poison. `kind` is a fixed, low-cardinality reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Poison {
    pub kind: PoisonReason,
    pub detail: String,
}

fn poison(kind: PoisonReason, detail: impl Into<String>) -> Poison {
    Poison {
        kind,
        detail: detail.into(),
    }
}

/// A contract violation is poison, named after the header at fault.
fn header_poison(err: &HeaderError) -> Poison {
    let kind = match err.header() {
        record::SCHEMA_VERSION_HEADER => PoisonReason::SchemaVersion,
        record::SOURCE_HEADER => PoisonReason::Source,
        _ => PoisonReason::Headers,
    };
    poison(kind, err.to_string())
}

/// Decodes one record, whose envelope must verify under `envelope_key`.
pub fn decode(raw: &RawRecord<'_>, envelope_key: &EnvelopeKey) -> Result<DecodedRecord, Poison> {
    let headers = match raw.headers {
        Some(headers) => RecordHeaders::from_kafka(headers),
        None => Err(HeaderError::Missing(record::SCHEMA_VERSION_HEADER)),
    }
    .map_err(|err| header_poison(&err))?;
    let workspace_id = raw
        .key
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            poison(
                PoisonReason::Key,
                "record key (workspace id) is missing or not UTF-8",
            )
        })?
        .to_owned();
    let body = raw
        .value
        .ok_or_else(|| poison(PoisonReason::Value, "record has no value"))?;
    envelope_key
        .verify(raw.key, &headers, body)
        .map_err(|e| poison(PoisonReason::Envelope, e.to_string()))?;
    let received_at_ms = headers.received_at_ms;
    let scope = Scope {
        phone_number_ids: headers.phone_number_ids,
        business_account_ids: headers.business_account_ids,
        fallback_timestamp: received_at_ms.map(|ms| ms.div_euclid(1000)),
    };
    let event_type = headers.event.as_deref();
    let events = webhook::normalize_in(headers.source, event_type, body, &scope)
        .map_err(|e| poison(PoisonReason::Shape, e.to_string()))?;
    let unattributable = |e: &Event| matches!(e, Event::Message(m) if !m.contact().is_known() && m.group_id.is_none());
    if let Some(n) = events.iter().position(unattributable) {
        return Err(poison(
            PoisonReason::UnattributableMessage,
            format!("event {n} is a message that names no customer (no phone, user id or group)"),
        ));
    }
    Ok(DecodedRecord {
        workspace_id,
        partition: raw.partition,
        offset: raw.offset,
        clock: crate::clocks::unstamped(raw.offset),
        received_at_ms,
        events,
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Header;

    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> OwnedHeaders {
        pairs.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(*value),
            })
        })
    }

    fn headers(source: &str) -> OwnedHeaders {
        let src: &'static str = if source == "kapso" { "kapso" } else { "bogus" };
        owned(&[
            (record::SCHEMA_VERSION_HEADER, "1"),
            (record::SOURCE_HEADER, src),
            (record::RECEIVED_AT_HEADER, "1700000000000"),
        ])
    }

    fn key() -> EnvelopeKey {
        shared::config::Secret::new("decode-test-envelope-key").envelope_key()
    }

    /// [`super::decode`] of `raw` sealed as the ingress would (when its
    /// headers parse), so each test reaches the check it is about.
    fn decode(raw: &RawRecord<'_>) -> Result<DecodedRecord, Poison> {
        let sealed = raw
            .headers
            .and_then(|h| RecordHeaders::from_kafka(h).ok())
            .map(|h| {
                key()
                    .sealed(raw.key, h, raw.value.unwrap_or_default())
                    .to_kafka()
            });
        let raw = RawRecord {
            headers: sealed.as_ref().or(raw.headers),
            ..*raw
        };
        super::decode(&raw, &key())
    }

    #[test]
    fn a_record_the_ingress_did_not_seal_is_poison() {
        let h = headers("kapso");
        let err = super::decode(&raw(&h, Some(b"ws"), b"{}"), &key()).expect_err("poison");
        assert_eq!(err.kind, PoisonReason::Envelope);
        assert!(err.detail.contains("no envelope MAC"), "{err}");
    }

    #[test]
    fn a_record_moved_to_another_workspace_is_poison() {
        let body =
            br#"{"phone_number_id": "pn", "message": {"id": "wamid.1", "from": "15551234567",
            "type": "text", "text": {"body": "hi"}, "kapso": {"direction": "inbound"}}}"#;
        let parsed = RecordHeaders::from_kafka(&headers("kapso")).expect("valid");
        let h = key().sealed(Some(b"ws_a"), parsed, body).to_kafka();
        assert!(super::decode(&raw(&h, Some(b"ws_a"), body), &key()).is_ok());
        let err = super::decode(&raw(&h, Some(b"ws_b"), body), &key()).expect_err("poison");
        assert_eq!(err.kind, PoisonReason::Envelope);
        let other = shared::config::Secret::new("someone-elses-envelope-key").envelope_key();
        let err = super::decode(&raw(&h, Some(b"ws_a"), body), &other).expect_err("poison");
        assert_eq!(err.kind, PoisonReason::Envelope);
    }

    fn raw<'a>(h: &'a OwnedHeaders, key: Option<&'a [u8]>, value: &'a [u8]) -> RawRecord<'a> {
        RawRecord {
            partition: 0,
            offset: 7,
            key,
            value: Some(value),
            headers: Some(h),
        }
    }

    #[test]
    fn a_record_without_workspace_key_is_poison() {
        let h = headers("kapso");
        let err = decode(&raw(&h, None, b"{}")).expect_err("poison");
        assert_eq!(err.kind.as_str(), "key");
    }

    #[test]
    fn an_unknown_source_is_poison() {
        let h = headers("bogus");
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"{}"))
                .expect_err("poison")
                .kind
                .as_str(),
            "source"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_poison_not_a_panic() {
        let h = headers("kapso");
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"\xff\xfe not json"))
                .expect_err("poison")
                .kind
                .as_str(),
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
        assert_eq!(err.kind.as_str(), "unattributable_message");
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
        let h = owned(&[(record::SOURCE_HEADER, "kapso")]);
        assert_eq!(
            decode(&raw(&h, Some(b"ws"), b"{}"))
                .expect_err("poison")
                .kind
                .as_str(),
            "schema_version"
        );
    }

    #[test]
    fn a_malformed_optional_header_is_poison_not_read_as_absent() {
        let h = owned(&[
            (record::SCHEMA_VERSION_HEADER, "1"),
            (record::SOURCE_HEADER, "kapso"),
            (record::RECEIVED_AT_HEADER, "soon"),
        ]);
        let err = decode(&raw(&h, Some(b"ws"), b"{}")).expect_err("poison");
        assert_eq!(err.kind, PoisonReason::Headers);
    }
}
