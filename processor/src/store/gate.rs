//! Tests only (feature `fault-injection`): a gate on the store's writes that
//! crashes a run inside a wave.
//!
//! Guarantee: while a [`WriteGate`] is armed, the writes of the store that
//! carries it go out one at a time, in the order the wave polls them;
//! exactly `allowed` of them land (an admitted write that fails does not
//! count), and every later one is refused with [`StoreError::InjectedWithin`]
//! before it is sent. A refused write has sent nothing, and no admitted write
//! is in flight when a refusal is made, so the run ends with exactly
//! `allowed` writes of the wave applied. Unarmed, the gate lets every write
//! through untouched.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, MutexGuard};

use super::StoreError;

/// Lets `allowed` writes of one wave land, then refuses the rest.
#[derive(Debug)]
pub struct WriteGate {
    wave: &'static str,
    allowed: usize,
    armed: AtomicBool,
    /// The writes landed while armed; holding the lock is the one turn to write.
    landed: Mutex<usize>,
}

/// The turn of one admitted write; [`Turn::landed`] counts it.
#[derive(Debug)]
pub struct Turn<'g>(MutexGuard<'g, usize>);

impl Turn<'_> {
    /// The admitted write has been applied by the database.
    pub fn landed(mut self) {
        *self.0 += 1;
    }
}

impl WriteGate {
    /// A gate, unarmed, for `wave` (named in the refusal).
    pub fn new(wave: &'static str, allowed: usize) -> Self {
        Self {
            wave,
            allowed,
            armed: AtomicBool::new(false),
            landed: Mutex::new(0),
        }
    }

    /// The wave under injection begins (or, `false`, has ended).
    pub fn arm(&self, armed: bool) {
        self.armed.store(armed, Ordering::SeqCst);
    }

    /// Waits for this write's turn: `None` when unarmed (write freely), a
    /// [`Turn`] while fewer than `allowed` writes have landed, else the refusal.
    pub async fn admit(&self) -> Result<Option<Turn<'_>>, StoreError> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let landed = self.landed.lock().await;
        if *landed >= self.allowed {
            return Err(StoreError::InjectedWithin {
                wave: self.wave,
                landed: *landed,
            });
        }
        Ok(Some(Turn(landed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits one write, which lands after yielding (as a request would);
    /// `false` when the gate refuses it.
    async fn write(gate: &WriteGate) -> bool {
        match gate.admit().await {
            Ok(Some(turn)) => {
                tokio::task::yield_now().await;
                turn.landed();
                true
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn an_armed_gate_lets_exactly_the_allowed_writes_of_a_wave_land() {
        let gate = WriteGate::new("writes", 2);
        assert!(matches!(gate.admit().await, Ok(None)), "unarmed: no turn");
        gate.arm(true);
        let wave = futures::future::join_all((0..5).map(|_| write(&gate))).await;
        assert_eq!(wave, [true, true, false, false, false]);
        let refused = gate.admit().await;
        assert!(matches!(
            refused,
            Err(StoreError::InjectedWithin {
                wave: "writes",
                landed: 2
            })
        ));
    }

    #[tokio::test]
    async fn a_failed_admitted_write_does_not_count_as_landed() {
        let gate = WriteGate::new("writes", 1);
        gate.arm(true);
        let failed = gate.admit().await;
        assert!(matches!(failed, Ok(Some(_))));
        drop(failed);
        assert!(write(&gate).await, "the allowance is still there");
        assert!(!write(&gate).await);
    }
}
