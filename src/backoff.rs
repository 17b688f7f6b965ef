//! Capped exponential backoff for reconnects and retries, shared by every thread that owns a
//! connection (the database threads, the supervisor, the sessions). Pure: no clock, no sleep.

use std::time::Duration;

/// Capped exponential backoff: min, 2·min, 4·min … max, reset on success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next try, counting one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = Self::delay_for(self.min, self.max, self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay after `failures` earlier failures, without state.
    pub(crate) fn delay_for(min: Duration, max: Duration, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        min.saturating_mul(factor).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let delays: Vec<u64> = (0..6).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
        assert_eq!(
            Backoff::delay_for(Duration::from_secs(1), Duration::from_secs(60), 1000),
            Duration::from_secs(60)
        );
    }
}
