//! The inbox's reads and its one write: what an inbox UI asks of the tables
//! the processor maintains.
//!
//! - [`Inbox::list`]: a workspace's conversations, most recent activity
//!   first, paged (`conversation_activity`, then the page's rows).
//! - [`Inbox::history`]: a conversation's messages, newest first across its
//!   month buckets, paged.
//! - [`Inbox::totals`]: a workspace's unread messages.
//! - [`Inbox::mark_read`]: the only write, an agent marking a conversation read.
//!
//! [`cli`] prints them for `processor inbox`.
//!
//! Guarantees: unread figures are derived, never reset. The processor only
//! ever raises a conversation's `unread_count` (inbound messages counted
//! exactly once) and the workspace's `inbound_total`; agents only ever raise a
//! conversation's `read_count` in `conversation_reads`, with a compare-and-set
//! that moves the shard's `read_total` in the same atomic write. Neither side
//! writes a cell the other writes, so no update of one is lost to the other,
//! and `unread = unread_count - read_count` stays exact under replays and
//! concurrent mark-read calls. Cursors are opaque strings naming the last row
//! returned; a page never repeats a row of an earlier page of the same walk.
//! Costs per call are in `schemas/README.md` ("The inbox's queries").

mod activity;
pub mod cli;
mod cursor;
mod history;
mod list;
mod reads;
mod statements;

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

pub use activity::{ActivityKey, READ_SHARDS, SLOT_MS, moves, read_shard};
pub use cursor::CursorError;
pub use reads::{MarkRead, UnreadTotals};
use statements::InboxStatements;

use crate::store::{StoreError, query_rows};

/// Months the list walks back from the current one before it stops
/// looking for older activity.
pub const LIST_LOOKBACK_MONTHS: u32 = 24;

/// Why an inbox call failed.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the inbox statements: {0}")]
    Prepare(#[from] scylla::errors::PrepareError),
    #[error("no conversation {0} in this workspace")]
    NotFound(Uuid),
    #[error("mark-read lost {0} compare-and-set races in a row; try again")]
    Contended(u32),
    #[error(transparent)]
    Cursor(#[from] CursorError),
}

/// One conversation as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub conversation_id: Uuid,
    pub phone_number_id: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_user_id: Option<String>,
    pub group_id: Option<String>,
    pub contact_name: Option<String>,
    pub state: Option<String>,
    pub last_message_at_ms: i64,
    pub last_message_preview: Option<String>,
    pub last_message_direction: Option<String>,
    /// Inbound messages not yet marked read.
    pub unread: i64,
}

/// One message as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub message_id: String,
    pub sent_at_ms: i64,
    pub direction: Option<String>,
    pub message_type: Option<String>,
    pub body: Option<String>,
    pub status: Option<String>,
    pub sender: Option<String>,
}

/// One page of a walk, and where the next one starts (`None`: the walk is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The inbox's prepared statements on a session.
#[derive(Debug, Clone)]
pub struct Inbox {
    session: Arc<Session>,
    st: Arc<InboxStatements>,
}

impl Inbox {
    /// Prepares the inbox's statements against `keyspace` (which `processor
    /// migrate` created).
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, InboxError> {
        let st = InboxStatements::prepare(&session, keyspace).await?;
        Ok(Self {
            session,
            st: Arc::new(st),
        })
    }

    /// Runs one prepared read and deserializes every row.
    async fn rows<V, R>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: V,
    ) -> Result<Vec<R>, InboxError>
    where
        V: SerializeRow,
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        Ok(query_rows(&self.session, what, statement, values).await?)
    }
}

/// The month before `yyyymm`.
fn previous_month(bucket: i32) -> i32 {
    if bucket % 100 <= 1 {
        (bucket / 100 - 1) * 100 + 12
    } else {
        bucket - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_step_back_across_years() {
        assert_eq!(previous_month(202_603), 202_602);
        assert_eq!(previous_month(202_601), 202_512);
    }
}
