//! The batched pipeline over a whole micro-batch: eight steps carried by at
//! most three sequential waves, each holding the requests of every workspace
//! of the batch ([`steps`] has the table).
//!
//! | step | what |
//! |---|---|
//! | 1 `find_contacts` | contact identities (phones and user ids) |
//! | 2 `create_contacts` | the missing identities |
//! | 3 `find_conversations` | conversations, with counters and watermark |
//! | 4 `create_conversations` | the missing ones (identity columns only) |
//! | 5 `find_messages` | message-id index rows (dedupe and statuses, [`message_index`]) |
//! | 6 `insert_messages` | messages and their index rows, recency-list moves |
//! | 7 `update_conversations` | each touched conversation once, inbound totals |
//! | 8 `apply_changes` | statuses, edits, revokes, reactions, account events |
//!
//! Ids are deterministic, so the lookups of steps 1, 3 and 5 share one wave
//! (step 3 reads each identity's own conversations; only contacts stored
//! under another identity's id need a second lookup wave), and each lookup
//! is one `IN` over the keys of every workspace of the batch
//! ([`Store::lookup_across`]): its requests grow with the keys, never with
//! the number of workspaces (the inbound totals, read only on a cache miss:
//! one `IN` per shard the workspaces fall in, at most 64). Every write is a blind idempotent upsert or a
//! watermark-guarded counter, so steps 2, 4, 6, 7 and 8 share one wave, and
//! the rows of every workspace of one Kafka partition share its unlogged
//! batches ([`Writes`]). A micro-batch therefore costs at most three
//! sequential waves (two in steady state) whatever its size and however
//! many workspaces it spans. The store bounds the requests in flight
//! (`cql.max_concurrent_requests`). `ceiling` (feature `bench`) sends the
//! write wave alone, with no lookup: the benchmarks' raw-write ceiling of
//! the same rows.
//!
//! Exactly-once effect under at-least-once delivery: every write is an
//! idempotent upsert of values derived from the records alone, and the only
//! non-idempotent quantities (counters in step 7) are guarded by watermarks.
//! Re-running the pipeline on the same records, after a failure at any
//! point (any subset of the write wave landed), ends in the same rows, but
//! for a recency-list entry its readers skip ([`steps`] says why and where
//! a record refused for good differs).
//!
//! Fencing: every write of a workspace's share of the batch carries the
//! write clock of the batch's last record on its partition plus its step's
//! slot ([`Step::slot`], [`crate::clocks`]) as its client timestamp, and
//! every value a batch writes reflects all of its records (step 6 folds the
//! batch's own statuses and edits into the rows it inserts). A write at a
//! higher clock therefore never holds less than one at a lower clock: a
//! processor that lost its partitions mid-batch cannot overwrite its
//! successor's newer rows, and a re-run of fewer records after a crash
//! never needs to overwrite what the crashed attempt wrote.

mod amendments;
mod cache;
#[cfg(feature = "bench")]
pub mod ceiling;
mod contacts;
mod conversations;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod identity;
mod inbox_rows;
mod lookups;
pub mod message_index;
pub mod messages;
pub mod plan;
mod reactions;
mod statuses;
mod steps;
mod timer;

use std::collections::HashMap;
use std::time::Duration;

use crate::decode::DecodedRecord;
use crate::store::{DbStats, Statements, Store, StoreError, Writes};
use cache::After;
pub use cache::OwnerCache;
use conversations::ConversationUpdate;
use lookups::{Found, look_up, look_up_the_rest};
use messages::BatchChanges;
use plan::Plan;
pub use steps::{Step, Wave};
use timer::WaveTimer;

/// What one workspace's share of a batch did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub messages_inserted: u64,
    pub duplicates_skipped: u64,
    pub contacts_created: u64,
    pub conversations_created: u64,
    pub statuses_applied: u64,
    pub amendments_applied: u64,
    pub reactions_written: u64,
    pub account_events_stored: u64,
    pub skipped_kinds: Vec<shared::webhook::IgnoredKind>,
}

/// What one run of the pipeline over a whole micro-batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// One per workspace, in the order given.
    pub workspaces: Vec<Outcome>,
    /// How long each wave took, across every workspace.
    pub wave_durations: Vec<(Wave, Duration)>,
    /// Sequential waves that sent at least one request.
    pub round_trips: u64,
    /// Where the lookups found their keys.
    pub lookup_keys: LookupKeys,
}

/// The contact identities, conversations and inbox totals a batch looked
/// up, by where it read them (message ids always come from the database
/// and are not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LookupKeys {
    pub cache: u64,
    pub database: u64,
}

/// One workspace's records, in offset order.
pub type WorkspaceRecords<'r> = (&'r str, Vec<&'r DecodedRecord>);

/// Runs the pipeline for one workspace. `records` are in offset order.
pub async fn run_workspace(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    stats: &DbStats,
) -> Result<Outcome, StoreError> {
    let mut batch = run_batch(store, &[(workspace_id, records.to_vec())], stats).await?;
    Ok(batch.workspaces.pop().unwrap_or_default())
}

/// Runs the eight steps for every workspace of a micro-batch in at most three
/// sequential waves, each holding the requests of every workspace (the
/// store bounds the requests in flight).
pub async fn run_batch(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    stats: &DbStats,
) -> Result<BatchOutcome, StoreError> {
    run_waves(store, batch, WaveTimer::new(stats), None).await
}

/// [`run_batch`], reading from `cache` what it holds instead of the
/// database, and remembering in it what the batch wrote once its writes
/// have all landed. On an error the caller must [`OwnerCache::clear`] it.
pub async fn run_batch_cached(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    stats: &DbStats,
    cache: &mut OwnerCache,
) -> Result<BatchOutcome, StoreError> {
    run_waves(store, batch, WaveTimer::new(stats), Some(cache)).await
}

/// The three waves, closed one by one by `timer`.
async fn run_waves(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    mut timer: WaveTimer<'_>,
    cache: Option<&mut OwnerCache>,
) -> Result<BatchOutcome, StoreError> {
    let stats = timer.stats;
    let ids: Vec<&str> = batch.iter().map(|(id, _)| *id).collect();
    let mut plans = plan_batch(batch);
    let (mut found, mut lookup_keys) =
        look_up(store, (&ids, &plans), cache.as_deref(), stats).await?;
    timer.finish(Wave::Lookups)?;
    let mut outs: Vec<Outcome> = Vec::with_capacity(plans.len());
    for ((ws, plan), f) in ids.iter().zip(plans.iter_mut()).zip(&found) {
        plan.place(ws, &f.known);
        outs.push(Outcome {
            skipped_kinds: plan.skipped.clone(),
            ..Outcome::default()
        });
    }
    let more = look_up_the_rest(store, (&ids, &plans), &mut found, cache.as_deref(), stats).await?;
    lookup_keys.cache += more.cache;
    lookup_keys.database += more.database;
    timer.finish(Wave::MoreLookups)?;

    let afters = write_wave(store, (&ids, &plans, &found), &mut outs, stats).await?;
    timer.finish(Wave::Writes)?;
    if let Some(cache) = cache {
        for (ws, after) in ids.iter().zip(afters) {
            cache.remember(ws, after);
        }
    }
    Ok(BatchOutcome {
        workspaces: outs,
        wave_durations: timer.durations,
        round_trips: timer.round_trips,
        lookup_keys,
    })
}

/// The write wave of every workspace: steps 2, 4, 6 and 8, and step 7 sent
/// in the same wave, counted in `outs`; returns what each workspace's cache
/// entry becomes once it has landed.
async fn write_wave(
    store: &Store,
    (ids, plans, found): (&[&str], &[Plan], &[Found]),
    outs: &mut [Outcome],
    stats: &DbStats,
) -> Result<Vec<After>, StoreError> {
    let s = store.statements();
    let mut writes = Writes::default();
    let mut updates = Writes::default();
    let mut afters = Vec::with_capacity(plans.len());
    for (((ws, plan), f), out) in ids.iter().zip(plans).zip(found).zip(outs) {
        afters.push(plan_workspace(
            s,
            (&mut writes, &mut updates),
            (*ws, plan, f),
            out,
        ));
    }
    // The counters go first only so that a crash test letting the first n
    // writes land sees them land before the rows they count.
    futures::try_join!(updates.send(store, stats), writes.send(store, stats))?;
    Ok(afters)
}

/// Each workspace's plan, its writes timed by the batch's last record on
/// the workspace's partition ([`crate::clocks`]).
fn plan_batch(batch: &[WorkspaceRecords<'_>]) -> Vec<Plan> {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for r in batch.iter().flat_map(|(_, records)| records) {
        let clock = last.entry(r.partition).or_insert(r.clock);
        *clock = (*clock).max(r.clock);
    }
    batch
        .iter()
        .map(|(_, records)| {
            let mut plan = Plan::build(records);
            let partitions = records.iter().filter_map(|r| last.get(&r.partition));
            plan.clock = partitions.copied().max().unwrap_or(plan.clock);
            plan
        })
        .collect()
}

/// Plans one workspace's writes (pure): steps 2, 4, 6 and 8 into `writes`,
/// step 7 into `updates` (sent in the same wave), and counts them in `out`.
fn plan_workspace<'a>(
    s: &'a Statements,
    (writes, updates): (&mut Writes<'a>, &mut Writes<'a>),
    (ws, plan, f): (&'a str, &'a Plan, &Found),
    out: &mut Outcome,
) -> After {
    let at = |step: Step| plan.write_clock(step);
    let conv = &f.conversations;
    out.contacts_created =
        contacts::create_missing(writes, s, ws, (plan, &f.known), at(Step::CreateContacts));
    out.conversations_created =
        conversations::create_missing(writes, s, ws, (plan, conv), at(Step::CreateConversations));
    let (fresh, duplicates) = messages::split_new(plan, &f.index);
    let changes = BatchChanges::plan(plan, &f.index, &fresh);
    let moved: Vec<ConversationUpdate> = conversations::plan_updates(plan, &fresh, conv);
    let inserts = at(Step::InsertMessages);
    messages::insert(writes, s, ws, (&fresh, &changes, &f.index), inserts);
    inbox_rows::write_moves(writes, s, ws, (&moved, conv, &fresh), inserts);
    let total = inbox_rows::plan_total(&f.total, &fresh);
    out.duplicates_skipped = duplicates + plan.duplicates_in_batch;
    out.messages_inserted = fresh.len() as u64;
    apply_changes(writes, s, (ws, plan), changes, out);
    let at_update = at(Step::UpdateConversations);
    let after = After::of(
        plan,
        (&f.known, conv, &f.read),
        &moved,
        total.unwrap_or(f.total),
    );
    conversations::write_updates(updates, s, ws, moved, at_update);
    inbox_rows::write_total(updates, s, ws, total, at_update);
    after
}

/// Step 8 for one workspace: statuses, amendments, reactions and account
/// events, counted in `out`.
fn apply_changes<'a>(
    writes: &mut Writes<'a>,
    s: &'a Statements,
    (ws, plan): (&'a str, &'a Plan),
    changes: BatchChanges,
    out: &mut Outcome,
) {
    let at = plan.write_clock(Step::ApplyChanges);
    out.statuses_applied = statuses::apply(writes, s, ws, changes.statuses, at);
    out.amendments_applied = amendments::apply(writes, s, ws, changes.amendments, at);
    reactions::write(writes, s, ws, (&plan.reactions, &plan.account_events), at);
    out.reactions_written = plan.reactions.len() as u64;
    out.account_events_stored = plan.account_events.len() as u64;
}
