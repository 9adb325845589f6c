//! The CQL store: one session, every statement prepared once at start-up,
//! and the three request shapes the pipeline uses.
//!
//! - [`Store::lookup_across`] ([`lookup`]): find rows by partition key for every
//!   workspace of a micro-batch at once, as chunked `IN` queries over the
//!   keys of all of them ([`Store::lookup`]). The tables the pipeline looks
//!   up are partitioned by the key alone, the workspace clustering, so the
//!   number of lookups grows with the keys, not with the workspaces
//!   (schemas/README.md has the measurement against concurrent
//!   single-partition statements, which only the benchmark runs).
//! - [`Store::write`]: unlogged batches grouped by partition and chunked to
//!   stay under Cassandra's and ScyllaDB's batch limits, every one carrying
//!   the client timestamp it is given (a write clock, [`crate::clocks`]), so
//!   the database orders writes by the records they come from, never by when
//!   or where they arrive.
//! - [`rows`]: the named rows the statements bind and read.
//! - Every request is counted in a [`DbStats`], so the pipeline can report
//!   statements and sequential round trips per micro-batch.
//! - Tests only (feature `fault-injection`): a [`WriteGate`] that lets a
//!   set number of a wave's writes land and refuses the rest unsent.
//!
//! Guarantees: all statements are idempotent upserts (marked as such, so the
//! driver may retry them); no statement text is built per request; the
//! requests in flight for one fan-out are bounded by
//! `cql.max_concurrent_requests`.

mod copy;
mod error;
#[cfg(feature = "fault-injection")]
mod gate;
mod lookup;
pub mod rows;
mod schema;
mod statements;
mod writes;

pub use copy::{CopyReport, carry_predecessors, copy_keyspace};
pub use error::StoreError;
#[cfg(feature = "fault-injection")]
pub use gate::WriteGate;
pub use rows::WorkspaceKey;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::Semaphore;

pub use schema::{migrate, schema_statements, statements_of};
pub use statements::Statements;
pub use writes::Writes;

use crate::config::CqlConfig;

/// Requests sent to the database, and sequential round trips, for one unit of work.
#[derive(Debug, Default)]
pub struct DbStats {
    requests: AtomicU64,
    round_trips: AtomicU64,
}

impl DbStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
    fn add_requests(&self, n: usize) {
        self.requests.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// Adds another unit's requests (round trips are not additive across
    /// concurrent units, so they are left alone).
    pub fn merge(&self, other: &DbStats) {
        self.add_requests(other.requests() as usize);
    }
    /// Records one sequential round trip: a wave whose requests all went out
    /// concurrently. The pipeline calls it once per wave that sent any.
    pub fn add_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }
}

/// One row to write: the partition it belongs to, its estimated size and its values.
#[derive(Debug)]
pub struct RowWrite<V> {
    pub partition: String,
    pub estimated_bytes: usize,
    pub values: V,
}

/// The session and its prepared statements.
#[derive(Debug, Clone)]
pub struct Store {
    session: Arc<Session>,
    statements: Arc<Statements>,
    cfg: CqlConfig,
    /// `cql.max_concurrent_requests` permits: the bound on requests in
    /// flight across every concurrent lookup and write of this store.
    in_flight: Arc<Semaphore>,
    /// Tests only: the gate that crashes a run inside a wave.
    #[cfg(feature = "fault-injection")]
    gate: Option<Arc<WriteGate>>,
}

impl Store {
    /// Connects and prepares every statement against `cfg.keyspace` (which
    /// must exist: run `processor migrate` first).
    pub async fn connect(cfg: &CqlConfig) -> Result<Self, StoreError> {
        let session = Arc::new(Box::pin(connect_session(cfg)).await?);
        Self::with_session(session, cfg).await
    }

    /// Prepares every statement on an existing session.
    /// Refuses, with [`StoreError::OldLayout`], a keyspace whose lookup
    /// tables still have the key layout of an earlier release.
    pub async fn with_session(session: Arc<Session>, cfg: &CqlConfig) -> Result<Self, StoreError> {
        schema::check_layout(&session, &cfg.keyspace).await?;
        let statements = Statements::prepare(&session, &cfg.keyspace, cfg.request_timeout).await?;
        Ok(Self {
            session,
            statements: Arc::new(statements),
            in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
            cfg: cfg.clone(),
            #[cfg(feature = "fault-injection")]
            gate: None,
        })
    }

    /// Tests only: this store, its writes passing through `gate`.
    #[cfg(feature = "fault-injection")]
    pub fn with_gate(&self, gate: Arc<WriteGate>) -> Self {
        Self {
            gate: Some(gate),
            ..self.clone()
        }
    }

    pub fn statements(&self) -> &Statements {
        &self.statements
    }

    /// The most keys one `IN` lookup carries: `cql.max_batch_statements`,
    /// at most [`lookup::MAX_IN_KEYS`].
    pub fn max_keys_per_request(&self) -> usize {
        self.cfg.max_batch_statements.clamp(1, lookup::MAX_IN_KEYS)
    }

    /// The keyspace every statement was prepared against.
    pub fn keyspace(&self) -> &str {
        &self.cfg.keyspace
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Writes `rows` of one prepared statement as unlogged batches grouped
    /// by partition, all concurrently, within one sequential round trip
    /// however many batches it takes. Every row is written at client
    /// timestamp `timestamp` (µs), unless its statement binds its own
    /// (`USING TIMESTAMP ?`).
    pub async fn write<V>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        rows: Vec<RowWrite<V>>,
        timestamp: i64,
        stats: &DbStats,
    ) -> Result<(), StoreError>
    where
        V: SerializeRow + Send + Sync,
    {
        let chunks = chunk_rows(
            rows,
            self.cfg.max_batch_bytes,
            self.cfg.max_batch_statements,
        );
        stats.add_requests(chunks.len());
        let futures: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.write_batch(what, statement, chunk, timestamp))
            .collect();
        stream::iter(futures)
            .buffer_unordered(self.cfg.max_concurrent_requests)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// One read of any shape (counted as one request of `stats`), within the
    /// store's bound on requests in flight.
    pub async fn read<V, R>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: V,
        stats: &DbStats,
    ) -> Result<Vec<R>, StoreError>
    where
        V: SerializeRow,
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        stats.add_requests(1);
        let _permit = self.in_flight.acquire().await.ok();
        query_rows(&self.session, what, statement, values).await
    }

    /// One request of a write; under an armed [`WriteGate`] (tests only), it
    /// waits for its turn or is refused unsent.
    async fn write_batch<V: SerializeRow>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: Vec<V>,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        #[cfg(feature = "fault-injection")]
        let turn = match &self.gate {
            Some(gate) => gate.admit().await?,
            None => None,
        };
        let result = self.send_batch(what, statement, values, timestamp).await;
        #[cfg(feature = "fault-injection")]
        if let (Ok(()), Some(turn)) = (&result, turn) {
            turn.landed();
        }
        result
    }

    async fn send_batch<V: SerializeRow>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        values: Vec<V>,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        let failed = |source| StoreError::Execute {
            what,
            source: Box::new(source),
        };
        let _permit = self.in_flight.acquire().await.ok();
        // One row is one statement: batch size limits (Cassandra fails
        // batches over `batch_size_fail_threshold`) do not apply to it, so a
        // single large row can never be refused as a "batch too large".
        if let [row] = values.as_slice() {
            let mut statement = statement.clone();
            statement.set_timestamp(Some(timestamp));
            return self
                .session
                .execute_unpaged(&statement, row)
                .await
                .map(|_| ())
                .map_err(failed);
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        batch.set_request_timeout(Some(self.cfg.request_timeout));
        batch.set_timestamp(Some(timestamp));
        for _ in &values {
            batch.append_statement(statement.clone());
        }
        self.session
            .batch(&batch, values)
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

/// Runs one prepared read on `session` and deserializes every row as `R`.
pub async fn query_rows<V, R>(
    session: &Session,
    what: &'static str,
    statement: &PreparedStatement,
    values: V,
) -> Result<Vec<R>, StoreError>
where
    V: SerializeRow,
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    let result = session.execute_unpaged(statement, values).await;
    collect_rows(what, result)
}

/// [`query_rows`] for a statement prepared nowhere: the reads of
/// `system_schema` and of a keyspace being copied, run once.
pub(crate) async fn query_text_rows<V, R>(
    session: &Session,
    what: &'static str,
    cql: &str,
    values: V,
) -> Result<Vec<R>, StoreError>
where
    V: SerializeRow,
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    let result = session.query_unpaged(cql, values).await;
    collect_rows(what, result)
}

/// Every row of a read's answer, deserialized as `R`.
fn collect_rows<R>(
    what: &'static str,
    result: Result<scylla::response::query_result::QueryResult, scylla::errors::ExecutionError>,
) -> Result<Vec<R>, StoreError>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
{
    let result = result.map_err(|source| StoreError::Execute {
        what,
        source: Box::new(source),
    })?;
    let rows_error = |e: &dyn std::fmt::Display| StoreError::Rows {
        what,
        message: e.to_string(),
    };
    let rows = result.into_rows_result().map_err(|e| rows_error(&e))?;
    rows.rows::<R>()
        .map_err(|e| rows_error(&e))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(|e| rows_error(&e))
}

/// Groups rows by partition, then packs partitions into batches of at most
/// `max_bytes` estimated payload and `max_statements` statements. Rows of one
/// partition stay together unless they alone exceed a limit; a single row
/// larger than `max_bytes` travels alone (single-partition, single-statement
/// batches are exempt from Cassandra's batch-size failure threshold).
pub fn chunk_rows<V>(
    rows: Vec<RowWrite<V>>,
    max_bytes: usize,
    max_statements: usize,
) -> Vec<Vec<V>> {
    let mut by_partition: BTreeMap<String, Vec<RowWrite<V>>> = BTreeMap::new();
    for row in rows {
        by_partition
            .entry(row.partition.clone())
            .or_default()
            .push(row);
    }
    let mut batches = Vec::new();
    let mut current: Vec<V> = Vec::new();
    let mut current_bytes = 0usize;
    for rows in by_partition.into_values() {
        for row in rows {
            let full = !current.is_empty()
                && (current_bytes + row.estimated_bytes > max_bytes
                    || current.len() >= max_statements);
            if full {
                batches.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current_bytes += row.estimated_bytes;
            current.push(row.values);
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// A session builder knowing every node of `nodes` (comma separated `host:port`).
pub fn session_builder(nodes: &str) -> SessionBuilder {
    nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .fold(SessionBuilder::new(), |builder, node| {
            builder.known_node(node)
        })
}

async fn connect_session(cfg: &CqlConfig) -> Result<Session, StoreError> {
    Box::pin(session_builder(&cfg.nodes).build())
        .await
        .map_err(|source| StoreError::Connect {
            nodes: cfg.nodes.clone(),
            source: Box::new(source),
        })
}

/// Opens a session without preparing statements (for `migrate`).
pub async fn open_session(cfg: &CqlConfig) -> Result<Arc<Session>, StoreError> {
    Ok(Arc::new(Box::pin(connect_session(cfg)).await?))
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
