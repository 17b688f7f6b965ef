//! The rows this process holds: claimed by the poller and not yet settled by the DB writer
//! (their result committed, skipped because the lease went to another instance, or given up
//! on). Leases are renewed for exactly these rows, and a row claimed under this instance's
//! name that is not among them has been lost track of (a claim whose answer never arrived)
//! and is released (see `db::claim::release_untracked`).
//!
//! A row is counted, not merely marked: a retried row may be claimed again before the
//! writer has settled its previous result, and must stay held until both are settled.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct HeldRows {
    counts: Mutex<HashMap<i64, u32>>,
}

impl HeldRows {
    /// Rows just claimed.
    pub(crate) fn hold(&self, ids: impl IntoIterator<Item = i64>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            *counts.entry(id).or_insert(0) += 1;
        }
    }

    /// Rows whose claim ended (result written or skipped, released, given up on).
    pub(crate) fn settle(&self, ids: impl IntoIterator<Item = i64>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(count) = counts.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&id);
                }
            }
        }
    }

    /// The rows held now, in no particular order.
    pub(crate) fn ids(&self) -> Vec<i64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.keys().copied().collect()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: i64) -> bool {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_claimed_twice_stays_held_until_both_claims_settle() {
        let held = HeldRows::default();
        held.hold([1, 2]);
        held.hold([1]);
        held.settle([1]);
        assert!(held.contains(1));
        held.settle([1, 2]);
        assert!(held.ids().is_empty());
        // Settling a row that was never held (or twice) changes nothing.
        held.settle([3, 1]);
        held.hold([3]);
        assert_eq!(held.ids(), [3]);
    }
}
