//! The batched pipeline over a whole micro-batch: eight steps, each one wave
//! holding the requests of every workspace of the batch.
//!
//! | step | what | requests |
//! |---|---|---|
//! | 1 `find_contacts` | contact identities (phones and user ids) | one lookup wave |
//! | 2 `create_contacts` | the missing identities | one write wave |
//! | 3 `find_conversations` | conversations, with counters and watermark | one lookup wave |
//! | 4 `create_conversations` | the missing ones (identity columns only) | one write wave |
//! | 5 `find_messages` | message-id index rows (dedupe and statuses, [`message_index`]) | one lookup wave |
//! | 6 `insert_messages` | messages and their index rows | one write wave |
//! | 7 `update_conversations` | each touched conversation once | one write wave |
//! | 8 `apply_changes` | statuses, edits, revokes, reactions, account events | one write wave |
//!
//! Each wave sends its requests concurrently, so a micro-batch costs at most
//! eight sequential waves whatever its size and however many workspaces it
//! spans. The store bounds the requests in flight
//! (`cql.max_concurrent_requests`): a wave of more requests than that takes
//! ceil(requests / bound) turns of the network within the wave.
//!
//! Exactly-once effect under at-least-once delivery: every write is an
//! idempotent upsert of values derived from the records alone, steps run in
//! this order, and the only non-idempotent quantity (counters in step 7) is
//! guarded by the conversation's watermark. Re-running the pipeline on the
//! same records, after a failure at any point, ends in the same rows.
//!
//! Fencing: every write of a workspace's share of the batch carries the
//! write clock of its last record plus its step's slot ([`Step::slot`],
//! [`crate::clocks`]) as its client timestamp, and every value a batch
//! writes reflects all of its records (step 6 folds the batch's own
//! statuses and edits into the rows it inserts). A write at a higher clock
//! therefore never holds less than one at a lower clock: a processor that
//! lost its partitions mid-batch cannot overwrite its successor's newer
//! rows, and a re-run of fewer records after a crash never needs to
//! overwrite what the crashed attempt wrote.

mod amendments;
mod contacts;
mod conversations;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod identity;
mod inbox_rows;
pub mod message_index;
pub mod messages;
pub mod plan;
mod reactions;
mod statuses;
mod timer;

use std::collections::HashMap;
use std::time::Duration;

use crate::decode::DecodedRecord;
use crate::store::{DbStats, Store, StoreError};
use conversations::{ConversationState, ConversationUpdate};
use messages::BatchChanges;
use plan::{MessageDraft, Plan};
use timer::StepTimer;
use uuid::Uuid;

/// The pipeline's steps, in order. Names are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    FindContacts,
    CreateContacts,
    FindConversations,
    CreateConversations,
    FindMessages,
    InsertMessages,
    UpdateConversations,
    ApplyChanges,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::FindContacts,
        Step::CreateContacts,
        Step::FindConversations,
        Step::CreateConversations,
        Step::FindMessages,
        Step::InsertMessages,
        Step::UpdateConversations,
        Step::ApplyChanges,
    ];

    /// The step's slot in a record's write clock: a step's writes carry the
    /// plan's clock plus this, so a later step's write of the same cell in
    /// the same batch (a status after its message's insert) wins.
    pub fn slot(self) -> i64 {
        Step::ALL
            .iter()
            .position(|s| *s == self)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::FindContacts => "find_contacts",
            Step::CreateContacts => "create_contacts",
            Step::FindConversations => "find_conversations",
            Step::CreateConversations => "create_conversations",
            Step::FindMessages => "find_messages",
            Step::InsertMessages => "insert_messages",
            Step::UpdateConversations => "update_conversations",
            Step::ApplyChanges => "apply_changes",
        }
    }
}

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
    /// How long each step's wave took, across every workspace.
    pub step_durations: Vec<(Step, Duration)>,
    /// Sequential waves that sent at least one request.
    pub round_trips: u64,
}

/// One workspace's records, in offset order.
pub type WorkspaceRecords<'r> = (&'r str, Vec<&'r DecodedRecord>);

/// Runs the eight steps for one workspace. `records` are in offset order.
pub async fn run_workspace(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    stats: &DbStats,
) -> Result<Outcome, StoreError> {
    let mut batch = run_batch(store, &[(workspace_id, records.to_vec())], stats).await?;
    Ok(batch.workspaces.pop().unwrap_or_default())
}

/// Runs the eight steps for every workspace of a micro-batch: each step is
/// one wave holding the requests of every workspace, so the sequential depth
/// is the number of steps, whatever the number of workspaces (the store
/// bounds the requests in flight).
pub async fn run_batch(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    stats: &DbStats,
) -> Result<BatchOutcome, StoreError> {
    run_steps(store, batch, StepTimer::new(stats)).await
}

/// The eight steps, closed one by one by `timer`.
async fn run_steps(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    mut timer: StepTimer<'_>,
) -> Result<BatchOutcome, StoreError> {
    let stats = timer.stats;
    let ids: Vec<&str> = batch.iter().map(|(id, _)| *id).collect();
    let mut plans: Vec<Plan> = batch.iter().map(|(_, r)| Plan::build(r)).collect();
    let mut outs: Vec<Outcome> = batch.iter().map(|_| Outcome::default()).collect();
    find_and_create_contacts(store, &ids, &mut plans, &mut outs, &mut timer).await?;
    let (conv, totals) =
        find_and_create_conversations(store, &ids, &plans, &mut outs, &mut timer).await?;
    let (changes, fresh, updates) =
        find_and_insert_messages(store, &ids, &plans, &conv, &mut outs, &mut timer).await?;

    let each = || ids.iter().copied().zip(plans.iter());
    let steps = each().zip(updates).zip(fresh.iter().zip(&totals));
    wave(
        steps.map(|(((ws, p), updates), ((f, _), total))| async move {
            let total = inbox_rows::plan_total(total, f);
            let at = p.write_clock(Step::UpdateConversations);
            futures::try_join!(
                conversations::write_updates(store, ws, updates, at, stats),
                inbox_rows::write_total(store, ws, total, at, stats),
            )
            .map(|_| ())
        }),
    )
    .await?;
    timer.finish(Step::UpdateConversations)?;

    let applied = wave(
        each()
            .zip(changes)
            .map(|((ws, p), c)| apply_changes(store, ws, p, c, stats)),
    )
    .await?;
    for ((out, plan), (statuses, amendments)) in outs.iter_mut().zip(&plans).zip(applied) {
        out.statuses_applied = statuses;
        out.amendments_applied = amendments;
        out.reactions_written = plan.reactions.len() as u64;
        out.account_events_stored = plan.account_events.len() as u64;
    }
    timer.finish(Step::ApplyChanges)?;
    Ok(BatchOutcome {
        workspaces: outs,
        step_durations: timer.durations,
        round_trips: timer.round_trips,
    })
}

/// Steps 1 and 2: finds the identities, places every event of each plan
/// with them, and creates the missing ones.
async fn find_and_create_contacts(
    store: &Store,
    ids: &[&str],
    plans: &mut [Plan],
    outs: &mut [Outcome],
    timer: &mut StepTimer<'_>,
) -> Result<(), StoreError> {
    let stats = timer.stats;
    let known = wave(
        ids.iter()
            .zip(plans.iter())
            .map(|(ws, p)| contacts::find_existing(store, ws, p, stats)),
    )
    .await?;
    for ((ws, plan), (known, out)) in ids
        .iter()
        .zip(plans.iter_mut())
        .zip(known.iter().zip(outs.iter_mut()))
    {
        plan.place(ws, known);
        out.skipped_kinds.clone_from(&plan.skipped);
    }
    timer.finish(Step::FindContacts)?;
    let created = wave(
        ids.iter()
            .zip(plans.iter())
            .zip(&known)
            .map(|((ws, p), k)| {
                let at = p.write_clock(Step::CreateContacts);
                contacts::create_missing(store, ws, p, k, at, stats)
            }),
    )
    .await?;
    set(outs, created, |o, n| o.contacts_created = n);
    timer.finish(Step::CreateContacts)
}

/// Each workspace's conversations (with their state) and inbound total.
type Conversations = (
    Vec<HashMap<Uuid, ConversationState>>,
    Vec<inbox_rows::WorkspaceTotal>,
);

/// Steps 3 and 4: finds the conversations (with their state) and the
/// workspaces' inbound totals, and creates the missing conversations.
async fn find_and_create_conversations(
    store: &Store,
    ids: &[&str],
    plans: &[Plan],
    outs: &mut [Outcome],
    timer: &mut StepTimer<'_>,
) -> Result<Conversations, StoreError> {
    let stats = timer.stats;
    let each = || ids.iter().copied().zip(plans.iter());
    let (conv, totals) = futures::try_join!(
        wave(each().map(|(ws, p)| conversations::find_existing(store, ws, p, stats))),
        inbox_rows::find_totals(store, ids, stats),
    )?;
    timer.finish(Step::FindConversations)?;
    let created = wave(each().zip(&conv).map(|((ws, p), c)| {
        let at = p.write_clock(Step::CreateConversations);
        conversations::create_missing(store, ws, p, c, at, stats)
    }))
    .await?;
    set(outs, created, |o, n| o.conversations_created = n);
    timer.finish(Step::CreateConversations)?;
    Ok((conv, totals))
}

/// Each workspace's own statuses and amendments (for step 8), its messages
/// to store with the count of duplicates, and its conversation updates.
type Found<'p> = (
    Vec<BatchChanges>,
    Vec<(Vec<&'p MessageDraft>, u64)>,
    Vec<Vec<ConversationUpdate>>,
);

/// Steps 5 and 6: reads the message index, drops the duplicates, plans the
/// conversation updates, and inserts the messages beside the recency-list
/// moves those updates make.
async fn find_and_insert_messages<'p>(
    store: &Store,
    ids: &[&str],
    plans: &'p [Plan],
    conv: &[HashMap<Uuid, ConversationState>],
    outs: &mut [Outcome],
    timer: &mut StepTimer<'_>,
) -> Result<Found<'p>, StoreError> {
    let stats = timer.stats;
    let each = || ids.iter().copied().zip(plans.iter());
    let index = wave(each().map(|(ws, p)| messages::find_index(store, ws, p, stats))).await?;
    let fresh: Vec<_> = plans
        .iter()
        .zip(&index)
        .map(|(p, i)| messages::split_new(p, i))
        .collect();
    let changes: Vec<BatchChanges> = plans
        .iter()
        .zip(&index)
        .zip(&fresh)
        .map(|((p, i), (f, _))| BatchChanges::plan(p, i, f))
        .collect();
    timer.finish(Step::FindMessages)?;
    let updates: Vec<Vec<ConversationUpdate>> = plans
        .iter()
        .zip(&fresh)
        .zip(conv)
        .map(|((p, (f, _)), c)| conversations::plan_updates(p, f, c))
        .collect();
    wave(
        each()
            .zip(fresh.iter().zip(&changes))
            .zip(&index)
            .zip(updates.iter().zip(conv))
            .map(|((((ws, p), ((f, _), ch)), i), (u, c))| async move {
                let at = p.write_clock(Step::InsertMessages);
                futures::try_join!(
                    messages::insert(store, ws, (f, ch), i, at, stats),
                    inbox_rows::write_moves(store, ws, u, c, at, stats),
                )
                .map(|_| ())
            }),
    )
    .await?;
    for ((out, plan), (f, duplicates)) in outs.iter_mut().zip(plans).zip(&fresh) {
        out.duplicates_skipped = duplicates + plan.duplicates_in_batch;
        out.messages_inserted = f.len() as u64;
    }
    timer.finish(Step::InsertMessages)?;
    Ok((changes, fresh, updates))
}

/// All the futures of one step, concurrently: one sequential round trip.
async fn wave<T, F>(futures: impl Iterator<Item = F>) -> Result<Vec<T>, StoreError>
where
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    futures::future::try_join_all(futures).await
}

fn set(outs: &mut [Outcome], values: Vec<u64>, field: impl Fn(&mut Outcome, u64)) {
    for (out, n) in outs.iter_mut().zip(values) {
        field(out, n);
    }
}

/// Step 8 for one workspace: statuses, amendments, reactions and account
/// events. Returns (statuses, amendments) applied.
async fn apply_changes(
    store: &Store,
    ws: &str,
    plan: &Plan,
    changes: BatchChanges,
    stats: &DbStats,
) -> Result<(u64, u64), StoreError> {
    let at = plan.write_clock(Step::ApplyChanges);
    let (statuses, amendments, ()) = futures::try_join!(
        statuses::apply(store, ws, changes.statuses, at, stats),
        amendments::apply(store, ws, changes.amendments, at, stats),
        reactions::write(store, ws, &plan.reactions, &plan.account_events, at, stats),
    )?;
    Ok((statuses, amendments))
}
