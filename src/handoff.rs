//! Every message that crosses a thread, in one place: what each channel carries, how much it
//! holds, who sends and who receives. The threads' modules import from here and from nowhere
//! else for what they hand over, so no two of them depend on each other through a channel.
//!
//! | channel | carries | capacity | sent by | received by | made in |
//! |---|---|---|---|---|---|
//! | claimed rows | [`TxRow`] | unbounded: the poller keeps at most what the sessions' windows take (`db::poller`) | poller | every session that submits | `daemon::run` |
//! | results | [`Queued::Result`] (a [`DbOp::Result`] given to [`DbSender::send`]) | unbounded: a session counts its uncommitted results against `max_uncommitted_results` (or its window, with `strict_resend_bound`) | sessions | the results writer | `db::writer::spawn` |
//! | received PDUs | [`Queued::Rx`] (a [`DbOp::Rx`]) | unbounded: a session lets at most `MAX_AWAITING_COMMIT` (session::state) wait | sessions | the received-PDU writer | `db::writer::spawn` |
//! | commits | [`Committed`] | unbounded: a DB writer never waits on a session | DB writers | the session that handed the op over ([`ResultAck::to`], [`AckTo::to`]) | `session::writer` |
//! | PDUs read | batches of [`ReaderEvent`] | `session::reader::QUEUED_BATCHES` | a session's reader | its writer | `session::runner` |
//! | signals | [`Signal`] | unbounded | the signal thread | the supervisor | `daemon` |
//! | stop: poller and sweeper, heartbeat, each session | `()` | 0: never sent, dropped to stop | the supervisor | the thread named | `daemon`, `session::runner` |
//!
//! A session gets its ends of these channels in one [`Links`] from the supervisor, and is
//! named by its [`BindKind`] wherever its state is shared (`observe::session_state`).
//!
//! Besides the channels, two states are shared: [`ResultOrder`], by the sessions (through
//! [`DbSender`]) and the DB writers, for the one ordering rule between results and received
//! PDUs below; and [`SubmitWindows`], which the sessions that submit keep and the poller sizes
//! its claims by.
//!
//! ## Results before received PDUs
//!
//! Results go to the results writer, received PDUs to a writer of their own: storing receipts
//! and MO messages (big rows, several statements) then no longer delays the result commits a
//! submit waits for when `strict_resend_bound` shares the window with them (burst with
//! receipts at window 100: 15k -> 19k msg/s). The rule: a delivery receipt is stored only
//! after the result of its message, when that was handed over before it, is committed, so
//! that it finds its message's parts (the SMSC sends it after the submit_sm_resp). Only the
//! receipt's own message counts: a receipt waits for one commit at most, never for the results
//! of the messages sent meanwhile, so that receipts through a small deliver window keep the
//! SMSC's pace; MO messages wait for nothing. A receipt that still comes first is kept and
//! matched once its message's parts are stored (`db::receipts`). [`ResultOrder`] numbers the
//! results, tracks which are committed and the message ids of those that are not; it allows
//! several results writers, which commit out of order.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, SendError, Sender};

use crate::observe::counters::Stats;
use crate::smpp::codec::DecodeError;
use crate::smpp::frame::FrameError;
use crate::smpp::receipt::stored_key;
use crate::smpp::{CommandId, CommandStatus, Pdu};

// --- poller -> sessions, sessions -> DB writers: the rows ---

/// A message claimed for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRow {
    pub id: i64,
    pub destination: String,
    /// `smpp_source_addr`: overrides the server's esme_source_addr when set.
    pub(crate) source_override: Option<String>,
    /// 0..=3 from `smpp_priority_flag` LEVEL_0..LEVEL_3 (NULL reads as 0).
    pub priority: u8,
    pub registered_delivery: RegisteredDelivery,
    pub short_message: String,
    /// `submission_attempts` so far.
    pub attempts: i32,
    /// Parts the SMSC accepted in earlier attempts, ordered by part_no; don't send them again.
    pub accepted_parts: Vec<AcceptedPart>,
    /// The row's `insert_timestamp`, which with `id` finds it again: the partitioned layout's
    /// key, so that PostgreSQL looks in the one partition that holds the row.
    pub insert_timestamp: SystemTime,
}

/// `smpp_registered_delivery`, the row's receipt request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisteredDelivery {
    /// NO_SMSC_DELIVERY_RECEIPT_REQUESTED
    NotRequested,
    /// SMSC_DELIVERY_RECEIPT_REQUESTED
    Requested,
    /// SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE
    RequestedForFailure,
}

impl RegisteredDelivery {
    /// Parses the enum label as PostgreSQL stores it.
    pub(crate) fn from_label(label: &str) -> Option<RegisteredDelivery> {
        match label {
            "NO_SMSC_DELIVERY_RECEIPT_REQUESTED" => Some(RegisteredDelivery::NotRequested),
            "SMSC_DELIVERY_RECEIPT_REQUESTED" => Some(RegisteredDelivery::Requested),
            "SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE" => {
                Some(RegisteredDelivery::RequestedForFailure)
            }
            _ => None,
        }
    }
}

/// One segment the SMSC accepted, with the message id it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedPart {
    /// 1-based.
    pub part_no: i16,
    pub part_count: i16,
    pub message_id: String,
}

/// What became of a claimed row.
#[derive(Clone, Debug, PartialEq)]
pub enum TxOutcome {
    /// Every part accepted. `smpp_message_id` becomes part 1's id.
    Done { parts: Vec<AcceptedPart> },
    /// Given up: permanent error or attempts used up. `info` = status name and meaning.
    Failed {
        info: String,
        parts: Vec<AcceptedPart>,
    },
    /// Try again after `delay`; `parts` are those accepted so far.
    Retry {
        info: String,
        delay: Duration,
        parts: Vec<AcceptedPart>,
    },
    /// Not sent (e.g. shutting down): give the row back at once.
    Release,
}

/// The result for one claimed row.
#[derive(Clone, Debug, PartialEq)]
pub struct TxResult {
    pub id: i64,
    /// The row's [`TxRow::insert_timestamp`].
    pub insert_timestamp: SystemTime,
    pub outcome: TxOutcome,
    /// Attempts used by this claim; added to `submission_attempts`.
    pub attempts: i32,
    /// Resends after an unknown outcome; added to `submission_resends`.
    pub resends: i32,
}

impl TxResult {
    /// The keys receipts find this result's accepted parts by (`message_id_key`).
    fn receipt_keys(&self) -> Vec<String> {
        let parts = match &self.outcome {
            TxOutcome::Done { parts }
            | TxOutcome::Failed { parts, .. }
            | TxOutcome::Retry { parts, .. } => parts.as_slice(),
            TxOutcome::Release => &[],
        };
        parts
            .iter()
            .map(|part| stored_key(&part.message_id))
            .collect()
    }
}

/// One `smpp_rx_queue` row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxRow {
    /// The raw PDU as lower-case hex.
    pub pdu_raw: String,
    /// The decoded PDU as JSON text.
    pub pdu_parsed: String,
    pub source_addr: String,
    pub destination_addr: String,
    /// The decoded text.
    pub short_message: String,
    pub esm_class: i32,
    pub data_coding: i32,
    pub is_receipt: bool,
    pub receipted_message_id: Option<String>,
    pub message_state: Option<String>,
    pub error_code: Option<String>,
    /// The text bytes were invalid for `data_coding`; `short_message` is a best effort.
    pub text_invalid: bool,
    /// `receipted_message_id` came from the TLV (not the text): it is the submit_sm_resp id.
    pub receipt_id_from_tlv: bool,
    /// Set for one part of a concatenated MO: stored in smpp_rx_parts until the set is whole.
    pub mo_part: Option<MoPart>,
    /// For a reassembled MO: how many parts the set has.
    pub mo_parts: Option<i16>,
    /// A reassembled MO whose set never completed.
    pub mo_incomplete: bool,
}

/// Where a part of a concatenated MO belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoPart {
    /// `udh8`, `udh16` or `sar`.
    pub(crate) ref_kind: &'static str,
    pub(crate) reference: i32,
    pub(crate) total: i16,
    /// 1-based.
    pub(crate) seq: i16,
    /// The user data after the UDH, decoded when the set is whole.
    pub(crate) text_bytes: Vec<u8>,
}

// --- sessions -> poller: how much they can take ---

/// The windows of the sessions bound and able to submit, summed: what the poller sizes its
/// claims by. Zero while none is bound, and then the poller claims nothing.
#[derive(Debug, Default)]
pub(crate) struct SubmitWindows(AtomicUsize);

impl SubmitWindows {
    /// A session that submits is bound with this window.
    pub(crate) fn open(&self, window: usize) {
        self.0.fetch_add(window, Ordering::SeqCst);
    }

    /// ... and is no longer bound.
    pub(crate) fn close(&self, window: usize) {
        // Never below zero, even if a close had no open (it always has one).
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |total| {
                Some(total.saturating_sub(window))
            });
    }

    pub(crate) fn total(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// --- the supervisor -> each session: its channel ends ---

/// The channels a session shares with the rest of the daemon.
#[derive(Clone)]
pub(crate) struct Links {
    /// Rows the poller claimed, shared by every session that submits.
    pub(crate) outbound: Receiver<TxRow>,
    pub(crate) db: DbSender,
    pub(crate) stats: Arc<Stats>,
    /// The windows of the bound sessions that submit: the poller claims rows only while
    /// one is bound, and keeps ready as many as their windows can take (see `db::poller`).
    pub(crate) submit_windows: Arc<SubmitWindows>,
}

// --- a session's reader -> its writer: the PDUs read ---

/// What the reader tells the writer.
#[derive(Debug)]
pub(crate) enum ReaderEvent {
    /// A PDU, with its raw bytes when they are stored (pdu_raw of a deliver_sm or data_sm;
    /// empty for the rest, which saves a copy per submit_sm_resp).
    Pdu(Pdu, Vec<u8>),
    /// A whole frame that did not decode: the writer answers it (generic_nack or the
    /// operation's _resp with the error's status).
    Undecodable(DecodeError, Vec<u8>),
    /// The stream is corrupt (bad command_length): answer ESME_RINVCMDLEN and close.
    Framing(FrameError),
    /// The connection ended; no more events follow.
    Closed(String),
}

// --- sessions -> the heartbeat: which session is which ---

/// Which bind a session makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    pub(crate) fn can_submit(self) -> bool {
        self != BindKind::Receiver
    }

    pub(crate) fn can_receive(self) -> bool {
        self != BindKind::Transmitter
    }
}

impl std::fmt::Display for BindKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        })
    }
}

// --- the signal thread -> the supervisor ---

/// A signal, as the supervisor acts on it.
pub(crate) enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Stop,
    /// SIGHUP: reopen the log file and read the servers again.
    Reload,
}

// --- sessions <-> DB writers: the ops and their acknowledgements ---

/// Work for the DB writer.
pub(crate) enum DbOp {
    /// A row's outcome; `ack` (the session's) is told once it is committed, so the session can
    /// count uncommitted results against their bound.
    Result {
        result: TxResult,
        ack: Option<ResultAck>,
    },
    /// A received PDU to store; `ack` says where to report the commit.
    Rx { row: Box<RxRow>, ack: Option<AckTo> },
}

impl DbOp {
    /// The smpp_tx_queue id this op is about, for log lines (0 for received PDUs).
    pub(crate) fn row_id(&self) -> i64 {
        match self {
            DbOp::Result { result, .. } => result.id,
            DbOp::Rx { .. } => 0,
        }
    }
}

/// Where to acknowledge a result once it is committed, and the segments it stands for
/// against the session's bound on uncommitted results (acknowledged as given, whatever
/// becomes of the result).
pub(crate) struct ResultAck {
    pub(crate) to: Sender<Committed>,
    pub(crate) segments: usize,
}

/// Where and how to acknowledge a received PDU once its row is committed.
pub(crate) struct AckTo {
    pub(crate) to: Sender<Committed>,
    pub(crate) sequence_number: u32,
    pub(crate) command: CommandId,
}

/// What the DB writer tells a session after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// "Your PDU is stored": answer it with `status` (ESME_ROK, or ESME_RX_T_APPN when it
    /// could not be stored and the SMSC should try again later).
    Received {
        sequence_number: u32,
        command: CommandId,
        status: CommandStatus,
    },
    /// Results of yours are committed (or given up on: their rows are failed, or keep their
    /// lease and are tried again later), standing for this many segments (the sum of their
    /// [`ResultAck::segments`]). Either way they no longer count against their bound. One
    /// message per session and batch, not one per result: each is a thread wake-up.
    Results(usize),
}

/// A DB op as queued for a writer thread, with its place in the [`ResultOrder`].
pub(crate) enum Queued {
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
pub(crate) struct DbSender {
    pub(crate) results: Sender<Queued>,
    pub(crate) received: Sender<Queued>,
    pub(crate) order: Arc<ResultOrder>,
}

impl DbSender {
    /// Queues `op` for its writer; fails only when the writers are gone.
    pub(crate) fn send(&self, op: DbOp) -> Result<(), SendError<DbOp>> {
        let returned = |SendError(queued): SendError<Queued>| SendError(queued.into_op());
        match op {
            DbOp::Result { result, ack } => {
                let seq = self.order.hand_over(result.receipt_keys());
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

/// Numbers results as they are handed over, tracks which are committed, and knows the
/// message-id keys (`smpp_tx_parts.message_id_key`) of the parts of those that are not.
#[derive(Default)]
pub(crate) struct ResultOrder {
    state: Mutex<Settled>,
    changed: Condvar,
}

/// Every result numbered below `below` is committed; `ahead` are committed ones above it.
#[derive(Default)]
struct Settled {
    next: u64,
    below: u64,
    ahead: BTreeSet<u64>,
    /// Each key of an uncommitted result's parts, with the last such result that has it.
    uncommitted: HashMap<String, u64>,
    /// The keys each uncommitted result put in `uncommitted`.
    keys_of: HashMap<u64, Vec<String>>,
}

impl Settled {
    /// One writer commits results in the order they were numbered: those only move `below`
    /// on, without a visit to the set.
    fn settle(&mut self, seq: u64) {
        for key in self.keys_of.remove(&seq).unwrap_or_default() {
            if self.uncommitted.get(&key) == Some(&seq) {
                self.uncommitted.remove(&key);
            }
        }
        if seq != self.below {
            self.ahead.insert(seq);
            return;
        }
        self.below += 1;
        while self.ahead.remove(&self.below) {
            self.below += 1;
        }
    }

    /// Whether a result numbered below `handed_before` with one of `keys` is uncommitted.
    fn awaits(&self, keys: &[String], handed_before: u64) -> bool {
        keys.iter().any(|key| {
            self.uncommitted
                .get(key)
                .is_some_and(|&seq| seq < handed_before)
        })
    }
}

impl ResultOrder {
    fn lock(&self) -> MutexGuard<'_, Settled> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a result being handed over, whose accepted parts have these message-id keys.
    pub(crate) fn hand_over(&self, keys: Vec<String>) -> u64 {
        let mut state = self.lock();
        let seq = state.next;
        state.next += 1;
        if !keys.is_empty() {
            for key in &keys {
                state.uncommitted.insert(key.clone(), seq);
            }
            state.keys_of.insert(seq, keys);
        }
        seq
    }

    /// How many results have been handed over so far.
    pub(crate) fn handed_over(&self) -> u64 {
        self.lock().next
    }

    /// Marks results committed (or given up on: either way they are settled).
    pub(crate) fn committed(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut state = self.lock();
        for seq in seqs {
            state.settle(seq);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits, at most `limit`, until no result among the first `handed_before` whose parts
    /// have one of `keys` is uncommitted; returns whether none is.
    pub(crate) fn wait_for_keys(
        &self,
        keys: &[String],
        handed_before: u64,
        limit: Duration,
    ) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while state.awaits(keys, handed_before) {
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

    /// Whether every result numbered below `count` is committed.
    #[cfg(test)]
    fn all_committed_below(&self, count: u64) -> bool {
        self.lock().below >= count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_windows_add_up_while_sessions_are_bound() {
        let windows = SubmitWindows::default();
        assert_eq!(windows.total(), 0);
        windows.open(100);
        windows.open(10);
        assert_eq!(windows.total(), 110);
        windows.close(100);
        assert_eq!(windows.total(), 10);
        windows.close(10);
        windows.close(10);
        assert_eq!(windows.total(), 0, "never below zero");
    }

    fn keys(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn the_committed_prefix_grows_only_without_gaps() {
        let order = ResultOrder::default();
        let seqs: Vec<u64> = (0..4).map(|_| order.hand_over(Vec::new())).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(order.handed_over(), 4);
        order.committed([1, 3]);
        assert!(!order.all_committed_below(1));
        order.committed([0]);
        assert!(order.all_committed_below(2));
        assert!(!order.all_committed_below(3));
        order.committed([2]);
        assert!(order.all_committed_below(4));
    }

    #[test]
    fn a_receipt_waits_only_for_its_own_message() {
        let order = ResultOrder::default();
        let mine = order.hand_over(keys(&["1a"]));
        let other = order.hand_over(keys(&["2b", "2c"]));
        let handed = order.handed_over();
        assert!(!order.wait_for_keys(&keys(&["1a"]), handed, Duration::ZERO));
        assert!(!order.wait_for_keys(&keys(&["2c"]), handed, Duration::ZERO));
        assert!(
            order.wait_for_keys(&keys(&["3d"]), handed, Duration::ZERO),
            "no result of that message: nothing to wait for"
        );
        assert!(
            order.wait_for_keys(&[], handed, Duration::ZERO),
            "an MO message"
        );
        order.committed([mine]);
        assert!(
            order.wait_for_keys(&keys(&["1a", "3d"]), handed, Duration::ZERO),
            "its message is committed, whatever the other's is"
        );
        assert!(!order.wait_for_keys(&keys(&["2b"]), handed, Duration::ZERO));
        order.committed([other]);
        assert!(order.wait_for_keys(&keys(&["2b", "2c"]), handed, Duration::ZERO));
    }

    #[test]
    fn a_result_handed_over_after_the_receipt_is_not_waited_for() {
        let order = ResultOrder::default();
        let handed = order.handed_over();
        order.hand_over(keys(&["1a"]));
        assert!(order.wait_for_keys(&keys(&["1a"]), handed, Duration::ZERO));
    }

    #[test]
    fn an_id_the_smsc_gave_again_is_settled_by_its_latest_result() {
        let order = ResultOrder::default();
        let first = order.hand_over(keys(&["7"]));
        let second = order.hand_over(keys(&["7"]));
        let handed = order.handed_over();
        order.committed([first]);
        assert!(!order.wait_for_keys(&keys(&["7"]), handed, Duration::ZERO));
        order.committed([second]);
        assert!(order.wait_for_keys(&keys(&["7"]), handed, Duration::ZERO));
    }

    #[test]
    fn a_waiter_wakes_when_another_thread_commits() {
        let order = Arc::new(ResultOrder::default());
        order.hand_over(keys(&["1a"]));
        let handed = order.handed_over();
        let committer = {
            let order = order.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                order.committed([0]);
            })
        };
        assert!(order.wait_for_keys(&keys(&["1a"]), handed, Duration::from_secs(10)));
        committer.join().unwrap();
    }
}
