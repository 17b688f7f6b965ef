//! Flow control that is not windowing: the per-server rate cap (a token bucket counted in
//! segments, so a 3-part message costs 3) and the pause and the shrinking window that follow
//! throttling (`Congestion`). Pure: time is passed in.

use std::time::{Duration, Instant};

/// Segments per second with a burst of one tenth of a second's worth (at least one).
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// `per_second == 0` means no cap.
    pub(crate) fn new(per_second: u32, now: Instant) -> Option<Self> {
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
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Instant> {
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

/// How long submitting pauses after ESME_RTHROTTLED / ESME_RMSGQFUL: doubles while the SMSC
/// keeps refusing and shrinks again as submissions succeed.
#[derive(Debug, Clone)]
pub(crate) struct ThrottlePause {
    current: Duration,
    min: Duration,
    max: Duration,
}

impl ThrottlePause {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        ThrottlePause {
            current: Duration::ZERO,
            min,
            max,
        }
    }

    /// A refusal: the pause to take now.
    pub(crate) fn on_throttled(&mut self) -> Duration {
        self.current = (self.current * 2).clamp(self.min, self.max);
        self.current
    }

    /// An accepted submission: relax. Halving (not a gentler factor) keeps the pause short
    /// when only a fraction of submits is refused: at 30 % refusals a factor of 0.9 lets the
    /// doublings win and the pause climbs to its maximum while most submits succeed.
    pub(crate) fn on_accepted(&mut self) {
        self.current /= 2;
        if self.current < self.min {
            self.current = Duration::ZERO;
        }
    }
}

/// The reaction to ESME_RTHROTTLED / ESME_RMSGQFUL: a pause, and an effective window that
/// halves on each congestion event and grows back by one per window's worth of accepted
/// submits (additive increase, multiplicative decrease), up to the configured window.
///
/// Refusals that arrive while paused answer submits sent before the reaction: they are the
/// same event and change nothing, so one burst of refusals is one halving, not many.
#[derive(Debug, Clone)]
pub(crate) struct Congestion {
    max_window: usize,
    window: usize,
    accepted_at_window: usize,
    pause: ThrottlePause,
    paused_until: Option<Instant>,
}

impl Congestion {
    pub(crate) fn new(max_window: usize, min_pause: Duration, max_pause: Duration) -> Self {
        let max_window = max_window.max(1);
        Congestion {
            max_window,
            window: max_window,
            accepted_at_window: 0,
            pause: ThrottlePause::new(min_pause, max_pause),
            paused_until: None,
        }
    }

    /// How many submits may be outstanding now.
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// A refusal at `now`: when it is a new event, shrinks the window and returns the end of
    /// the pause to take; `None` when already paused for it.
    pub(crate) fn on_throttled(&mut self, now: Instant) -> Option<Instant> {
        if self.paused_until.is_some_and(|until| now < until) {
            return None;
        }
        self.window = (self.window / 2).max(1);
        self.accepted_at_window = 0;
        let until = now + self.pause.on_throttled();
        self.paused_until = Some(until);
        Some(until)
    }

    /// An accepted submit.
    pub(crate) fn on_accepted(&mut self) {
        self.pause.on_accepted();
        if self.window >= self.max_window {
            return;
        }
        self.accepted_at_window += 1;
        if self.accepted_at_window >= self.window {
            self.window += 1;
            self.accepted_at_window = 0;
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
    fn congestion_halves_the_window_once_per_event_and_grows_it_back() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Congestion::new(16, ms(100), Duration::from_secs(5));
        assert_eq!(c.window(), 16);
        assert_eq!(c.on_throttled(t0), Some(t0 + ms(100)));
        // the rest of the burst, answered during the pause: the same event
        assert_eq!(c.on_throttled(t0 + ms(50)), None);
        assert_eq!(c.window(), 8);
        // a new refusal after the pause doubles the pause and halves again
        assert_eq!(c.on_throttled(t0 + ms(150)), Some(t0 + ms(350)));
        assert_eq!(c.window(), 4);
        for _ in 0..4 {
            c.on_accepted();
        }
        assert_eq!(c.window(), 5);
        for _ in 0..1000 {
            c.on_accepted();
        }
        assert_eq!(c.window(), 16, "never above the configured window");
        let mut one = Congestion::new(1, ms(100), ms(1000));
        one.on_throttled(t0);
        assert_eq!(one.window(), 1, "never below one");
    }

    #[test]
    fn a_steady_fraction_of_refusals_keeps_the_pause_short() {
        let mut pause = ThrottlePause::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut longest = Duration::ZERO;
        // 3 refusals in 10, spread as a 30 % throttling SMSC would
        for n in 0..1000 {
            if n % 10 < 3 {
                longest = longest.max(pause.on_throttled());
            } else {
                pause.on_accepted();
            }
        }
        assert!(longest <= Duration::from_millis(800), "{longest:?}");
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
