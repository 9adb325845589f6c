//! One source record routed again: which records it becomes, with which
//! headers, or why it still cannot be routed. Pure apart from the registry
//! snapshot it is given. Headers are read and written only through
//! [`RecordHeaders`].

use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use shared::record::{EnvelopeKey, RecordHeaders, Source, Trust};
use shared::webhook::{RoutingKeys, ShapeError, routing_keys};

use crate::metrics::TopicKind;
use crate::registry::Registry;
use crate::routing::{self, PlannedRecord};

/// The records one source record becomes, or why it cannot be replayed.
#[derive(Debug)]
pub(super) struct Routed {
    pub(super) records: Vec<PlannedRecord>,
    /// Why part (or all) of it is still unroutable.
    pub(super) unroutable: Option<String>,
    /// The source record's headers, the base of each copy's (`None` when
    /// the record was refused before routing).
    pub(super) headers: Option<RecordHeaders>,
}

impl Routed {
    fn refused(reason: String) -> Self {
        Self {
            records: Vec::new(),
            unroutable: Some(reason),
            headers: None,
        }
    }
}

/// How a source record's envelope is checked.
#[derive(Debug, Clone, Copy)]
pub(super) enum EnvelopeCheck<'a> {
    /// It must verify under this key.
    Verify(&'a EnvelopeKey),
    /// Records written before envelopes existed: the operator vouches.
    AcceptUnsealed,
}

/// Routes a source record again (pure apart from the registry).
pub(super) fn route(
    message: &OwnedMessage,
    registry: &Registry,
    check: EnvelopeCheck<'_>,
) -> Routed {
    let (headers, trust, body) = match read(message, check) {
        Ok(read) => read,
        Err(reason) => return Routed::refused(reason),
    };
    let parsed = restricted_keys(&headers, body);
    let plan = routing::plan(parsed, registry, &trust);
    let (records, rest): (Vec<_>, Vec<_>) =
        plan.into_iter().partition(|r| r.kind == TopicKind::Routed);
    let unroutable = rest.first().map(|r| {
        r.reason
            .clone()
            .unwrap_or_else(|| "not routable".to_owned())
    });
    Routed {
        records,
        unroutable,
        headers: Some(headers),
    }
}

/// The source record's headers, its trust and its body, or why it cannot
/// be replayed.
fn read<'m>(
    message: &'m OwnedMessage,
    check: EnvelopeCheck<'_>,
) -> Result<(RecordHeaders, Trust, &'m [u8]), String> {
    let headers = RecordHeaders::from_message(message).map_err(|err| err.to_string())?;
    let body = message.payload().ok_or("record has no value")?;
    if let EnvelopeCheck::Verify(key) = check {
        // Nothing in a record is trusted before its envelope verifies.
        key.verify(message.key(), &headers, body)
            .map_err(|err| err.to_string())?;
    }
    let trust = trust_of(&headers)?;
    Ok((headers, trust, body))
}

fn trust_of(headers: &RecordHeaders) -> Result<Trust, String> {
    match (&headers.signed_by, headers.source) {
        (Some(trust), _) => Ok(trust.clone()),
        // Meta deliveries are only ever verified with global secrets.
        (None, Source::Meta) => Ok(Trust::Global),
        (None, Source::Kapso) => Err(
            "no inboxflow-signed-by header: which Kapso secret verified the body is unknown"
                .to_owned(),
        ),
    }
}

/// The body's routing keys, restricted to the ids the record was about
/// (when it lists any).
fn restricted_keys(headers: &RecordHeaders, body: &[u8]) -> Result<RoutingKeys, ShapeError> {
    let listed = RoutingKeys {
        phone_number_ids: headers.phone_number_ids.clone(),
        business_account_ids: headers.business_account_ids.clone(),
    };
    routing_keys(headers.source, body).map(|keys| {
        if listed.is_empty() {
            return keys;
        }
        let keep = |ids: Vec<String>, listed: &[String]| -> Vec<String> {
            ids.into_iter().filter(|id| listed.contains(id)).collect()
        };
        RoutingKeys {
            phone_number_ids: keep(keys.phone_number_ids, &listed.phone_number_ids),
            business_account_ids: keep(keys.business_account_ids, &listed.business_account_ids),
        }
    })
}

/// The headers of a replayed copy routed as `planned`: the original's,
/// with the new routing, without the previous hop's reason and dead-letter
/// origin, naming the copy replayed, and sealed anew for its key and `body`.
pub(super) fn replay_headers(
    original: &RecordHeaders,
    planned: &PlannedRecord,
    replayed_from: &str,
    sealing: (&EnvelopeKey, &[u8]),
) -> OwnedHeaders {
    let (key, body) = sealing;
    let headers = RecordHeaders {
        phone_number_ids: planned.phone_number_ids.clone(),
        business_account_ids: planned.business_account_ids.clone(),
        workspace_id: planned.workspace_id.as_deref().map(str::to_owned),
        reason: None,
        replayed_from: Some(replayed_from.to_owned()),
        dead_letter: None,
        envelope_mac: None,
        ..original.clone()
    };
    key.sealed(Some(planned.key.as_bytes()), headers, body)
        .to_kafka()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::Timestamp;
    use rdkafka::message::{Header, Headers};
    use shared::record::{self, REPLAYED_FROM_HEADER, SIGNED_BY_HEADER};

    use super::*;

    fn registry() -> Registry {
        Registry::parse(
            "[[workspace]]\nid = \"ws_a\"\nphone_number_ids = [\"1\"]\n\
             [[workspace]]\nid = \"ws_b\"\nphone_number_ids = [\"2\"]\n",
        )
        .expect("valid")
    }

    fn meta_body(ids: &[&str]) -> Vec<u8> {
        let changes: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{id}"}}}}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{}]}}]}}"#,
            changes.join(",")
        )
        .into_bytes()
    }

    fn key() -> EnvelopeKey {
        shared::config::Secret::new("replay-test-envelope-key").envelope_key()
    }

    /// [`super::route`] with the envelope checked under [`key`].
    fn route(message: &OwnedMessage, registry: &Registry) -> Routed {
        super::route(message, registry, EnvelopeCheck::Verify(&key()))
    }

    /// A source record as the ingress writes it: sealed when its headers parse.
    fn message(body: &[u8], headers: &[(&str, &str)]) -> OwnedMessage {
        let raw = unsealed(body, headers);
        let headers = match RecordHeaders::from_message(&raw) {
            Ok(parsed) => key().sealed(Some(b"9"), parsed, body).to_kafka(),
            Err(_) => return raw,
        };
        with_headers(body, headers)
    }

    fn unsealed(body: &[u8], headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        with_headers(body, headers)
    }

    fn with_headers(body: &[u8], headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(body.to_vec()),
            Some(b"9".to_vec()),
            "unrouted".into(),
            Timestamp::NotAvailable,
            0,
            42,
            Some(headers),
        )
    }

    fn unrouted_headers<'a>(source: &'a str, numbers: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            (record::SOURCE_HEADER, source),
            (record::SCHEMA_VERSION_HEADER, record::SCHEMA_VERSION),
            (record::IDEMPOTENCY_KEY_HEADER, "idem"),
            (record::RECEIVED_AT_HEADER, "1700000000000"),
            (record::PHONE_NUMBER_IDS_HEADER, numbers),
            (record::REASON_HEADER, routing::REASON_UNKNOWN_PHONE),
            (SIGNED_BY_HEADER, "global"),
        ]
    }

    #[test]
    fn only_the_numbers_the_record_was_about_are_routed_again() {
        // The body names 1 (routed at the time) and 2 (unknown then, known now).
        let m = message(&meta_body(&["1", "2"]), &unrouted_headers("meta", "2"));
        let routed = route(&m, &registry());
        assert_eq!(routed.unroutable, None);
        let keys: Vec<&str> = routed.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["ws_b"]);
        assert_eq!(routed.records[0].phone_number_ids, ["2"]);
    }

    #[test]
    fn a_number_still_unknown_is_unroutable_with_the_routing_reason() {
        let m = message(&meta_body(&["3"]), &unrouted_headers("meta", "3"));
        let routed = route(&m, &registry());
        assert!(routed.records.is_empty());
        assert_eq!(
            routed.unroutable.as_deref(),
            Some(routing::REASON_UNKNOWN_PHONE)
        );
    }

    #[test]
    fn a_workspace_signed_body_is_never_replayed_into_another_workspace() {
        let mut h = unrouted_headers("meta", "2");
        h.retain(|(k, _)| *k != SIGNED_BY_HEADER);
        h.push((SIGNED_BY_HEADER, "workspace:ws_a"));
        let routed = route(&message(&meta_body(&["2"]), &h), &registry());
        assert!(routed.records.is_empty());
        assert_eq!(
            routed.unroutable.as_deref(),
            Some(routing::REASON_FOREIGN_PHONE)
        );
    }

    #[test]
    fn records_without_source_version_or_kapso_signer_are_refused() {
        let body = meta_body(&["1"]);
        let mut h = unrouted_headers("meta", "1");
        h.retain(|(k, _)| *k != record::SOURCE_HEADER);
        assert!(route(&message(&body, &h), &registry()).unroutable.is_some());
        let mut h = unrouted_headers("meta", "1");
        h.retain(|(k, _)| *k != record::SCHEMA_VERSION_HEADER);
        assert!(route(&message(&body, &h), &registry()).unroutable.is_some());
        let mut h = unrouted_headers("kapso", "1");
        h.retain(|(k, _)| *k != SIGNED_BY_HEADER);
        let kapso = br#"{"phone_number_id":"1","message":{}}"#;
        let routed = route(&message(kapso, &h), &registry());
        assert!(routed.unroutable.is_some_and(|r| r.contains("signed-by")));
    }

    #[test]
    fn replayed_headers_keep_the_original_and_name_their_source() {
        let m = message(&meta_body(&["2"]), &unrouted_headers("meta", "2"));
        let routed = route(&m, &registry());
        let original = routed.headers.as_ref().expect("routed");
        let body = m.payload().unwrap_or_default();
        let headers = replay_headers(
            original,
            &routed.records[0],
            "unrouted/0/42",
            (&key(), body),
        );
        let copy = RecordHeaders::from_kafka(&headers).expect("valid");
        assert_eq!(
            key().verify(Some(b"ws_b"), &copy, body),
            Ok(()),
            "the copy is sealed anew"
        );
        let map: HashMap<&str, &str> = headers
            .iter()
            .map(|h| {
                let value = std::str::from_utf8(h.value.unwrap_or_default()).unwrap_or("?");
                (h.key, value)
            })
            .collect();
        assert_eq!(map.len(), headers.count(), "no header twice");
        assert_eq!(map[record::SOURCE_HEADER], "meta");
        assert_eq!(map[record::IDEMPOTENCY_KEY_HEADER], "idem");
        assert_eq!(map[record::RECEIVED_AT_HEADER], "1700000000000");
        assert_eq!(map[SIGNED_BY_HEADER], "global");
        assert_eq!(map[record::WORKSPACE_HEADER], "ws_b");
        assert_eq!(map[record::PHONE_NUMBER_IDS_HEADER], "2");
        assert_eq!(map[REPLAYED_FROM_HEADER], "unrouted/0/42");
        assert!(!map.contains_key(record::REASON_HEADER));
    }

    #[test]
    fn a_record_without_a_valid_envelope_is_refused_unless_the_operator_vouches() {
        let body = meta_body(&["2"]);
        let h = unrouted_headers("meta", "2");
        let forged = unsealed(&body, &h);
        let refused = route(&forged, &registry());
        assert!(refused.records.is_empty());
        assert!(
            refused
                .unroutable
                .is_some_and(|r| r.contains("no envelope MAC"))
        );
        let vouched = super::route(&forged, &registry(), EnvelopeCheck::AcceptUnsealed);
        assert_eq!(vouched.records.len(), 1);
        // Sealed, then its signer widened: the MAC no longer matches.
        let mut parsed = RecordHeaders::from_message(&message(&body, &h)).expect("valid");
        parsed.signed_by = Some(Trust::Workspace("ws_b".into()));
        let altered = with_headers(&body, parsed.to_kafka());
        let refused = route(&altered, &registry());
        assert!(
            refused
                .unroutable
                .is_some_and(|r| r.contains("does not match"))
        );
    }
}
