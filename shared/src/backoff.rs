//! Capped exponential backoff, as plain arithmetic.
//!
//! Guarantee: [`Backoff::next`] returns the initial delay first, then twice
//! the previous delay each time, never more than the cap (except a first
//! delay already above it, which is returned as given); [`Backoff::reset`]
//! starts the sequence again. It never sleeps: callers await the delay
//! however suits them (a plain sleep, or a wait that also watches shutdown).

use std::time::Duration;

/// The delays between attempts of one retried operation.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait before the next attempt; advances the sequence.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        let current = self.next;
        self.next = current.checked_mul(2).unwrap_or(self.max).min(self.max);
        current
    }

    /// Starts the sequence again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = Backoff::new(ms(100), ms(500));
        let seen: Vec<_> = (0..5).map(|_| b.next()).collect();
        assert_eq!(seen, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
    }

    #[test]
    fn reset_starts_again_from_the_initial_delay() {
        let mut b = Backoff::new(ms(10), ms(1000));
        b.next();
        b.next();
        b.reset();
        assert_eq!(b.next(), ms(10));
    }

    #[test]
    fn a_huge_delay_saturates_at_the_cap_instead_of_overflowing() {
        let mut b = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(b.next(), Duration::MAX);
        assert_eq!(b.next(), Duration::MAX);
    }
}
