//! Fault injection for the integration tests (cargo feature
//! `fault-injection`, enabled only by the `inboxflow-tests` crate; production
//! builds do not contain this module).
//!
//! Guarantee: with [`Faults::default`] these entry points behave exactly as
//! [`super::run_batch`] and [`super::run_workspace`], and the consumer seeks
//! as it would. Each fault, when set:
//! - `fail_after` fails the run with [`StoreError::Injected`] right after
//!   that wave has been answered (as a crash would);
//! - `fail_within: (wave, n)` lets exactly `n` writes (requests) of that
//!   wave land, one at a time, and fails the run with
//!   [`StoreError::InjectedWithin`] before the others are sent (the store's
//!   [`WriteGate`]); a wave of `n` writes or fewer lands whole and the run
//!   fails as the wave closes;
//! - `refuse_message` fails, with the permanent
//!   [`StoreError::InjectedPermanent`], every run holding that message,
//!   before anything is written;
//! - `outage` fails every run, before anything is written, with the
//!   transient [`StoreError::InjectedOutage`] while the switch is on (the
//!   consumer pauses and retries, as during a database outage);
//! - `fail_seeks` makes every seek of the consumer report failure without
//!   seeking (the position stays past the record, as after a real failed
//!   seek), counting each one;
//! - `stop_after` stops the whole OS process with SIGSTOP right after that
//!   wave, once per process (a real zombie: librdkafka's threads freeze
//!   too, so the group evicts it); after SIGCONT the batch goes on, and
//!   each later wave of it logs `fault: the stopped batch went on` so a
//!   test can tell when its stale writes were sent. The binary reads it from
//!   [`STOP_AFTER_ENV`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use shared::webhook::Event;

use super::{BatchOutcome, Outcome, OwnerCache, Wave, WaveTimer, WorkspaceRecords};
use crate::decode::DecodedRecord;
use crate::store::{DbStats, Store, StoreError, WriteGate};

/// The faults to inject.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Crash right after this wave has been answered.
    pub fail_after: Option<Wave>,
    /// Crash inside this wave, once this many of its writes have landed.
    pub fail_within: Option<(Wave, usize)>,
    /// Refuse, as a permanent database error, every run holding this message id.
    pub refuse_message: Option<&'static str>,
    /// While on, every run fails with a transient database error.
    pub outage: Option<&'static AtomicBool>,
    /// Every seek fails, unperformed; each is counted here.
    pub fail_seeks: Option<&'static AtomicUsize>,
    /// Stop the process (SIGSTOP) right after this wave, once.
    pub stop_after: Option<Wave>,
}

/// The environment variable that sets [`Faults::stop_after`] in the
/// `processor` binary (a wave name, e.g. `writes`).
pub const STOP_AFTER_ENV: &str = "PROCESSOR_FAULT_STOP_AFTER";

impl Faults {
    /// The faults the environment asks for (only [`STOP_AFTER_ENV`]).
    pub fn from_env() -> Self {
        let stop_after = std::env::var(STOP_AFTER_ENV)
            .ok()
            .and_then(|name| Wave::from_name(&name));
        Faults {
            stop_after,
            ..Faults::default()
        }
    }
}

/// Whether this process has already stopped itself.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Stops this process with SIGSTOP (through `kill`, without unsafe code)
/// the first time it is called; returns whether it did. The call returns
/// once the process is continued.
pub(super) fn stop_once() -> bool {
    if STOPPED.swap(true, Ordering::SeqCst) {
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

/// [`super::run_batch`] (or [`super::run_batch_cached`] with `cache`), with `faults`.
pub async fn run_batch(
    store: &Store,
    batch: &[WorkspaceRecords<'_>],
    faults: Faults,
    stats: &DbStats,
    cache: Option<&mut OwnerCache>,
) -> Result<BatchOutcome, StoreError> {
    if let Some(id) = faults.refuse_message {
        let mut events = batch.iter().flat_map(|(_, r)| r).flat_map(|r| &r.events);
        if events.any(|e| matches!(e, Event::Message(m) if m.message_id == id)) {
            return Err(StoreError::InjectedPermanent(id));
        }
    }
    if faults.outage.is_some_and(|on| on.load(Ordering::SeqCst)) {
        return Err(StoreError::InjectedOutage);
    }
    let timer = WaveTimer::new(stats)
        .failing_after(faults.fail_after)
        .stopping_after(faults.stop_after);
    match faults.fail_within {
        Some((wave, landing)) => {
            let gate = Arc::new(WriteGate::new(wave.as_str(), landing));
            let gated = store.with_gate(Arc::clone(&gate));
            super::run_waves(&gated, batch, timer.failing_within(wave, gate), cache).await
        }
        None => super::run_waves(store, batch, timer, cache).await,
    }
}

/// [`super::run_workspace`], with `faults`.
pub async fn run_workspace(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
    faults: Faults,
    stats: &DbStats,
) -> Result<Outcome, StoreError> {
    let records = [(workspace_id, records.to_vec())];
    let mut batch = run_batch(store, &records, faults, stats, None).await?;
    Ok(batch.workspaces.pop().unwrap_or_default())
}

/// Whether the consumer's seek must fail (unperformed); counts the failure.
pub fn seek_fails(faults: &Faults) -> bool {
    faults.fail_seeks.is_some_and(|failed| {
        failed.fetch_add(1, Ordering::SeqCst);
        true
    })
}
