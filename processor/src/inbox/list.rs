//! [`Inbox::list`]: a workspace's conversations, most recent activity first.
//!
//! Guarantees: the order is exact (`last_message_at` descending, then
//! conversation id), pages never overlap, and a page costs one read of the
//! recency list per month and minute boundary it crosses plus one lookup of
//! its conversations and one of their read markers (concurrently). An entry
//! whose conversation row does not (yet) show the same last-message time is
//! skipped: the row's own entry is elsewhere in the walk.

use std::collections::HashMap;

use futures::future::try_join_all;
use scylla::DeserializeRow;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::cursor::ListCursor;
use super::{
    ConversationSummary, Inbox, InboxError, LIST_LOOKBACK_MONTHS, Page, previous_month, read_shard,
};
use crate::pipeline::plan::month_bucket;

/// Keys per `IN` list (ScyllaDB refuses more than 100 by default).
const IN_CHUNK: usize = 100;

#[derive(Debug, Clone, Copy, DeserializeRow)]
struct EntryRow {
    slot: CqlTimestamp,
    conversation_id: Uuid,
    last_message_at: CqlTimestamp,
}

/// One recency-list entry, in list order via [`Entry::sort_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    bucket: i32,
    slot_ms: i64,
    last_at_ms: i64,
    conversation_id: Uuid,
}

impl Entry {
    /// Ascending in list order: newest minute, newest time, then id.
    fn sort_key(&self) -> (std::cmp::Reverse<i64>, std::cmp::Reverse<i64>, Uuid) {
        use std::cmp::Reverse;
        (
            Reverse(self.slot_ms),
            Reverse(self.last_at_ms),
            self.conversation_id,
        )
    }

    fn cursor(&self) -> ListCursor {
        ListCursor {
            bucket: self.bucket,
            slot_ms: self.slot_ms,
            last_message_at_ms: self.last_at_ms,
            conversation_id: self.conversation_id,
        }
    }

    fn after(&self, cursor: &ListCursor) -> bool {
        let c = Entry {
            bucket: cursor.bucket,
            slot_ms: cursor.slot_ms,
            last_at_ms: cursor.last_message_at_ms,
            conversation_id: cursor.conversation_id,
        };
        self.sort_key() > c.sort_key()
    }
}

#[derive(Debug, DeserializeRow)]
struct SummaryRow {
    conversation_id: Uuid,
    phone_number_id: Option<String>,
    contact_phone: Option<String>,
    contact_user_id: Option<String>,
    group_id: Option<String>,
    contact_name: Option<String>,
    state: Option<String>,
    last_message_at: Option<CqlTimestamp>,
    last_message_preview: Option<String>,
    last_message_direction: Option<String>,
    unread_count: Option<i32>,
}

impl Inbox {
    /// Up to `limit` conversations of `workspace_id`, after the cursor `after`
    /// (from the newest when `None`). `now_ms` sets where a fresh walk starts.
    pub async fn list(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Page<ConversationSummary>, InboxError> {
        let cursor = after.map(ListCursor::parse).transpose()?;
        let (entries, more) = self
            .entries(workspace_id, cursor, limit.max(1), now_ms)
            .await?;
        let next = more
            .then(|| entries.last().map(|e| e.cursor().encode()))
            .flatten();
        let items = self.summaries(workspace_id, &entries).await?;
        Ok(Page { items, next })
    }

    /// The next `limit` entries of the walk, and whether any remain.
    async fn entries(
        &self,
        ws: &str,
        cursor: Option<ListCursor>,
        limit: usize,
        now_ms: i64,
    ) -> Result<(Vec<Entry>, bool), InboxError> {
        // A fresh walk starts a month ahead, for senders whose clocks run fast.
        let ahead = now_ms.saturating_add(31 * 86_400_000);
        let mut bucket = cursor.map_or_else(|| month_bucket(ahead.div_euclid(1000)), |c| c.bucket);
        let mut from_slot = cursor.map_or(i64::MAX, |c| c.slot_ms);
        let mut out: Vec<Entry> = Vec::new();
        for _ in 0..=LIST_LOOKBACK_MONTHS {
            loop {
                let want = limit + 1 - out.len();
                let (found, full) = self.minutes(ws, bucket, from_slot, want).await?;
                let oldest = found.last().map(|e| e.slot_ms);
                out.extend(
                    found
                        .into_iter()
                        .filter(|e| cursor.is_none_or(|c| e.after(&c))),
                );
                if out.len() > limit {
                    out.truncate(limit);
                    return Ok((out, true));
                }
                match oldest {
                    Some(slot) if full => from_slot = slot - 1,
                    _ => break,
                }
            }
            bucket = previous_month(bucket);
            from_slot = i64::MAX;
        }
        Ok((out, false))
    }

    /// Entries of whole minutes of one month, newest first, from `from_slot`
    /// down: at least `want` rows' worth of minutes unless the month has
    /// fewer (then `full` is false).
    async fn minutes(
        &self,
        ws: &str,
        bucket: i32,
        from_slot: i64,
        want: usize,
    ) -> Result<(Vec<Entry>, bool), InboxError> {
        let limit = i32::try_from(want).unwrap_or(i32::MAX);
        let rows: Vec<EntryRow> = self
            .rows(
                "list page",
                &self.st.activity_from,
                (ws, bucket, CqlTimestamp(from_slot), limit),
            )
            .await?;
        let full = rows.len() >= want;
        let Some(last) = rows.last().map(|r| r.slot) else {
            return Ok((Vec::new(), false));
        };
        // The LIMIT may have cut the last minute: read that minute whole.
        let whole: Vec<EntryRow> = self
            .rows("list minute", &self.st.activity_slot, (ws, bucket, last))
            .await?;
        let mut entries: Vec<Entry> = rows
            .into_iter()
            .filter(|r| r.slot.0 != last.0)
            .chain(whole)
            .map(|r| Entry {
                bucket,
                slot_ms: r.slot.0,
                last_at_ms: r.last_message_at.0,
                conversation_id: r.conversation_id,
            })
            .collect();
        entries.sort_by_key(Entry::sort_key);
        Ok((entries, full))
    }

    /// The conversations of `entries`, in their order, with unread counts.
    async fn summaries(
        &self,
        ws: &str,
        entries: &[Entry],
    ) -> Result<Vec<ConversationSummary>, InboxError> {
        let ids: Vec<Uuid> = entries.iter().map(|e| e.conversation_id).collect();
        let (rows, reads) =
            futures::try_join!(self.conversation_rows(ws, &ids), self.read_counts(ws, &ids))?;
        let mut by_id: HashMap<Uuid, SummaryRow> =
            rows.into_iter().map(|r| (r.conversation_id, r)).collect();
        Ok(entries
            .iter()
            .filter_map(|e| {
                let row = by_id.remove(&e.conversation_id)?;
                let at = row.last_message_at.map(|t| t.0)?;
                (at == e.last_at_ms).then(|| summary(row, at, &reads))
            })
            .collect())
    }

    async fn conversation_rows(
        &self,
        ws: &str,
        ids: &[Uuid],
    ) -> Result<Vec<SummaryRow>, InboxError> {
        let pages = try_join_all(ids.chunks(IN_CHUNK).map(|chunk| {
            self.rows::<_, SummaryRow>(
                "list conversations",
                &self.st.conversations,
                (ws, chunk.to_vec()),
            )
        }))
        .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Read markers of `ids`, one lookup per shard they fall in.
    pub(super) async fn read_counts(
        &self,
        ws: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, i32>, InboxError> {
        let mut by_shard: HashMap<i32, Vec<Uuid>> = HashMap::new();
        for id in ids {
            by_shard.entry(read_shard(*id)).or_default().push(*id);
        }
        let pages = try_join_all(by_shard.into_iter().flat_map(|(shard, ids)| {
            ids.chunks(IN_CHUNK)
                .map(|chunk| {
                    self.rows::<_, (Uuid, Option<i32>)>(
                        "read markers",
                        &self.st.reads,
                        (ws, shard, chunk.to_vec()),
                    )
                })
                .collect::<Vec<_>>()
        }))
        .await?;
        Ok(pages
            .into_iter()
            .flatten()
            .map(|(id, n)| (id, n.unwrap_or(0)))
            .collect())
    }
}

fn summary(row: SummaryRow, at: i64, reads: &HashMap<Uuid, i32>) -> ConversationSummary {
    let counted = i64::from(row.unread_count.unwrap_or(0));
    let read = i64::from(reads.get(&row.conversation_id).copied().unwrap_or(0));
    ConversationSummary {
        conversation_id: row.conversation_id,
        phone_number_id: row.phone_number_id,
        contact_phone: row.contact_phone,
        contact_user_id: row.contact_user_id,
        group_id: row.group_id,
        contact_name: row.contact_name,
        state: row.state,
        last_message_at_ms: at,
        last_message_preview: row.last_message_preview,
        last_message_direction: row.last_message_direction,
        unread: (counted - read).max(0),
    }
}
