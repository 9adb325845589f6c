//! The database effects a corpus file may promise (checked in `check.rs`),
//! and the builder the expectation table writes messages with.

use inboxflow_tests::corpus::Delivery;

/// One row of the expectation table.
#[derive(Debug)]
pub struct Expectation {
    /// Path under the corpus folder, e.g. `meta/01-text.json`.
    pub file: &'static str,
    pub delivery: Delivery,
    pub effects: Vec<Effect>,
}

/// Who a message's conversation is with.
#[derive(Debug, Clone, Copy)]
pub enum Contact {
    /// `conversations.contact_phone` (digits).
    Phone(&'static str),
    /// `conversations.contact_user_id` (business-scoped user id or other handle).
    User(&'static str),
    /// `conversations.group_id`.
    Group(&'static str),
}

/// What `messages.body` must hold.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Is(&'static str),
    Null,
    /// SOURCES.md promises nothing about the body of this message.
    Unchecked,
}

/// A stored message and its conversation.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: &'static str,
    pub direction: &'static str,
    pub message_type: &'static str,
    pub body: Body,
    pub contact: Contact,
    /// `messages.origin`; `None`: not checked.
    pub origin: Option<&'static str>,
    /// Keys of `messages.context`, with the value (as text) when it is a scalar worth checking.
    pub context: Vec<(&'static str, Option<&'static str>)>,
    /// `messages.errors` is set (true) or empty (false).
    pub errors: bool,
    /// `messages.sender` is set (group messages).
    pub sender: bool,
    /// Substrings `messages.type_payload` must contain.
    pub payload_has: Vec<&'static str>,
    /// `messages.sent_at`, in seconds.
    pub sent_at: Option<i64>,
    /// `conversations.kapso_conversation_id`.
    pub kapso_conversation: Option<&'static str>,
    /// `conversations.contact_name`: `Some(None)` means no name.
    pub contact_name: Option<Option<&'static str>>,
}

impl Message {
    pub fn context(mut self, key: &'static str, value: Option<&'static str>) -> Self {
        self.context.push((key, value));
        self
    }
    pub fn keys(mut self, keys: &[&'static str]) -> Self {
        self.context.extend(keys.iter().map(|k| (*k, None)));
        self
    }
    pub fn errors(mut self) -> Self {
        self.errors = true;
        self
    }
    pub fn sender(mut self) -> Self {
        self.sender = true;
        self
    }
    pub fn origin(mut self, origin: &'static str) -> Self {
        self.origin = Some(origin);
        self
    }
    pub fn payload(mut self, needle: &'static str) -> Self {
        self.payload_has.push(needle);
        self
    }
    pub fn at(mut self, seconds: i64) -> Self {
        self.sent_at = Some(seconds);
        self
    }
    pub fn kapso(mut self, conversation: &'static str) -> Self {
        self.kapso_conversation = Some(conversation);
        self
    }
    pub fn named(mut self, name: Option<&'static str>) -> Self {
        self.contact_name = Some(name);
        self
    }
    pub fn done(self) -> Effect {
        Effect::Message(Box::new(self))
    }
}

/// Starts a [`Message`]: origin `cloud_api`, no context, no errors.
pub fn message(
    id: &'static str,
    direction: &'static str,
    message_type: &'static str,
    body: Body,
    contact: Contact,
) -> Message {
    Message {
        id,
        direction,
        message_type,
        body,
        contact,
        origin: Some("cloud_api"),
        context: Vec::new(),
        errors: false,
        sender: false,
        payload_has: Vec::new(),
        sent_at: None,
        kapso_conversation: None,
        contact_name: None,
    }
}

#[derive(Debug, Clone)]
pub enum Effect {
    Message(Box<Message>),
    /// `message_index.status`.
    Status {
        id: &'static str,
        status: &'static str,
    },
    /// `message_index.errors` is set.
    StatusErrors {
        id: &'static str,
    },
    Reaction {
        target: &'static str,
        reactor: &'static str,
        emoji: &'static str,
    },
    /// No reaction by `reactor` on `target` (no row, or a row without an emoji).
    NoReaction {
        target: &'static str,
        reactor: &'static str,
    },
    /// `message_index.edit_body` (and `messages.body`, if the original is stored).
    Edited {
        id: &'static str,
        body: &'static str,
    },
    /// `message_index.revoked_at` is set.
    Revoked {
        id: &'static str,
    },
    /// The conversation with this Kapso id has this state.
    ConversationState {
        kapso_id: &'static str,
        state: &'static str,
    },
    /// Some conversation is with this contact.
    ConversationWith(Contact),
    /// An `account_events` row with this field.
    AccountEvent {
        field: &'static str,
    },
    /// Counted by the processor as skipped with this kind (checked as totals).
    Ignored {
        kind: &'static str,
    },
    /// No messages, contacts, contact_users or conversations rows.
    NothingStored,
    MessageCount(usize),
    UnreadTotal(i64),
    /// Distinct `contact_id` over contacts and contact_users.
    ContactCount(usize),
    /// Both phones have a contacts row, with the same contact_id.
    SameContact {
        phone: &'static str,
        other: &'static str,
    },
}
