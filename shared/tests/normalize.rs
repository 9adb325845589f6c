//! Kapso and Meta bodies through the public webhook API: routing ids and
//! normalised events, from realistic fixtures (`fixtures/`) and hostile input.

use serde_json::{Value, json};
use shared::record::Source;
use shared::webhook::{
    ConversationEvent, ConversationState as State, DeliveryStatus as Ds, Direction, Event,
    MessageEvent, ShapeError, StatusEvent, normalize, routing_phone_number_ids,
};

/// `(X-Webhook-Event, body)` of `fixtures/kapso_<name>.json`.
macro_rules! kapso_fixture {
    ($name:literal) => {
        (
            concat!("whatsapp.", $name),
            include_str!(concat!("fixtures/kapso_", $name, ".json")),
        )
    };
}

const RECEIVED: (&str, &str) = kapso_fixture!("message.received");
const SENT: (&str, &str) = kapso_fixture!("message.sent");
const DELIVERED: (&str, &str) = kapso_fixture!("message.delivered");
const READ: (&str, &str) = kapso_fixture!("message.read");
const FAILED: (&str, &str) = kapso_fixture!("message.failed");
const CREATED: (&str, &str) = kapso_fixture!("conversation.created");
const ENDED: (&str, &str) = kapso_fixture!("conversation.ended");
const INACTIVE: (&str, &str) = kapso_fixture!("conversation.inactive");
const BATCH: &str = include_str!("fixtures/kapso_batch.json");
const META_THREE_SENDERS: &str = include_str!("fixtures/meta_three_senders.json");
const META_MULTI_NUMBER: &str = include_str!("fixtures/meta_multi_number.json");
const META_MALFORMED: &str = include_str!("fixtures/meta_malformed_items.json");
const PN: &str = "123456789012345";

fn kapso((event_type, body): (&str, &str)) -> Vec<Event> {
    kapso_as(Some(event_type), body)
}

fn kapso_as(event_type: Option<&str>, body: &str) -> Vec<Event> {
    normalize(Source::Kapso, event_type, body.as_bytes(), &[]).expect("a valid Kapso body")
}

fn meta(body: &str, only: &[&str]) -> Vec<Event> {
    normalize(Source::Meta, None, body.as_bytes(), &owned(only)).expect("a valid Meta body")
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn ids(source: Source, body: &[u8]) -> Result<Vec<String>, ShapeError> {
    routing_phone_number_ids(source, body)
}

fn message(event: &Event) -> &MessageEvent {
    match event {
        Event::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn status(event: &Event) -> &StatusEvent {
    match event {
        Event::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn conversation(event: &Event) -> &ConversationEvent {
    match event {
        Event::Conversation(c) => c,
        other => panic!("expected a conversation event, got {other:?}"),
    }
}

/// Whitespace-separated expectations, for compact tables.
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// The `Unknown` kind, or `"event"` for a stored event.
fn kind(event: &Event) -> &str {
    match event {
        Event::Unknown { kind } => kind.as_str(),
        _ => "event",
    }
}

#[test]
fn a_received_kapso_message_is_one_inbound_message_with_the_conversation_contact() {
    let events = kapso(RECEIVED);
    assert_eq!(events.len(), 1);
    let m = message(&events[0]);
    assert_eq!(m.phone_number_id, PN);
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.message_id, "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUI1");
    assert_eq!(m.contact_phone.as_deref(), Some("15551234567"));
    assert_eq!(m.contact_name.as_deref(), Some("John Doe"));
    assert_eq!(m.timestamp, 1_730_092_800);
    assert_eq!(m.message_type, "text");
    assert_eq!(m.text.as_deref(), Some("Hello, is my order on its way?"));
    let payload = r#"{"body":"Hello, is my order on its way?"}"#;
    assert_eq!(m.type_payload.as_deref(), Some(payload));
    assert_eq!(m.kapso_conversation_id.as_deref(), Some("conv_123"));
}

#[test]
fn a_sent_kapso_template_is_an_outbound_message_to_its_recipient_and_a_sent_status() {
    let events = kapso(SENT);
    assert_eq!(events.len(), 2);
    let (m, s) = (message(&events[0]), status(&events[1]));
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.contact_phone.as_deref(), Some("15551234567"));
    assert_eq!(m.message_type, "template");
    assert_eq!(m.text.as_deref(), Some("Your order #1042 has shipped"));
    assert_eq!(
        (s.message_id.as_str(), s.status),
        ("wamid.OUT456", Ds::Sent)
    );
    assert_eq!((s.timestamp, s.errors.as_deref()), (1_730_092_860, None));
}

#[test]
fn a_delivered_kapso_event_times_the_message_when_sent_and_the_status_when_delivered() {
    let events = kapso(DELIVERED);
    let (m, s) = (message(&events[0]), status(&events[1]));
    assert_eq!(m.timestamp, 1_730_092_860);
    assert_eq!(m.contact_name, None, "conversation.kapso is absent");
    assert_eq!((s.status, s.timestamp), (Ds::Delivered, 1_730_092_888));
    assert_eq!(s.recipient_phone.as_deref(), Some("15551234567"));
}

#[test]
fn a_read_kapso_event_without_status_history_uses_the_message_time_and_conversation_phone() {
    let events = kapso(READ);
    let s = status(&events[1]);
    assert_eq!((s.status, s.timestamp), (Ds::Read, 1_730_092_950));
    assert_eq!(s.recipient_phone.as_deref(), Some("15551234567"));
    let m = message(&events[0]);
    assert_eq!(m.contact_phone.as_deref(), Some("15551234567"));
}

#[test]
fn a_failed_kapso_event_carries_the_errors_as_json_text() {
    let events = kapso(FAILED);
    let s = status(&events[1]);
    assert_eq!((s.status, s.timestamp), (Ds::Failed, 1_730_093_200));
    let errors: Value = serde_json::from_str(s.errors.as_deref().expect("errors")).expect("JSON");
    assert_eq!(errors[0]["code"], 131_047);
}

#[test]
fn the_unsigned_event_header_cannot_turn_a_delivered_message_into_a_failed_one() {
    let forged = kapso(("whatsapp.message.failed", DELIVERED.1));
    assert_eq!(forged, kapso(DELIVERED));
    assert_eq!(status(&forged[1]).status, Ds::Delivered);
}

#[test]
fn a_kapso_v1_payload_is_refused_with_a_reason_naming_the_fix() {
    let v1 = r#"{"whatsapp_config": {"phone_number_id": "1"}, "message": {"id": "m"}}"#;
    let err = normalize(
        Source::Kapso,
        Some("whatsapp.message.received"),
        v1.as_bytes(),
        &[],
    )
    .expect_err("v1 is not parsed");
    assert!(err.to_string().contains("payload_version"), "{err}");
    assert!(ids(Source::Kapso, v1.as_bytes()).is_err());
}

#[test]
fn kapso_conversation_events_carry_state_contact_and_event_time() {
    let created = kapso(CREATED);
    let c = conversation(&created[0]);
    assert_eq!((c.state, c.timestamp), (State::Created, 1_761_660_000));
    assert_eq!(c.contact_name.as_deref(), Some("John Doe"));
    assert_eq!(c.contact_phone.as_deref(), Some("15551234567"));
    assert_eq!(c.kapso_conversation_id.as_deref(), Some("conv_789"));
    let ended = kapso(ENDED);
    let c = conversation(&ended[0]);
    assert_eq!((c.state, c.timestamp), (State::Ended, 1_761_664_245));
    // Inactive: last activity at 13:00 plus 60 minutes of silence.
    let inactive = kapso(INACTIVE);
    let c = conversation(&inactive[0]);
    assert_eq!((c.state, c.timestamp), (State::Inactive, 1_761_660_000));
    assert_eq!(c.contact_name, None);
}

#[test]
fn kapso_dates_are_read_as_rfc3339_and_anything_else_skips_the_conversation_event() {
    let cases = [
        ("2025-12-30T13:11:53-03:00", Some(1_767_111_113)),
        ("2025-12-30T16:11:53.123456+00:00", Some(1_767_111_113)),
        ("2024-02-29T00:00:00z", Some(1_709_164_800)),
        ("1730092800", Some(1_730_092_800)),
        ("2023-02-29T00:00:00Z", None),
        ("2025-13-01T00:00:00Z", None),
        ("2025-10-28T24:00:00Z", None),
        ("2025-10-28T14:25:01", None),
        ("2025-10-28T14:25:01.Z", None),
        ("2025-10-28T14:25:01+0300", None),
        ("1969-12-31T23:59:59Z", None),
        ("２０２５-10-28T14:25:01Z", None),
        ("", None),
    ];
    for (date, expected) in cases {
        let body = json!({"conversation": {"id": "c", "created_at": date}, "phone_number_id": "1"});
        let events = kapso(("whatsapp.conversation.created", &body.to_string()));
        match expected {
            Some(ts) => assert_eq!(conversation(&events[0]).timestamp, ts, "{date}"),
            None => assert_eq!(kind(&events[0]), "malformed_conversation", "{date}"),
        }
    }
}

#[test]
fn a_kapso_batch_yields_every_message_and_takes_its_type_from_the_body() {
    assert_eq!(ids(Source::Kapso, BATCH.as_bytes()), Ok(owned(&[PN])));
    for header in [None, Some("whatsapp.message.sent")] {
        let events = kapso_as(header, BATCH);
        let messages: Vec<&MessageEvent> = events.iter().map(message).collect();
        let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["wamid.111", "wamid.112", "wamid.113"]);
        assert!(messages.iter().all(|m| m.direction == Direction::Inbound));
        assert_eq!(messages[0].contact_phone.as_deref(), Some("15551234567"));
        // The caption rather than the media URL, the transcript of the audio.
        assert_eq!(messages[1].text.as_deref(), Some("The broken part"));
        assert_eq!(
            messages[2].text.as_deref(),
            Some("I need help with my order")
        );
    }
}

#[test]
fn a_batch_item_without_phone_number_id_is_skipped_but_refused_for_routing() {
    let mut body: Value = serde_json::from_str(BATCH).expect("JSON");
    body["data"][1] = json!({"message": {"id": "wamid.x", "timestamp": "1", "type": "text"}});
    let bytes = body.to_string().into_bytes();
    assert!(ids(Source::Kapso, &bytes).is_err());
    let events = normalize(Source::Kapso, None, &bytes, &[]).expect("envelope is fine");
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert_eq!(kinds, ["event", "malformed_item", "event"]);
}

#[test]
fn a_kapso_batch_copy_handles_only_its_workspace_numbers() {
    let mut body: Value = serde_json::from_str(BATCH).expect("JSON");
    body["data"][1]["phone_number_id"] = json!("other-workspace-number");
    let bytes = body.to_string().into_bytes();
    let all = normalize(Source::Kapso, None, &bytes, &[]).expect("valid");
    let mine_id = body["data"][0]["phone_number_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mine = normalize(Source::Kapso, None, &bytes, &[mine_id]).expect("valid");
    let theirs = normalize(
        Source::Kapso,
        None,
        &bytes,
        &["other-workspace-number".into()],
    )
    .expect("valid");
    assert_eq!(mine.len() + theirs.len(), all.len());
    assert!(!theirs.is_empty() && !mine.is_empty());
}

#[test]
fn kapso_contact_phones_are_digits_and_missing_from_or_name_is_not_an_error() {
    let cases = [
        (json!("+55 11 98765-4321"), Some("5511987654321")),
        (json!(15_551_234_567u64), Some("15551234567")),
        (json!("US.13491208655302741918"), None),
        (json!("+"), None),
        (json!("1".repeat(21)), None),
        (json!(true), None),
        (json!(null), None),
    ];
    for (from, expected) in cases {
        let body = json!({"message": {"id": "wamid.1", "timestamp": 1_730_092_800, "type": "text",
            "from": from, "text": {"body": "hi"}}, "conversation": {"id": "c"}, "phone_number_id": PN});
        let events = kapso(("whatsapp.message.received", &body.to_string()));
        let m = message(&events[0]);
        assert_eq!(m.contact_phone.as_deref(), expected, "{from}");
        assert_eq!(m.contact_name, None);
    }
}

#[test]
fn unknown_kapso_event_types_become_low_cardinality_unknown_events() {
    let odd = "whatsapp.message.\u{202e}exploded".repeat(50);
    // The signed message says what it is; the unsigned header cannot change it.
    assert_eq!(kapso((&odd, RECEIVED.1)), kapso(RECEIVED));
    let conversation = r#"{"conversation": {"id": "c", "created_at": "2025-10-28T13:40:00Z"}, "phone_number_id": "1"}"#;
    assert_eq!(kind(&kapso((&odd, conversation))[0]), "other");
    let project = json!({"phone_number_id": PN, "project": {"id": "p1"}}).to_string();
    let events = kapso(("whatsapp.phone_number.created", &project));
    assert!(
        matches!(&events[0], Event::Account(a) if a.field == "whatsapp.phone_number.created"
            && a.account_id.as_deref() == Some("p1")),
        "{events:?}"
    );
    assert!(normalize(Source::Kapso, Some(&odd), project.as_bytes(), &[]).is_err());
    let conversation_only = r#"{"conversation": {"id": "c"}, "phone_number_id": "1"}"#;
    let events = kapso_as(None, conversation_only);
    assert_eq!(kind(&events[0]), "missing_event_type");
}

#[test]
fn numbers_where_strings_are_expected_are_converted_or_skipped_never_fatal() {
    let body = json!({"message": {"id": 42, "timestamp": "1730092800", "type": "text"},
        "conversation": {"phone_number": 15_551_234_567u64}, "phone_number_id": 123_456_789_012_345u64});
    let bytes = body.to_string().into_bytes();
    assert_eq!(ids(Source::Kapso, &bytes), Ok(owned(&[PN])));
    let events = kapso(("whatsapp.message.received", &body.to_string()));
    assert_eq!(kind(&events[0]), "malformed_message");
    let bad_ids: Value =
        serde_json::from_str(r#"[true, -3, 1.5, {"id": 1}, "", " ", "a\nb"]"#).expect("JSON");
    for bad in bad_ids.as_array().into_iter().flatten() {
        let body = json!({"conversation": {"id": "c"}, "phone_number_id": bad}).to_string();
        assert!(ids(Source::Kapso, body.as_bytes()).is_err(), "{bad}");
        let event_type = Some("whatsapp.conversation.ended");
        assert!(
            normalize(Source::Kapso, event_type, body.as_bytes(), &[]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_meta_body_with_three_senders_names_each_sender_and_maps_every_status() {
    let routing = ids(Source::Meta, META_THREE_SENDERS.as_bytes());
    assert_eq!(routing, Ok(owned(&["106540352242922"])));
    let events = meta(META_THREE_SENDERS, &[]);
    assert_eq!(events.len(), 7);
    let senders: Vec<_> = events[..3]
        .iter()
        .map(message)
        .map(|m| {
            (
                m.message_id.as_str(),
                m.contact_name.as_deref(),
                m.text.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        senders,
        [
            (
                "wamid.A1",
                Some("Sheena Nelson"),
                Some("Does it come in another color?")
            ),
            ("wamid.B1", Some("Rui Costa"), Some("Like this one")),
            ("wamid.C1", Some("Amara Obi"), Some("Yes, please")),
        ]
    );
    let rui = message(&events[1]);
    assert_eq!(rui.contact_phone.as_deref(), Some("5511987654321"));
    assert_eq!(message(&events[2]).message_type, "interactive");
    let statuses: Vec<_> = events[3..6]
        .iter()
        .map(status)
        .map(|s| (s.message_id.as_str(), s.status, s.timestamp))
        .collect();
    assert_eq!(
        statuses,
        [
            ("wamid.OUT1", Ds::Delivered, 1_749_416_410),
            ("wamid.OUT1", Ds::Read, 1_749_416_420),
            ("wamid.OUT2", Ds::Failed, 1_749_416_430),
        ]
    );
    assert!(
        status(&events[5])
            .errors
            .as_deref()
            .is_some_and(|e| e.contains("131026"))
    );
    assert_eq!(status(&events[3]).errors, None);
    // `played` (a voice message was played) follows `read`.
    assert_eq!(status(&events[6]).status, Ds::Played);
}

#[test]
fn a_multi_number_meta_body_is_split_by_the_only_filter() {
    let routing = ids(Source::Meta, META_MULTI_NUMBER.as_bytes());
    assert_eq!(routing, Ok(owned(&["111", "222"])));
    let first = meta(META_MULTI_NUMBER, &["111"]);
    assert_eq!(first.len(), 2);
    assert_eq!(message(&first[0]).message_id, "wamid.FOR111");
    assert_eq!(message(&first[0]).phone_number_id, "111");
    assert_eq!(status(&first[1]).message_id, "wamid.OUT9");
    let second = meta(META_MULTI_NUMBER, &["222"]);
    assert_eq!(second.len(), 1);
    let m = message(&second[0]);
    assert_eq!(m.message_id, "wamid.FOR222");
    assert_eq!(m.phone_number_id, "222");
    assert_eq!(m.contact_name.as_deref(), Some("Ben"));
    let all = meta(META_MULTI_NUMBER, &[]);
    let kinds: Vec<&str> = all.iter().map(kind).collect();
    assert_eq!(kinds, ["event", "event", "event", "event"]);
    assert!(matches!(&all[3], Event::Account(a) if a.field == "account_update"));
    assert!(meta(META_MULTI_NUMBER, &["999"]).is_empty());
}

#[test]
fn meta_items_that_are_malformed_are_skipped_one_by_one() {
    let events = meta(META_MALFORMED, &[]);
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    let expected = "malformed_message malformed_message malformed_message malformed_message
        malformed_message unknown_message_type event event event malformed_message
        malformed_status malformed_status malformed_status malformed_change malformed_change
        messages_without_items";
    assert_eq!(kinds, words(expected));
    // No contact matches the sender, and there are two.
    assert_eq!(message(&events[6]).contact_name, None);
    let unsupported = message(&events[7]);
    assert_eq!(unsupported.contact_phone, None);
    assert_eq!(unsupported.text, None);
    assert_eq!(unsupported.message_type, "unsupported");
}

#[test]
fn meta_envelopes_of_the_wrong_shape_are_shape_errors() {
    let change = |value: Value| json!({"object": "whatsapp_business_account", "entry": [{"changes": [value]}]});
    for body in [
        json!({"object": "page", "entry": []}),
        json!({"object": "whatsapp_business_account", "entry": {}}),
        json!({"object": "whatsapp_business_account"}),
        json!([{"object": "whatsapp_business_account"}]),
    ] {
        let bytes = body.to_string().into_bytes();
        let result = normalize(Source::Meta, None, &bytes, &[]);
        assert!(
            matches!(result, Err(ShapeError::UnexpectedShape { .. })),
            "{body}"
        );
        assert!(ids(Source::Meta, &bytes).is_err(), "{body}");
    }
    let no_ids = change(json!({"field": "account_update", "value": {}}));
    assert!(ids(Source::Meta, no_ids.to_string().as_bytes()).is_err());
    let bad_id =
        change(json!({"field": "messages", "value": {"metadata": {"phone_number_id": [1]}}}));
    assert!(ids(Source::Meta, bad_id.to_string().as_bytes()).is_err());
}

#[test]
fn garbage_and_invalid_utf8_are_errors_not_panics() {
    let deep = "[".repeat(100_000);
    let inputs = words(r#"null 42 "str" [] {} {"data":[]} {"data":{}} {"batch":true}"#);
    let inputs = inputs
        .iter()
        .map(|i| i.as_bytes())
        .chain([&b""[..], b"\xff{}", deep.as_bytes()]);
    for input in inputs {
        for source in [Source::Kapso, Source::Meta] {
            assert!(normalize(source, Some("whatsapp.message.received"), input, &[]).is_err());
            assert!(ids(source, input).is_err());
        }
    }
    let invalid_utf8 = b"{\"phone_number_id\": \"1\xc3\x28\", \"conversation\": {}}";
    let result = normalize(Source::Kapso, None, invalid_utf8, &[]);
    assert!(matches!(result, Err(ShapeError::NotJson(_))));
}

/// Every JSON pointer in `value`, depth first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

#[test]
fn every_fixture_with_any_single_field_replaced_by_an_odd_value_never_panics() {
    let odd: Vec<Value> =
        words(r#"null -1 1e300 "" "2025-02-30T00:00:00Z" [] {} true 9223372036854775807"#)
            .into_iter()
            .map(|v| serde_json::from_str(v).expect("JSON"))
            .collect();
    let kapso = [
        RECEIVED, SENT, DELIVERED, READ, FAILED, CREATED, ENDED, INACTIVE,
    ];
    let meta = [META_THREE_SENDERS, META_MULTI_NUMBER, META_MALFORMED];
    let all = kapso
        .into_iter()
        .map(|(t, b)| (Some(t), b))
        .chain([(None, BATCH)])
        .chain(meta.into_iter().map(|b| (None, b)));
    for (event_type, body) in all {
        let original: Value = serde_json::from_str(body).expect("fixture is JSON");
        let mut paths = Vec::new();
        pointers(&original, String::new(), &mut paths);
        for (path, replacement) in paths.iter().flat_map(|p| odd.iter().map(move |r| (p, r))) {
            let mut mutated = original.clone();
            if let Some(slot) = mutated.pointer_mut(path) {
                *slot = replacement.clone();
            }
            let bytes = mutated.to_string().into_bytes();
            for source in [Source::Kapso, Source::Meta] {
                let _ = ids(source, &bytes);
                let _ = normalize(source, event_type, &bytes, &["111".to_owned()]);
                let _ = normalize(source, event_type, &bytes, &[]);
            }
        }
    }
}
