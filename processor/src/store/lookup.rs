//! Lookups by partition key: chunked `IN` queries, and the same across
//! every workspace of a micro-batch.
//!
//! Guarantees: a key is asked once per call, however many workspaces want
//! it; an `IN` carries at most [`MAX_IN_KEYS`] and at most
//! `cql.max_batch_statements` keys (ScyllaDB refuses more than 100
//! partition keys in one query by default); every chunk of one call goes
//! out concurrently within the store's bound on requests in flight, one
//! sequential round trip; a workspace is handed only the rows of the keys
//! it asked for, never another workspace's row of the same key.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use futures::{StreamExt, TryStreamExt, stream};
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::value::SerializeValue;
use scylla::statement::prepared::PreparedStatement;

use super::{DbStats, Store, StoreError, WorkspaceKey, query_rows};

/// The most keys one `IN` lookup carries, whatever the configuration:
/// ScyllaDB's default `max_partition_key_restrictions_per_query`.
pub const MAX_IN_KEYS: usize = 100;

impl Store {
    /// Finds the rows whose partition key is in `keys`, whatever their
    /// workspace: `by_in` takes `(Vec<key>)`, sent in chunks of
    /// `cql.max_batch_statements` keys, all concurrently, within one
    /// sequential round trip.
    pub async fn lookup<K, R>(
        &self,
        what: &'static str,
        by_in: &PreparedStatement,
        keys: Vec<K>,
        stats: &DbStats,
    ) -> Result<Vec<R>, StoreError>
    where
        K: SerializeValue + Clone + Send + Sync,
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let chunks: Vec<Vec<K>> = keys
            .chunks(self.max_keys_per_request())
            .map(<[K]>::to_vec)
            .collect();
        stats.add_requests(chunks.len());
        let futures: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.lookup_chunk::<K, R>(what, by_in, chunk))
            .collect();
        let pages: Vec<Vec<R>> = stream::iter(futures)
            .buffer_unordered(self.cfg.max_concurrent_requests)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Finds the rows of every workspace's keys in one cross-workspace
    /// [`Store::lookup`] (each key asked once, whichever workspaces want
    /// it), and hands each workspace, in the order of `wanted`, the rows of
    /// its own keys only. `wanted` names each workspace once (the pipeline
    /// groups a batch by workspace).
    pub async fn lookup_across<K, R>(
        &self,
        what: &'static str,
        by_in: &PreparedStatement,
        wanted: &[(&str, Vec<K>)],
        stats: &DbStats,
    ) -> Result<Vec<Vec<R>>, StoreError>
    where
        K: SerializeValue + Clone + Ord + Hash + Send + Sync,
        R: for<'f, 'm> DeserializeRow<'f, 'm> + WorkspaceKey<K> + Send,
    {
        let keys: BTreeSet<&K> = wanted.iter().flat_map(|(_, keys)| keys).collect();
        let keys: Vec<K> = keys.into_iter().cloned().collect();
        let rows: Vec<R> = self.lookup(what, by_in, keys, stats).await?;
        debug_assert!(
            wanted
                .iter()
                .map(|(ws, _)| ws)
                .collect::<BTreeSet<_>>()
                .len()
                == wanted.len(),
            "one entry per workspace"
        );
        let wants: HashMap<(&str, &K), usize> = wanted
            .iter()
            .enumerate()
            .flat_map(|(i, (ws, keys))| keys.iter().map(move |k| ((*ws, k), i)))
            .collect();
        let mut found: Vec<Vec<R>> = wanted.iter().map(|_| Vec::new()).collect();
        for row in rows {
            if let Some(&i) = wants.get(&(row.workspace_id(), row.key())) {
                found[i].push(row);
            }
        }
        Ok(found)
    }

    async fn lookup_chunk<K, R>(
        &self,
        what: &'static str,
        statement: &PreparedStatement,
        keys: Vec<K>,
    ) -> Result<Vec<R>, StoreError>
    where
        K: SerializeValue,
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let _permit = self.in_flight.acquire().await.ok();
        query_rows(&self.session, what, statement, (keys,)).await
    }
}
