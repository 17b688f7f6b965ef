//! Everything the SMSC originates towards the ESME: delivery receipts and MO messages as
//! deliver_sm, sent on the most recently bound receiver or transceiver session, each one
//! waiting for its deliver_sm_resp. Unanswered ones are resent (bounded); those in flight on
//! a connection that closes go out again on the next receiver; with no receiver bound they
//! wait for one. One thread runs the timer heap; readers only schedule and acknowledge.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::config::MoMessage;
use super::journal::Sent;
use super::receipt_text::{receipt_sm, SubmittedMessage};
use super::Shared;
use esmed_smpp::pdu::{ShortMessage, Sm};
use esmed_smpp::receipt::MessageState;
use esmed_smpp::{Address, Body, FieldError, Pdu};

/// How long to wait before looking again for a receiver when none is bound.
const NO_RECEIVER_RETRY: Duration = Duration::from_millis(100);

/// What a deliver_sm carries.
#[derive(Debug, Clone)]
pub enum JobKind {
    Receipt {
        message: Arc<SubmittedMessage>,
        state: MessageState,
    },
    Mo(MoMessage),
}

#[derive(Debug)]
struct Job {
    kind: JobKind,
    /// The body as first sent: resends repeat it exactly (same done date).
    built: Option<Sm>,
    sends: u32,
    /// Bumped at every reschedule; heap entries of older generations are stale.
    generation: u64,
    /// (connection, sequence number) of the deliver_sm awaiting its response.
    awaiting: Option<(u64, u32)>,
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    jobs: HashMap<u64, Job>,
    pending: HashMap<(u64, u32), u64>,
    /// Due jobs held back while the deliver window is full, oldest first.
    held: std::collections::VecDeque<u64>,
    next_job: u64,
    /// When the thread is asleep: until when (`None`: awake).
    asleep_until: Option<Instant>,
    stopping: bool,
}

impl State {
    fn push(&mut self, at: Instant, id: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.generation += 1;
            self.heap.push(Reverse((at, id, job.generation)));
        }
    }

    /// Pops the jobs whose time has come, skipping stale entries.
    fn pop_due(&mut self, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(Reverse((at, id, generation))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self
                .jobs
                .get(&id)
                .is_some_and(|j| j.generation == generation)
            {
                due.push(id);
            }
        }
        due
    }
}

/// The deliver_sm scheduler shared by readers, the handle and its own thread.
#[derive(Debug, Default)]
pub struct Deliverer {
    state: Mutex<State>,
    wake: Condvar,
}

impl Deliverer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the thread if it sleeps past `at`.
    fn wake_for(&self, state: &State, at: Instant) {
        if state.asleep_until.is_some_and(|until| at < until) {
            self.wake.notify_one();
        }
    }

    /// Queues deliver_sm to send at the given times.
    pub fn schedule(&self, jobs: Vec<(Instant, JobKind)>) {
        let mut state = self.lock();
        let mut earliest: Option<Instant> = None;
        for (at, kind) in jobs {
            state.next_job += 1;
            let id = state.next_job;
            let job = Job {
                kind,
                built: None,
                sends: 0,
                generation: 0,
                awaiting: None,
            };
            state.jobs.insert(id, job);
            state.push(at, id);
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
        if let Some(at) = earliest {
            self.wake_for(&state, at);
        }
    }

    /// A deliver_sm_resp (or generic_nack) arrived: that job is done, and a job held back by
    /// the deliver window may go.
    pub fn acked(&self, connection: u64, seq: u32) {
        let mut state = self.lock();
        if let Some(id) = state.pending.remove(&(connection, seq)) {
            state.jobs.remove(&id);
            if let Some(next) = state.held.pop_front() {
                let now = Instant::now();
                state.push(now, next);
                self.wake_for(&state, now);
            }
        }
    }

    /// Jobs in flight on a closed connection go out again at once.
    pub fn connection_closed(&self, connection: u64) {
        let mut state = self.lock();
        let keys: Vec<(u64, u32)> = state
            .pending
            .keys()
            .filter(|k| k.0 == connection)
            .copied()
            .collect();
        let now = Instant::now();
        for key in keys {
            if let Some(id) = state.pending.remove(&key) {
                if let Some(job) = state.jobs.get_mut(&id) {
                    job.awaiting = None;
                }
                state.push(now, id);
            }
        }
        self.wake_for(&state, now);
    }

    /// A receiver appeared: jobs waiting for one need not wait for the retry tick.
    pub fn receiver_bound(&self) {
        let state = self.lock();
        self.wake_for(&state, Instant::now());
    }

    /// Jobs not yet acknowledged (waiting, in flight or due).
    pub fn outstanding(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// The thread's body.
    pub fn run(&self, shared: &Shared) {
        loop {
            let due = match self.wait_for_due() {
                Some(due) => due,
                None => return,
            };
            let due = self.drop_exhausted(due, shared);
            if due.is_empty() {
                continue;
            }
            match shared.pick_receiver() {
                Some((connection, outbox)) => {
                    let mut state = self.lock();
                    let window = shared.config.deliver_window.unwrap_or(usize::MAX);
                    // Those held back first: they were due earlier.
                    let mut ids: Vec<u64> = state.held.drain(..).collect();
                    ids.extend(due);
                    for id in ids {
                        if state.pending.len() >= window {
                            // Sent again when an answer makes room (see `acked`).
                            state.held.push_back(id);
                        } else {
                            self.send(&mut state, id, connection, &outbox, shared);
                        }
                    }
                }
                None => {
                    let mut state = self.lock();
                    let later = Instant::now() + NO_RECEIVER_RETRY;
                    for id in due {
                        state.push(later, id);
                    }
                }
            }
        }
    }

    /// Sleeps until some job is due; `None` when stopping.
    fn wait_for_due(&self) -> Option<Vec<u64>> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return None;
            }
            let now = Instant::now();
            let due = state.pop_due(now);
            if !due.is_empty() {
                return Some(due);
            }
            let until = state
                .heap
                .peek()
                .map_or(now + Duration::from_secs(1), |Reverse((at, _, _))| *at);
            state.asleep_until = Some(until);
            state = match self
                .wake
                .wait_timeout(state, until.saturating_duration_since(now))
            {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            state.asleep_until = None;
        }
    }

    /// Takes due jobs whose deliver_sm timed out off the pending list, and drops those that
    /// used up their resends.
    fn drop_exhausted(&self, due: Vec<u64>, shared: &Shared) -> Vec<u64> {
        let max_sends = 1 + shared.config.deliver_max_resends;
        let mut state = self.lock();
        let mut keep = Vec::with_capacity(due.len());
        for id in due {
            let Some(job) = state.jobs.get_mut(&id) else {
                continue;
            };
            if let Some(key) = job.awaiting.take() {
                state.pending.remove(&key);
            }
            let sends = state.jobs.get(&id).map_or(0, |j| j.sends);
            if sends >= max_sends {
                log::warn!("deliver_sm unanswered after {sends} sends, giving up");
                state.jobs.remove(&id);
                // Its place in the deliver window is free: one held back may go.
                if let Some(next) = state.held.pop_front() {
                    keep.push(next);
                }
            } else {
                keep.push(id);
            }
        }
        keep
    }

    fn send(
        &self,
        state: &mut State,
        id: u64,
        connection: u64,
        outbox: &super::outbox::Outbox,
        shared: &Shared,
    ) {
        let Some(job) = state.jobs.get(&id) else {
            return;
        };
        let sm = match &job.built {
            Some(sm) => sm.clone(),
            None => match build_sm(&job.kind, shared) {
                Ok(sm) => sm,
                Err(why) => {
                    log::warn!("cannot build the deliver_sm: {why}; dropping it");
                    state.jobs.remove(&id);
                    return;
                }
            },
        };
        let Some(pdu) =
            outbox.send_request(|seq| Pdu::new(seq, Body::DeliverSm(Box::new(sm.clone()))))
        else {
            state.push(Instant::now() + NO_RECEIVER_RETRY, id);
            return;
        };
        let key = (connection, pdu.sequence_number);
        if let Some(job) = state.jobs.get_mut(&id) {
            job.sends += 1;
            job.awaiting = Some(key);
            job.built = Some(sm);
        }
        state.pending.insert(key, id);
        state.push(Instant::now() + shared.config.deliver_resend_after, id);
        shared.journal.record_sent(Sent {
            at: SystemTime::now(),
            pdu,
            connection,
        });
    }
}

/// The deliver_sm for a job; an MO whose addresses or text do not fit one is refused.
fn build_sm(kind: &JobKind, shared: &Shared) -> Result<Sm, String> {
    Ok(match kind {
        JobKind::Receipt { message, state } => {
            let with_tlvs = match &shared.config.receipts {
                super::config::ReceiptMode::After(r) => r.tlvs,
                super::config::ReceiptMode::Off => true,
            };
            receipt_sm(message, *state, SystemTime::now(), with_tlvs)
                .map_err(|e| format!("receipt text: {e}"))?
        }
        JobKind::Mo(mo) => Sm {
            source: address(&mo.source).map_err(|e| format!("source_addr {:?}: {e}", mo.source))?,
            destination: address(&mo.destination)
                .map_err(|e| format!("destination_addr {:?}: {e}", mo.destination))?,
            esm_class: mo.esm_class,
            data_coding: mo.data_coding,
            short_message: ShortMessage::new(mo.short_message.clone())
                .map_err(|e| format!("short_message: {e}"))?,
            tlvs: mo.tlvs.clone(),
            ..Sm::default()
        },
    })
}

/// TON/NPI from the address's shape: digits are international ISDN, anything else
/// alphanumeric.
fn address(addr: &str) -> Result<Address, FieldError> {
    let digits = !addr.is_empty()
        && addr
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit());
    if digits {
        Address::new(1, 1, addr)
    } else {
        Address::new(5, 0, addr)
    }
}
