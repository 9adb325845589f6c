//! One source record routed again: which records it becomes, with which
//! headers, or why it still cannot be routed. Pure apart from the registry
//! snapshot it is given.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use shared::record::{self, Source};
use shared::webhook::{RoutingKeys, routing_keys};

use super::REPLAYED_FROM_HEADER;
use crate::metrics::TopicKind;
use crate::registry::Registry;
use crate::routing::{self, PlannedRecord, SIGNED_BY_HEADER, Trust};

/// Headers that describe the previous hop, not the webhook: never copied.
const DROPPED_HEADERS: &[&str] = &[
    record::WORKSPACE_HEADER,
    record::PHONE_NUMBER_IDS_HEADER,
    record::BUSINESS_ACCOUNT_IDS_HEADER,
    record::REASON_HEADER,
    record::DLQ_SOURCE_TOPIC_HEADER,
    record::DLQ_SOURCE_PARTITION_HEADER,
    record::DLQ_SOURCE_OFFSET_HEADER,
    REPLAYED_FROM_HEADER,
];

/// The records one source record becomes, or why it cannot be replayed.
#[derive(Debug)]
pub(super) struct Routed {
    pub(super) records: Vec<PlannedRecord>,
    /// Why part (or all) of it is still unroutable.
    pub(super) unroutable: Option<String>,
}

/// Routes a source record again (pure apart from the registry).
pub(super) fn route(message: &OwnedMessage, registry: &Registry) -> Routed {
    let refuse = |reason: &str| Routed {
        records: Vec::new(),
        unroutable: Some(reason.to_owned()),
    };
    let header = |name: &str| -> Option<&str> {
        message
            .headers()?
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    };
    if header(record::SCHEMA_VERSION_HEADER) != Some(record::SCHEMA_VERSION) {
        return refuse("missing or unsupported inboxflow-schema-version header");
    }
    let Some(source) = header(record::SOURCE_HEADER).and_then(Source::parse) else {
        return refuse("missing or unknown inboxflow-source header");
    };
    let trust = match (header(SIGNED_BY_HEADER), source) {
        (Some(value), _) => match Trust::from_header_value(value) {
            Some(trust) => trust,
            None => return refuse("malformed inboxflow-signed-by header"),
        },
        // Meta deliveries are only ever verified with global secrets.
        (None, Source::Meta) => Trust::Global,
        (None, Source::Kapso) => {
            return refuse(
                "no inboxflow-signed-by header: which Kapso secret verified the body is unknown",
            );
        }
    };
    let Some(body) = message.payload() else {
        return refuse("record has no value");
    };
    let list = |name: &str| -> Vec<String> {
        header(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let listed = RoutingKeys {
        phone_number_ids: list(record::PHONE_NUMBER_IDS_HEADER),
        business_account_ids: list(record::BUSINESS_ACCOUNT_IDS_HEADER),
    };
    let parsed = routing_keys(source, body).map(|keys| {
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
    });
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
    }
}

/// The headers of a replayed copy of `message` routed as `planned`.
pub(super) fn replay_headers(
    message: &OwnedMessage,
    planned: &PlannedRecord,
    replayed_from: &str,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            if !DROPPED_HEADERS.contains(&h.key) {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
    }
    let phone_ids = planned.phone_number_ids.join(",");
    let account_ids = planned.business_account_ids.join(",");
    if !account_ids.is_empty() {
        headers = headers.insert(Header {
            key: record::BUSINESS_ACCOUNT_IDS_HEADER,
            value: Some(account_ids.as_bytes()),
        });
    }
    if let Some(ws) = &planned.workspace_id {
        headers = headers.insert(Header {
            key: record::WORKSPACE_HEADER,
            value: Some(ws.as_bytes()),
        });
    }
    headers
        .insert(Header {
            key: record::PHONE_NUMBER_IDS_HEADER,
            value: Some(phone_ids.as_bytes()),
        })
        .insert(Header {
            key: REPLAYED_FROM_HEADER,
            value: Some(replayed_from.as_bytes()),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::Timestamp;

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

    fn message(body: &[u8], headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
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
        let headers = replay_headers(&m, &routed.records[0], "unrouted/0/42");
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
}
