//! `processor clocks rebase`: the way on after the webhook topic changed
//! (partitions added, or the topic re-created), which the processor
//! otherwise refuses ([`super::ClockError`]).
//!
//! Guarantee: after a rebase, every record not yet processed (from each
//! partition's committed offset, or its first offset where the group has
//! none) has a clock above every clock written before, on every partition,
//! so the watermarks and write timestamps already stored order the new
//! records after the old ones. The topic's new partition count is recorded.
//!
//! When partitions were added, a workspace's records may now be on two
//! partitions; rebase therefore refuses ([`RebaseError::NotDrained`]) unless
//! every old partition is fully processed (committed up to its end), so the
//! order between the two is the order of the clocks. Run it with every
//! processor stopped (their cached bases would be stale) and the ingress
//! stopped while draining; `--force` skips the drain check.

use scylla::DeserializeRow;

use super::{ClockError, LayoutRow, SLOTS_PER_RECORD, TopicProbe, clock_at, now_us};
use crate::store::{DbStats, Store, StoreError};

/// Why a rebase did not run.
#[derive(Debug, thiserror::Error)]
pub enum RebaseError {
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "partition {partition} of {topic} still has {unprocessed} records the group has not \
         committed: with partitions added, rebase only a drained topic (stop the ingress, let \
         the processors reach lag 0, stop them), or pass --force"
    )]
    NotDrained {
        topic: String,
        partition: i32,
        unprocessed: i64,
    },
}

/// What a rebase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebaseReport {
    pub topic: String,
    pub previous_partitions: Option<i32>,
    pub partitions: i32,
    pub epoch: i32,
    /// The smallest clock of any record not yet processed.
    pub first_clock: i64,
}

#[derive(Debug, DeserializeRow)]
struct PartitionRow {
    partition: i32,
    base_us: Option<i64>,
    last_offset: Option<i64>,
    /// The write timestamp of `base_us`: the first base came from an
    /// `IF NOT EXISTS`, timed by its coordinator's clock, not by a clock.
    written_at: Option<i64>,
}

/// Rebases `topic`'s clocks (see the module doc); `probe` reads the
/// committed offsets of the processors' consumer group.
pub async fn rebase(
    store: &Store,
    probe: &TopicProbe,
    topic: &str,
    force: bool,
) -> Result<RebaseReport, RebaseError> {
    let stats = DbStats::default();
    let s = store.statements();
    let current = probe.partition_count(topic).await?;
    let layout: Vec<LayoutRow> = store
        .read("topic layout", &s.layout_by_topic, (topic,), &stats)
        .await?;
    let (previous, epoch) = layout
        .first()
        .map_or((None, 0), |l| (l.partitions, l.epoch.unwrap_or(0)));
    let rows: Vec<PartitionRow> = store
        .read("partition clocks", &s.clocks_by_topic, (topic,), &stats)
        .await?;
    let committed = probe.committed(topic, current).await?;
    let mut starts = Vec::with_capacity(committed.len());
    for (p, committed) in (0..current).zip(committed) {
        let (low, high) = probe.watermarks(topic, p).await?;
        // A committed offset outside the partition (a re-created topic can
        // keep the old group's offsets) is reset by the consumer to the
        // earliest record, as `auto.offset.reset` would.
        let start = committed
            .filter(|c| (low..=high).contains(c))
            .unwrap_or(low);
        let was_there = previous.is_some_and(|n| p < n);
        if previous != Some(current) && was_there && !force && start < high {
            return Err(RebaseError::NotDrained {
                topic: topic.to_owned(),
                partition: p,
                unprocessed: high - start,
            });
        }
        starts.push(start);
    }
    // Above every clock written, and above the timestamps of the rows this
    // rebase overwrites (so a host clock behind theirs cannot shadow it).
    let clocks = rows
        .iter()
        .filter_map(|r| Some(clock_at(r.base_us?, r.last_offset.unwrap_or(0) + 1)));
    let stamps = rows
        .iter()
        .filter_map(|r| r.written_at)
        .chain(layout.first().and_then(|l| l.written_at));
    let written = clocks.chain(stamps).max().unwrap_or(0);
    let first_clock = now_us().max(written + SLOTS_PER_RECORD);
    write(
        store,
        topic,
        &starts,
        &rows,
        first_clock,
        current,
        epoch + 1,
    )
    .await?;
    Ok(RebaseReport {
        topic: topic.to_owned(),
        previous_partitions: previous,
        partitions: current,
        epoch: epoch + 1,
        first_clock,
    })
}

/// Writes the new bases and layout just below `first_clock`, above every
/// timestamp these rows were written at before.
async fn write(
    store: &Store,
    topic: &str,
    starts: &[i64],
    rows: &[PartitionRow],
    first_clock: i64,
    partitions: i32,
    epoch: i32,
) -> Result<(), StoreError> {
    let s = store.statements();
    // One below the first new clock: the first progress note after the
    // rebase (written at its record's clock) must win, not tie.
    let at = |statement: &scylla::statement::prepared::PreparedStatement| {
        let mut statement = statement.clone();
        statement.set_timestamp(Some(first_clock - 1));
        statement
    };
    let failed = |source| StoreError::Execute {
        what: "clock rebase",
        source: Box::new(source),
    };
    let session = store.session();
    let set_clock = at(&s.set_clock);
    for (p, start) in (0..partitions).zip(starts) {
        let base = clock_at(first_clock, -start);
        let values = (base, start - 1, topic, p);
        session
            .execute_unpaged(&set_clock, values)
            .await
            .map_err(failed)?;
    }
    let delete_clock = at(&s.delete_clock);
    for r in rows.iter().filter(|r| r.partition >= partitions) {
        let values = (topic, r.partition);
        session
            .execute_unpaged(&delete_clock, values)
            .await
            .map_err(failed)?;
    }
    let values = (partitions, epoch, topic);
    session
        .execute_unpaged(&at(&s.set_layout), values)
        .await
        .map_err(failed)?;
    Ok(())
}
