//! Fault injection for the integration tests (cargo feature
//! `fault-injection`, enabled only by the `inboxflow-tests` crate; production
//! builds do not contain this module).
//!
//! Guarantee: with [`Faults::default`] these entry points behave exactly as
//! [`super::run_batch`] and [`super::run_workspace`]. A `fail_after` step
//! fails the run with [`StoreError::Injected`] right after that step has
//! written (as a crash would); a `refuse_message` id fails, with the
//! permanent [`StoreError::InjectedPermanent`], every run holding that
//! message, before anything is written. A `stop_after` step stops the whole
//! OS process with SIGSTOP right after that step has written, once per
//! process (a real zombie: librdkafka's threads freeze too, so the group
//! evicts it); after SIGCONT the batch goes on, and each later step of it
//! logs `fault: the stopped batch went on` so a test can tell when its
//! stale writes were sent. The binary reads it from [`STOP_AFTER_ENV`].

use shared::webhook::Event;

use super::{BatchOutcome, Outcome, Step, StepTimer, WorkspaceRecords};
use crate::decode::DecodedRecord;
use crate::store::{DbStats, Store, StoreError};

/// The faults to inject.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Crash right after this step has written.
    pub fail_after: Option<Step>,
    /// Refuse, as a permanent database error, every run holding this message id.
    pub refuse_message: Option<&'static str>,
    /// Stop the process (SIGSTOP) right after this step has written, once.
    pub stop_after: Option<Step>,
}

/// The environment variable that sets [`Faults::stop_after`] in the
/// `processor` binary (a step name, e.g. `insert_messages`).
pub const STOP_AFTER_ENV: &str = "PROCESSOR_FAULT_STOP_AFTER";

impl Faults {
    /// The faults the environment asks for (only [`STOP_AFTER_ENV`]).
    pub fn from_env() -> Self {
        let stop_after = std::env::var(STOP_AFTER_ENV)
            .ok()
            .and_then(|name| Step::ALL.into_iter().find(|s| s.as_str() == name));
        Faults {
            stop_after,
            ..Faults::default()
        }
    }
}

/// Whether this process has already stopped itself.
static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops this process with SIGSTOP (through `kill`, without unsafe code)
/// the first time it is called; returns whether it did. The call returns
/// once the process is continued.
pub(super) fn stop_once() -> bool {
    if STOPPED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return false;
    }
    tracing::warn!("fault: stopping this process (SIGSTOP) mid-batch");
    // Blocking on purpose: the whole process, this thread included, is
    // about to be stopped.
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    true
}

/// [`super::run_batch`], with `faults`.
pub async fn run_batch(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    faults: Faults,
    stats: &DbStats,
) -> Result<BatchOutcome, StoreError> {
    if let Some(id) = faults.refuse_message {
        let mut events = batch.iter().flat_map(|(_, r)| r).flat_map(|r| &r.events);
        if events.any(|e| matches!(e, Event::Message(m) if m.message_id == id)) {
            return Err(StoreError::InjectedPermanent(id));
        }
    }
    let timer = StepTimer::new(stats)
        .failing_after(faults.fail_after)
        .stopping_after(faults.stop_after);
    super::run_steps(store, batch, timer).await
}

/// [`super::run_workspace`], with `faults`.
pub async fn run_workspace(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    faults: Faults,
    stats: &DbStats,
) -> Result<Outcome, StoreError> {
    let mut batch = run_batch(store, &[(workspace_id, records.to_vec())], faults, stats).await?;
    Ok(batch.workspaces.pop().unwrap_or_default())
}
