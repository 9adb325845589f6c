//! Unit tests of [`super`]: planning is pure, so these need no database.

use super::*;

fn message(id: &str, from: Option<&str>, ts: i64) -> Event {
    Event::Message(MessageEvent {
        phone_number_id: "pn1".into(),
        message_id: id.into(),
        direction: Direction::Inbound,
        contact_phone: from.map(String::from),
        contact_name: Some("Ana".into()),
        timestamp: ts,
        message_type: "text".into(),
        text: Some("hi".into()),
        ..MessageEvent::default()
    })
}

fn record(offset: i64, events: Vec<Event>) -> DecodedRecord {
    DecodedRecord {
        workspace_id: "ws".into(),
        partition: 0,
        offset,
        clock: crate::clocks::unstamped(offset),
        received_at_ms: None,
        events,
    }
}

fn placed(records: &[&DecodedRecord]) -> Plan {
    let mut plan = Plan::build(records);
    plan.place("ws", &Known::default());
    plan
}

#[test]
fn ten_messages_from_three_senders_plan_three_contacts_and_conversations() {
    let events: Vec<Event> = (0..10)
        .map(|i| {
            message(
                &format!("m{i}"),
                Some(["111", "222", "333"][i % 3]),
                1_700_000_000 + i as i64,
            )
        })
        .collect();
    let r = record(1, events);
    let plan = placed(&[&r]);
    assert_eq!(plan.phones.len(), 3);
    assert_eq!(plan.new_phones.len(), 3);
    assert_eq!(plan.conversations.len(), 3);
    assert_eq!(plan.messages.len(), 10);
    assert_eq!(plan.new_phones["111"].first_seen_ms, 1_700_000_000_000);
}

#[test]
fn a_repeated_message_id_in_the_batch_is_a_duplicate() {
    let a = record(1, vec![message("m1", Some("111"), 1)]);
    let b = record(2, vec![message("m1", Some("111"), 1)]);
    let plan = placed(&[&a, &b]);
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(plan.messages[0].offset, 1);
    assert_eq!(plan.duplicates_in_batch, 1);
}

#[test]
fn a_message_known_only_by_user_id_is_placed_in_that_user_s_conversation() {
    let Event::Message(mut m) = message("m1", None, 1) else {
        unreachable!()
    };
    m.contact_user_id = Some("US.7".into());
    let r = record(1, vec![Event::Message(m)]);
    let plan = placed(&[&r]);
    assert_eq!(plan.messages.len(), 1);
    let draft = plan
        .conversations
        .values()
        .next()
        .expect("one conversation");
    assert_eq!(draft.contact_user_id.as_deref(), Some("US.7"));
    assert_eq!(draft.contact_phone, None);
    assert!(plan.skipped.is_empty());
}

#[test]
fn a_user_id_seen_alone_before_its_phone_and_user_id_payload_is_the_phone_s_contact() {
    let user_only = |id: &str, phone: Option<&str>| {
        let Event::Message(mut m) = message(id, phone, 1) else {
            unreachable!()
        };
        m.contact_user_id = Some("US.9".into());
        Event::Message(m)
    };
    let stored = Uuid::from_u128(42);
    let mut known = Known::default();
    known.phones.insert("111".into(), stored);
    let r = record(1, vec![user_only("m1", None), user_only("m2", Some("111"))]);
    let mut plan = Plan::build(&[&r]);
    plan.place("ws", &known);
    assert_eq!(
        plan.conversations.len(),
        1,
        "one customer, one conversation"
    );
    assert_eq!(plan.new_users["US.9"].contact_id, stored);
}

#[test]
fn group_messages_share_the_group_s_conversation_whoever_sends() {
    let group = |id: &str, from: &str| {
        let Event::Message(mut m) = message(id, Some(from), 1) else {
            unreachable!()
        };
        m.group_id = Some("G1".into());
        m.sender = Some(from.into());
        Event::Message(m)
    };
    let r = record(1, vec![group("m1", "111"), group("m2", "222")]);
    let plan = placed(&[&r]);
    assert_eq!(plan.conversations.len(), 1);
    assert_eq!(
        plan.messages[0].conversation_id,
        plan.messages[1].conversation_id
    );
    assert!(
        plan.new_phones.is_empty(),
        "a group sender is not a contact"
    );
}

#[test]
fn month_buckets_follow_the_utc_calendar() {
    assert_eq!(month_bucket(0), 197_001);
    assert_eq!(month_bucket(1_700_000_000), 202_311); // 2023-11-14
    assert_eq!(month_bucket(1_709_251_199), 202_402); // 2024-02-29 23:59:59
    assert_eq!(month_bucket(1_709_251_200), 202_403);
}

#[test]
fn preview_truncates_on_char_boundaries_and_names_media() {
    let mut m = match message("m", Some("1"), 1) {
        Event::Message(m) => m,
        _ => unreachable!(),
    };
    m.text = Some("é".repeat(200));
    assert_eq!(preview(&m).chars().count(), 80);
    m.text = None;
    m.message_type = "image".into();
    assert_eq!(preview(&m), "[image]");
}
