//! The writes of one wave, gathered from every workspace of a micro-batch
//! and sent together.
//!
//! The pipeline's steps add their rows here instead of writing them; the
//! wave then sends, for each statement and client timestamp, all of those
//! rows through [`Store::write`] at once. Rows of different workspaces that
//! share a timestamp (every workspace of one Kafka partition does, within a
//! batch: [`crate::clocks`]) therefore share unlogged batches, so a
//! micro-batch of many small tenants costs about as many requests as one
//! large tenant with the same rows.
//!
//! Guarantees: every row added is sent exactly once, at the timestamp it was
//! added with, by the statement it was added with; rows of one partition
//! (workspace and key, or the shared key of [`Writes::add_shared`]) stay
//! together as [`super::chunk_rows`] packs them;
//! nothing is sent before [`Writes::send`], and `send` returns only once
//! every request has been answered (the first failure is returned).

use std::collections::BTreeMap;

use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use super::{DbStats, RowWrite, Store, StoreError};

/// A row of any statement, ready to be bound.
type AnyRow<'a> = Box<dyn SerializeRow + Send + Sync + 'a>;

/// The rows of one statement at one timestamp.
struct Group<'a> {
    statement: &'a PreparedStatement,
    rows: Vec<RowWrite<AnyRow<'a>>>,
}

/// The rows one wave writes, grouped by (timestamp, statement).
#[derive(Default)]
pub struct Writes<'a> {
    groups: BTreeMap<(i64, &'static str), Group<'a>>,
}

impl<'a> Writes<'a> {
    /// Adds `rows` of `workspace_id`, to be written by `statement` (named
    /// `what` in errors, one name per statement) at client timestamp
    /// `timestamp` (µs).
    pub fn add<V>(
        &mut self,
        workspace_id: &str,
        what: &'static str,
        statement: &'a PreparedStatement,
        rows: Vec<RowWrite<V>>,
        timestamp: i64,
    ) where
        V: SerializeRow + Send + Sync + 'a,
    {
        let rows = rows.into_iter().map(|row| RowWrite {
            partition: format!("{workspace_id}\u{1f}{}", row.partition),
            ..row
        });
        self.add_shared(what, statement, rows, timestamp);
    }

    /// [`Writes::add`] for rows of a table partitioned across workspaces
    /// (`workspace_totals`): `row.partition` names the whole partition key,
    /// so the rows of every workspace in one partition share batches.
    pub fn add_shared<V>(
        &mut self,
        what: &'static str,
        statement: &'a PreparedStatement,
        rows: impl IntoIterator<Item = RowWrite<V>>,
        timestamp: i64,
    ) where
        V: SerializeRow + Send + Sync + 'a,
    {
        let mut rows = rows.into_iter().peekable();
        if rows.peek().is_none() {
            return;
        }
        let group = self
            .groups
            .entry((timestamp, what))
            .or_insert_with(|| Group {
                statement,
                rows: Vec::new(),
            });
        debug_assert_eq!(
            group.statement.get_id(),
            statement.get_id(),
            "one name per statement: {what}"
        );
        group.rows.extend(rows.map(|row| RowWrite {
            partition: row.partition,
            estimated_bytes: row.estimated_bytes,
            values: Box::new(row.values) as AnyRow<'a>,
        }));
    }

    /// Sends every row added, all concurrently (within the store's bound on
    /// requests in flight): one sequential round trip.
    pub async fn send(self, store: &Store, stats: &DbStats) -> Result<(), StoreError> {
        let writes = self
            .groups
            .into_iter()
            .map(|((timestamp, what), g)| store.write(what, g.statement, g.rows, timestamp, stats));
        futures::future::try_join_all(writes).await.map(|_| ())
    }
}

impl std::fmt::Debug for Writes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.groups.iter().map(|(key, g)| (key, g.rows.len())))
            .finish()
    }
}
