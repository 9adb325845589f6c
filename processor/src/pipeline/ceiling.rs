//! The raw-write ceiling of the benchmarks (feature `bench`; never on the
//! consumer's path): the rows the pipeline writes for a micro-batch, in its
//! one write wave, with no read before it.
//!
//! Guarantee: [`write_wave_only`] sends exactly the write wave that
//! [`super::run_batch_cached`] sends for the same batch when its owner cache
//! answers every identity, conversation and inbound total the batch needs
//! and no message id the batch names (its messages, and the targets of its
//! statuses and edits) has a `message_index` row, so that its index lookup
//! finds nothing: the same rows, batching, client timestamps and
//! concurrency bound (the two share [`super::write_wave`]). It never reads
//! the database, and it declines (returns `None`, sending nothing) when the
//! cache misses a key, since the pipeline would then read first. Like the
//! pipeline, it then remembers in the cache what it wrote. It skips the
//! duplicate check, so it must never run on records that may be stored.

use super::lookups::from_cache;
use super::{Outcome, OwnerCache, WorkspaceRecords, plan_batch, write_wave};
use crate::store::{DbStats, Store, StoreError};

/// Writes the rows [`super::run_batch_cached`] would write for `batch`,
/// in one wave with no lookup (one round trip in `stats`); returns how
/// many messages it inserted, or `None` when `cache` does not answer every
/// key. On an error the caller must [`OwnerCache::clear`] the cache, as
/// after the pipeline's.
pub async fn write_wave_only(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    stats: &DbStats,
    cache: &mut OwnerCache,
) -> Result<Option<u64>, StoreError> {
    let ids: Vec<&str> = batch.iter().map(|(id, _)| *id).collect();
    let mut plans = plan_batch(batch);
    let Some(found) = from_cache(&ids, &mut plans, cache) else {
        return Ok(None);
    };
    let mut outs: Vec<Outcome> = plans.iter().map(|_| Outcome::default()).collect();
    let afters = write_wave(store, (&ids, &plans, &found), &mut outs, stats).await?;
    stats.add_round_trip();
    for (ws, after) in ids.iter().zip(afters) {
        cache.remember(ws, after);
    }
    Ok(Some(outs.iter().map(|o| o.messages_inserted).sum()))
}
