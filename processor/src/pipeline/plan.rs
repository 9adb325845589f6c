//! Pure planning: from the decoded records of one workspace, what contacts,
//! conversations, messages, statuses, reactions, amendments and account
//! events the micro-batch touches.
//!
//! Planning has two phases: [`Plan::build`] collects the events and the
//! identities to look up; [`Plan::place`], given what step 1 found, resolves
//! each message's contact and conversation (see [`super::identity`]).
//!
//! Guarantees: deterministic (same records and lookups in, same plan out);
//! every value derived here is a function of the records and the stored
//! identities only (ids are UUIDv5, times come from WhatsApp timestamps or the
//! ingress receive time, never from the clock), so re-processing a record
//! writes exactly the same values. Within the batch, the first occurrence of a
//! message id wins; later ones are counted as duplicates.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use shared::ids;
use shared::webhook::{
    AccountEvent, AmendEvent, ContactRef, ConversationEvent, Direction, Event, IgnoredKind,
    MessageEvent, ReactionEvent, StatusEvent,
};
use uuid::Uuid;

use super::identity::{Known, NewIdentity, Resolver};
use crate::decode::DecodedRecord;
use crate::store::rows::{Location, Watermark};

/// A conversation the batch needs, with the values used if it must be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationDraft {
    pub phone_number_id: String,
    /// `None` for a group conversation.
    pub contact_id: Option<Uuid>,
    pub contact_phone: Option<String>,
    pub contact_user_id: Option<String>,
    pub group_id: Option<String>,
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
    /// The write clock of its record ([`crate::clocks`]).
    pub clock: i64,
}

impl MessageDraft {
    /// Where the message is stored.
    pub fn location(&self) -> Location {
        Location {
            conversation_id: self.conversation_id,
            bucket: self.bucket,
            sent_at_ms: self.sent_at_ms,
        }
    }

    /// The record it came from, as a message-index source.
    pub fn watermark(&self) -> Watermark {
        Watermark {
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// A Kapso conversation event (or a chat opening) placed in its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEventDraft {
    pub event: ConversationEvent,
    pub conversation_id: Uuid,
    pub partition: i32,
    /// The write clock of its record ([`crate::clocks`]).
    pub clock: i64,
}

/// A reaction with the offset of its record (the tie-break of equal times).
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionDraft {
    pub event: ReactionEvent,
    pub offset: i64,
}

/// An account event with its time settled (the receive time when the body
/// gives none).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountDraft {
    pub event: AccountEvent,
    pub occurred_ms: i64,
}

/// An event waiting for its contact (phase one).
#[allow(clippy::large_enum_variant)] // as `Event`: messages are the common case
#[derive(Debug, Clone)]
enum Pending {
    Message(MessageEvent),
    Conversation(ConversationEvent),
}

/// Everything one workspace's share of a micro-batch touches.
#[derive(Debug, Default)]
pub struct Plan {
    /// Identities to look up in step 1.
    pub phones: BTreeSet<String>,
    pub user_ids: BTreeSet<String>,
    /// The batch's message ids, each once (looked up in the index in step 5).
    pub message_ids: Vec<String>,
    pending: Vec<(Pending, Source)>,
    pub statuses: Vec<StatusEvent>,
    pub reactions: Vec<ReactionDraft>,
    pub amendments: Vec<AmendEvent>,
    pub account_events: Vec<AccountDraft>,
    pub duplicates_in_batch: u64,
    /// Low-cardinality kinds of events that were ignored.
    pub skipped: Vec<IgnoredKind>,
    // Filled by `place`:
    pub new_phones: BTreeMap<String, NewIdentity>,
    pub new_users: BTreeMap<String, NewIdentity>,
    pub conversations: BTreeMap<Uuid, ConversationDraft>,
    pub messages: Vec<MessageDraft>,
    pub conversation_events: Vec<ConversationEventDraft>,
    /// The write clock of the batch's last record on this workspace's
    /// partition: every write of this plan carries it (plus its step's slot)
    /// as its client timestamp ([`crate::clocks`]), so the writes of every
    /// workspace of one partition share timestamps and batches.
    pub clock: i64,
}

/// The record an event came from.
#[derive(Debug, Clone, Copy)]
struct Source {
    partition: i32,
    offset: i64,
    clock: i64,
}

impl Plan {
    /// Collects the events of one workspace's records, in offset order.
    pub fn build(records: &[&DecodedRecord]) -> Self {
        let mut plan = Plan::default();
        let mut seen_messages = HashSet::new();
        for record in records {
            plan.clock = plan.clock.max(record.clock);
            let at = Source {
                partition: record.partition,
                offset: record.offset,
                clock: record.clock,
            };
            for event in &record.events {
                match event {
                    Event::Message(m) => {
                        if !seen_messages.insert(m.message_id.clone()) {
                            plan.duplicates_in_batch += 1;
                            continue;
                        }
                        plan.message_ids.push(m.message_id.clone());
                        plan.wants(&m.contact(), m.new_phone.as_deref());
                        plan.pending.push((Pending::Message(m.clone()), at));
                    }
                    Event::Conversation(c) => {
                        plan.wants(&conversation_contact(c), None);
                        plan.pending.push((Pending::Conversation(c.clone()), at));
                    }
                    Event::Status(s) => plan.statuses.push(s.clone()),
                    Event::Reaction(r) => plan.reactions.push(ReactionDraft {
                        event: r.clone(),
                        offset: record.offset,
                    }),
                    Event::Amend(a) => plan.amendments.push(a.clone()),
                    Event::Account(a) => plan.account_events.push(AccountDraft {
                        event: a.clone(),
                        occurred_ms: a
                            .timestamp
                            .map(|t| t.saturating_mul(1000))
                            .or(record.received_at_ms)
                            .unwrap_or(0),
                    }),
                    Event::Unknown { kind } => plan.skipped.push(*kind),
                }
            }
        }
        plan
    }

    /// The conversations the batch most likely touches, before step 1 has
    /// answered: those of each identity's own derived contact id (a new
    /// contact's, or a stored contact first seen by that identity). Step 3
    /// reads them beside step 1; only conversations of contacts stored
    /// under another identity's id are read after it.
    pub fn likely_conversations(&self, ws: &str) -> BTreeSet<Uuid> {
        let mut likely = BTreeSet::new();
        for (pending, _) in &self.pending {
            let (contact, phone_number_id, group) = match pending {
                Pending::Message(m) => (m.contact(), &m.phone_number_id, m.group_id.as_deref()),
                Pending::Conversation(c) => (conversation_contact(c), &c.phone_number_id, None),
            };
            if let Some(group) = group {
                likely.insert(ids::group_conversation_id(ws, phone_number_id, group));
                continue;
            }
            let phone = contact.phone.as_deref().map(|p| ids::contact_id(ws, p));
            let user = contact
                .user_id
                .as_deref()
                .map(|u| ids::user_contact_id(ws, u));
            for id in phone.into_iter().chain(user) {
                likely.insert(ids::conversation_id(ws, phone_number_id, id));
            }
        }
        likely
    }

    /// The client timestamp of this plan's writes in `step`.
    pub fn write_clock(&self, step: super::Step) -> i64 {
        self.clock + step.slot()
    }

    fn wants(&mut self, contact: &ContactRef, new_phone: Option<&str>) {
        let phones = contact.phone.as_deref().into_iter().chain(new_phone);
        self.phones.extend(phones.map(str::to_owned));
        self.user_ids.extend(contact.user_id.iter().cloned());
    }

    /// Places every message and conversation event in its conversation,
    /// given the identities step 1 found.
    pub fn place(&mut self, ws: &str, known: &Known) {
        let mut resolver = Resolver::new(ws, known);
        // Links first: a payload naming both a phone and a user id joins
        // them before any single-identity payload of the batch is resolved,
        // so the batch's order never splits one customer in two.
        for (pending, _) in &self.pending {
            let (contact, at_s) = match pending {
                Pending::Message(m) => (m.contact(), m.timestamp),
                Pending::Conversation(c) => (conversation_contact(c), c.timestamp),
            };
            if contact.phone.is_some() && contact.user_id.is_some() {
                resolver.resolve(&contact, at_s.saturating_mul(1000));
            }
        }
        for (pending, at) in std::mem::take(&mut self.pending) {
            match pending {
                Pending::Message(m) => self.place_message(ws, &mut resolver, m, at),
                Pending::Conversation(c) => {
                    let at_ms = c.timestamp.saturating_mul(1000);
                    let contact = conversation_contact(&c);
                    let Some(contact_id) = resolver.resolve(&contact, at_ms) else {
                        self.skipped.push(IgnoredKind::CONVERSATION_WITHOUT_CONTACT);
                        continue;
                    };
                    let conversation_id = self.touch(
                        ws,
                        &c.phone_number_id,
                        Owner::Contact(contact_id, &contact),
                        at_ms,
                    );
                    self.conversation_events.push(ConversationEventDraft {
                        event: c,
                        conversation_id,
                        partition: at.partition,
                        clock: at.clock,
                    });
                }
            }
        }
        self.new_phones = std::mem::take(&mut resolver.new_phones);
        self.new_users = std::mem::take(&mut resolver.new_users);
    }

    fn place_message(
        &mut self,
        ws: &str,
        resolver: &mut Resolver<'_>,
        m: MessageEvent,
        at: Source,
    ) {
        let sent_at_ms = m.timestamp.saturating_mul(1000);
        let mut contact = m.contact();
        if m.direction == Direction::Outbound {
            contact.name = None;
        }
        let owner = match m.group_id.as_deref() {
            Some(group) => Owner::Group(group),
            None => {
                // Decode dead-letters messages without any identity, so this
                // always resolves; the `else` is a counted guard, not a path.
                let Some(id) = resolver.resolve(&contact, sent_at_ms) else {
                    self.skipped.push(IgnoredKind::MESSAGE_WITHOUT_CONTACT);
                    return;
                };
                if let Some(new_phone) = &m.new_phone {
                    resolver.link_phone(new_phone, id, sent_at_ms);
                }
                Owner::Contact(id, &contact)
            }
        };
        let conversation_id = self.touch(ws, &m.phone_number_id, owner, sent_at_ms);
        self.messages.push(MessageDraft {
            bucket: month_bucket(m.timestamp),
            event: m,
            conversation_id,
            sent_at_ms,
            partition: at.partition,
            offset: at.offset,
            clock: at.clock,
        });
    }

    /// The conversation of `owner` on `phone_number_id`, noted as needed.
    fn touch(&mut self, ws: &str, phone_number_id: &str, owner: Owner<'_>, at_ms: i64) -> Uuid {
        let conversation_id = match owner {
            Owner::Group(group) => ids::group_conversation_id(ws, phone_number_id, group),
            Owner::Contact(id, _) => ids::conversation_id(ws, phone_number_id, id),
        };
        let draft = self
            .conversations
            .entry(conversation_id)
            .or_insert_with(|| ConversationDraft {
                phone_number_id: phone_number_id.to_owned(),
                contact_id: None,
                contact_phone: None,
                contact_user_id: None,
                group_id: None,
                first_seen_ms: at_ms,
            });
        draft.first_seen_ms = draft.first_seen_ms.min(at_ms);
        match owner {
            Owner::Group(group) => draft.group_id = Some(group.to_owned()),
            Owner::Contact(id, contact) => {
                draft.contact_id = Some(id);
                if draft.contact_phone.is_none() {
                    draft.contact_phone.clone_from(&contact.phone);
                }
                if draft.contact_user_id.is_none() {
                    draft.contact_user_id.clone_from(&contact.user_id);
                }
            }
        }
        conversation_id
    }
}

/// Whose conversation: a contact's (with the identity it was seen by) or a group's.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Contact(Uuid, &'a ContactRef),
    Group(&'a str),
}

fn conversation_contact(c: &ConversationEvent) -> ContactRef {
    ContactRef {
        phone: c.contact_phone.clone(),
        user_id: c.contact_user_id.clone(),
        username: None,
        name: c.contact_name.clone(),
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
#[path = "plan_tests.rs"]
mod tests;
