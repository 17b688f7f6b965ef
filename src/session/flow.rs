//! Flow control that is not windowing: the per-server rate cap (a token bucket counted in
//! segments, so a 3-part message costs 3), the pause that follows throttling, and capped
//! exponential backoff for reconnects and retries. Pure: time is passed in.

use std::time::{Duration, Instant};

/// Segments per second with a burst of one tenth of a second's worth (at least one).
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// `per_second == 0` means no cap.
    pub fn new(per_second: u32, now: Instant) -> Option<Self> {
        if per_second == 0 {
            return None;
        }
        let per_second = f64::from(per_second);
        let burst = (per_second / 10.0).max(1.0);
        Some(TokenBucket {
            per_second,
            burst,
            tokens: burst,
            updated: now,
        })
    }

    /// Takes one token if there is one; otherwise says when the next one arrives.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.per_second;
            Err(now + Duration::from_secs_f64(wait))
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
    }
}

/// Capped exponential backoff: min, 2·min, 4·min … max, reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next try, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = Self::delay_for(self.min, self.max, self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay after `failures` earlier failures, without state.
    pub fn delay_for(min: Duration, max: Duration, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        min.saturating_mul(factor).min(max)
    }
}

/// How long submitting pauses after ESME_RTHROTTLED / ESME_RMSGQFUL: doubles while the SMSC
/// keeps refusing and shrinks again as submissions succeed.
#[derive(Debug, Clone)]
pub struct ThrottlePause {
    current: Duration,
    min: Duration,
    max: Duration,
}

impl ThrottlePause {
    pub fn new(min: Duration, max: Duration) -> Self {
        ThrottlePause {
            current: Duration::ZERO,
            min,
            max,
        }
    }

    /// A refusal: the pause to take now.
    pub fn on_throttled(&mut self) -> Duration {
        self.current = (self.current * 2).clamp(self.min, self.max);
        self.current
    }

    /// An accepted submission: relax a little.
    pub fn on_accepted(&mut self) {
        self.current = self.current.mul_f64(0.9);
        if self.current < self.min {
            self.current = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_its_rate_and_no_more() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, t0).unwrap();
        let mut taken = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(1) {
            match bucket.take(now) {
                Ok(()) => taken += 1,
                Err(next) => now = next,
            }
        }
        // the burst of 10 plus 100 per second
        assert!((100..=111).contains(&taken), "took {taken}");
        assert!(TokenBucket::new(0, t0).is_none());
    }

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

    #[test]
    fn throttle_pause_grows_and_relaxes() {
        let mut pause = ThrottlePause::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(pause.on_throttled(), Duration::from_millis(100));
        assert_eq!(pause.on_throttled(), Duration::from_millis(200));
        for _ in 0..100 {
            pause.on_accepted();
        }
        assert_eq!(pause.on_throttled(), Duration::from_millis(100));
    }
}
