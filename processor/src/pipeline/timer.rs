//! The clock of a pipeline run: closes each step, records its duration and
//! counts its round trip.
//!
//! Guarantee: [`StepTimer::finish`] is called once per step, in order, and
//! counts a round trip only for a step that sent a request. Tests only
//! (feature `fault-injection`): with `fail_after`, the run fails right after
//! that step; with `fail_within`, the timer arms the store's
//! [`WriteGate`](crate::store::WriteGate) as that step's wave begins (the
//! gate then refuses the writes past its allowance), and fails the run when
//! the step closes, should every write of the wave have landed; with
//! `stop_after`, the process stops itself (SIGSTOP) once that step closes.

use std::time::{Duration, Instant};

use super::Step;
use crate::store::{DbStats, StoreError};

pub(super) struct StepTimer<'a> {
    pub(super) stats: &'a DbStats,
    /// Tests only: the step after which the run fails.
    #[cfg(feature = "fault-injection")]
    fail_after: Option<Step>,
    /// Tests only: the step in whose wave the run fails, and the gate its writes pass.
    #[cfg(feature = "fault-injection")]
    fail_within: Option<(Step, std::sync::Arc<crate::store::WriteGate>)>,
    /// Tests only: the step after which the process stops itself, and
    /// whether this run did.
    #[cfg(feature = "fault-injection")]
    stop_after: (Option<Step>, bool),
    started: Instant,
    requests_before: u64,
    pub(super) durations: Vec<(Step, Duration)>,
    pub(super) round_trips: u64,
}

impl<'a> StepTimer<'a> {
    pub(super) fn new(stats: &'a DbStats) -> Self {
        StepTimer {
            stats,
            #[cfg(feature = "fault-injection")]
            fail_after: None,
            #[cfg(feature = "fault-injection")]
            fail_within: None,
            #[cfg(feature = "fault-injection")]
            stop_after: (None, false),
            started: Instant::now(),
            requests_before: stats.requests(),
            durations: Vec::with_capacity(Step::ALL.len()),
            round_trips: 0,
        }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn failing_after(self, fail_after: Option<Step>) -> Self {
        StepTimer { fail_after, ..self }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn stopping_after(self, stop_after: Option<Step>) -> Self {
        StepTimer {
            stop_after: (stop_after, false),
            ..self
        }
    }

    /// Arms `gate` for the wave of `step` (at once when it is the first step).
    #[cfg(feature = "fault-injection")]
    pub(super) fn failing_within(
        self,
        step: Step,
        gate: std::sync::Arc<crate::store::WriteGate>,
    ) -> Self {
        gate.arm(step == Step::ALL[0]);
        StepTimer {
            fail_within: Some((step, gate)),
            ..self
        }
    }

    /// Closes a step: records its duration, counts its round trip if it sent
    /// anything, and (tests only) fails if a fault is injected here.
    pub(super) fn finish(&mut self, step: Step) -> Result<(), StoreError> {
        let now = Instant::now();
        self.durations.push((step, now - self.started));
        self.started = now;
        let requests = self.stats.requests();
        if requests > self.requests_before {
            self.stats.add_round_trip();
            self.round_trips += 1;
        }
        self.requests_before = requests;
        #[cfg(feature = "fault-injection")]
        self.inject(step)?;
        Ok(())
    }

    /// Tests only: the faults due as `step` closes.
    #[cfg(feature = "fault-injection")]
    fn inject(&mut self, step: Step) -> Result<(), StoreError> {
        if self.stop_after.1 {
            tracing::warn!(step = step.as_str(), "fault: the stopped batch went on");
        }
        if self.stop_after.0 == Some(step) && super::faults::stop_once() {
            self.stop_after.1 = true;
        }
        if let Some((target, gate)) = &self.fail_within {
            if *target == step {
                gate.arm(false);
                return Err(StoreError::Injected(step.as_str()));
            }
            let next = Step::ALL.iter().skip_while(|s| **s != step).nth(1);
            gate.arm(next == Some(target));
        }
        if self.fail_after == Some(step) {
            return Err(StoreError::Injected(step.as_str()));
        }
        Ok(())
    }
}
