//! The clock of a pipeline run: closes each wave, records its duration and
//! counts its round trip.
//!
//! Guarantee: [`WaveTimer::finish`] is called once per wave, in order, and
//! counts a round trip only for a wave that sent a request. Tests only
//! (feature `fault-injection`): with `fail_after`, the run fails right after
//! that wave; with `fail_within`, the timer arms the store's
//! [`WriteGate`](crate::store::WriteGate) as that wave begins (the gate then
//! refuses the writes past its allowance), and fails the run when the wave
//! closes, should every write of it have landed; with `stop_after`, the
//! process stops itself (SIGSTOP) once that wave closes.

use std::time::{Duration, Instant};

use super::Wave;
use crate::store::{DbStats, StoreError};

pub(super) struct WaveTimer<'a> {
    pub(super) stats: &'a DbStats,
    /// Tests only: the wave after which the run fails.
    #[cfg(feature = "fault-injection")]
    fail_after: Option<Wave>,
    /// Tests only: the wave in which the run fails, and the gate its writes pass.
    #[cfg(feature = "fault-injection")]
    fail_within: Option<(Wave, std::sync::Arc<crate::store::WriteGate>)>,
    /// Tests only: the wave after which the process stops itself, and
    /// whether this run did.
    #[cfg(feature = "fault-injection")]
    stop_after: (Option<Wave>, bool),
    started: Instant,
    requests_before: u64,
    pub(super) durations: Vec<(Wave, Duration)>,
    pub(super) round_trips: u64,
}

impl<'a> WaveTimer<'a> {
    pub(super) fn new(stats: &'a DbStats) -> Self {
        WaveTimer {
            stats,
            #[cfg(feature = "fault-injection")]
            fail_after: None,
            #[cfg(feature = "fault-injection")]
            fail_within: None,
            #[cfg(feature = "fault-injection")]
            stop_after: (None, false),
            started: Instant::now(),
            requests_before: stats.requests(),
            durations: Vec::with_capacity(Wave::ALL.len()),
            round_trips: 0,
        }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn failing_after(self, fail_after: Option<Wave>) -> Self {
        WaveTimer { fail_after, ..self }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn stopping_after(self, stop_after: Option<Wave>) -> Self {
        WaveTimer {
            stop_after: (stop_after, false),
            ..self
        }
    }

    /// Arms `gate` for `wave` (at once when it is the first wave).
    #[cfg(feature = "fault-injection")]
    pub(super) fn failing_within(
        self,
        wave: Wave,
        gate: std::sync::Arc<crate::store::WriteGate>,
    ) -> Self {
        gate.arm(wave == Wave::ALL[0]);
        WaveTimer {
            fail_within: Some((wave, gate)),
            ..self
        }
    }

    /// Closes a wave: records its duration, counts its round trip if it sent
    /// anything, and (tests only) fails if a fault is injected here.
    pub(super) fn finish(&mut self, wave: Wave) -> Result<(), StoreError> {
        let now = Instant::now();
        let requests = self.stats.requests();
        let sent = requests > self.requests_before;
        if sent {
            self.durations.push((wave, now - self.started));
        }
        self.started = now;
        if sent {
            self.stats.add_round_trip();
            self.round_trips += 1;
        }
        self.requests_before = requests;
        #[cfg(feature = "fault-injection")]
        self.inject(wave)?;
        Ok(())
    }

    /// Tests only: the faults due as `wave` closes.
    #[cfg(feature = "fault-injection")]
    fn inject(&mut self, wave: Wave) -> Result<(), StoreError> {
        if self.stop_after.1 {
            tracing::warn!(wave = wave.as_str(), "fault: the stopped batch went on");
        }
        if self.stop_after.0 == Some(wave) && super::faults::stop_once() {
            self.stop_after.1 = true;
        }
        if let Some((target, gate)) = &self.fail_within {
            if *target == wave {
                gate.arm(false);
                return Err(StoreError::Injected(wave.as_str()));
            }
            gate.arm(wave.next() == Some(*target));
        }
        if self.fail_after == Some(wave) {
            return Err(StoreError::Injected(wave.as_str()));
        }
        Ok(())
    }
}
