//! The normalised events: what happened, independent of who sent the webhook.
//!
//! Guarantee: every event carries only values taken from the body (or from
//! the [`Scope`] the caller gives), so normalising the same body twice gives
//! equal events. Strings are bounded (see [`super::MAX_TEXT_BYTES`]).

use super::ignored::IgnoredKind;

/// Direction of a message relative to the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Where a message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    /// Sent or received through the Cloud API: the normal case.
    #[default]
    CloudApi,
    /// Sent by the business from the WhatsApp Business App (coexistence echoes).
    BusinessApp,
    /// Imported past chat history: never raises unread counts.
    History,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Origin::CloudApi, Origin::BusinessApp, Origin::History];

    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CloudApi => "cloud_api",
            Origin::BusinessApp => "business_app",
            Origin::History => "history",
        }
    }
}

/// Who the customer is. At least one of `phone` and `user_id` is set on a
/// stored message; Meta's usernames let users hide their phone, so the
/// business-scoped user id is an identity of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactRef {
    /// Digits only (WhatsApp `wa_id`).
    pub phone: Option<String>,
    /// Meta's business-scoped user id (`US.…`), or another non-phone handle.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
}

impl ContactRef {
    /// Whether the contact can be attributed at all.
    pub fn is_known(&self) -> bool {
        self.phone.is_some() || self.user_id.is_some()
    }
}

/// A WhatsApp message, inbound or outbound.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageEvent {
    /// The business number it was sent to or from.
    pub phone_number_id: String,
    /// WhatsApp message id (`wamid...`).
    pub message_id: String,
    pub direction: Direction,
    /// The customer's phone (sender of inbound, recipient of outbound), digits only.
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
    /// The customer's business-scoped user id or other non-phone handle.
    pub contact_user_id: Option<String>,
    pub contact_username: Option<String>,
    /// Set on group messages: the conversation is the group's.
    pub group_id: Option<String>,
    /// The group participant who sent it (phone digits or user id).
    pub sender: Option<String>,
    pub origin: Origin,
    /// Seconds since the Unix epoch, as WhatsApp reports it.
    pub timestamp: i64,
    /// `text`, `image`, `audio`, ...
    pub message_type: String,
    /// The text body or media caption, when there is one.
    pub text: Option<String>,
    /// The raw type object (for example the `image` object), as JSON text.
    pub type_payload: Option<String>,
    /// Inbox context as a JSON object: `reply_to`, `forwarded`,
    /// `frequently_forwarded`, `referred_product`, `referral`, `identity`,
    /// `new_wa_id` (see schemas/README.md).
    pub context: Option<String>,
    /// Message-level `errors`, as JSON text.
    pub errors: Option<String>,
    /// `user_changed_number`: the customer's new phone, linked to the same contact.
    pub new_phone: Option<String>,
    /// Kapso's conversation id, when the body came from Kapso.
    pub kapso_conversation_id: Option<String>,
}

impl MessageEvent {
    /// The customer identity of this message.
    pub fn contact(&self) -> ContactRef {
        ContactRef {
            phone: self.contact_phone.clone(),
            user_id: self.contact_user_id.clone(),
            username: self.contact_username.clone(),
            name: self.contact_name.clone(),
        }
    }
}

/// Delivery state of an outbound message, in monotonic rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    Sent = 1,
    Delivered = 2,
    Read = 3,
    /// A voice message was played: after `read`.
    Played = 4,
    /// Terminal: nothing replaces it.
    Failed = 5,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Played,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    pub fn rank(self) -> i32 {
        self as i32
    }

    /// The status of a stored rank (0, or anything else unknown, is none).
    pub fn from_rank(rank: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rank() == rank)
    }
}

/// A status update for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    pub phone_number_id: String,
    pub message_id: String,
    pub status: DeliveryStatus,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    pub recipient_phone: Option<String>,
    /// The `errors` array as JSON text, for `failed`.
    pub errors: Option<String>,
}

/// Kapso conversation lifecycle events (and Meta's `request_welcome`, which
/// opens a conversation without any message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    Created,
    Ended,
    Inactive,
}

impl ConversationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Created => "active",
            ConversationState::Ended => "ended",
            ConversationState::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEvent {
    pub phone_number_id: String,
    pub kapso_conversation_id: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
    pub contact_user_id: Option<String>,
    pub state: ConversationState,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// The reactor of the business's own reactions (echoes, outbound items).
pub const BUSINESS_REACTOR: &str = "business";

/// A reaction to an earlier message, by a customer or by the business.
/// `emoji: None` removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionEvent {
    pub phone_number_id: String,
    /// The message reacted to.
    pub target_message_id: String,
    /// Who reacted: the customer's phone digits or user id, or [`BUSINESS_REACTOR`].
    pub reactor: String,
    pub emoji: Option<String>,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// What an amendment does to its target message.
#[derive(Debug, Clone, PartialEq)]
pub enum Amendment {
    /// The customer edited the message: this is the new text.
    Edit { body: Option<String> },
    /// The customer deleted the message for everyone.
    Revoke,
}

/// An edit or a revoke of an earlier message.
#[derive(Debug, Clone, PartialEq)]
pub struct AmendEvent {
    pub phone_number_id: String,
    pub target_message_id: String,
    pub amendment: Amendment,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// An account-level (Meta business account) or project-level (Kapso) event,
/// stored as received.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountEvent {
    pub source: crate::record::Source,
    /// The Meta business account id (`entry[].id`) or Kapso project id.
    pub account_id: Option<String>,
    /// Meta's change `field` or Kapso's event type.
    pub field: String,
    /// The change's `value` (Meta) or the whole body (Kapso), as JSON text.
    pub value: String,
    /// Seconds since the Unix epoch, when the body says.
    pub timestamp: Option<i64>,
}

/// One normalised thing that happened.
// Messages dominate real traffic, so boxing them would add an allocation to
// nearly every event for nothing; events live only while a batch is planned.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(MessageEvent),
    Status(StatusEvent),
    Conversation(ConversationEvent),
    Reaction(ReactionEvent),
    Amend(AmendEvent),
    Account(AccountEvent),
    /// Something we do not handle, named from a closed list (a metric label).
    Unknown {
        kind: IgnoredKind,
    },
}

/// What a record is about, beyond its body: the numbers and business
/// accounts of the workspace it was routed to, and its receive time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only changes and batch items of these numbers (empty: all).
    pub phone_number_ids: Vec<String>,
    /// Only account-level changes of these Meta business accounts (empty:
    /// all, when `phone_number_ids` is empty too).
    pub business_account_ids: Vec<String>,
    /// Seconds since the epoch: the time given to a message whose own
    /// timestamp is missing or invalid (the ingress's receive time).
    pub fallback_timestamp: Option<i64>,
}

impl Scope {
    /// A scope of phone numbers only.
    pub fn phones(ids: &[String]) -> Self {
        Scope {
            phone_number_ids: ids.to_vec(),
            ..Scope::default()
        }
    }

    pub fn is_open(&self) -> bool {
        self.phone_number_ids.is_empty() && self.business_account_ids.is_empty()
    }

    /// Whether a change or item of this business number is in scope.
    pub fn has_phone(&self, phone_number_id: &str) -> bool {
        self.is_open() || self.phone_number_ids.iter().any(|p| p == phone_number_id)
    }

    /// Whether an account-level change of this business account is in scope.
    pub fn has_account(&self, account_id: Option<&str>) -> bool {
        self.is_open()
            || account_id.is_some_and(|a| self.business_account_ids.iter().any(|b| b == a))
    }
}
