//! The batched pipeline for one workspace's share of a micro-batch.
//!
//! | step | what | requests |
//! |---|---|---|
//! | 1 `find_contacts` | contacts of every phone | one lookup wave |
//! | 2 `create_contacts` | the missing ones | one write wave |
//! | 3 `find_conversations` | conversations, with counters and watermark | one lookup wave |
//! | 4 `create_conversations` | the missing ones (identity columns only) | one write wave |
//! | 5 `find_messages` | message-id index rows (dedupe and statuses) | one lookup wave |
//! | 6 `insert_messages` | messages and their index rows | one write wave |
//! | 7 `update_conversations` | each touched conversation once | one write wave |
//! | 8 `apply_statuses` | monotonic status changes | one write wave |
//!
//! Each wave sends its requests concurrently, so a micro-batch costs at most
//! eight sequential round trips whatever its size.
//!
//! Exactly-once effect under at-least-once delivery: every write is an
//! idempotent upsert of values derived from the records alone, steps run in
//! this order, and the only non-idempotent quantity (counters in step 7) is
//! guarded by the conversation's watermark. Re-running the pipeline on the
//! same records, after a failure at any point, ends in the same rows.

mod contacts;
mod conversations;
mod messages;
pub mod plan;
mod statuses;

use std::time::{Duration, Instant};

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
    ApplyStatuses,
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
        Step::ApplyStatuses,
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
            Step::ApplyStatuses => "apply_statuses",
        }
    }
}

/// Crash injection for tests: fail right after a step has written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub fail_after: Option<Step>,
}

/// What one workspace's pipeline did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub messages_inserted: u64,
    pub duplicates_skipped: u64,
    pub contacts_created: u64,
    pub conversations_created: u64,
    pub statuses_applied: u64,
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
    let plan = Plan::build(workspace_id, records);
    let mut out = Outcome {
        skipped_kinds: plan.skipped.clone(),
        ..Outcome::default()
    };
    let mut timer = StepTimer {
        stats,
        faults,
        started: Instant::now(),
        requests_before: stats.requests(),
    };

    let existing_contacts = contacts::find_existing(store, workspace_id, &plan, stats).await?;
    timer.finish(Step::FindContacts, &mut out)?;
    out.contacts_created =
        contacts::create_missing(store, workspace_id, &plan, &existing_contacts, stats).await?;
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

    let changes = statuses::plan_changes(&plan.statuses, &index, &fresh);
    out.statuses_applied = statuses::apply(store, workspace_id, changes, stats).await?;
    timer.finish(Step::ApplyStatuses, &mut out)?;
    Ok(out)
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
