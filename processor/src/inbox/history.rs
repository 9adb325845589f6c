//! [`Inbox::history`]: a conversation's messages, newest first.
//!
//! Guarantees: messages come in `messages`' clustering order (`sent_at`
//! descending, then message id) across the conversation's month buckets,
//! from the month of its last message down to the month it was created;
//! pages never overlap. A page reads each bucket it crosses once (twice for
//! the bucket it resumes in, to finish a tie on `sent_at`).

use scylla::DeserializeRow;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::cursor::HistoryCursor;
use super::{Inbox, InboxError, MessageView, Page, previous_month};
use crate::pipeline::plan::month_bucket;

#[derive(Debug, DeserializeRow)]
struct MessageRow {
    message_id: String,
    sent_at: CqlTimestamp,
    direction: Option<String>,
    message_type: Option<String>,
    body: Option<String>,
    status: Option<String>,
    sender: Option<String>,
}

/// The times that bound a conversation's buckets.
#[derive(Debug, DeserializeRow)]
pub(super) struct ConversationSpan {
    pub unread_count: Option<i32>,
    created_at: Option<CqlTimestamp>,
    first_message_at: Option<CqlTimestamp>,
    last_message_at: Option<CqlTimestamp>,
}

impl From<MessageRow> for MessageView {
    fn from(r: MessageRow) -> Self {
        Self {
            message_id: r.message_id,
            sent_at_ms: r.sent_at.0,
            direction: r.direction,
            message_type: r.message_type,
            body: r.body,
            status: r.status,
            sender: r.sender,
        }
    }
}

impl Inbox {
    /// Up to `limit` messages of a conversation, after the cursor `after`
    /// (from the newest when `None`).
    pub async fn history(
        &self,
        workspace_id: &str,
        conversation_id: Uuid,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<MessageView>, InboxError> {
        let limit = limit.max(1);
        let cursor = match after {
            Some(text) => HistoryCursor::parse(text)?,
            None => match self.history_start(workspace_id, conversation_id).await? {
                Some(start) => start,
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
            },
        };
        let mut items: Vec<MessageView> = Vec::new();
        let mut at = cursor;
        loop {
            let want = limit + 1 - items.len();
            let found = self
                .bucket_page(workspace_id, conversation_id, &at, want)
                .await?;
            items.extend(found);
            if items.len() > limit {
                items.truncate(limit);
                let last = items.last().map(|m| HistoryCursor {
                    sent_at_ms: m.sent_at_ms,
                    message_id: m.message_id.clone(),
                    ..at.clone()
                });
                return Ok(Page {
                    next: last.map(|c| c.encode()),
                    items,
                });
            }
            if at.bucket <= at.oldest_bucket {
                return Ok(Page { items, next: None });
            }
            at = HistoryCursor {
                bucket: previous_month(at.bucket),
                sent_at_ms: i64::MAX,
                message_id: String::new(),
                ..at
            };
        }
    }

    /// Where a fresh walk starts: just past the newest possible message of the
    /// conversation's last month. `None` when the conversation has no messages.
    async fn history_start(
        &self,
        ws: &str,
        conversation_id: Uuid,
    ) -> Result<Option<HistoryCursor>, InboxError> {
        let rows: Vec<ConversationSpan> = self
            .rows("conversation", &self.st.conversation, (ws, conversation_id))
            .await?;
        let Some(span) = rows.into_iter().next() else {
            return Err(InboxError::NotFound(conversation_id));
        };
        let Some(last) = span.last_message_at else {
            return Ok(None);
        };
        let month = |t: CqlTimestamp| month_bucket(t.0.div_euclid(1000));
        let bucket = month(last);
        // Imported history may be older than the conversation's creation.
        let oldest = [span.created_at, span.first_message_at]
            .into_iter()
            .flatten()
            .map(month)
            .fold(bucket, i32::min);
        Ok(Some(HistoryCursor {
            bucket,
            oldest_bucket: oldest,
            sent_at_ms: i64::MAX,
            message_id: String::new(),
        }))
    }

    /// Up to `want` messages of one bucket after the cursor's position.
    async fn bucket_page(
        &self,
        ws: &str,
        conversation_id: Uuid,
        at: &HistoryCursor,
        want: usize,
    ) -> Result<Vec<MessageView>, InboxError> {
        let key = (ws, conversation_id, at.bucket);
        let sent = CqlTimestamp(at.sent_at_ms);
        let mut out: Vec<MessageRow> = Vec::new();
        if !at.message_id.is_empty() {
            let tie = (key.0, key.1, key.2, sent, at.message_id.as_str());
            out = self.rows("history tie", &self.st.history_tie, tie).await?;
            out.truncate(want);
        }
        let rest = i32::try_from(want - out.len()).unwrap_or(i32::MAX);
        if rest > 0 {
            let before = (key.0, key.1, key.2, sent, rest);
            out.extend(
                self.rows::<_, MessageRow>("history page", &self.st.history_before, before)
                    .await?,
            );
        }
        Ok(out.into_iter().map(MessageView::from).collect())
    }
}
