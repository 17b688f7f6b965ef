//! The DB writer threads: commit submit results and received messages in batches, then tell
//! each session which results are stored and which deliver_sm / data_sm it may now
//! acknowledge. One thread commits results and one stores received PDUs, a receipt after its
//! message's result (see [`crate::handoff`]).
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
//! their set is whole ([`db::reassembly`]); that transaction is `db::batch`, this module is
//! the threads. Between batches (every [`HOUSEKEEPING`]) the received-PDU writer retries
//! waiting receipts against parts other esmed instances stored, forgets receipts older than
//! the match window with a log line, and stores MO sets past their timeout as they are (see
//! `db::housekeeping`). A received PDU whose own row PostgreSQL refuses is stored degraded
//! (see `db::batch::RxShape`) and acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use log::{debug, info, Level};
use postgres::Client;

use crate::backoff::Backoff;
use crate::db::batch::{commit, Batch, Rules};
use crate::db::conn::{Conn, SetUp};
use crate::db::doubt;
use crate::db::held::HeldRows;
use crate::db::housekeeping;
use crate::db::sql::{wait_limits, Planning};
use crate::db::PgConnector;
use crate::db::{self, TxOutcome, TxResult};
use crate::handoff::{Committed, DbSender, Queued, ResultAck, ResultOrder};
use crate::observe::counters::Stats;
use crate::smpp::receipt::IdMatch;
use crate::smpp::CommandStatus;

pub(crate) struct DbWriterConfig {
    pub(crate) pg: PgConnector,
    pub(crate) instance: String,
    /// The rows this process holds: a row's claim ends with its result's commit.
    pub(crate) held: Arc<HeldRows>,
    pub(crate) batch: usize,
    pub(crate) reconnect_max: Duration,
    /// How receipt ids are compared with submit_sm_resp ids.
    pub(crate) id_match: IdMatch,
    /// How long a receipt whose message is unknown keeps being matched.
    pub(crate) receipt_match_window: Duration,
    /// How long the parts of a concatenated MO wait for the rest of their set.
    pub(crate) mo_reassembly_timeout: Duration,
}

/// How often waiting receipts and MO parts are looked at between batches.
pub const HOUSEKEEPING: Duration = Duration::from_secs(2);

/// How many threads commit results. Two, committing in turns, were measured on the 2-core
/// machine: no faster (their smaller batches cost PostgreSQL more CPU than the overlap
/// saved), so one; [`ResultOrder`] would allow more on a bigger machine.
const RESULT_WRITERS: usize = 1;

/// How long a receipt waits for its message's result to be committed. Only
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
pub(crate) type WriterThread = JoinHandle<Result<(), db::DbError>>;

/// Starts the writer threads; returns where to send their work and the threads, which end
/// once every [`DbSender`] is dropped and everything sent is committed.
pub(crate) fn spawn(
    config: DbWriterConfig,
    stats: Arc<Stats>,
) -> std::io::Result<(DbSender, Vec<WriterThread>)> {
    // No capacity: a session must never wait on a send (it answers the SMSC and runs its
    // timers), and the writers send it the commits it waits for. What a session hands over
    // is bounded where it lets work in: it counts the uncommitted results against their bound
    // (max_uncommitted_results, or the window with strict_resend_bound), and at
    // most MAX_AWAITING_COMMIT received PDUs wait (see session::state).
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
            receipt_window: self.config.receipt_match_window,
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
            xid.id
        );
        if committed {
            // Whether it kept receipts waiting is not known: assume so, housekeeping will
            // say otherwise.
            self.receipts_may_wait.store(true, Ordering::SeqCst);
        }
        committed
    }

    /// A receipt is stored after its message's result, when that was handed over before it,
    /// waiting a while for it to commit; nothing else waits (see [`crate::handoff`]).
    fn wait_for_earlier_results(&self, batch: &Batch) {
        let keys = batch.receipt_keys(self.config.id_match);
        if !keys.is_empty() && !self.order.wait_for_keys(&keys, batch.rx_after, ORDER_WAIT) {
            debug!(
                "DB writer: the results of messages that {} received receipts are for are still \
                 not committed after {} s; storing the receipts now",
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
    /// form (see `db::batch::RxShape`), and answered ESME_RX_T_APPN only when even the last is
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

#[cfg(test)]
mod tests {
    use super::*;

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
