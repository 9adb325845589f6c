//! Named CQL rows shared by the pipeline and the benchmark, and the small
//! types that travel inside them.
//!
//! Guarantee: every row type binds or reads by column name (the driver's
//! `SerializeRow` / `DeserializeRow` derives match field names to the
//! statement's columns), so a statement's column order can never silently
//! shift a value into the wrong column. `MaybeUnset::Unset` leaves a column
//! as it is: [`maybe`] is the one way an optional value becomes one.

use scylla::value::{CqlTimestamp, MaybeUnset};
use scylla::{DeserializeRow, SerializeRow};
use uuid::Uuid;

/// `Some(v)` binds `v`; `None` leaves the column unset (untouched).
pub fn maybe<T>(v: Option<T>) -> MaybeUnset<T> {
    v.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

/// A Kafka record's position: the watermark a conversation row carries, and
/// the source of a message-index row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub partition: i32,
    pub offset: i64,
}

impl Watermark {
    /// The watermark of two optional columns, set only when both are.
    pub fn from_columns(partition: Option<i32>, offset: Option<i64>) -> Option<Self> {
        partition
            .zip(offset)
            .map(|(partition, offset)| Watermark { partition, offset })
    }

    /// Whether the record at `other` is at or before this watermark (same partition).
    pub fn covers(self, other: Watermark) -> bool {
        self.partition == other.partition && self.offset >= other.offset
    }
}

/// The exactly-once watermark of a conversation row or a workspace total:
/// the write clock ([`crate::clocks`]) of the last record counted in it,
/// stored in the `applied_offset` column (`applied_partition` names the
/// record's partition, for operators). Clocks are strictly increasing in
/// offset within a partition, and `processor clocks rebase` keeps them
/// increasing across a change of the topic, so one number orders every
/// record of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Applied(pub i64);

impl Applied {
    /// The watermark stored in `applied_offset`. A value below
    /// [`crate::clocks::CLOCK_FLOOR_US`] is a Kafka offset written by a
    /// release before write clocks; it orders nothing now (upgrades drain
    /// the topic first, so no record it covers is read again), so it is `None`.
    pub fn from_column(value: Option<i64>) -> Option<Self> {
        value
            .filter(|v| *v >= crate::clocks::CLOCK_FLOOR_US)
            .map(Applied)
    }

    /// Whether the record with write clock `clock` is already counted.
    pub fn covers(self, clock: i64) -> bool {
        self.0 >= clock
    }
}

/// Where a stored message lives: its full primary key but the workspace
/// and the message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub conversation_id: Uuid,
    pub bucket: i32,
    pub sent_at_ms: i64,
}

impl Location {
    /// The batching partition of the `messages` rows at this location.
    pub fn partition_key(&self) -> String {
        format!("{}:{}", self.conversation_id, self.bucket)
    }
}

/// A `conversations` row as step 3 reads it (`CONVERSATION_COLUMNS`).
#[derive(Debug, DeserializeRow)]
pub struct ConversationRow {
    pub workspace_id: String,
    pub conversation_id: Uuid,
    /// Set by step 4 only (a step-7 update alone leaves it null).
    pub phone_number_id: Option<String>,
    pub contact_name: Option<String>,
    pub state_at: Option<CqlTimestamp>,
    pub first_message_at: Option<CqlTimestamp>,
    pub last_message_at: Option<CqlTimestamp>,
    pub last_message_id: Option<String>,
    pub unread_count: Option<i32>,
    pub message_count: Option<i32>,
    pub applied_partition: Option<i32>,
    pub applied_offset: Option<i64>,
}

/// The identity columns of a new conversation (`create_conversation`).
#[derive(Debug, SerializeRow)]
pub struct CreateConversationRow<'a> {
    pub phone_number_id: &'a str,
    pub contact_id: MaybeUnset<Uuid>,
    pub contact_phone: MaybeUnset<&'a str>,
    pub contact_user_id: MaybeUnset<&'a str>,
    pub group_id: MaybeUnset<&'a str>,
    pub created_at: CqlTimestamp,
    pub workspace_id: &'a str,
    pub conversation_id: Uuid,
}

/// The counters, last message, state and watermark of a conversation
/// (`update_conversation`).
#[derive(Debug, SerializeRow)]
pub struct ConversationUpdateRow {
    pub contact_name: MaybeUnset<String>,
    pub first_message_at: MaybeUnset<CqlTimestamp>,
    pub last_message_at: MaybeUnset<CqlTimestamp>,
    pub last_message_id: MaybeUnset<String>,
    pub last_message_preview: MaybeUnset<String>,
    pub last_message_direction: MaybeUnset<&'static str>,
    pub unread_count: i32,
    pub message_count: i32,
    pub applied_partition: i32,
    pub applied_offset: i64,
    pub kapso_conversation_id: MaybeUnset<String>,
    pub state: MaybeUnset<String>,
    pub state_at: MaybeUnset<CqlTimestamp>,
    pub workspace_id: String,
    pub conversation_id: Uuid,
}

/// A `messages` row (`insert_message`).
#[derive(Debug, SerializeRow)]
pub struct MessageRow {
    pub workspace_id: String,
    pub conversation_id: Uuid,
    pub bucket: i32,
    pub sent_at: CqlTimestamp,
    pub message_id: String,
    pub direction: &'static str,
    pub message_type: String,
    pub body: MaybeUnset<String>,
    pub type_payload: MaybeUnset<String>,
    pub status: MaybeUnset<&'static str>,
    pub sender: MaybeUnset<String>,
    pub origin: &'static str,
    pub context: MaybeUnset<String>,
    pub errors: MaybeUnset<String>,
    pub edited_at: MaybeUnset<CqlTimestamp>,
    pub revoked_at: MaybeUnset<CqlTimestamp>,
}

/// A `contacts` row (`insert_contact`).
#[derive(Debug, SerializeRow)]
pub struct ContactRow {
    pub identity_id: Uuid,
    pub workspace_id: String,
    pub phone: String,
    pub contact_id: Uuid,
    pub name: Option<String>,
    pub created_at: CqlTimestamp,
    pub user_id: Option<String>,
}

/// A contact found by phone (`contacts_by_identities`).
#[derive(Debug, DeserializeRow)]
pub struct FoundContact {
    pub workspace_id: String,
    pub identity_id: Uuid,
    pub phone: String,
    pub contact_id: Uuid,
}

/// A contact identity found by user id (`contact_users_by_identities`).
#[derive(Debug, DeserializeRow)]
pub struct FoundContactUser {
    pub workspace_id: String,
    pub identity_id: Uuid,
    pub user_id: String,
    pub contact_id: Uuid,
}

/// A row found by a cross-workspace lookup ([`super::Store::lookup_across`]):
/// the workspace it belongs to and the key it was looked up by.
pub trait WorkspaceKey<K> {
    fn workspace_id(&self) -> &str;
    fn key(&self) -> &K;
}

/// Implements [`WorkspaceKey`] for a row type from its two fields.
macro_rules! workspace_key {
    ($row:ty, $key:ty, $field:ident) => {
        impl WorkspaceKey<$key> for $row {
            fn workspace_id(&self) -> &str {
                &self.workspace_id
            }
            fn key(&self) -> &$key {
                &self.$field
            }
        }
    };
}

workspace_key!(FoundContact, Uuid, identity_id);
workspace_key!(FoundContactUser, Uuid, identity_id);
workspace_key!(ConversationRow, Uuid, conversation_id);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_clock_covers_earlier_clocks_and_ignores_legacy_offsets() {
        let floor = crate::clocks::CLOCK_FLOOR_US;
        let w = Applied::from_column(Some(floor + 80)).expect("a clock");
        assert!(w.covers(floor + 80) && w.covers(floor + 8));
        assert!(!w.covers(floor + 88));
        assert_eq!(Applied::from_column(Some(12_345)), None);
        assert_eq!(Applied::from_column(None), None);
    }

    #[test]
    fn a_watermark_covers_only_earlier_records_of_its_partition() {
        let w = Watermark {
            partition: 1,
            offset: 10,
        };
        let at = |partition, offset| Watermark { partition, offset };
        assert!(w.covers(at(1, 10)) && w.covers(at(1, 3)));
        assert!(!w.covers(at(1, 11)) && !w.covers(at(2, 3)));
        assert_eq!(Watermark::from_columns(Some(1), None), None);
    }
}
