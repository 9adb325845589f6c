//! The inbox's CQL, prepared once per [`super::Inbox`]. Every statement reads
//! one partition, or a bounded `IN` list of them, by its full partition key.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::InboxError;

#[derive(Debug)]
pub(super) struct InboxStatements {
    /// A month of the recency list, newest minute first, from a minute down.
    pub activity_from: PreparedStatement,
    /// Every entry of one minute of the recency list.
    pub activity_slot: PreparedStatement,
    pub conversations: PreparedStatement,
    pub conversation: PreparedStatement,
    /// The read markers of some conversations of one shard.
    pub reads: PreparedStatement,
    pub read_count: PreparedStatement,
    pub read_total: PreparedStatement,
    pub read_totals: PreparedStatement,
    pub mark_read: PreparedStatement,
    pub inbound_total: PreparedStatement,
    pub history_before: PreparedStatement,
    pub history_tie: PreparedStatement,
}

pub(super) const SUMMARY_COLUMNS: &str = "conversation_id, phone_number_id, contact_phone, \
     contact_user_id, group_id, contact_name, state, last_message_at, last_message_preview, \
     last_message_direction, unread_count";
const MESSAGE_COLUMNS: &str = "message_id, sent_at, direction, message_type, body, status, sender";
const HISTORY_KEY: &str = "workspace_id = ? AND conversation_id = ? AND bucket = ?";

impl InboxStatements {
    pub async fn prepare(session: &Session, ks: &str) -> Result<Self, InboxError> {
        let p = |cql: String| async move { session.prepare(cql).await };
        let activity = format!(
            "SELECT slot, conversation_id, last_message_at FROM {ks}.conversation_activity \
             WHERE workspace_id = ? AND bucket = ?"
        );
        let history = format!("SELECT {MESSAGE_COLUMNS} FROM {ks}.messages WHERE {HISTORY_KEY}");
        Ok(Self {
            activity_from: p(format!("{activity} AND slot <= ? LIMIT ?")).await?,
            activity_slot: p(format!("{activity} AND slot = ?")).await?,
            conversations: p(format!(
                "SELECT {SUMMARY_COLUMNS} FROM {ks}.conversations \
                 WHERE workspace_id = ? AND conversation_id IN ?"
            ))
            .await?,
            conversation: p(format!(
                "SELECT unread_count, created_at, first_message_at, last_message_at FROM {ks}.conversations \
                 WHERE workspace_id = ? AND conversation_id = ?"
            ))
            .await?,
            reads: p(format!(
                "SELECT conversation_id, read_count FROM {ks}.conversation_reads \
                 WHERE workspace_id = ? AND shard = ? AND conversation_id IN ?"
            ))
            .await?,
            read_count: p(format!(
                "SELECT read_count FROM {ks}.conversation_reads \
                 WHERE workspace_id = ? AND shard = ? AND conversation_id = ?"
            ))
            .await?,
            read_total: p(format!(
                "SELECT read_total FROM {ks}.conversation_reads \
                 WHERE workspace_id = ? AND shard = ? LIMIT 1"
            ))
            .await?,
            read_totals: p(format!(
                "SELECT read_total FROM {ks}.conversation_reads \
                 WHERE workspace_id = ? AND shard IN ? PER PARTITION LIMIT 1"
            ))
            .await?,
            mark_read: p(format!(
                "UPDATE {ks}.conversation_reads SET read_count = ?, read_at = ?, read_total = ? \
                 WHERE workspace_id = ? AND shard = ? AND conversation_id = ? \
                 IF read_count = ? AND read_total = ?"
            ))
            .await?,
            inbound_total: p(format!(
                "SELECT inbound_total FROM {ks}.workspace_totals WHERE shard = ? AND workspace_id = ?"
            ))
            .await?,
            history_before: p(format!("{history} AND sent_at < ? LIMIT ?")).await?,
            history_tie: p(format!("{history} AND sent_at = ? AND message_id > ?")).await?,
        })
    }
}
