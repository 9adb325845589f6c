//! [`Inbox::mark_read`] and [`Inbox::totals`]: read state that cannot race.
//!
//! Guarantees: a mark-read raises the conversation's `read_count` to the
//! `unread_count` it read, never lowers it, and moves its shard's static
//! `read_total` by the same amount in the same compare-and-set (one
//! partition, so one atomic, isolated write). A concurrent processor write
//! changes only `conversations` and `workspace_totals`, so it is never lost
//! and never overwrites a marker; a concurrent mark-read on the same shard
//! makes the compare-and-set fail, and the call reads again and retries.
//! Hence `totals().unread` = the sum over conversations of
//! `unread_count - read_count`, exactly.

use scylla::value::{CqlTimestamp, CqlValue, Row};
use uuid::Uuid;

use super::history::ConversationSpan;
use super::{Inbox, InboxError, READ_SHARDS, read_shard};

/// Compare-and-set attempts before a mark-read gives up as contended.
const MARK_READ_ATTEMPTS: u32 = 16;

/// What a mark-read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRead {
    /// The conversation's read marker after the call.
    pub read_count: i32,
    /// Messages this call marked read (0 when already read).
    pub newly_read: i32,
}

/// A workspace's unread figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadTotals {
    /// Inbound messages counted by the processor.
    pub inbound: i64,
    /// Of those, the ones agents marked read.
    pub read: i64,
    pub unread: i64,
}

impl Inbox {
    /// Marks every inbound message the conversation has now as read.
    pub async fn mark_read(
        &self,
        workspace_id: &str,
        conversation_id: Uuid,
        now_ms: i64,
    ) -> Result<MarkRead, InboxError> {
        let spans: Vec<ConversationSpan> = self
            .rows(
                "conversation",
                &self.st.conversation,
                (workspace_id, conversation_id),
            )
            .await?;
        let counted = spans
            .first()
            .ok_or(InboxError::NotFound(conversation_id))?
            .unread_count
            .unwrap_or(0);
        let shard = read_shard(conversation_id);
        for _ in 0..MARK_READ_ATTEMPTS {
            let (marker, total) = self
                .read_state(workspace_id, shard, conversation_id)
                .await?;
            let read = marker.unwrap_or(0);
            if counted <= read {
                return Ok(MarkRead {
                    read_count: read,
                    newly_read: 0,
                });
            }
            let newly = counted - read;
            let new_total = total.unwrap_or(0) + i64::from(newly);
            let values = (
                counted,
                CqlTimestamp(now_ms),
                new_total,
                workspace_id,
                shard,
                conversation_id,
                marker,
                total,
            );
            if self.applied("mark read", values).await? {
                return Ok(MarkRead {
                    read_count: counted,
                    newly_read: newly,
                });
            }
        }
        Err(InboxError::Contended(MARK_READ_ATTEMPTS))
    }

    /// The conversation's marker and its shard's total (`None`: never written).
    async fn read_state(
        &self,
        ws: &str,
        shard: i32,
        conversation_id: Uuid,
    ) -> Result<(Option<i32>, Option<i64>), InboxError> {
        let (marker, total) = futures::try_join!(
            self.rows::<_, (Option<i32>,)>(
                "read marker",
                &self.st.read_count,
                (ws, shard, conversation_id)
            ),
            self.rows::<_, (Option<i64>,)>("read total", &self.st.read_total, (ws, shard)),
        )?;
        Ok((
            marker.into_iter().next().and_then(|(m,)| m),
            total.into_iter().next().and_then(|(t,)| t),
        ))
    }

    /// Runs the mark-read compare-and-set; whether it applied.
    async fn applied(
        &self,
        what: &'static str,
        values: (
            i32,
            CqlTimestamp,
            i64,
            &str,
            i32,
            Uuid,
            Option<i32>,
            Option<i64>,
        ),
    ) -> Result<bool, InboxError> {
        // The result's first column is `[applied]`; the rest depend on the outcome.
        let rows: Vec<Row> = self.rows(what, &self.st.mark_read, values).await?;
        Ok(matches!(
            rows.first().and_then(|r| r.columns.first()),
            Some(Some(CqlValue::Boolean(true)))
        ))
    }

    /// The workspace's inbound, read and unread message counts.
    pub async fn totals(&self, workspace_id: &str) -> Result<UnreadTotals, InboxError> {
        let shards: Vec<i32> = (0..READ_SHARDS).collect();
        let (inbound, reads) = futures::try_join!(
            self.rows::<_, (Option<i64>,)>(
                "inbound total",
                &self.st.inbound_total,
                (shared::ids::workspace_shard(workspace_id), workspace_id)
            ),
            self.rows::<_, (Option<i64>,)>(
                "read totals",
                &self.st.read_totals,
                (workspace_id, shards)
            ),
        )?;
        let inbound: i64 = inbound.into_iter().filter_map(|(n,)| n).sum();
        let read: i64 = reads.into_iter().filter_map(|(n,)| n).sum();
        Ok(UnreadTotals {
            inbound,
            read,
            unread: (inbound - read).max(0),
        })
    }
}
