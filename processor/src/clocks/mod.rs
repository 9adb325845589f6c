//! Write clocks: the client timestamp of every write, taken from the Kafka
//! position of the records it comes from, never from a machine's clock at
//! write time.
//!
//! A record's clock is `base(partition) + 8 × offset` microseconds
//! ([`SLOTS_PER_RECORD`] slots per record, one per pipeline step). A
//! partition's base is chosen once, the first time any processor sees the
//! partition (the current time minus 8 × that offset, so clocks start near
//! real time and then advance by 8 µs per record, far slower than real
//! time), and stored in `partition_clocks` with a lightweight transaction,
//! so every processor, now or later, derives the same clock for a record.
//!
//! Guarantees:
//! - **Monotonic per key.** Every row belongs to one workspace, and all of a
//!   workspace's records are on one partition, so a later record's writes
//!   always carry a larger timestamp. Whichever of two processors writes
//!   last, the write from the later record wins: a processor that lost its
//!   partitions mid-batch (paused past its session timeout, cut off from
//!   Kafka, or outlasting a rebalance) cannot overwrite its successor's
//!   rows, and skewed coordinator clocks play no part.
//! - **The layout is checked.** Clocks are only comparable while the
//!   topic keeps its partitions. At start-up, and on its first sight of
//!   each partition, the processor refuses, with [`ClockError::PartitionCountChanged`] or
//!   [`ClockError::TopicRecreated`], when the topic's partition count
//!   differs from the one recorded in `topic_layouts`, or when the partition
//!   ends below an offset already processed. It stores nothing of that batch
//!   and commits nothing; `processor clocks rebase` ([`rebase`]) is the
//!   documented way on (README, "Changing the webhook topic").
//! - Records that no consumer stamped (tests and benchmarks running the
//!   pipeline directly) carry [`unstamped`] clocks, consistent among
//!   themselves.

mod kafka;
mod rebase;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use scylla::DeserializeRow;

pub use kafka::TopicProbe;
pub use rebase::{RebaseError, RebaseReport, rebase};

use crate::decode::DecodedRecord;
use crate::store::{DbStats, Store, StoreError};

/// Clock slots per record: one per pipeline step (see `pipeline::Step::slot`).
pub const SLOTS_PER_RECORD: i64 = 8;

/// Clocks are at least this (µs since the epoch, September 2001); smaller
/// watermark values are Kafka offsets written before write clocks existed.
pub const CLOCK_FLOOR_US: i64 = 1_000_000_000_000_000;

/// The clock of the record at `offset` of a partition whose base is `base_us`.
pub fn clock_at(base_us: i64, offset: i64) -> i64 {
    base_us.saturating_add(offset.saturating_mul(SLOTS_PER_RECORD))
}

/// The clock of a record no consumer stamped (base [`CLOCK_FLOOR_US`]).
pub fn unstamped(offset: i64) -> i64 {
    clock_at(CLOCK_FLOOR_US, offset)
}

/// Why records could not be given clocks.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The database failed (retried like any batch write).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kafka's metadata could not be read (retried).
    #[error("reading the layout of topic {topic} from Kafka: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic {topic} has {current} partitions, but its write clocks were set for {stored}: \
         a workspace's records may now be split across partitions. Nothing was stored or \
         committed. Drain the topic, then run `processor clocks rebase` \
         (README: Changing the webhook topic)"
    )]
    PartitionCountChanged {
        topic: String,
        stored: i32,
        current: i32,
    },
    #[error(
        "topic {topic} partition {partition} ends at offset {high_watermark}, below offset \
         {last_offset} already processed: the topic was re-created or truncated. Nothing was \
         stored or committed. Run `processor clocks rebase` \
         (README: Changing the webhook topic)"
    )]
    TopicRecreated {
        topic: String,
        partition: i32,
        high_watermark: i64,
        last_offset: i64,
    },
}

impl ClockError {
    /// Whether the topic itself changed: retrying cannot help.
    pub fn is_layout_change(&self) -> bool {
        matches!(
            self,
            Self::PartitionCountChanged { .. } | Self::TopicRecreated { .. }
        )
    }
}

/// A `topic_layouts` row (`layout_by_topic`).
#[derive(Debug, DeserializeRow)]
struct LayoutRow {
    partitions: Option<i32>,
    epoch: Option<i32>,
    /// The write timestamp of `partitions` (a rebase must write above it).
    written_at: Option<i64>,
}

#[derive(Debug, DeserializeRow)]
struct ClockRow {
    base_us: Option<i64>,
    last_offset: Option<i64>,
}

/// The partitions' bases, loaded once per partition and process.
#[derive(Debug, Clone)]
pub struct Clocks {
    store: Store,
    topic: Arc<str>,
    probe: TopicProbe,
    bases: Arc<Mutex<HashMap<i32, i64>>>,
}

impl Clocks {
    pub fn new(store: Store, topic: &str, probe: TopicProbe) -> Self {
        Self {
            store,
            topic: Arc::from(topic),
            probe,
            bases: Arc::default(),
        }
    }

    /// Sets every record's clock. A partition seen for the first time by
    /// this process is checked against the recorded layout first.
    pub async fn stamp(&self, records: &mut [DecodedRecord]) -> Result<(), ClockError> {
        let mut first: HashMap<i32, i64> = HashMap::new();
        for r in records.iter() {
            let offset = first.entry(r.partition).or_insert(r.offset);
            *offset = (*offset).min(r.offset);
        }
        let mut bases = HashMap::with_capacity(first.len());
        for (partition, offset) in first {
            bases.insert(partition, self.base(partition, offset).await?);
        }
        for r in records.iter_mut() {
            r.clock = clock_at(bases[&r.partition], r.offset);
        }
        Ok(())
    }

    /// Records, in the background, the last offset stored per partition
    /// (what [`ClockError::TopicRecreated`] is checked against). Written at
    /// the record's clock, so a late, older note never replaces a newer one;
    /// a lost note only weakens that check.
    pub fn note_progress(&self, records: &[DecodedRecord]) {
        let mut last: HashMap<i32, &DecodedRecord> = HashMap::new();
        for r in records {
            let entry = last.entry(r.partition).or_insert(r);
            if r.offset > entry.offset {
                *entry = r;
            }
        }
        let notes: Vec<(i32, i64, i64)> = last
            .into_values()
            .map(|r| (r.partition, r.offset, r.clock))
            .collect();
        let (store, topic) = (self.store.clone(), Arc::clone(&self.topic));
        tokio::spawn(async move {
            for (partition, offset, clock) in notes {
                let mut statement = store.statements().clock_progress.clone();
                statement.set_timestamp(Some(clock));
                let values = (offset, &*topic, partition);
                if let Err(err) = store.session().execute_unpaged(&statement, values).await {
                    tracing::debug!(cause = %err, partition, "noting the partition's progress failed");
                }
            }
        });
    }

    async fn base(&self, partition: i32, first_offset: i64) -> Result<i64, ClockError> {
        if let Some(base) = self.cached(partition) {
            return Ok(base);
        }
        self.check_partition_count().await?;
        let stats = DbStats::default();
        let s = self.store.statements();
        let key = (&*self.topic, partition);
        let found: Vec<ClockRow> = self
            .store
            .read("partition clock", &s.clock_by_partition, key, &stats)
            .await?;
        let base = match found
            .first()
            .and_then(|r| r.base_us.map(|b| (b, r.last_offset)))
        {
            Some((base, last_offset)) => {
                self.check_not_recreated(partition, last_offset).await?;
                base
            }
            None => {
                let proposed = clock_at(now_us(), -first_offset);
                let values = (&*self.topic, partition, proposed);
                execute(
                    &self.store,
                    "partition clock insert",
                    &s.insert_clock,
                    values,
                )
                .await?;
                let won: Vec<ClockRow> = self
                    .store
                    .read("partition clock", &s.clock_by_partition, key, &stats)
                    .await?;
                // Never a base of our own: every processor must use the stored one.
                won.first()
                    .and_then(|r| r.base_us)
                    .ok_or(StoreError::Rows {
                        what: "partition clock",
                        message: "no base after its insert".into(),
                    })?
            }
        };
        lock(&self.bases).insert(partition, base);
        Ok(base)
    }

    fn cached(&self, partition: i32) -> Option<i64> {
        lock(&self.bases).get(&partition).copied()
    }

    /// Records the topic's partition count on first use; afterwards refuses
    /// a different one. The processor checks it at start-up, and again on
    /// its first sight of each partition.
    pub async fn check_layout(&self) -> Result<(), ClockError> {
        self.check_partition_count().await
    }

    async fn check_partition_count(&self) -> Result<(), ClockError> {
        let current = self.probe.partition_count(&self.topic).await?;
        let stats = DbStats::default();
        let s = self.store.statements();
        let read = || {
            self.store.read::<_, LayoutRow>(
                "topic layout",
                &s.layout_by_topic,
                (&*self.topic,),
                &stats,
            )
        };
        let mut stored = read().await?.first().and_then(|r| r.partitions);
        if stored.is_none() {
            let values = (&*self.topic, current);
            execute(&self.store, "topic layout insert", &s.insert_layout, values).await?;
            stored = read().await?.first().and_then(|r| r.partitions);
        }
        match stored {
            Some(stored) if stored != current => Err(ClockError::PartitionCountChanged {
                topic: self.topic.to_string(),
                stored,
                current,
            }),
            _ => Ok(()),
        }
    }

    async fn check_not_recreated(
        &self,
        partition: i32,
        last_offset: Option<i64>,
    ) -> Result<(), ClockError> {
        let Some(last_offset) = last_offset else {
            return Ok(());
        };
        let high_watermark = self.probe.high_watermark(&self.topic, partition).await?;
        if high_watermark <= last_offset {
            return Err(ClockError::TopicRecreated {
                topic: self.topic.to_string(),
                partition,
                high_watermark,
                last_offset,
            });
        }
        Ok(())
    }
}

/// Runs one statement whose result is not needed (a conditional insert).
async fn execute<V: scylla::serialize::row::SerializeRow>(
    store: &Store,
    what: &'static str,
    statement: &scylla::statement::prepared::PreparedStatement,
    values: V,
) -> Result<(), StoreError> {
    store
        .session()
        .execute_unpaged(statement, values)
        .await
        .map(|_| ())
        .map_err(|source| StoreError::Execute {
            what,
            source: Box::new(source),
        })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(CLOCK_FLOOR_US, |d| {
            i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_grow_by_eight_slots_per_offset_from_their_base() {
        assert_eq!(clock_at(1_000, 0), 1_000);
        assert_eq!(clock_at(1_000, 3), 1_024);
        assert!(unstamped(0) >= CLOCK_FLOOR_US);
        assert!(unstamped(1) - unstamped(0) == SLOTS_PER_RECORD);
        assert!(now_us() > CLOCK_FLOOR_US);
    }

    #[test]
    fn every_step_has_its_own_slot_within_a_record() {
        let slots: Vec<i64> = crate::pipeline::Step::ALL
            .iter()
            .map(|s| s.slot())
            .collect();
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");
        assert!(slots.iter().all(|s| (0..SLOTS_PER_RECORD).contains(s)));
    }

    #[test]
    fn only_a_changed_topic_is_a_layout_change() {
        let changed = ClockError::PartitionCountChanged {
            topic: "t".into(),
            stored: 6,
            current: 8,
        };
        assert!(changed.is_layout_change());
        assert!(changed.to_string().contains("processor clocks rebase"));
        let db = ClockError::Store(StoreError::Rows {
            what: "x",
            message: "down".into(),
        });
        assert!(!db.is_layout_change());
    }
}
