//! The batched pipeline for one workspace's share of a micro-batch.
//!
//! | step | what | requests |
//! |---|---|---|
//! | 1 `find_contacts` | contact identities (phones and user ids) | one lookup wave |
//! | 2 `create_contacts` | the missing identities | one write wave |
//! | 3 `find_conversations` | conversations, with counters and watermark | one lookup wave |
//! | 4 `create_conversations` | the missing ones (identity columns only) | one write wave |
//! | 5 `find_messages` | message-id index rows (dedupe and statuses) | one lookup wave |
//! | 6 `insert_messages` | messages and their index rows | one write wave |
//! | 7 `update_conversations` | each touched conversation once | one write wave |
//! | 8 `apply_changes` | statuses, edits, revokes, reactions, account events | one write wave |
//!
//! Each wave sends its requests concurrently, so a micro-batch costs at most
//! eight sequential round trips whatever its size.
//!
//! Exactly-once effect under at-least-once delivery: every write is an
//! idempotent upsert of values derived from the records alone, steps run in
//! this order, and the only non-idempotent quantity (counters in step 7) is
//! guarded by the conversation's watermark. Re-running the pipeline on the
//! same records, after a failure at any point, ends in the same rows.

mod amendments;
mod contacts;
mod conversations;
pub mod identity;
pub mod messages;
pub mod plan;
mod reactions;
mod statuses;

use std::time::{Duration, Instant};

use shared::webhook::Event;

use crate::decode::DecodedRecord;
use crate::store::{DbStats, Store, StoreError};
use plan::Plan;

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

/// Fault injection for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Crash right after this step has written.
    pub fail_after: Option<Step>,
    /// Refuse, as a permanent database error, every run holding this message id.
    pub refuse_message: Option<&'static str>,
}

/// What one workspace's pipeline did.
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
    pub skipped_kinds: Vec<String>,
    pub step_durations: Vec<(Step, Duration)>,
}

/// Runs the eight steps for one workspace. `records` are in offset order.
pub async fn run_workspace(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    faults: Faults,
    stats: &DbStats,
) -> Result<Outcome, StoreError> {
    let mut plan = Plan::build(records);
    let mut timer = StepTimer {
        stats,
        faults,
        started: Instant::now(),
        requests_before: stats.requests(),
    };
    let mut out = Outcome::default();

    if let Some(id) = faults.refuse_message {
        if records
            .iter()
            .flat_map(|r| &r.events)
            .any(|e| matches!(e, Event::Message(m) if m.message_id == id))
        {
            return Err(StoreError::InjectedPermanent(id));
        }
    }
    let known = contacts::find_existing(store, workspace_id, &plan, stats).await?;
    plan.place(workspace_id, &known);
    out.skipped_kinds.clone_from(&plan.skipped);
    timer.finish(Step::FindContacts, &mut out)?;
    out.contacts_created =
        contacts::create_missing(store, workspace_id, &plan, &known, stats).await?;
    timer.finish(Step::CreateContacts, &mut out)?;

    let conversation_state =
        conversations::find_existing(store, workspace_id, &plan, stats).await?;
    timer.finish(Step::FindConversations, &mut out)?;
    out.conversations_created =
        conversations::create_missing(store, workspace_id, &plan, &conversation_state, stats)
            .await?;
    timer.finish(Step::CreateConversations, &mut out)?;

    let index = messages::find_index(store, workspace_id, &plan, stats).await?;
    let (fresh, duplicates) = messages::split_new(&plan, &index);
    out.duplicates_skipped = duplicates + plan.duplicates_in_batch;
    timer.finish(Step::FindMessages, &mut out)?;
    messages::insert(store, workspace_id, &fresh, &index, stats).await?;
    out.messages_inserted = fresh.len() as u64;
    timer.finish(Step::InsertMessages, &mut out)?;

    let updates = conversations::plan_updates(&plan, &fresh, &conversation_state);
    conversations::write_updates(store, workspace_id, updates, stats).await?;
    timer.finish(Step::UpdateConversations, &mut out)?;

    apply_changes(store, workspace_id, &plan, &index, &fresh, stats, &mut out).await?;
    timer.finish(Step::ApplyChanges, &mut out)?;
    Ok(out)
}

/// Step 8: statuses, amendments, reactions and account events, in one wave.
async fn apply_changes(
    store: &Store,
    ws: &str,
    plan: &Plan,
    index: &std::collections::HashMap<String, messages::IndexEntry>,
    fresh: &[&plan::MessageDraft],
    stats: &DbStats,
    out: &mut Outcome,
) -> Result<(), StoreError> {
    let status_changes = statuses::plan_changes(&plan.statuses, index, fresh);
    let amend_changes = amendments::plan_changes(&plan.amendments, index, fresh);
    let (statuses, amendments, ()) = futures::try_join!(
        statuses::apply(store, ws, status_changes, stats),
        amendments::apply(store, ws, amend_changes, stats),
        reactions::write(store, ws, &plan.reactions, &plan.account_events, stats),
    )?;
    out.statuses_applied = statuses;
    out.amendments_applied = amendments;
    out.reactions_written = plan.reactions.len() as u64;
    out.account_events_stored = plan.account_events.len() as u64;
    Ok(())
}

struct StepTimer<'a> {
    stats: &'a DbStats,
    faults: Faults,
    started: Instant,
    requests_before: u64,
}

impl StepTimer<'_> {
    /// Closes a step: records its duration, counts its round trip if it sent
    /// anything, and fails if a fault is injected here.
    fn finish(&mut self, step: Step, out: &mut Outcome) -> Result<(), StoreError> {
        let now = Instant::now();
        out.step_durations.push((step, now - self.started));
        self.started = now;
        let requests = self.stats.requests();
        if requests > self.requests_before {
            self.stats.add_round_trip();
        }
        self.requests_before = requests;
        if self.faults.fail_after == Some(step) {
            return Err(StoreError::Injected(step.as_str()));
        }
        Ok(())
    }
}
