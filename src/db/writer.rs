//! The DB writer threads: commit submit results and received messages in batches, then tell
//! each session which results are stored and which deliver_sm / data_sm it may now
//! acknowledge. One thread commits results and one stores received PDUs, after the results
//! handed over before them (see [`crate::handoff`]).
//!
//! Each takes the first operation waiting, everything else already queued (up to the batch
//! size), and commits them together. A lost connection is re-established with backoff and the
//! same batch is committed again: nothing is dropped while PostgreSQL is away, and no
//! deliver_sm is acknowledged before its row is committed. When the connection was lost
//! during the COMMIT, PostgreSQL is first asked whether it committed (see `db::doubt`),
//! so a batch is never stored twice. The threads end when every sender is gone and their
//! queues are empty.
//!
//! In the same transaction as the rows: receipts are matched to sent parts and their states
//! written ([`db::receipts`]), receipts whose part is unknown are kept for later, receipts
//! waiting for parts this batch stored are matched, and concatenated MO parts are held until
//! their set is whole ([`db::reassembly`]). Between batches (every [`HOUSEKEEPING`]) the
//! received-PDU writer retries waiting receipts against parts other esmed instances stored,
//! forgets receipts older than the match window with a log line, and stores MO sets past
//! their timeout as they are (the SQL of that is in `db::housekeeping`). A received PDU
//! whose own row PostgreSQL refuses is stored degraded (see [`RxShape`]) and acknowledged.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn, Level};
use postgres::Client;

use crate::backoff::Backoff;
use crate::db::conn::{Conn, SetUp};
use crate::db::doubt;
use crate::db::held::HeldRows;
use crate::db::housekeeping;
use crate::db::reassembly::{self, SetKey};
use crate::db::receipts::{self, PartState, ReceiptKeys};
use crate::db::sql::{wait_limits, Planning, Prepared, Sql, Statements};
use crate::db::PgConnector;
use crate::db::{self, RxRow, TxOutcome, TxResult};
use crate::handoff::{AckTo, Committed, DbSender, Queued, ResultAck, ResultOrder};
use crate::observe::counters::Stats;
use crate::smpp::receipt::{IdMatch, MessageState};
use crate::smpp::CommandStatus;

pub struct DbWriterConfig {
    pub pg: PgConnector,
    pub instance: String,
    /// The rows this process holds: a row's claim ends with its result's commit.
    pub held: Arc<HeldRows>,
    pub batch: usize,
    pub reconnect_max: Duration,
    /// How receipt ids are compared with submit_sm_resp ids.
    pub id_match: IdMatch,
    /// How long a receipt whose message is unknown keeps being matched.
    pub receipt_match_window: Duration,
    /// How long the parts of a concatenated MO wait for the rest of their set.
    pub mo_reassembly_timeout: Duration,
}

/// How often waiting receipts and MO parts are looked at between batches.
pub const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// How many threads commit results. Two, committing in turns, were measured on the 2-core
/// machine: no faster (their smaller batches cost PostgreSQL more CPU than the overlap
/// saved), so one; [`ResultOrder`] would allow more on a bigger machine.
const RESULT_WRITERS: usize = 1;

/// How long received PDUs wait for the results handed over before them to be committed. Only
/// a stuck result writer (PostgreSQL away) makes them wait this long; they are then stored
/// anyway, and a receipt that finds no part waits in smpp_rx_unmatched as usual.
const ORDER_WAIT: Duration = Duration::from_secs(5);

/// The longest a write waits for a row lock another transaction holds (an application's
/// `SELECT ... FOR UPDATE` on a row in flight): it then fails as transient and is tried again
/// with backoff, with a log line, rather than holding the writer for as long as the lock.
const WRITER_LOCK_WAIT: Duration = Duration::from_secs(2);

/// What one writer thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Results,
    Received,
}

/// A writer thread: it ends once its work is done, or with the error that made it give up.
pub type WriterThread = JoinHandle<Result<(), db::DbError>>;

/// Starts the writer threads; returns where to send their work and the threads, which end
/// once every [`DbSender`] is dropped and everything sent is committed.
pub fn spawn(
    config: DbWriterConfig,
    stats: Arc<Stats>,
) -> std::io::Result<(DbSender, Vec<WriterThread>)> {
    // No capacity: a session must never wait on a send (it answers the SMSC and runs its
    // timers), and the writers send it the commits it waits for. What a session hands over
    // is bounded where it lets work in: its window counts the uncommitted results, and at
    // most MAX_AWAITING_COMMIT received PDUs wait (see session::writer).
    let (results, results_rx) = unbounded();
    let (received, received_rx) = unbounded();
    let order = Arc::new(ResultOrder::default());
    let receipts_may_wait = Arc::new(AtomicBool::new(true));
    let config = Arc::new(config);
    let mut roles = vec![(Role::Received, received_rx, "esmed-db-received".to_string())];
    for n in 1..=RESULT_WRITERS {
        roles.push((
            Role::Results,
            results_rx.clone(),
            format!("esmed-db-results-{n}"),
        ));
    }
    drop(results_rx);
    let mut threads = Vec::new();
    for (role, ops, name) in roles {
        let writer = DbWriter {
            role,
            conn: Conn::new("DB writer", config.pg.clone(), set_up(role)),
            config: config.clone(),
            order: order.clone(),
            receipts_may_wait: receipts_may_wait.clone(),
            stats: stats.clone(),
            ops,
        };
        threads.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || writer.run())?,
        );
    }
    let sender = DbSender {
        results,
        received,
        order,
    };
    Ok((sender, threads))
}

struct DbWriter {
    role: Role,
    config: Arc<DbWriterConfig>,
    /// Set up for the role's statements; the batch statements are prepared on it.
    conn: Conn,
    order: Arc<ResultOrder>,
    /// Whether smpp_rx_unmatched may hold receipts: the received-PDU writer kept some there,
    /// or its housekeeping saw some (another instance's, or an earlier run's). While false, a
    /// batch of results skips looking for receipts that waited for them.
    receipts_may_wait: Arc<AtomicBool>,
    stats: Arc<Stats>,
    /// What the sessions hand over, for this writer's role.
    ops: Receiver<Queued>,
}

/// One commit's worth of work, split by table.
#[derive(Default)]
struct Batch {
    results: Vec<TxResult>,
    /// One per `results` entry.
    result_acks: Vec<Option<ResultAck>>,
    /// One per `results` entry: its place in the [`ResultOrder`].
    result_seqs: Vec<u64>,
    /// How many results were handed over before the last of `rx_rows`.
    rx_after: u64,
    rx_rows: Vec<RxRow>,
    /// One per `rx_rows` entry.
    acks: Vec<Option<AckTo>>,
    /// The MO parts are stored but the sets they complete are left to housekeeping: a set's
    /// row was refused, and the parts must not be refused with it.
    sets_later: bool,
    /// Receipts are neither matched nor their states written: they wait for housekeeping,
    /// which takes them one by one when PostgreSQL refuses one. Set when the batch was
    /// refused, so that a receipt's state refused holds back no result or received PDU.
    receipts_later: bool,
    /// How a lone received PDU is stored: degraded once PostgreSQL has refused it.
    rx_shape: RxShape,
}

/// How a received PDU is stored; each refusal by PostgreSQL (an operator's trigger or CHECK
/// constraint) degrades it one step, so that it is stored in some form and acknowledged at
/// its first delivery instead of refused at every delivery until the SMSC gives up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum RxShape {
    /// As it came.
    #[default]
    AsSent,
    /// In smpp_rx_queue without its text (see [`RxRow::without_text`]).
    WithoutText,
    /// In smpp_rx_refused, with the reason its row was refused.
    SetAside(String),
}

impl RxShape {
    /// The next form to try after PostgreSQL refused this one, with what esmed does next for
    /// the log; None when there is none left.
    fn after_refusal(&self, error: &db::DbError) -> Option<(RxShape, &'static str)> {
        match self {
            RxShape::AsSent => Some((
                RxShape::WithoutText,
                "storing it without its text (pdu_raw keeps the PDU)",
            )),
            RxShape::WithoutText => Some((
                RxShape::SetAside(error.to_string()),
                "it was refused without its text too: keeping it in smpp_rx_refused with the \
                 reason and acknowledging it",
            )),
            RxShape::SetAside(_) => None,
        }
    }
}

impl Batch {
    fn push(&mut self, queued: Queued) {
        match queued {
            Queued::Result { result, ack, seq } => {
                self.results.push(result);
                self.result_acks.push(ack);
                self.result_seqs.push(seq);
            }
            Queued::Rx { row, ack, after } => {
                self.rx_rows.push(*row);
                self.acks.push(ack);
                self.rx_after = self.rx_after.max(after);
            }
        }
    }

    fn len(&self) -> usize {
        self.results.len() + self.rx_rows.len()
    }

    /// The part, for a batch of one MO part whose set (were it completed) is still taken with
    /// it: that set's row may be what PostgreSQL refused.
    fn lone_mo_part(&self) -> Option<db::MoPart> {
        match self.rx_rows.as_slice() {
            [row] if self.results.is_empty() && !self.sets_later => row.mo_part.clone(),
            _ => None,
        }
    }

    /// Whether committing the batch may match receipts or write their states (`waiting`:
    /// receipts may wait for the results' parts).
    fn has_receipt_work(&self, waiting: bool) -> bool {
        !self.receipts_later
            && ((waiting && !self.results.is_empty()) || self.rx_rows.iter().any(|r| r.is_receipt))
    }

    /// Splits the batch into batches of one op each.
    fn into_singles(self) -> Vec<Batch> {
        let results = self
            .results
            .into_iter()
            .zip(self.result_acks)
            .zip(self.result_seqs)
            .map(|((r, ack), seq)| Batch {
                results: vec![r],
                result_acks: vec![ack],
                result_seqs: vec![seq],
                receipts_later: self.receipts_later,
                ..Batch::default()
            });
        let rx_after = self.rx_after;
        let rx = self
            .rx_rows
            .into_iter()
            .zip(self.acks)
            .map(move |(row, ack)| Batch {
                rx_rows: vec![row],
                acks: vec![ack],
                rx_after,
                receipts_later: self.receipts_later,
                ..Batch::default()
            });
        results.chain(rx).collect()
    }

    /// What is at stake while the batch waits for PostgreSQL at a stop, and what giving up
    /// on it (a second SIGTERM) would mean for it.
    fn at_stake_at_stop(&self) -> String {
        let mut parts = Vec::new();
        if !self.results.is_empty() {
            parts.push(format!(
                "the results of {} (rows submitted again when their lease runs out, possible \
                 duplicates, if esmed exits first)",
                row_list(self.results.iter().map(|r| r.id))
            ));
        }
        if !self.rx_rows.is_empty() {
            parts.push(format!(
                "{} received PDUs (not acknowledged: the SMSC delivers them again if esmed exits \
                 first)",
                self.rx_rows.len()
            ));
        }
        parts.join(" and ")
    }

    fn describe(&self) -> String {
        match (self.results.first(), self.rx_rows.first()) {
            (Some(result), _) => format!("result for row {} not stored", result.id),
            (None, Some(row)) => format!(
                "received PDU from '{}'; answering ESME_RX_T_APPN so the SMSC delivers it again later",
                row.source_addr
            ),
            (None, None) => "empty batch".into(),
        }
    }
}

/// "row 7" or "rows 7, 8, 9, ... (40 in all)": the first few ids of a batch, for a log line.
fn row_list(ids: impl ExactSizeIterator<Item = i64>) -> String {
    const SHOWN: usize = 10;
    let count = ids.len();
    let shown: Vec<String> = ids.take(SHOWN).map(|id| id.to_string()).collect();
    match count {
        1 => format!("row {}", shown.join("")),
        n if n <= SHOWN => format!("rows {}", shown.join(", ")),
        n => format!("rows {}, ... ({n} in all)", shown.join(", ")),
    }
}

impl DbWriter {
    /// Commits until every sender is gone and the queue is empty; ends early only when
    /// PostgreSQL refuses the connection for a reason retrying will not fix.
    fn run(mut self) -> Result<(), db::DbError> {
        if self.role == Role::Results {
            // Connected before the first result arrives: a connection costs a few hundred
            // milliseconds (authentication), which the first results' commit would wait
            // for, and the receipts behind them too. A failure here is retried at the first
            // batch, which says so.
            let _ = self.conn.open();
        }
        let mut next_housekeeping = Instant::now();
        loop {
            if self.role == Role::Received && Instant::now() >= next_housekeeping {
                self.housekeeping();
                next_housekeeping = Instant::now() + HOUSEKEEPING;
            }
            let received = match self.role {
                Role::Received => self.ops.recv_deadline(next_housekeeping),
                // No housekeeping: wait for work only.
                Role::Results => self.ops.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match received {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Batch::default();
            batch.push(first);
            while batch.len() < self.config.batch {
                match self.ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_with_retry(batch)?;
        }
        match self.role {
            Role::Results => info!("DB writer: all results committed, exiting"),
            Role::Received => info!("DB writer: all received PDUs stored, exiting"),
        }
        Ok(())
    }

    /// Commits the batch, reconnecting as long as it takes; isolates an op that PostgreSQL
    /// rejects so that one bad row cannot hold back the rest.
    fn commit_with_retry(&mut self, batch: Batch) -> Result<(), db::DbError> {
        self.wait_for_earlier_results(&batch);
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.reconnect_max);
        let mut stop_noted = false;
        // The batch's last transaction, whose COMMIT went unanswered: what became of it is
        // asked before anything is stored again.
        let mut in_doubt = None;
        let mut lost_before = false;
        loop {
            if !self.conn.open_or_wait(&mut backoff, &self.stats)? {
                self.note_stop_waits(&batch, &mut stop_noted);
                continue;
            }
            let error = match self.try_commit(&batch, &mut in_doubt, lost_before) {
                Ok(true) => {
                    self.after_commit(batch, CommandStatus::ESME_ROK);
                    return Ok(());
                }
                // It did not commit: commit it now.
                Ok(false) => continue,
                Err(e) => e,
            };
            let Some(client) = self.conn.client() else {
                continue;
            };
            if in_doubt.is_some() || client.is_closed() || error.is_transient() {
                let lost = client.is_closed() || error.is_connection_lost();
                lost_before |= lost;
                let delay = self.keep_for_retry(&batch, &error, lost, &mut backoff);
                self.note_stop_waits(&batch, &mut stop_noted);
                std::thread::sleep(delay);
            } else {
                return self.isolate_rejected(batch, &error);
            }
        }
    }

    /// One try on the current connection: first learns what became of the last try's
    /// unanswered COMMIT (`in_doubt`), else commits the batch. Returns whether the batch is
    /// committed; false: it was not, try again.
    fn try_commit(
        &mut self,
        batch: &Batch,
        in_doubt: &mut Option<doubt::Xid>,
        lost_before: bool,
    ) -> Result<bool, db::DbError> {
        let Some((client, statements)) = self.conn.with_statements() else {
            return Err(db::DbError::ConnectionClosed {
                what: "commit a batch",
            });
        };
        if let Some(xid) = *in_doubt {
            let outcome = doubt::resolve(client, xid)?;
            *in_doubt = None;
            return Ok(self.settle_doubt(batch, xid, outcome));
        }
        let rules = Rules {
            instance: &self.config.instance,
            id_match: self.config.id_match,
            receipts_may_wait: self.receipts_may_wait.load(Ordering::SeqCst)
                && !batch.receipts_later,
            match_receipts: !batch.receipts_later,
            lost_before,
        };
        match commit(client, statements, batch, &rules) {
            Ok(kept_waiting) => {
                if kept_waiting {
                    self.receipts_may_wait.store(true, Ordering::SeqCst);
                }
                Ok(true)
            }
            Err(doubt::Ended::Unknown(xid, e)) => {
                *in_doubt = Some(xid);
                Err(e)
            }
            Err(doubt::Ended::Failed(e)) => Err(e),
        }
    }

    /// Says what became of the batch's transaction `xid`, whose COMMIT went unanswered;
    /// returns whether it committed (the batch is then done: answered and counted, not
    /// stored again).
    fn settle_doubt(&self, batch: &Batch, xid: doubt::Xid, outcome: doubt::Outcome) -> bool {
        let committed = outcome == doubt::Outcome::Committed;
        let next = if committed {
            "it did: counting it done and answering its received PDUs, not storing it again"
        } else {
            "it did not: committing it again"
        };
        info!(
            "DB writer: the commit of {} results and received PDUs (transaction {}) was cut off \
             with the connection; PostgreSQL says {next}",
            batch.len(),
            xid.0
        );
        if committed {
            // Whether it kept receipts waiting is not known: assume so, housekeeping will
            // say otherwise.
            self.receipts_may_wait.store(true, Ordering::SeqCst);
        }
        committed
    }

    /// Received PDUs are stored after the results handed over before them (a receipt after
    /// its message's result), waiting a while for those to commit.
    fn wait_for_earlier_results(&self, batch: &Batch) {
        if !batch.rx_rows.is_empty() && !self.order.wait_for(batch.rx_after, ORDER_WAIT) {
            debug!(
                "DB writer: results handed over before {} received PDUs are still not committed \
                 after {} s; storing the PDUs now",
                batch.rx_rows.len(),
                ORDER_WAIT.as_secs()
            );
        }
    }

    /// PostgreSQL could not take the batch now (`lost`: the connection went): keeps it for a
    /// new connection, says so, and returns how long to wait before the next attempt.
    fn keep_for_retry(
        &mut self,
        batch: &Batch,
        error: &db::DbError,
        lost: bool,
        backoff: &mut Backoff,
    ) -> Duration {
        let delay = backoff.next_delay();
        let what = if lost {
            "lost PostgreSQL while committing"
        } else {
            "PostgreSQL cannot take now"
        };
        self.stats.session.report(
            Level::Warn,
            format!(
                "DB writer: {what} {} results and received PDUs: {error}; keeping them and \
                 retrying on a new connection in {} ms",
                batch.len(),
                delay.as_millis()
            ),
        );
        self.conn.lose();
        delay
    }

    /// PostgreSQL rejected the batch: a single result fails its row with the reason (see
    /// [`DbWriter::settle_refused`]), a single received PDU is stored again in a degraded
    /// form (see [`RxShape`]), and answered ESME_RX_T_APPN only when even the last is
    /// refused; a larger batch is committed op by op, so that only the bad one is.
    fn isolate_rejected(
        &mut self,
        mut batch: Batch,
        error: &db::DbError,
    ) -> Result<(), db::DbError> {
        if let Some(part) = batch.lone_mo_part() {
            self.stats.session.report(
                Level::Warn,
                format!(
                    "DB writer: {error}: storing MO part {}/{} (reference {}) from '{}' on its \
                     own; housekeeping stores the message its set makes (without its text, or \
                     sets the parts aside, if PostgreSQL refuses it again)",
                    part.seq, part.total, part.reference, batch.rx_rows[0].source_addr
                ),
            );
            batch.sets_later = true;
            return self.commit_with_retry(batch);
        }
        if batch.has_receipt_work(self.receipts_may_wait.load(Ordering::SeqCst)) {
            self.stats.session.report(
                Level::Warn,
                format!(
                    "DB writer: {error}: committing {} results and received PDUs again without \
                     matching receipts; housekeeping matches them (one by one if PostgreSQL \
                     refuses one)",
                    batch.len()
                ),
            );
            batch.receipts_later = true;
            return self.commit_with_retry(batch);
        }
        if let (Some(row), true) = (batch.rx_rows.first(), batch.len() == 1) {
            if let Some((shape, next)) = batch.rx_shape.after_refusal(error) {
                self.stats.session.report(
                    Level::Error,
                    format!(
                        "DB writer: received PDU from '{}' to '{}' refused: {error}; {next}",
                        row.source_addr, row.destination_addr
                    ),
                );
                batch.rx_shape = shape;
                return self.commit_with_retry(batch);
            }
        }
        if batch.len() == 1 {
            self.stats.session.report(
                Level::Error,
                format!("DB writer: {error}: {}", batch.describe()),
            );
            if let [result] = batch.results.as_slice() {
                self.settle_refused(result, error);
            }
            self.after_commit(batch, CommandStatus::ESME_RX_T_APPN);
            return Ok(());
        }
        self.stats.session.report(
            Level::Warn,
            format!(
                "DB writer: batch of {} rejected: {error}; committing one by one",
                batch.len()
            ),
        );
        for single in batch.into_singles() {
            self.commit_with_retry(single)?;
        }
        Ok(())
    }

    /// A result PostgreSQL refused for a reason retrying will not change: its row is failed
    /// with the reason (or released when even that is refused), never left claimed.
    fn settle_refused(&mut self, result: &TxResult, error: &db::DbError) {
        let why = error.to_string();
        let instance = &self.config.instance;
        let settled = match self.conn.client() {
            Some(client) => db::settle_refused(client, result, &why, instance),
            None => Err(db::DbError::ConnectionClosed {
                what: "fail a row whose result was refused",
            }),
        };
        let id = result.id;
        let message = match settled {
            Ok(db::Refused::Failed) => format!("row {id}: marked failed, its result refused"),
            Ok(db::Refused::Released) => {
                format!("row {id}: even failing it was refused; released, it will be sent again")
            }
            Ok(db::Refused::NotHeld) => return,
            Err(e) => format!(
                "row {id}: cannot fail it either: {e}; its lease is no longer renewed, it will \
                 be sent again"
            ),
        };
        self.stats.session.report(Level::Error, message);
    }

    /// Once per batch, while esmed stops: the stop waits for PostgreSQL (nothing is given up
    /// while it may yet commit), for what, and what a second SIGTERM would cost, so that an
    /// operator waiting on a stop knows why and can choose.
    fn note_stop_waits(&self, batch: &Batch, noted: &mut bool) {
        if *noted || !self.stats.session.stopping.load(Ordering::Relaxed) {
            return;
        }
        *noted = true;
        let behind = match self.ops.len() {
            0 => String::new(),
            n => format!(", and {n} more results or received PDUs queued behind them"),
        };
        self.stats.session.report(
            Level::Warn,
            format!(
                "DB writer: stopping waits for PostgreSQL to commit {}{behind}; a second \
                 SIGTERM exits at once",
                batch.at_stake_at_stop()
            ),
        );
    }

    /// Counts what was committed and answers the received PDUs with `status`.
    fn after_commit(&self, batch: Batch, status: CommandStatus) {
        if status == CommandStatus::ESME_ROK {
            for result in &batch.results {
                let counter = match result.outcome {
                    TxOutcome::Done { .. } => &self.stats.rows_done,
                    TxOutcome::Failed { .. } => &self.stats.rows_failed,
                    TxOutcome::Retry { .. } => &self.stats.rows_retried,
                    TxOutcome::Release => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .stored
                .fetch_add(batch.rx_rows.len() as u64, Ordering::Relaxed);
        }
        self.order.committed(batch.result_seqs);
        self.config.held.settle(batch.results.iter().map(|r| r.id));
        for (to, segments) in coalesce_acks(batch.result_acks.into_iter().flatten()) {
            let _ = to.send(Committed::Results(segments));
        }
        for ack in batch.acks.into_iter().flatten() {
            let committed = Committed::Received {
                sequence_number: ack.sequence_number,
                command: ack.command,
                status,
            };
            // The session may have ended since; the SMSC will then redeliver.
            let _ = ack.to.send(committed);
        }
    }
}

impl DbWriter {
    /// Retries waiting receipts, forgets expired ones, stores due MO sets. Skipped (until the
    /// next time) when PostgreSQL is away: a batch's commit does the reconnecting.
    fn housekeeping(&mut self) {
        let Ok(client) = self.conn.open() else {
            return;
        };
        // Receipts and sets apart: a failure of one holds back neither the other nor its
        // count.
        match housekeeping::tidy_receipts(client, self.config.receipt_match_window) {
            Ok(still_waiting) => self
                .receipts_may_wait
                .store(still_waiting, Ordering::SeqCst),
            Err(e) => housekeeping_failed(&self.stats, "receipts", &e),
        }
        match housekeeping::tidy_sets(client, self.config.mo_reassembly_timeout) {
            Ok(stored) => {
                self.stats
                    .stored
                    .fetch_add(stored as u64, Ordering::Relaxed);
            }
            Err(e) => housekeeping_failed(&self.stats, "MO parts", &e),
        }
    }
}

fn housekeeping_failed(stats: &Stats, what: &str, error: &db::DbError) {
    stats.session.report(
        Level::Warn,
        format!("DB writer: housekeeping of {what} failed: {error}; trying again later"),
    );
}

/// A writer of `role`'s connection is planned for its statements for the whole session, so
/// that a batch needs no SET of its own (a batch of results is then one round trip).
fn set_up(role: Role) -> SetUp {
    let planning = match role {
        Role::Results => Planning::Results,
        Role::Received => Planning::Lookups,
    };
    let settings = format!(
        "{}; {}",
        planning.for_session(),
        wait_limits(WRITER_LOCK_WAIT, None)
    );
    Box::new(move |client: &mut Client| {
        client
            .batch_execute(&settings)
            .map_err(db::pg("set up the connection"))
    })
}

/// The result acks of a batch as (channel, segments) pairs: all acks to one session become
/// one message.
fn coalesce_acks(acks: impl Iterator<Item = ResultAck>) -> Vec<(Sender<Committed>, usize)> {
    let mut per_session: Vec<(Sender<Committed>, usize)> = Vec::new();
    for ack in acks {
        match per_session
            .iter_mut()
            .find(|(to, _)| to.same_channel(&ack.to))
        {
            Some((_, sum)) => *sum += ack.segments,
            None => per_session.push((ack.to, ack.segments)),
        }
    }
    per_session
}

/// What a commit needs besides the batch.
struct Rules<'a> {
    instance: &'a str,
    id_match: IdMatch,
    /// See [`DbWriter::receipts_may_wait`].
    receipts_may_wait: bool,
    /// Received receipts are matched now (else kept waiting: see [`Batch::receipts_later`]).
    match_receipts: bool,
    /// An earlier try of this batch lost its connection: a one-statement batch of results
    /// may have been written by it (see [`commit`]).
    lost_before: bool,
}

/// Logs the results not written because their rows are no longer claimed by this instance.
fn note_skipped(skipped: &[i64], rules: &Rules) {
    if skipped.is_empty() {
        return;
    }
    let rows = row_list(skipped.iter().copied());
    if rules.lost_before {
        info!(
            "DB writer: results for {rows} not written now: their rows are no longer claimed by \
             '{}' (written by the earlier try whose answer was lost with the connection, or \
             their lease went to another instance)",
            rules.instance
        );
    } else {
        warn!(
            "DB writer: results for {rows} not written: the lease is no longer held by '{}'",
            rules.instance
        );
    }
}

/// One transaction for the whole batch: results (and receipts that waited for their parts),
/// MO parts, received rows with their receipts matched, then the states receipts carry.
/// Returns whether receipts were left waiting for their parts.
///
/// Round trips are what a batch costs most at small windows (a submit waits for earlier
/// results to be committed), so statements with nothing to do are skipped, and a batch of
/// results that is one statement (the usual: all done, each in one part) runs as that
/// statement alone, its own transaction: one round trip instead of BEGIN, UPDATE, COMMIT.
///
/// A COMMIT that goes unanswered is [`doubt::Ended::Unknown`], with the transaction's id, for
/// the caller to resolve. The one-statement batch needs no id: it only marks rows done that
/// this instance holds, and done rows are never claimed again, so if it did commit, running
/// it again writes nothing (the rows are reported skipped) and counts nothing twice.
fn commit(
    client: &mut Client,
    statements: &mut Statements,
    batch: &Batch,
    rules: &Rules,
) -> Result<bool, doubt::Ended> {
    let alone = batch.rx_rows.is_empty()
        && !rules.receipts_may_wait
        && db::results::in_one_statement(&batch.results);
    if alone {
        let mut sql = Prepared::new(client, statements);
        let summary = db::write_results_in(&mut sql, &batch.results, rules.instance)
            .map_err(doubt::Ended::Failed)?;
        note_skipped(&summary.skipped, rules);
        return Ok(false);
    }
    let xid = doubt::begin(client).map_err(doubt::Ended::Failed)?;
    let written = write_batch(&mut Prepared::new(client, statements), batch, rules);
    let done = written
        .map_err(doubt::Ended::Failed)
        .and_then(|kept_waiting| doubt::commit(client, xid).map(|()| kept_waiting));
    let failed_before_commit = matches!(done, Err(doubt::Ended::Failed(_)));
    if failed_before_commit && !client.is_closed() && client.batch_execute("ROLLBACK").is_err() {
        // The connection cannot even end the failed transaction: have the caller replace it
        // rather than send the next batch into it.
        return Err(doubt::Ended::Failed(db::DbError::ConnectionClosed {
            what: "end a failed batch",
        }));
    }
    done
}

/// The statements of [`commit`], inside its transaction.
fn write_batch(sql: &mut impl Sql, batch: &Batch, rules: &Rules) -> Result<bool, db::DbError> {
    let mut states = Vec::new();
    let mut summary = None;
    if !batch.results.is_empty() {
        let written = db::write_results_in(sql, &batch.results, rules.instance)?;
        note_skipped(&written.skipped, rules);
        summary = Some(written);
    }
    let waiting_keys = summary
        .as_ref()
        .map(|s| s.part_keys.as_slice())
        .filter(|keys| rules.receipts_may_wait && !keys.is_empty());
    if let Some(keys) = waiting_keys {
        // The results connection plans for result updates; these are lookups.
        sql.batch_execute(&Planning::Lookups.for_transaction())
            .map_err(db::pg("plan receipt statements"))?;
        states = receipts::match_waiting(sql, Some(keys))?;
    }
    let mut kept_waiting = false;
    let degraded: Vec<RxRow>;
    let rx_rows = match &batch.rx_shape {
        RxShape::AsSent => batch.rx_rows.as_slice(),
        RxShape::WithoutText => {
            degraded = batch
                .rx_rows
                .iter()
                .cloned()
                .map(RxRow::without_text)
                .collect();
            degraded.as_slice()
        }
        RxShape::SetAside(reason) => {
            for row in &batch.rx_rows {
                db::rx::set_aside(sql, row, reason)?;
            }
            &[]
        }
    };
    if !rx_rows.is_empty() {
        let rows = store_mo_parts(sql, rx_rows, batch.sets_later)?;
        let stored = store_rx(sql, &rows, rules.id_match, rules.match_receipts)?;
        kept_waiting = stored.kept_waiting > 0;
        states.extend(stored.states);
    }
    receipts::apply_states(sql, &states)?;
    Ok(kept_waiting)
}

/// Stores the MO parts among `rows`; returns the rows to insert: the others as they are, plus
/// one per set the parts completed (unless `sets_later`: housekeeping stores those) and one per
/// older set a part ended by reusing its reference.
fn store_mo_parts<'a>(
    c: &mut impl Sql,
    rows: &'a [RxRow],
    sets_later: bool,
) -> Result<Vec<Cow<'a, RxRow>>, db::DbError> {
    let parts: Vec<(&RxRow, &db::MoPart)> = rows
        .iter()
        .filter_map(|r| r.mo_part.as_ref().map(|p| (r, p)))
        .collect();
    let mut whole: Vec<Cow<'a, RxRow>> = rows
        .iter()
        .filter(|r| r.mo_part.is_none())
        .map(Cow::Borrowed)
        .collect();
    if parts.is_empty() {
        return Ok(whole);
    }
    for ended in reassembly::take_clashing(c, &parts)? {
        warn!(
            "concatenated MO from '{}' to '{}': a new message reuses its reference before it \
             was complete; storing the {} of {} parts that arrived as incomplete, the new \
             message starts a set of its own",
            ended.source_addr,
            ended.destination_addr,
            ended.pdu_raw.split(',').count(),
            ended.mo_parts.unwrap_or(0),
        );
        whole.push(Cow::Owned(ended));
    }
    for again in reassembly::store_parts(c, &parts)? {
        if let Some((row, part)) = parts.get(again) {
            info!(
                "MO part {}/{} (reference {}) from '{}' to '{}' delivered again after its \
                 message was stored; acknowledging it without storing it twice",
                part.seq, part.total, part.reference, row.source_addr, row.destination_addr
            );
        }
    }
    if sets_later {
        return Ok(whole);
    }
    let mut keys: Vec<SetKey> = parts.iter().map(|(r, p)| SetKey::of(r, p)).collect();
    keys.sort();
    keys.dedup();
    whole.extend(
        reassembly::take_complete(c, &keys)?
            .into_iter()
            .map(Cow::Owned),
    );
    Ok(whole)
}

/// What [`store_rx`] did beyond inserting.
struct StoredRx {
    /// The matched receipts' states, in arrival order.
    states: Vec<PartState>,
    /// How many receipts were kept in smpp_rx_unmatched.
    kept_waiting: usize,
}

/// Inserts `rows` with each receipt's tx_id when its part is known (and `match_now`); keeps
/// the others waiting.
/// Returns the matched receipts' states, in arrival order.
fn store_rx(
    c: &mut impl Sql,
    rows: &[Cow<'_, RxRow>],
    id_match: IdMatch,
    match_now: bool,
) -> Result<StoredRx, db::DbError> {
    // Each receipt's token is its index in `rows`.
    let keys: Vec<ReceiptKeys> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let id = r.receipted_message_id.as_deref().filter(|_| r.is_receipt)?;
            let token = i64::try_from(i).ok()?;
            Some(ReceiptKeys::new(token, id, r.receipt_id_from_tlv, id_match))
        })
        .collect();
    let matches = if match_now {
        receipts::match_receipts(c, &keys)?
    } else {
        Vec::new()
    };
    let (tx_ids, states) = apply_matches(rows, &matches);
    let matched: Vec<(&RxRow, Option<i64>)> = rows
        .iter()
        .map(|r| &**r)
        .zip(tx_ids.iter().copied())
        .collect();
    let ids = db::insert_rx(c, &matched)?;
    let waiting = still_waiting(keys, &tx_ids, rows, &ids);
    for (k, _) in &waiting {
        debug!(
            "receipt (rx id {}) matches no sent message yet; matching it again as parts are stored",
            k.token
        );
    }
    receipts::keep_unmatched(c, &waiting)?;
    Ok(StoredRx {
        states,
        kept_waiting: waiting.len(),
    })
}

/// Each row's matched tx_id (None where none), and the matched receipts' states in arrival
/// order.
fn apply_matches(
    rows: &[Cow<'_, RxRow>],
    matches: &[receipts::ReceiptMatch],
) -> (Vec<Option<i64>>, Vec<PartState>) {
    let mut tx_ids = vec![None; rows.len()];
    let mut states = Vec::new();
    for m in matches {
        let Some(i) = usize::try_from(m.token).ok().filter(|&i| i < rows.len()) else {
            continue;
        };
        tx_ids[i] = Some(m.tx_id);
        let state = rows[i]
            .message_state
            .as_deref()
            .and_then(MessageState::from_name);
        if let Some(state) = state {
            let part = PartState {
                tx_id: m.tx_id,
                part_no: m.part_no,
                single: m.single,
                state,
            };
            states.push((m.token, part));
        }
    }
    states.sort_by_key(|(token, _)| *token);
    (tx_ids, states.into_iter().map(|(_, state)| state).collect())
}

/// The receipts no part matched (no tx_id), each now named by its smpp_rx_queue id (`ids`,
/// in the order of `rows`), with the state it reports.
fn still_waiting(
    keys: Vec<ReceiptKeys>,
    tx_ids: &[Option<i64>],
    rows: &[Cow<'_, RxRow>],
    ids: &[i64],
) -> Vec<(ReceiptKeys, Option<MessageState>)> {
    keys.into_iter()
        .filter_map(|mut k| {
            let i = usize::try_from(k.token).ok()?;
            if tx_ids.get(i)?.is_some() {
                return None;
            }
            let state = rows
                .get(i)?
                .message_state
                .as_deref()
                .and_then(MessageState::from_name);
            k.token = *ids.get(i)?;
            Some((k, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_names_the_first_rows_and_how_many() {
        assert_eq!(row_list([7].into_iter()), "row 7");
        assert_eq!(row_list([7, 8, 9].into_iter()), "rows 7, 8, 9");
        assert_eq!(
            row_list((1..41).collect::<Vec<i64>>().into_iter()),
            "rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... (40 in all)"
        );
    }

    #[test]
    fn result_acks_become_one_message_per_session() {
        let (a, a_rx) = crossbeam_channel::unbounded();
        let (b, b_rx) = crossbeam_channel::unbounded();
        // Window shares: a three-part message counts three.
        let acks = [(a.clone(), 1), (b.clone(), 3), (a.clone(), 3), (a, 1)];
        let acks = acks.map(|(to, segments)| ResultAck { to, segments });
        for (to, segments) in coalesce_acks(acks.into_iter()) {
            to.send(Committed::Results(segments)).unwrap();
        }
        assert_eq!(a_rx.try_iter().collect::<Vec<_>>(), [Committed::Results(5)]);
        assert_eq!(b_rx.try_iter().collect::<Vec<_>>(), [Committed::Results(3)]);
    }
}
