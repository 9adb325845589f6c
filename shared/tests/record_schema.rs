//! Records written through `RecordHeaders::to_kafka` follow
//! `schemas/kafka-record.schema.json`, the published contract.

use std::sync::Arc;

use rdkafka::message::{Headers, OwnedHeaders};
use serde_json::{Map, Value, json};
use shared::record::{DeadLetterOrigin, META_EVENT, RecordHeaders, Source, Trust};

fn validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/kafka-record.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("the schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// A record as the schema describes it: key, headers and value in one object.
fn as_document(key: &str, headers: &OwnedHeaders) -> Value {
    let headers: Map<String, Value> = headers
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value.unwrap_or_default()).expect("UTF-8");
            (h.key.to_owned(), Value::String(value.to_owned()))
        })
        .collect();
    json!({"key": key, "headers": headers, "value": {"object": "whatsapp_business_account"}})
}

fn routed() -> RecordHeaders {
    RecordHeaders {
        event: Some(META_EVENT.into()),
        idempotency_key: Some("3f2a".into()),
        received_at_ms: Some(1_700_000_000_000),
        content_type: Some("application/json".into()),
        phone_number_ids: vec!["1".into(), "2".into()],
        signed_by: Some(Trust::Global),
        workspace_id: Some("ws_a".into()),
        ..RecordHeaders::new(Source::Meta)
    }
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, headers: &RecordHeaders) {
    let document = as_document("ws_a", &headers.to_kafka());
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?} in {document}");
}

#[test]
fn every_kind_of_record_the_services_write_follows_the_published_schema() {
    let validator = validator();
    assert_valid(&validator, "routed", &routed());
    let no_numbers = RecordHeaders {
        phone_number_ids: Vec::new(),
        business_account_ids: vec!["waba1".into()],
        signed_by: Some(Trust::Workspace(Arc::from("ws_a"))),
        ..routed()
    };
    assert_valid(&validator, "account-level", &no_numbers);
    let unrouted = RecordHeaders {
        workspace_id: None,
        reason: Some("unknown phone_number_id".into()),
        ..routed()
    };
    assert_valid(&validator, "unrouted", &unrouted);
    let replayed = RecordHeaders {
        replayed_from: Some("inboxflow.webhooks.unrouted/0/42".into()),
        ..routed()
    };
    assert_valid(&validator, "replayed", &replayed);
    let dead_letter = RecordHeaders {
        reason: Some("shape: not JSON".into()),
        dead_letter: Some(DeadLetterOrigin {
            topic: "inboxflow.webhooks".into(),
            partition: 0,
            offset: 7,
            value_omitted: false,
        }),
        ..routed()
    };
    assert_valid(&validator, "dead letter", &dead_letter);
}

#[test]
fn the_schema_refuses_what_the_contract_forbids() {
    let validator = validator();
    let mut document = as_document("ws_a", &routed().to_kafka());
    document["headers"]["inboxflow-schema-version"] = json!("2");
    assert!(!validator.is_valid(&document), "another schema version");
    let mut document = as_document("ws_a", &routed().to_kafka());
    document["headers"]["inboxflow-received-at-ms"] = json!("soon");
    assert!(
        !validator.is_valid(&document),
        "a received-at that is no number"
    );
    let mut document = as_document("ws_a", &routed().to_kafka());
    document.as_object_mut().map(|d| d.remove("value"));
    assert!(
        !validator.is_valid(&document),
        "a routed record without its body"
    );
}

#[test]
fn a_dead_letter_copy_whose_value_was_omitted_has_no_value() {
    let validator = validator();
    let omitted = RecordHeaders {
        dead_letter: Some(DeadLetterOrigin {
            topic: "inboxflow.webhooks".into(),
            partition: 0,
            offset: 7,
            value_omitted: true,
        }),
        ..routed()
    };
    let mut document = as_document("ws_a", &omitted.to_kafka());
    assert!(!validator.is_valid(&document), "an omitted value is absent");
    document.as_object_mut().map(|d| d.remove("value"));
    assert!(
        validator.is_valid(&document),
        "the copy without its value follows the schema"
    );
}
