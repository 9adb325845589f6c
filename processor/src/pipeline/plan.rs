//! Pure planning: from the decoded records of one workspace, what contacts,
//! conversations, messages and statuses the micro-batch touches.
//!
//! Guarantees: deterministic (same records in, same plan out); every value
//! derived here is a function of the records only (ids are UUIDv5, times come
//! from WhatsApp timestamps, never from the clock), so re-processing a record
//! writes exactly the same values. Within the batch, the first occurrence of a
//! message id wins; later ones are counted as duplicates.

use std::collections::{BTreeMap, HashSet};

use shared::ids;
use shared::webhook::{ConversationEvent, Direction, Event, MessageEvent, StatusEvent};
use uuid::Uuid;

use crate::decode::DecodedRecord;

/// A contact the batch needs, with the values used if it must be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactDraft {
    pub contact_id: Uuid,
    pub name: Option<String>,
    pub first_seen_ms: i64,
}

/// A conversation the batch needs, with the values used if it must be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationDraft {
    pub phone_number_id: String,
    pub contact_id: Uuid,
    pub contact_phone: String,
    pub first_seen_ms: i64,
}

/// A message placed in its conversation, with the record it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDraft {
    pub event: MessageEvent,
    pub conversation_id: Uuid,
    pub sent_at_ms: i64,
    pub bucket: i32,
    pub partition: i32,
    pub offset: i64,
}

/// A Kapso conversation event placed in its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEventDraft {
    pub event: ConversationEvent,
    pub conversation_id: Uuid,
    pub partition: i32,
    pub offset: i64,
}

/// Everything one workspace's share of a micro-batch touches.
#[derive(Debug, Default)]
pub struct Plan {
    pub contacts: BTreeMap<String, ContactDraft>,
    pub conversations: BTreeMap<Uuid, ConversationDraft>,
    pub messages: Vec<MessageDraft>,
    pub conversation_events: Vec<ConversationEventDraft>,
    pub statuses: Vec<StatusEvent>,
    pub duplicates_in_batch: u64,
    /// Low-cardinality kinds of events that were skipped.
    pub skipped: Vec<String>,
}

impl Plan {
    /// Builds the plan of one workspace from its records, in offset order.
    pub fn build(workspace_id: &str, records: &[&DecodedRecord]) -> Self {
        let mut plan = Plan::default();
        let mut seen_messages = HashSet::new();
        for record in records {
            for event in &record.events {
                match event {
                    Event::Message(m) => {
                        if !seen_messages.insert(m.message_id.clone()) {
                            plan.duplicates_in_batch += 1;
                            continue;
                        }
                        plan.add_message(workspace_id, m, record);
                    }
                    Event::Status(s) => plan.statuses.push(s.clone()),
                    Event::Conversation(c) => plan.add_conversation_event(workspace_id, c, record),
                    Event::Unknown { kind } => plan.skipped.push(kind.clone()),
                }
            }
        }
        plan
    }

    fn touch(
        &mut self,
        ws: &str,
        phone_number_id: &str,
        phone: &str,
        name: Option<&String>,
        at_ms: i64,
    ) -> Uuid {
        let contact_id = ids::contact_id(ws, phone);
        let contact = self
            .contacts
            .entry(phone.to_owned())
            .or_insert_with(|| ContactDraft {
                contact_id,
                name: None,
                first_seen_ms: at_ms,
            });
        contact.first_seen_ms = contact.first_seen_ms.min(at_ms);
        if contact.name.is_none() {
            contact.name = name.cloned();
        }
        let conversation_id = ids::conversation_id(ws, phone_number_id, contact_id);
        let conversation = self
            .conversations
            .entry(conversation_id)
            .or_insert_with(|| ConversationDraft {
                phone_number_id: phone_number_id.to_owned(),
                contact_id,
                contact_phone: phone.to_owned(),
                first_seen_ms: at_ms,
            });
        conversation.first_seen_ms = conversation.first_seen_ms.min(at_ms);
        conversation_id
    }

    fn add_message(&mut self, ws: &str, m: &MessageEvent, record: &DecodedRecord) {
        let Some(phone) = m.contact_phone.as_deref().filter(|p| !p.is_empty()) else {
            self.skipped.push("message_without_contact".into());
            return;
        };
        let sent_at_ms = m.timestamp.saturating_mul(1000);
        let name = if m.direction == Direction::Inbound {
            m.contact_name.as_ref()
        } else {
            None
        };
        let conversation_id = self.touch(ws, &m.phone_number_id, phone, name, sent_at_ms);
        self.messages.push(MessageDraft {
            event: m.clone(),
            conversation_id,
            sent_at_ms,
            bucket: month_bucket(m.timestamp),
            partition: record.partition,
            offset: record.offset,
        });
    }

    fn add_conversation_event(&mut self, ws: &str, c: &ConversationEvent, record: &DecodedRecord) {
        let Some(phone) = c.contact_phone.as_deref().filter(|p| !p.is_empty()) else {
            self.skipped.push("conversation_without_contact".into());
            return;
        };
        let at_ms = c.timestamp.saturating_mul(1000);
        let conversation_id = self.touch(
            ws,
            &c.phone_number_id,
            phone,
            c.contact_name.as_ref(),
            at_ms,
        );
        self.conversation_events.push(ConversationEventDraft {
            event: c.clone(),
            conversation_id,
            partition: record.partition,
            offset: record.offset,
        });
    }
}

/// The UTC month of a Unix time in seconds, as `yyyymm` (e.g. 202611).
pub fn month_bucket(unix_seconds: i64) -> i32 {
    // Howard Hinnant's days-to-civil algorithm.
    let days = unix_seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    i32::try_from(year * 100 + month).unwrap_or(i32::MAX)
}

/// A short preview of a message for the conversation list.
pub fn preview(m: &MessageEvent) -> String {
    const MAX_CHARS: usize = 80;
    match m.text.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(text) => text.chars().take(MAX_CHARS).collect(),
        None => format!("[{}]", m.message_type.chars().take(32).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
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
            type_payload: None,
            kapso_conversation_id: None,
        })
    }

    fn record(offset: i64, events: Vec<Event>) -> DecodedRecord {
        DecodedRecord {
            workspace_id: "ws".into(),
            partition: 0,
            offset,
            received_at_ms: None,
            events,
        }
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
        let plan = Plan::build("ws", &[&r]);
        assert_eq!(plan.contacts.len(), 3);
        assert_eq!(plan.conversations.len(), 3);
        assert_eq!(plan.messages.len(), 10);
        assert_eq!(plan.contacts["111"].first_seen_ms, 1_700_000_000_000);
    }

    #[test]
    fn a_repeated_message_id_in_the_batch_is_a_duplicate() {
        let a = record(1, vec![message("m1", Some("111"), 1)]);
        let b = record(2, vec![message("m1", Some("111"), 1)]);
        let plan = Plan::build("ws", &[&a, &b]);
        assert_eq!(plan.messages.len(), 1);
        assert_eq!(plan.messages[0].offset, 1);
        assert_eq!(plan.duplicates_in_batch, 1);
    }

    #[test]
    fn a_message_without_a_contact_phone_is_skipped_not_fatal() {
        let r = record(1, vec![message("m1", None, 1)]);
        let plan = Plan::build("ws", &[&r]);
        assert!(plan.messages.is_empty());
        assert_eq!(plan.skipped, vec!["message_without_contact".to_string()]);
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
}
