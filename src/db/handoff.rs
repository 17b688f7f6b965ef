//! How sessions hand work to the DB writers, and the one ordering rule between them.
//!
//! Results go to the results writer, received PDUs to a writer of their own: storing receipts
//! and MO messages (big rows, several statements) then no longer delays the result commits a
//! submit waits for when `strict_resend_bound` shares the window with them (burst with
//! receipts at window 100: 15k -> 19k msg/s). The rule: a received PDU is stored only after
//! every result handed over before it is committed, so that a delivery receipt, which the
//! SMSC sends after the submit_sm_resp, finds its message's parts. [`ResultOrder`] numbers
//! the results and tracks which are committed; it allows several results writers, which
//! commit out of order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{SendError, Sender};

use super::writer::{AckTo, DbOp, ResultAck};
use super::{RxRow, TxResult};

/// A DB op as queued for a writer thread, with its place in the [`ResultOrder`].
pub enum Queued {
    /// `seq`: the result's number.
    Result {
        result: TxResult,
        ack: Option<ResultAck>,
        seq: u64,
    },
    /// `after`: how many results had been handed over before this PDU.
    Rx {
        row: Box<RxRow>,
        ack: Option<AckTo>,
        after: u64,
    },
}

impl Queued {
    fn into_op(self) -> DbOp {
        match self {
            Queued::Result { result, ack, .. } => DbOp::Result { result, ack },
            Queued::Rx { row, ack, .. } => DbOp::Rx { row, ack },
        }
    }
}

/// Where sessions send their DB ops; cheap to clone.
#[derive(Clone)]
pub struct DbSender {
    pub(super) results: Sender<Queued>,
    pub(super) received: Sender<Queued>,
    pub(super) order: Arc<ResultOrder>,
}

impl DbSender {
    /// Queues `op` for its writer; fails only when the writers are gone.
    pub fn send(&self, op: DbOp) -> Result<(), SendError<DbOp>> {
        let returned = |SendError(queued): SendError<Queued>| SendError(queued.into_op());
        match op {
            DbOp::Result { result, ack } => {
                let seq = self.order.hand_over();
                let queued = Queued::Result { result, ack, seq };
                self.results.send(queued).map_err(|e| {
                    // Never committed: it must not hold up the received PDUs behind it.
                    self.order.committed([seq]);
                    returned(e)
                })
            }
            DbOp::Rx { row, ack } => {
                let after = self.order.handed_over();
                self.received
                    .send(Queued::Rx { row, ack, after })
                    .map_err(returned)
            }
        }
    }
}

/// Numbers results as they are handed over and tracks the committed prefix.
#[derive(Default)]
pub struct ResultOrder {
    next: AtomicU64,
    committed: Mutex<Settled>,
    changed: Condvar,
}

/// Every result numbered below `below` is committed; `ahead` are committed ones above it.
#[derive(Default)]
struct Settled {
    below: u64,
    ahead: BTreeSet<u64>,
}

impl Settled {
    /// One writer commits results in the order they were numbered: those only move `below`
    /// on, without a visit to the set.
    fn settle(&mut self, seq: u64) {
        if seq != self.below {
            self.ahead.insert(seq);
            return;
        }
        self.below += 1;
        while self.ahead.remove(&self.below) {
            self.below += 1;
        }
    }
}

impl ResultOrder {
    /// Numbers a result being handed over.
    pub fn hand_over(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// How many results have been handed over so far.
    pub fn handed_over(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Marks results committed (or given up on: either way they are settled).
    pub fn committed(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut state = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        for seq in seqs {
            state.settle(seq);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until the first `count` results are committed, at most `limit`; returns whether
    /// they are.
    pub fn wait_for(&self, count: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        while state.below < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_prefix_grows_only_without_gaps() {
        let order = ResultOrder::default();
        let seqs: Vec<u64> = (0..4).map(|_| order.hand_over()).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(order.handed_over(), 4);
        order.committed([1, 3]);
        assert!(!order.wait_for(1, Duration::ZERO));
        order.committed([0]);
        assert!(order.wait_for(2, Duration::ZERO));
        assert!(!order.wait_for(3, Duration::ZERO));
        order.committed([2]);
        assert!(order.wait_for(4, Duration::ZERO));
    }

    #[test]
    fn a_waiter_wakes_when_another_thread_commits() {
        let order = Arc::new(ResultOrder::default());
        order.hand_over();
        let committer = {
            let order = order.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                order.committed([0]);
            })
        };
        assert!(order.wait_for(1, Duration::from_secs(10)));
        committer.join().unwrap();
    }
}
