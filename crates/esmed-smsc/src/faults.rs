//! Deciding, for each submit_sm, which injected fault (if any) applies. Pure: the counters
//! and the rate window are passed in and the clock is a parameter, so every rule is tested
//! without sockets.

use std::time::Instant;

use super::config::Faults;
use esmed_smpp::CommandStatus;

/// What to do with one submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with this status (ESME_ROK: accept and give a message id).
    Answer(CommandStatus),
    /// Do not answer at all.
    Swallow,
    /// Close the connection without answering.
    Drop,
}

/// The faults in force and what they have counted so far.
#[derive(Debug, Clone)]
pub struct FaultState {
    pub faults: Faults,
    submits: u64,
    dropped: bool,
    window_start: Option<Instant>,
    in_window: u32,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        FaultState {
            faults,
            submits: 0,
            dropped: false,
            window_start: None,
            in_window: 0,
        }
    }

    /// Counts one submit to `destination` received at `now` and says what to do with it.
    pub fn decide(&mut self, destination: &[u8], now: Instant) -> Verdict {
        self.submits += 1;
        let n = self.submits;
        let f = &self.faults;
        if !self.dropped && f.drop_after.is_some_and(|k| u64::from(k) == n) {
            self.dropped = true;
            return Verdict::Drop;
        }
        if every(f.never_answer_every, n) {
            return Verdict::Swallow;
        }
        if let Some((prefix, status)) = &f.permanent_error_prefix {
            if destination.starts_with(prefix.as_bytes()) {
                return Verdict::Answer(*status);
            }
        }
        if let Some((k, status)) = f.transient_error_every {
            if every(Some(k), n) {
                return Verdict::Answer(status);
            }
        }
        let throttled = every(f.throttle_every, n)
            || f.throttle_ratio.is_some_and(|r| unit_interval(n) < r)
            || self.over_rate(now);
        if throttled {
            Verdict::Answer(CommandStatus::ESME_RTHROTTLED)
        } else {
            Verdict::Answer(CommandStatus::ESME_ROK)
        }
    }

    /// Counts this submit in the current one-second window; true when it is over the cap.
    fn over_rate(&mut self, now: Instant) -> bool {
        let Some(cap) = self.faults.max_rate else {
            return false;
        };
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start).as_secs() >= 1);
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        self.in_window += 1;
        self.in_window > cap
    }
}

fn every(k: Option<u32>, n: u64) -> bool {
    matches!(k, Some(k) if k > 0 && n % u64::from(k) == 0)
}

/// A fixed pseudo-random number in [0, 1) for the nth submit (splitmix64).
fn unit_interval(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(faults: Faults, count: usize) -> Vec<Verdict> {
        let mut state = FaultState::new(faults);
        let now = Instant::now();
        (0..count).map(|_| state.decide(b"4477", now)).collect()
    }

    const OK: Verdict = Verdict::Answer(CommandStatus::ESME_ROK);
    const THROTTLED: Verdict = Verdict::Answer(CommandStatus::ESME_RTHROTTLED);

    #[test]
    fn no_faults_accepts_everything() {
        assert!(run(Faults::default(), 100).iter().all(|v| *v == OK));
    }

    #[test]
    fn throttle_every_third() {
        let faults = Faults {
            throttle_every: Some(3),
            ..Faults::default()
        };
        assert_eq!(run(faults, 6), vec![OK, OK, THROTTLED, OK, OK, THROTTLED]);
    }

    #[test]
    fn drop_happens_once_at_the_nth() {
        let faults = Faults {
            drop_after: Some(2),
            ..Faults::default()
        };
        assert_eq!(run(faults, 4), vec![OK, Verdict::Drop, OK, OK]);
    }

    #[test]
    fn never_answer_and_prefix_and_transient() {
        let faults = Faults {
            never_answer_every: Some(2),
            transient_error_every: Some((3, CommandStatus::ESME_RSYSERR)),
            ..Faults::default()
        };
        let got = run(faults, 4);
        assert_eq!(
            got,
            vec![
                OK,
                Verdict::Swallow,
                Verdict::Answer(CommandStatus::ESME_RSYSERR),
                Verdict::Swallow
            ]
        );
        let mut state = FaultState::new(Faults {
            permanent_error_prefix: Some(("99".into(), CommandStatus::ESME_RINVDSTADR)),
            ..Faults::default()
        });
        let now = Instant::now();
        assert_eq!(
            state.decide(b"9912", now),
            Verdict::Answer(CommandStatus::ESME_RINVDSTADR)
        );
        assert_eq!(state.decide(b"4499", now), OK);
    }

    #[test]
    fn throttle_ratio_is_close_and_reproducible() {
        let faults = Faults {
            throttle_ratio: Some(0.3),
            ..Faults::default()
        };
        let a = run(faults.clone(), 10_000);
        assert_eq!(a, run(faults, 10_000));
        let throttled = a.iter().filter(|v| **v == THROTTLED).count();
        assert!((2_700..3_300).contains(&throttled), "{throttled}");
    }

    #[test]
    fn max_rate_rejects_above_the_cap_within_a_second() {
        let mut state = FaultState::new(Faults {
            max_rate: Some(2),
            ..Faults::default()
        });
        let t0 = Instant::now();
        assert_eq!(state.decide(b"1", t0), OK);
        assert_eq!(state.decide(b"1", t0), OK);
        assert_eq!(state.decide(b"1", t0), THROTTLED);
        assert_eq!(state.decide(b"1", t0 + Duration::from_millis(1_001)), OK);
    }
}
