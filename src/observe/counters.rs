//! Counters the threads bump and the periodic info line reads. Relaxed atomics: they are
//! statistics, nothing is decided on them.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// submit_sm PDUs written.
    pub(crate) submitted: AtomicU64,
    /// Rows done, failed, and retried later.
    pub(crate) rows_done: AtomicU64,
    pub(crate) rows_failed: AtomicU64,
    pub(crate) rows_retried: AtomicU64,
    /// ESME_RTHROTTLED / ESME_RMSGQFUL answers.
    pub(crate) throttled: AtomicU64,
    /// deliver_sm / data_sm received and stored.
    pub(crate) received: AtomicU64,
    pub(crate) stored: AtomicU64,
    /// Rows claimed from the queue.
    pub(crate) claimed: AtomicU64,
    /// Session states, window in use and last error, for the heartbeat row.
    pub(crate) session: crate::observe::session_state::SessionStatus,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) submitted: u64,
    pub(crate) rows_done: u64,
    pub(crate) rows_failed: u64,
    pub(crate) rows_retried: u64,
    pub(crate) throttled: u64,
    pub(crate) received: u64,
    pub(crate) stored: u64,
    pub(crate) claimed: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            submitted: get(&self.submitted),
            rows_done: get(&self.rows_done),
            rows_failed: get(&self.rows_failed),
            rows_retried: get(&self.rows_retried),
            throttled: get(&self.throttled),
            received: get(&self.received),
            stored: get(&self.stored),
            claimed: get(&self.claimed),
        }
    }
}

impl Snapshot {
    /// The info line for the interval from `earlier` to `self`, `seconds` long.
    pub(crate) fn describe_since(&self, earlier: &Snapshot, seconds: f64) -> String {
        let rate = |now: u64, then: u64| (now.saturating_sub(then)) as f64 / seconds.max(0.001);
        format!(
            "rows done {} (+{:.1}/s), failed {}, retried {}; submit_sm {} ({:.1}/s), throttled {}; \
             received {} ({:.1}/s), stored {}",
            self.rows_done,
            rate(self.rows_done, earlier.rows_done),
            self.rows_failed,
            self.rows_retried,
            self.submitted,
            rate(self.submitted, earlier.submitted),
            self.throttled,
            self.received,
            rate(self.received, earlier.received),
            self.stored
        )
    }
}
