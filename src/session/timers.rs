//! The session's protocol timers on a hashed timing wheel (10 ms ticks, 512 slots).
//! Ticks are counted in u64 from the connection's start and turned back into instants with
//! checked arithmetic, so a connection that lives for years keeps its timers.
//!
//! The wheel is pure: time is passed in, it never reads the clock, so tests move a fake
//! `Instant` forward. Each slot is a doubly linked list threaded through one slab of nodes, so
//! arming, re-arming and cancelling are O(1) and a cancelled timer leaves nothing behind —
//! a busy session arms and cancels a response timer per submit_sm.
//! `next_deadline` may name a moment slightly before the real next expiry (an entry that is
//! more than one rotation away shares its slot): the caller then wakes, finds nothing due, and
//! sleeps again.

use std::time::{Duration, Instant};

use super::id_hash::IdMap;

/// Every timer a session arms, named after SMPP 3.4 §7.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Time to send the periodic enquire_link.
    EnquireLink,
    /// Nothing received from the peer for this long: the link is dead.
    Inactivity,
    /// The response to the request with this sequence number is overdue.
    Response(u32),
    /// The end of a pause in submitting (throttling or the rate cap).
    Resume,
    /// The drain at shutdown has taken long enough.
    ShutdownDeadline,
}

const TICK_MILLIS: u64 = 10;
const TICK: Duration = Duration::from_millis(TICK_MILLIS);
const SLOTS: usize = 512;
const WORDS: usize = SLOTS / 64;
const NIL: usize = usize::MAX;

struct Node {
    timer: Timer,
    deadline: Instant,
    slot: usize,
    prev: usize,
    next: usize,
}

pub(crate) struct TimerWheel {
    start: Instant,
    /// The last tick whose slot has been processed.
    cursor: u64,
    heads: Vec<usize>,
    occupied: [u64; WORDS],
    nodes: Vec<Node>,
    free: Vec<usize>,
    /// Where each armed timer's node is.
    armed: IdMap<Timer, usize>,
}

impl TimerWheel {
    pub(crate) fn new(start: Instant) -> Self {
        TimerWheel {
            start,
            cursor: 0,
            heads: vec![NIL; SLOTS],
            occupied: [0; WORDS],
            nodes: Vec::new(),
            free: Vec::new(),
            armed: IdMap::default(),
        }
    }

    /// Arms `timer` to fire at `at`, replacing an earlier arming of the same timer.
    pub(crate) fn arm(&mut self, timer: Timer, at: Instant) {
        self.cancel(timer);
        let tick = self.tick_of(at).max(self.cursor + 1);
        let slot = (tick % SLOTS as u64) as usize;
        let old_head = self.heads[slot];
        let node = Node {
            timer,
            deadline: at,
            slot,
            prev: NIL,
            next: old_head,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.nodes[index] = node;
                index
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if old_head != NIL {
            self.nodes[old_head].prev = index;
        }
        self.heads[slot] = index;
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.armed.insert(timer, index);
    }

    pub(crate) fn cancel(&mut self, timer: Timer) {
        if let Some(index) = self.armed.remove(&timer) {
            self.unlink(index);
        }
    }

    #[cfg(test)]
    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.armed.contains_key(&timer)
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// When the caller should next call `expire`; `None` when nothing is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.armed.is_empty() {
            return None;
        }
        let first = self.cursor + 1;
        (0..SLOTS as u64)
            .map(|offset| first + offset)
            .find(|tick| self.is_occupied((tick % SLOTS as u64) as usize))
            .and_then(|tick| self.instant_of(tick))
    }

    /// The moment tick `tick` begins; `None` past what the clock can name (such a timer is
    /// never due). In u64 ticks of 10 ms the count itself never wraps.
    fn instant_of(&self, tick: u64) -> Option<Instant> {
        let since = Duration::from_millis(TICK_MILLIS.checked_mul(tick)?);
        self.start.checked_add(since)
    }

    /// Appends to `fired` every timer whose deadline is at or before `now`, and forgets them.
    pub(crate) fn expire(&mut self, now: Instant, fired: &mut Vec<Timer>) {
        let target = self.floor_tick_of(now);
        if target <= self.cursor {
            return;
        }
        let visits = (target - self.cursor).min(SLOTS as u64);
        for step in 1..=visits {
            let slot = ((self.cursor + step) % SLOTS as u64) as usize;
            if self.is_occupied(slot) {
                self.process_slot(slot, now, fired);
            }
        }
        self.cursor = target;
    }

    fn process_slot(&mut self, slot: usize, now: Instant, fired: &mut Vec<Timer>) {
        let mut index = self.heads[slot];
        while index != NIL {
            let next = self.nodes[index].next;
            if self.nodes[index].deadline <= now {
                let timer = self.nodes[index].timer;
                self.armed.remove(&timer);
                self.unlink(index);
                fired.push(timer);
            }
            index = next;
        }
    }

    fn unlink(&mut self, index: usize) {
        let (slot, prev, next) = {
            let node = &self.nodes[index];
            (node.slot, node.prev, node.next)
        };
        match prev {
            NIL => self.heads[slot] = next,
            prev => self.nodes[prev].next = next,
        }
        if next != NIL {
            self.nodes[next].prev = prev;
        }
        if self.heads[slot] == NIL {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
        self.free.push(index);
    }

    fn is_occupied(&self, slot: usize) -> bool {
        self.occupied[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// The first tick at or after `at`.
    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start);
        let ticks = since.as_nanos().div_ceil(TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX / 2)
    }

    /// The last tick at or before `now`.
    fn floor_tick_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        u64::try_from(since.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired_at(wheel: &mut TimerWheel, now: Instant) -> Vec<Timer> {
        let mut fired = Vec::new();
        wheel.expire(now, &mut fired);
        fired
    }

    #[test]
    fn fires_at_the_deadline_and_not_before() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        wheel.arm(Timer::EnquireLink, t0 + Duration::from_secs(10));
        assert!(fired_at(&mut wheel, t0 + Duration::from_millis(9_990)).is_empty());
        assert_eq!(
            fired_at(&mut wheel, t0 + Duration::from_secs(10)),
            vec![Timer::EnquireLink]
        );
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn rearming_replaces_and_cancel_forgets() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        wheel.arm(Timer::Response(7), t0 + Duration::from_secs(1));
        wheel.arm(Timer::Response(7), t0 + Duration::from_secs(3));
        wheel.arm(Timer::Response(8), t0 + Duration::from_secs(2));
        wheel.cancel(Timer::Response(8));
        assert!(fired_at(&mut wheel, t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(
            fired_at(&mut wheel, t0 + Duration::from_secs(3)),
            vec![Timer::Response(7)]
        );
    }

    #[test]
    fn timers_beyond_one_rotation_wait_for_their_round() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        let far = t0 + Duration::from_secs(120);
        wheel.arm(Timer::Inactivity, far);
        let mut now = t0;
        while now < far - Duration::from_millis(10) {
            assert!(wheel.next_deadline().is_some_and(|d| d <= far));
            now += Duration::from_millis(2_500);
            let fired = fired_at(&mut wheel, now.min(far - Duration::from_millis(10)));
            assert!(fired.is_empty(), "fired early at {:?}", now - t0);
        }
        assert_eq!(fired_at(&mut wheel, far), vec![Timer::Inactivity]);
    }

    #[test]
    fn a_long_sleep_fires_everything_due_once() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        for seq in 1..=100 {
            wheel.arm(
                Timer::Response(seq),
                t0 + Duration::from_millis(37 * u64::from(seq)),
            );
        }
        let mut fired = fired_at(&mut wheel, t0 + Duration::from_secs(3_600));
        fired.sort_by_key(|t| match t {
            Timer::Response(seq) => *seq,
            _ => 0,
        });
        assert_eq!(fired, (1..=100).map(Timer::Response).collect::<Vec<_>>());
    }

    #[test]
    fn next_deadline_is_never_after_the_earliest_timer() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        wheel.arm(Timer::Resume, t0 + Duration::from_millis(250));
        wheel.arm(Timer::EnquireLink, t0 + Duration::from_secs(30));
        let next = wheel.next_deadline().unwrap();
        assert!(next >= t0 + Duration::from_millis(250));
        assert!(next < t0 + Duration::from_millis(261));
    }

    #[test]
    fn cancelled_and_rearmed_timers_leave_no_nodes_behind() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        for seq in 0..10_000 {
            wheel.arm(Timer::Response(seq % 10), t0 + Duration::from_secs(60));
            wheel.arm(Timer::Inactivity, t0 + Duration::from_secs(120));
            wheel.cancel(Timer::Response(seq % 10));
        }
        assert_eq!(wheel.len(), 1);
        assert!(wheel.nodes.len() <= 3, "slab grew to {}", wheel.nodes.len());
    }

    /// A connection may live for years: past 2^32 ticks (about 497 days) the wheel still
    /// names the right moment to wake, and fires each timer once, when it is due.
    #[test]
    fn timers_keep_their_time_after_years_of_uptime() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        const DAY: u64 = 24 * 3600;
        for days in [1, 400, 497, 498, 600, 3 * 365, 10 * 365, 100 * 365] {
            let now = t0 + Duration::from_secs(days * DAY);
            assert!(fired_at(&mut wheel, now).is_empty(), "day {days}");
            let due = now + Duration::from_secs(30);
            wheel.arm(Timer::EnquireLink, due);
            let next = wheel.next_deadline().expect("armed");
            assert!(
                next > now && next <= due,
                "day {days}: next deadline {:?} after start, now {:?}",
                next - t0,
                now - t0
            );
            assert!(fired_at(&mut wheel, due - Duration::from_millis(10)).is_empty());
            assert_eq!(
                fired_at(&mut wheel, due),
                vec![Timer::EnquireLink],
                "day {days}"
            );
        }
    }

    /// A deadline too far ahead for the clock to name is never due, and arming it neither
    /// panics nor disturbs the timers that are.
    #[test]
    fn a_deadline_beyond_any_clock_never_fires_and_panics_nothing() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        let Some(far) = t0.checked_add(Duration::from_secs(u64::MAX / 4)) else {
            return; // this platform's Instant cannot even hold it
        };
        wheel.arm(Timer::ShutdownDeadline, far);
        wheel.arm(Timer::Resume, t0 + Duration::from_secs(1));
        let _ = wheel.next_deadline();
        assert_eq!(
            fired_at(&mut wheel, t0 + Duration::from_secs(1)),
            vec![Timer::Resume]
        );
        let _ = wheel.next_deadline();
        let later = t0 + Duration::from_secs(200 * 365 * 24 * 3600);
        assert!(fired_at(&mut wheel, later).is_empty());
        assert!(wheel.is_armed(Timer::ShutdownDeadline));
    }

    #[test]
    fn a_deadline_in_the_past_fires_on_the_next_expire() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0);
        let _ = fired_at(&mut wheel, t0 + Duration::from_secs(5));
        wheel.arm(Timer::Resume, t0 + Duration::from_secs(1));
        assert_eq!(
            fired_at(&mut wheel, t0 + Duration::from_millis(5_010)),
            vec![Timer::Resume]
        );
    }
}
