//! Round trips of [`RecordHeaders`] and each [`HeaderError`].

use std::sync::Arc;

use rdkafka::message::{Header, Headers, OwnedHeaders};

use super::*;

fn full() -> RecordHeaders {
    RecordHeaders {
        source: Source::Kapso,
        event: Some("whatsapp.message.received".into()),
        idempotency_key: Some("idem-1".into()),
        received_at_ms: Some(1_700_000_000_000),
        content_type: Some("application/json".into()),
        phone_number_ids: vec!["1".into(), "2".into()],
        business_account_ids: vec!["waba1".into()],
        signed_by: Some(Trust::Workspace(Arc::from("ws_a"))),
        workspace_id: Some("ws_a".into()),
        reason: Some("shape: bad".into()),
        replayed_from: Some("inboxflow.webhooks.unrouted/0/42".into()),
        dead_letter: Some(DeadLetterOrigin {
            topic: "inboxflow.webhooks".into(),
            partition: 3,
            offset: 99,
            value_omitted: true,
        }),
        envelope_mac: Some("00".repeat(32)),
    }
}

fn raw(pairs: &[(&str, &[u8])]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(*value),
        })
    })
}

/// Minimal valid headers plus `extra`, with `without` left out.
fn minimal(extra: &[(&str, &[u8])], without: &str) -> OwnedHeaders {
    let mut pairs: Vec<(&str, &[u8])> =
        vec![(SCHEMA_VERSION_HEADER, b"1"), (SOURCE_HEADER, b"meta")];
    pairs.extend_from_slice(extra);
    pairs.retain(|(k, _)| *k != without);
    raw(&pairs)
}

#[test]
fn source_round_trips_through_its_header_value() {
    for s in Source::ALL {
        assert_eq!(Source::parse(s.as_str()), Some(*s));
    }
    assert_eq!(Source::parse("other"), None);
}

#[test]
fn every_field_survives_a_round_trip_through_kafka_headers() {
    let h = full();
    assert_eq!(RecordHeaders::from_kafka(&h.to_kafka()), Ok(h));
}

#[test]
fn headers_naming_only_a_source_survive_a_round_trip() {
    for source in Source::ALL {
        let h = RecordHeaders::new(*source);
        assert_eq!(RecordHeaders::from_kafka(&h.to_kafka()), Ok(h));
    }
}

#[test]
fn the_wire_format_keeps_its_names_values_and_order() {
    let mut h = full();
    h.dead_letter = None;
    h.replayed_from = None;
    let written: Vec<(String, String)> = h
        .to_kafka()
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            (h.key.to_owned(), value)
        })
        .collect();
    let mac = "00".repeat(32);
    let expected = [
        ("inboxflow-source", "kapso"),
        ("inboxflow-event", "whatsapp.message.received"),
        ("inboxflow-idempotency-key", "idem-1"),
        ("inboxflow-received-at-ms", "1700000000000"),
        ("content-type", "application/json"),
        ("inboxflow-schema-version", "1"),
        ("inboxflow-phone-number-ids", "1,2"),
        ("inboxflow-signed-by", "workspace:ws_a"),
        ("inboxflow-business-account-ids", "waba1"),
        ("inboxflow-workspace-id", "ws_a"),
        ("inboxflow-reason", "shape: bad"),
        ("inboxflow-envelope-mac", mac.as_str()),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(written, expected);
}

#[test]
fn id_lists_are_split_on_commas_with_blanks_dropped() {
    let h = minimal(&[(PHONE_NUMBER_IDS_HEADER, b" 1, 2,,3 ")], "");
    let read = RecordHeaders::from_kafka(&h).expect("valid");
    assert_eq!(read.phone_number_ids, ["1", "2", "3"]);
    assert!(read.business_account_ids.is_empty());
}

#[test]
fn a_missing_header_is_named() {
    let h = minimal(&[], SCHEMA_VERSION_HEADER);
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::Missing(SCHEMA_VERSION_HEADER));
    let h = minimal(&[], SOURCE_HEADER);
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::Missing(SOURCE_HEADER));
    let h = minimal(
        &[
            (DLQ_SOURCE_TOPIC_HEADER, b"t"),
            (DLQ_SOURCE_OFFSET_HEADER, b"1"),
        ],
        "",
    );
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::Missing(DLQ_SOURCE_PARTITION_HEADER));
}

#[test]
fn a_header_that_is_not_utf8_is_refused() {
    let h = minimal(&[(EVENT_HEADER, b"\xff\xfe")], "");
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::NotUtf8(EVENT_HEADER));
    assert_eq!(err.header(), EVENT_HEADER);
}

#[test]
fn another_schema_version_is_refused_before_anything_else() {
    let h = raw(&[(SCHEMA_VERSION_HEADER, b"2"), (SOURCE_HEADER, b"bogus")]);
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::UnsupportedSchemaVersion("2".into()));
    assert_eq!(err.header(), SCHEMA_VERSION_HEADER);
}

#[test]
fn an_unknown_source_is_refused() {
    let h = raw(&[(SCHEMA_VERSION_HEADER, b"1"), (SOURCE_HEADER, b"bogus")]);
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err, HeaderError::UnknownSource("bogus".into()));
    assert_eq!(err.header(), SOURCE_HEADER);
}

#[test]
fn a_number_header_that_is_no_number_is_refused() {
    let h = minimal(&[(RECEIVED_AT_HEADER, b"soon")], "");
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    let expected = HeaderError::BadNumber {
        header: RECEIVED_AT_HEADER,
        value: "soon".into(),
    };
    assert_eq!(err, expected);
    assert_eq!(received_at_ms(&h), Err(expected));
}

#[test]
fn a_malformed_signer_or_omission_marker_is_refused() {
    let h = minimal(&[(SIGNED_BY_HEADER, b"workspace:")], "");
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err.header(), SIGNED_BY_HEADER);
    assert!(matches!(err, HeaderError::Malformed { .. }));
    let h = minimal(
        &[
            (DLQ_SOURCE_TOPIC_HEADER, b"t"),
            (DLQ_SOURCE_PARTITION_HEADER, b"0"),
            (DLQ_SOURCE_OFFSET_HEADER, b"1"),
            (DLQ_VALUE_OMITTED_HEADER, b"yes"),
        ],
        "",
    );
    let err = RecordHeaders::from_kafka(&h).expect_err("refused");
    assert_eq!(err.header(), DLQ_VALUE_OMITTED_HEADER);
}

#[test]
fn a_dead_letter_keeps_the_original_headers_verbatim_and_adds_its_origin() {
    let original = raw(&[(SOURCE_HEADER, b"\xff"), ("x-other", b"kept")]);
    let origin = DeadLetterOrigin {
        topic: "t".into(),
        partition: 1,
        offset: 2,
        value_omitted: false,
    };
    let copy = origin.append_to(copy_verbatim(Some(&original)), "shape: bad");
    let keys: Vec<&str> = copy.iter().map(|h| h.key).collect();
    assert_eq!(
        keys,
        [
            SOURCE_HEADER,
            "x-other",
            REASON_HEADER,
            DLQ_SOURCE_TOPIC_HEADER,
            DLQ_SOURCE_PARTITION_HEADER,
            DLQ_SOURCE_OFFSET_HEADER
        ]
    );
    assert_eq!(copy.get(0).value, Some(b"\xff".as_slice()));
}

fn key(text: &str) -> EnvelopeKey {
    crate::config::Secret::new(text).envelope_key()
}

/// A routed record as the ingress seals it, read back from Kafka headers.
fn sealed_record() -> (EnvelopeKey, RecordHeaders) {
    let k = key("0123456789abcdef-envelope");
    let headers = RecordHeaders {
        reason: None,
        dead_letter: None,
        envelope_mac: None,
        ..full()
    };
    let sealed = k.sealed(Some(b"ws_a"), headers, b"{\"body\":1}");
    let read = RecordHeaders::from_kafka(&sealed.to_kafka()).expect("valid");
    (k, read)
}

#[test]
fn a_sealed_record_verifies_after_a_round_trip_through_kafka_headers() {
    let (k, read) = sealed_record();
    assert_eq!(k.verify(Some(b"ws_a"), &read, b"{\"body\":1}"), Ok(()));
}

#[test]
fn a_change_to_the_key_value_or_a_routing_header_breaks_the_mac() {
    let (k, read) = sealed_record();
    let value = b"{\"body\":1}".as_slice();
    assert_eq!(
        k.verify(Some(b"ws_b"), &read, value),
        Err(EnvelopeError::Mismatch)
    );
    assert_eq!(k.verify(None, &read, value), Err(EnvelopeError::Mismatch));
    assert_eq!(
        k.verify(Some(b"ws_a"), &read, b"{\"body\":2}"),
        Err(EnvelopeError::Mismatch)
    );
    let altered = [
        RecordHeaders {
            workspace_id: Some("ws_b".into()),
            ..read.clone()
        },
        RecordHeaders {
            signed_by: Some(Trust::Global),
            ..read.clone()
        },
        RecordHeaders {
            source: Source::Meta,
            ..read.clone()
        },
        RecordHeaders {
            phone_number_ids: vec!["9".into()],
            ..read.clone()
        },
        RecordHeaders {
            received_at_ms: Some(1),
            ..read.clone()
        },
        RecordHeaders {
            replayed_from: None,
            ..read.clone()
        },
    ];
    for headers in altered {
        assert_eq!(
            k.verify(Some(b"ws_a"), &headers, value),
            Err(EnvelopeError::Mismatch)
        );
    }
    let other = key("another-key-of-16-bytes");
    assert_eq!(
        other.verify(Some(b"ws_a"), &read, value),
        Err(EnvelopeError::Mismatch)
    );
}

#[test]
fn a_dead_letter_copy_still_verifies() {
    let (k, read) = sealed_record();
    let copy = RecordHeaders {
        reason: Some("poison".into()),
        dead_letter: full().dead_letter,
        ..read
    };
    assert_eq!(k.verify(Some(b"ws_a"), &copy, b"{\"body\":1}"), Ok(()));
}

#[test]
fn a_missing_or_malformed_mac_is_refused_as_such() {
    let (k, read) = sealed_record();
    let value = b"{\"body\":1}".as_slice();
    let missing = RecordHeaders {
        envelope_mac: None,
        ..read.clone()
    };
    assert_eq!(
        k.verify(Some(b"ws_a"), &missing, value),
        Err(EnvelopeError::Missing)
    );
    for bad in ["zz", "abcd", ""] {
        let malformed = RecordHeaders {
            envelope_mac: Some(bad.into()),
            ..read.clone()
        };
        assert_eq!(
            k.verify(Some(b"ws_a"), &malformed, value),
            Err(EnvelopeError::Malformed)
        );
    }
    assert!(
        !format!("{k:?}").contains("envelope"),
        "the key never prints"
    );
}
