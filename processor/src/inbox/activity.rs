//! Where a conversation stands in its workspace's recency list
//! (`conversation_activity`), shared by the processor that writes the list
//! and the inbox that reads it.
//!
//! Guarantees: a conversation's entry is keyed by the *minute* of its last
//! message inside a month partition, so the many updates a busy conversation
//! gets within one minute overwrite one row instead of leaving a tombstone
//! each; a move to a later minute leaves exactly one tombstone. Sorting the
//! rows of one minute by their exact `last_message_at` gives the exact
//! recency order, because minutes are themselves in order.

use uuid::Uuid;

use crate::pipeline::plan::month_bucket;

/// Milliseconds in one list slot (a minute).
pub const SLOT_MS: i64 = 60_000;

/// Shards of a workspace's read markers (`conversation_reads`): concurrent
/// mark-read calls on different shards never contend.
pub const READ_SHARDS: i32 = 16;

/// One conversation's entry in the recency list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivityKey {
    /// `yyyymm` of the last message (UTC): the partition.
    pub bucket: i32,
    /// The last message's time truncated to the minute (ms since epoch).
    pub slot_ms: i64,
    pub conversation_id: Uuid,
}

impl ActivityKey {
    /// The entry of a conversation whose last message is at `last_message_at_ms`.
    pub fn of(conversation_id: Uuid, last_message_at_ms: i64) -> Self {
        Self {
            bucket: month_bucket(last_message_at_ms.div_euclid(1000)),
            slot_ms: last_message_at_ms.div_euclid(SLOT_MS) * SLOT_MS,
            conversation_id,
        }
    }
}

/// The list writes that take a conversation from `before` to `after` (its
/// last-message times): the new entry, and the old one to delete unless it is
/// the same row (a delete and an insert of one row at one timestamp would
/// leave the delete winning).
pub fn moves(
    conversation_id: Uuid,
    before: Option<i64>,
    after: i64,
) -> (ActivityKey, Option<ActivityKey>) {
    let new = ActivityKey::of(conversation_id, after);
    let old = before
        .map(|at| ActivityKey::of(conversation_id, at))
        .filter(|old| *old != new);
    (new, old)
}

/// The read-marker shard of a conversation.
pub fn read_shard(conversation_id: Uuid) -> i32 {
    i32::from(conversation_id.as_bytes()[15]) % READ_SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Uuid = Uuid::from_u128(7);

    #[test]
    fn updates_within_one_minute_keep_one_entry() {
        let at = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        let (new, old) = moves(C, Some(at + 1_000), at + 59_999);
        assert_eq!(new.slot_ms, at);
        assert_eq!(new.bucket, 202_512);
        assert_eq!(old, None, "same slot: overwrite, no delete");
    }

    #[test]
    fn a_later_minute_moves_the_entry_and_deletes_the_old_one() {
        let at = 1_764_547_200_000;
        let (new, old) = moves(C, Some(at), at + SLOT_MS);
        assert_eq!(new.slot_ms, at + SLOT_MS);
        assert_eq!(old.map(|o| o.slot_ms), Some(at));
        let (_, across) = moves(C, Some(at - 1), at);
        assert_eq!(
            across.map(|o| o.bucket),
            Some(202_511),
            "moves across months too"
        );
        assert_eq!(
            moves(C, None, at).1,
            None,
            "a first message deletes nothing"
        );
    }

    #[test]
    fn shards_spread_over_the_range() {
        let shards: std::collections::BTreeSet<i32> = (0..64u128)
            .map(|i| read_shard(Uuid::from_u128(i)))
            .collect();
        assert_eq!(shards.len(), READ_SHARDS as usize);
        assert!(shards.iter().all(|s| (0..READ_SHARDS).contains(s)));
    }
}
