//! Warnings that one PDU each can cause (stray responses, undecodable PDUs, unknown commands),
//! logged a few times a minute and counted beyond that, so that a misbehaving SMSC cannot
//! fill the disk or bury everything else: the first [`BURST`] of a kind in a spell of
//! [`SPELL`] are logged, the rest counted, and the count is logged as one line ("... and
//! 1234 more like it in the last 60 s") when the spell is over, or when the session ends.
//!
//! Pure bookkeeping with the time passed in, so that tests drive the clock.

use std::fmt;
use std::time::{Duration, Instant};

/// How many warnings of one kind are logged in a spell before the rest are counted.
pub(crate) const BURST: u32 = 10;
/// How long a spell lasts from its first warning.
pub(crate) const SPELL: Duration = Duration::from_secs(60);

/// What to do with one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it.
    Log,
    /// Log it, saying that more like it will be counted, not logged.
    LogLast,
    /// Count it, do not log it.
    Count,
}

/// Warnings of one kind that were counted, not logged: how many, over how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counted<K> {
    pub(crate) kind: K,
    pub(crate) count: u64,
    pub(crate) over: Duration,
}

impl<K> fmt::Display for Counted<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "... and {} more like it in the last {} s",
            self.count,
            self.over.as_secs().max(1)
        )
    }
}

/// The spells of each kind of warning `K` seen lately.
#[derive(Debug)]
pub(crate) struct Repeats<K> {
    spells: Vec<Spell<K>>,
}

#[derive(Debug)]
struct Spell<K> {
    kind: K,
    started: Instant,
    logged: u32,
    counted: u64,
}

impl<K> Default for Repeats<K> {
    fn default() -> Self {
        Repeats { spells: Vec::new() }
    }
}

impl<K: Copy + Eq> Repeats<K> {
    /// Decides about one warning of `kind` at `now`. A spell that is over is ended first:
    /// its count comes back as `Some` to be logged before this warning.
    pub(crate) fn note(&mut self, kind: K, now: Instant) -> (Option<Counted<K>>, Verdict) {
        let ended = self.end(now, |spell| spell.kind == kind);
        let index = match self.spells.iter().position(|spell| spell.kind == kind) {
            Some(index) => index,
            None => {
                self.spells.push(Spell {
                    kind,
                    started: now,
                    logged: 0,
                    counted: 0,
                });
                self.spells.len() - 1
            }
        };
        let spell = &mut self.spells[index];
        let verdict = if spell.logged >= BURST {
            spell.counted += 1;
            Verdict::Count
        } else {
            spell.logged += 1;
            if spell.logged == BURST {
                Verdict::LogLast
            } else {
                Verdict::Log
            }
        };
        (ended.into_iter().next(), verdict)
    }

    /// Ends the spells that are over at `now`; returns those that counted warnings.
    pub(crate) fn over(&mut self, now: Instant) -> Vec<Counted<K>> {
        self.end(now, |_| true)
    }

    /// Ends every spell (the session is ending); returns those that counted warnings.
    pub(crate) fn finish(&mut self, now: Instant) -> Vec<Counted<K>> {
        let spells = std::mem::take(&mut self.spells);
        spells
            .into_iter()
            .filter_map(|spell| spell.counted(now))
            .collect()
    }

    fn end(&mut self, now: Instant, which: impl Fn(&Spell<K>) -> bool) -> Vec<Counted<K>> {
        let mut counted = Vec::new();
        self.spells.retain(|spell| {
            let over = which(spell) && now.saturating_duration_since(spell.started) >= SPELL;
            if over {
                counted.extend(spell.counted(now));
            }
            !over
        });
        counted
    }
}

impl<K: Copy> Spell<K> {
    fn counted(&self, now: Instant) -> Option<Counted<K>> {
        (self.counted > 0).then(|| Counted {
            kind: self.kind,
            count: self.counted,
            over: now.saturating_duration_since(self.started),
        })
    }
}

/// The note the last logged warning of a spell carries.
pub(crate) fn last_note() -> String {
    format!(
        " (more like it are counted, not logged, for the rest of these {} s)",
        SPELL.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Stray,
        Unknown,
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn a_burst_is_logged_then_counted_and_the_count_comes_when_the_spell_is_over() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|n| {
                let (ended, verdict) = repeats.note(Kind::Stray, start + Duration::from_millis(n));
                assert_eq!(ended, None);
                verdict
            })
            .collect();
        let logged = verdicts.iter().filter(|v| **v != Verdict::Count).count();
        assert_eq!(logged, BURST as usize);
        assert_eq!(verdicts[BURST as usize - 1], Verdict::LogLast);
        assert!(repeats.over(start + secs(59)).is_empty(), "not over yet");
        let counted = repeats.over(start + secs(60));
        assert_eq!(
            counted,
            [Counted {
                kind: Kind::Stray,
                count: 1000 - u64::from(BURST),
                over: secs(60)
            }]
        );
        assert_eq!(
            counted[0].to_string(),
            "... and 990 more like it in the last 60 s"
        );
        assert!(repeats.over(start + secs(120)).is_empty(), "reported once");
        assert_eq!(
            repeats.note(Kind::Stray, start + secs(121)),
            (None, Verdict::Log),
            "a new spell"
        );
    }

    #[test]
    fn a_warning_after_the_spell_brings_its_count_first() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        for n in 0..=BURST {
            repeats.note(Kind::Stray, start + Duration::from_millis(u64::from(n)));
        }
        let (ended, verdict) = repeats.note(Kind::Stray, start + secs(75));
        assert_eq!(verdict, Verdict::Log);
        let ended = ended.expect("the earlier spell's count");
        assert_eq!((ended.count, ended.over), (1, secs(75)));
    }

    #[test]
    fn kinds_are_counted_apart_and_a_spell_without_counts_ends_silently() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        for _ in 0..BURST + 5 {
            repeats.note(Kind::Stray, start);
        }
        assert_eq!(repeats.note(Kind::Unknown, start).1, Verdict::Log);
        let counted = repeats.finish(start + secs(3));
        assert_eq!(
            counted,
            [Counted {
                kind: Kind::Stray,
                count: 5,
                over: secs(3)
            }]
        );
        assert_eq!(
            counted[0].to_string(),
            "... and 5 more like it in the last 3 s"
        );
        assert!(repeats.finish(start + secs(4)).is_empty());
    }

    #[test]
    fn a_clock_that_goes_back_does_not_panic() {
        let start = Instant::now() + secs(10);
        let mut repeats = Repeats::default();
        repeats.note(Kind::Stray, start);
        assert!(repeats.over(start - secs(5)).is_empty());
        assert_eq!(repeats.note(Kind::Stray, start - secs(5)).1, Verdict::Log);
    }
}
