//! The poller thread: claims pending rows and hands them to the sessions.
//!
//! It LISTENs for the queue's NOTIFY (so an INSERT is claimed at once). It claims only while
//! a session can submit, and keeps only so many rows ready in the hand-over channel (see
//! [`Supply::ready_target`]), so claimed rows never pile up behind a slow SMSC: the window's
//! backpressure reaches the claim. It claims on from the last row it claimed (see
//! `db::claim_after`), and from the head of the queue only when that runs out or a NOTIFY
//! says rows may have come before it.
//!
//! Its sweeper thread looks from the head every `poll_interval`, on a connection of its own
//! and without claiming, for rows behind the cursor: retries whose time came, rows released
//! or whose lease ran out, a lost notification. When it finds one it wakes the poller, whose
//! next claim starts from the head if the row ranks before the cursor. Looking from the head
//! steps over every row done since the last VACUUM (100-250 ms late in a million-row drain);
//! done as a claim on the poller's own connection it held back the claims the sessions were
//! waiting for (the ready rows last a few milliseconds), a slower slice of the drain every
//! poll_interval. The sweeper's look also marks those entries dead, so the poller's own
//! claims from the head stay quick.
//!
//! Leases: it claims on the connection that holds its instance's lock (see `db::instance`),
//! and claims nothing while it cannot hold it. Every third of a lease it renews the leases of
//! exactly the rows this process holds (see `db::held`), so a row in flight never looks
//! abandoned to another esmed however long the SMSC takes, and releases the rows claimed
//! under its name that it does not hold: at start those a dead predecessor left, after a
//! reconnect those of a claim whose answer was lost. Each released row may have reached the
//! SMSC: it is counted in submission_resends and logged. Its statements never wait long for
//! an application's row lock (see [`CLAIMER_LOCK_WAIT`]): claims and renewals skip locked
//! rows, and a row whose renewal was skipped is tried again within a second.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use log::{info, warn, Level};
use postgres::Client;

use crate::backoff::Backoff;
use crate::db::conn::Conn;
use crate::db::held::HeldRows;
use crate::db::sql::{wait_limits, Prepared};
use crate::db::PgConnector;
use crate::db::{self, instance, TxRow};
use crate::handoff::SubmitWindows;
use crate::observe::counters::Stats;

pub(crate) struct PollerConfig {
    pub(crate) pg: PgConnector,
    /// The name this process runs as (see `db::instance::take_name`).
    pub(crate) instance: String,
    /// The rows this process holds, shared with the DB writer, which settles them.
    pub(crate) held: Arc<HeldRows>,
    pub(crate) lease: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) reconnect_max: Duration,
    /// `[daemon] claim_batch`: the fewest rows kept ready (see [`Supply::ready_target`]).
    pub(crate) claim_batch: usize,
}

/// How long one wait for a notification lasts, so that a stop is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// How long to wait before looking again when enough rows are ready.
const FULL_WAIT: Duration = Duration::from_millis(2);
/// The longest a claim or renewal waits for a lock another transaction holds (their rows
/// are skipped; this bounds waits on a table lock).
const CLAIMER_LOCK_WAIT: Duration = Duration::from_secs(1);
/// How soon leases are renewed again when some held rows were locked by another transaction.
const LOCKED_RENEWAL: Duration = Duration::from_secs(1);

/// The poller's and the sweeper's threads. Each ends when `stop` is dropped, or with the error
/// that made it give up (PostgreSQL refused it for a reason retrying will not fix).
pub(crate) struct PollerThreads {
    /// Returns the connection that holds the instance's lock (see [`spawn`]).
    pub(crate) poller: JoinHandle<Result<Option<Client>, db::DbError>>,
    pub(crate) sweeper: JoinHandle<Result<(), db::DbError>>,
}

/// Starts the poller and its sweeper. `locked` is the connection that holds the instance's
/// lock: the poller claims on it, and returns it when it ends (while it still holds the
/// lock), for the daemon to keep until the rows in flight are settled: no process may take
/// the name over while this one still writes their results.
pub(crate) fn spawn(
    config: PollerConfig,
    locked: Client,
    outbound: Sender<TxRow>,
    submit_windows: Arc<SubmitWindows>,
    stop: Receiver<()>,
    stats: Arc<Stats>,
) -> std::io::Result<PollerThreads> {
    let supply = Supply {
        outbound,
        submit_windows,
        stats,
        claim_batch: config.claim_batch,
        held: Arc::clone(&config.held),
    };
    let place = Arc::new(SharedPlace::default());
    let lease = config.lease;
    let sweeper = Sweeper {
        conn: Conn::new(
            "sweeper",
            config.pg.clone(),
            Box::new(move |client: &mut Client| prepare_claimer(client, lease)),
        ),
        interval: config.poll_interval,
        reconnect_max: config.reconnect_max,
        stats: Arc::clone(&supply.stats),
        submit_windows: Arc::clone(&supply.submit_windows),
        place: Arc::clone(&place),
    };
    let sweeper_stop = stop.clone();
    let sweeper = std::thread::Builder::new()
        .name("esmed-sweeper".into())
        .spawn(move || sweeper.run(&sweeper_stop))?;
    let poller = std::thread::Builder::new()
        .name("esmed-poller".into())
        .spawn(move || {
            let mut poller = Poller {
                conn: Conn::new(
                    "poller",
                    config.pg.clone(),
                    Box::new(move |client: &mut Client| {
                        prepare_claimer(client, lease)?;
                        db::listen(client)
                    }),
                ),
                config,
                locked: false,
                supply,
                place,
                locked_rows: 0,
                lock_refused: false,
            };
            poller.run(locked, &stop)?;
            info!("poller: stopped claiming rows");
            let locked = poller.locked;
            Ok(poller.conn.take().filter(|_| locked))
        })?;
    Ok(PollerThreads { poller, sweeper })
}

/// Where the poller's claims stand, shared with the sweeper.
#[derive(Default)]
struct SharedPlace {
    /// Priority and id of the last row claimed, to continue from (see `db::claim_after`).
    cursor: Mutex<Option<(u8, i64)>>,
    /// Rows may rank before the cursor (a NOTIFY came, or the sweeper found one): the next
    /// claim starts from the head.
    head_due: AtomicBool,
    /// The sweeper found a sendable row: an idle poller claims again.
    wake: AtomicBool,
}

impl SharedPlace {
    fn cursor(&self) -> Option<(u8, i64)> {
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_cursor(&self, cursor: Option<(u8, i64)>) {
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = cursor;
    }
}

/// Where the poller's claimed rows go, and how many to keep there.
struct Supply {
    /// Unbounded: [`Supply::room`] bounds what is in it.
    outbound: Sender<TxRow>,
    submit_windows: Arc<SubmitWindows>,
    stats: Arc<Stats>,
    claim_batch: usize,
    held: Arc<HeldRows>,
}

impl Supply {
    /// How many claimed rows to keep ready: `claim_batch`, or twice the windows of the
    /// sessions that submit (at most 10,000) if that is more. A claim starts when half are
    /// gone (see [`Supply::smallest_claim`]), so a whole window's worth is still ready while
    /// it runs: a session whose window empties at once (a large window at full speed)
    /// refills it without waiting for the claim. Sized by claim_batch alone, a window of 1000
    /// waited for claims: 80k msg/s against 95-103k with the window's worth ready.
    fn ready_target(&self) -> usize {
        ready_target(self.claim_batch, self.submit_windows.total())
    }

    /// Claims wait until half the ready rows are gone: a claim costs PostgreSQL about as much
    /// for 50 rows as for 250, and half the target is still several milliseconds of submits
    /// at full speed, so the session never runs dry. At low rates nothing is ready and a
    /// claim takes whatever is there at once.
    fn smallest_claim(&self) -> usize {
        (self.ready_target() / 2).max(1)
    }

    fn room(&self) -> usize {
        self.ready_target().saturating_sub(self.outbound.len())
    }

    fn sessions_submit(&self) -> bool {
        self.submit_windows.total() > 0
    }

    /// Hands `rows` to the sessions, held until the DB writer settles them; returns how many
    /// were claimed.
    fn hand_over(&self, rows: Vec<TxRow>) -> usize {
        let claimed = rows.len();
        self.stats
            .claimed
            .fetch_add(claimed as u64, Ordering::Relaxed);
        self.held.hold(rows.iter().map(|row| row.id));
        let mut rows = rows.into_iter();
        for row in rows.by_ref() {
            if let Err(returned) = self.outbound.send(row) {
                // No session will take them: not held, so released by the next look.
                self.held.settle([returned.0.id]);
                break;
            }
        }
        self.held.settle(rows.map(|row| row.id));
        claimed
    }
}

struct Poller {
    config: PollerConfig,
    /// Set up for claiming (the claim statements are prepared on it) and listening.
    conn: Conn,
    /// Whether `conn` holds the instance's lock: claims, renewals and releases wait for it.
    locked: bool,
    supply: Supply,
    place: Arc<SharedPlace>,
    /// Held rows whose renewal the last look skipped, locked by another transaction.
    locked_rows: u64,
    /// Another process held the instance's lock when it was last taken again.
    lock_refused: bool,
}

impl Poller {
    fn run(&mut self, locked: Client, stop: &Receiver<()>) -> Result<(), db::DbError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.reconnect_max);
        match self.conn.adopt(locked) {
            Ok(()) => self.locked = true,
            Err(e) => self.back_off("setting up its connection", &e, &mut backoff, stop),
        }
        let mut next_look: Option<Instant> = None;
        // Claim at start: rows may be waiting from before we ran.
        let mut due = true;
        while stop.try_recv() == Err(TryRecvError::Empty) {
            if !self.conn.is_open() {
                if !self.reconnect(&mut backoff)? {
                    continue;
                }
                // Claims whose answer was lost with the old connection are released now.
                next_look = None;
                due = true;
            }
            if !self.locked {
                self.lock_again(&mut backoff, stop);
                continue;
            }
            if next_look.is_none_or(|at| Instant::now() >= at) {
                match self.look_after_leases() {
                    Ok(next) => {
                        backoff.reset();
                        next_look = Some(next);
                    }
                    Err(e) => {
                        self.back_off("looking after leases", &e, &mut backoff, stop);
                        continue;
                    }
                }
            }
            let room = self.supply.room();
            let worth_claiming = room >= self.supply.smallest_claim();
            if due && worth_claiming && self.supply.sessions_submit() {
                match self.claim(room) {
                    // A full claim means more rows are probably pending.
                    Ok(claimed) => {
                        backoff.reset();
                        due = claimed == room;
                    }
                    Err(e) => {
                        self.back_off("claiming rows", &e, &mut backoff, stop);
                        continue;
                    }
                }
                if due {
                    continue;
                }
            }
            if due {
                // Rows are waiting for room or for a session: look again shortly.
                std::thread::sleep(if worth_claiming {
                    WAIT_SLICE
                } else {
                    FULL_WAIT
                });
                continue;
            }
            due = self.wait_for_work() || self.place.wake.swap(false, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Renews the leases of the rows held and releases the rows claimed under this name that
    /// are not held; returns when to look again: a third of a lease, sooner when rows held
    /// were locked by another transaction and could not be renewed.
    fn look_after_leases(&mut self) -> Result<Instant, db::DbError> {
        let held = self.supply.held.ids();
        let Some(client) = self.conn.client() else {
            return Ok(Instant::now());
        };
        let instance = &self.config.instance;
        let renewal = db::renew_held(client, self.config.lease, instance, &held)?;
        let released = db::release_untracked(client, instance, &held);
        self.note_locked_rows(renewal.locked);
        match released {
            Ok(released) => log_released(&self.config.instance, &released),
            // A row PostgreSQL will not release (a user's trigger) must not stop the claims.
            Err(e) if !e.is_transient() => self.supply.stats.session.report(
                Level::Warn,
                format!("poller: releasing rows no one holds failed: {e}; trying again later"),
            ),
            Err(e) => return Err(e),
        }
        let mut wait = self.config.lease / 3;
        if renewal.locked > 0 {
            wait = wait.min(LOCKED_RENEWAL);
        }
        Ok(Instant::now() + wait)
    }

    /// Says when held rows start and stop being locked by another transaction.
    fn note_locked_rows(&mut self, locked: u64) {
        if locked > 0 && self.locked_rows == 0 {
            self.supply.stats.session.report(
                Level::Warn,
                format!(
                    "poller: {locked} rows in flight are locked by another transaction (an \
                     application's SELECT ... FOR UPDATE?); their leases are renewed once the \
                     lock is gone, other rows go on"
                ),
            );
        } else if locked == 0 && self.locked_rows > 0 {
            info!("poller: no row in flight is locked by another transaction any more");
        }
        self.locked_rows = locked;
    }

    /// Claims up to `room` rows: on from the cursor, then from the head if that was not
    /// enough (the level ran out) or a NOTIFY came. Rows are handed over as each query
    /// returns, so those from the cursor never wait for the slower claim from the head.
    fn claim(&mut self, room: usize) -> Result<usize, db::DbError> {
        let Some((client, statements)) = self.conn.with_statements() else {
            return Ok(0);
        };
        let (lease, instance) = (self.config.lease, &self.config.instance);
        let client = &mut Prepared::new(client, statements);
        let limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut claimed = 0;
        let mut last = None;
        let head_due = self.place.head_due.swap(false, Ordering::AcqRel);
        if let (Some(after), false) = (self.place.cursor(), head_due) {
            let rows = db::claim_after(client, limit(room), lease, instance, after)?;
            last = later(last, rows.last());
            claimed += self.supply.hand_over(rows);
        }
        if claimed < room {
            let rows = db::claim(client, limit(room - claimed), lease, instance);
            let rows = rows.inspect_err(|_| {
                self.place.head_due.store(head_due, Ordering::Release);
            })?;
            last = later(last, rows.last());
            claimed += self.supply.hand_over(rows);
        }
        self.place.set_cursor(last);
        Ok(claimed)
    }

    /// Waits for a NOTIFY or one wait slice, whichever is first; true when the queue changed.
    fn wait_for_work(&mut self) -> bool {
        let Some(client) = self.conn.client() else {
            return true;
        };
        match db::wait_for_changes(client, WAIT_SLICE) {
            Ok(changes) => {
                if changes.tx_queue {
                    self.place.head_due.store(true, Ordering::Release);
                }
                changes.tx_queue
            }
            Err(e) => {
                self.supply.stats.session.report(
                    Level::Warn,
                    format!("poller: waiting for notifications failed: {e}; reconnecting"),
                );
                self.conn.lose();
                true
            }
        }
    }

    /// After a failed statement: says so, drops the connection and waits, longer each time
    /// in a row, before the next try (or until told to stop).
    fn back_off(
        &mut self,
        what: &str,
        error: &db::DbError,
        backoff: &mut Backoff,
        stop: &Receiver<()>,
    ) {
        let delay = backoff.next_delay();
        self.supply.stats.session.report(
            Level::Warn,
            format!(
                "poller: {what} failed: {error}; reconnecting in {} ms",
                delay.as_millis()
            ),
        );
        self.conn.lose();
        // A stop drops the sender: the loop's own check sees it too.
        let _ = stop.recv_timeout(delay);
    }

    /// Whether there is a connection now; an error when PostgreSQL refuses it for good.
    /// A new connection takes the lock again before it claims. The backoff goes on until a
    /// claim succeeds: a server that takes connections but refuses every claim (a standby
    /// after a failover) must not be hammered.
    fn reconnect(&mut self, backoff: &mut Backoff) -> Result<bool, db::DbError> {
        self.locked = false;
        self.conn.open_or_wait(backoff, &self.supply.stats)
    }

    /// Takes the instance's lock again on a new connection. While another process holds it
    /// (one started under this name while the connection was lost) nothing is claimed,
    /// renewed or released: the rows in flight are finished and their results written.
    fn lock_again(&mut self, backoff: &mut Backoff, stop: &Receiver<()>) {
        let Some(client) = self.conn.client() else {
            return;
        };
        let instance = &self.config.instance;
        match instance::relock(client, instance) {
            Ok(true) => {
                if self.lock_refused {
                    info!("poller: holding the lock of instance '{instance}' again; claiming");
                }
                self.locked = true;
                self.lock_refused = false;
                backoff.reset();
            }
            Ok(false) => {
                self.lock_refused = true;
                let holder = instance::holder(client, instance).unwrap_or_default();
                let delay = backoff.next_delay();
                self.supply.stats.session.report(
                    Level::Warn,
                    format!(
                        "poller: instance '{instance}' is in use by another process ({holder}); \
                         not claiming until it is free, trying again in {} ms",
                        delay.as_millis()
                    ),
                );
                let _ = stop.recv_timeout(delay);
            }
            Err(e) => self.back_off("taking the instance lock", &e, backoff, stop),
        }
    }
}

/// Logs each row released by `db::release_untracked`: it is sent again, possibly twice.
fn log_released(instance: &str, released: &[i64]) {
    for id in released {
        warn!(
            "row {id}: claimed under instance '{instance}' but held by no running esmed (an \
             earlier run that ended, or a claim whose answer was lost); released to be sent \
             again (possible duplicate)"
        );
    }
}

/// The later in claim order of `so_far` and `row`'s place.
fn later(so_far: Option<(u8, i64)>, row: Option<&TxRow>) -> Option<(u8, i64)> {
    let place = row.map(|row| (row.priority, row.id));
    match (so_far, place) {
        (Some(a), Some(b)) => Some(if before(a, b) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Sets a claiming connection (the poller's, the sweeper's) up: planned for claims, and with
/// limits on its waits.
fn prepare_claimer(client: &mut Client, lease: Duration) -> Result<(), db::DbError> {
    db::prepare_claimer(client)?;
    let limits = wait_limits(CLAIMER_LOCK_WAIT, Some(claimer_statement_limit(lease)));
    client
        .batch_execute(&limits)
        .map_err(db::pg("limit the claiming connection's waits"))
}

/// The longest a claim, renewal or sweep may run: leases are renewed between claims, so a
/// claim stuck for a third of a lease (on a table lock, say) would let them run out.
fn claimer_statement_limit(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Every `interval`, while a session can submit, looks for a sendable row: it wakes an idle
/// poller, and has it claim from the head when the row ranks before its cursor.
struct Sweeper {
    /// Set up as the poller's, for the same statement.
    conn: Conn,
    interval: Duration,
    reconnect_max: Duration,
    stats: Arc<Stats>,
    submit_windows: Arc<SubmitWindows>,
    place: Arc<SharedPlace>,
}

impl Sweeper {
    fn run(mut self, stop: &Receiver<()>) -> Result<(), db::DbError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.reconnect_max);
        while stop.recv_timeout(self.interval) == Err(RecvTimeoutError::Timeout) {
            if self.submit_windows.total() == 0 {
                continue;
            }
            if !self.conn.is_open() {
                if !self.conn.open_or_wait(&mut backoff, &self.stats)? {
                    continue;
                }
                backoff.reset();
            }
            if let Err(e) = self.sweep() {
                self.stats.session.report(
                    Level::Warn,
                    format!("sweeper: looking for rows failed: {e}; reconnecting"),
                );
                self.conn.lose();
            }
        }
        Ok(())
    }

    fn sweep(&mut self) -> Result<(), db::DbError> {
        let Some((client, statements)) = self.conn.with_statements() else {
            return Ok(());
        };
        let first = db::first_sendable(&mut Prepared::new(client, statements))?;
        if let Some(first) = first {
            if self
                .place
                .cursor()
                .is_none_or(|cursor| before(first, cursor))
            {
                self.place.head_due.store(true, Ordering::Release);
            }
            self.place.wake.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// In claim order (priority highest first, then id), does place `a` come before `b`?
fn before(a: (u8, i64), b: (u8, i64)) -> bool {
    (Reverse(a.0), a.1) < (Reverse(b.0), b.1)
}

/// Rows kept ready for the windows at most, whatever their size (an smpp_window of a million
/// would otherwise claim two million rows at once); claim_batch can still ask for more.
const MOST_READY_FOR_WINDOWS: usize = 10_000;

/// See [`Supply::ready_target`]; the most rows one claim takes.
pub fn ready_target(claim_batch: usize, submit_windows: usize) -> usize {
    claim_batch.max(submit_windows.saturating_mul(2).min(MOST_READY_FOR_WINDOWS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(priority: u8, id: i64) -> TxRow {
        TxRow {
            id,
            destination: String::new(),
            source_override: None,
            priority,
            registered_delivery: db::RegisteredDelivery::NotRequested,
            short_message: String::new(),
            attempts: 0,
            accepted_parts: Vec::new(),
            insert_timestamp: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn claim_order_is_priority_first_then_id() {
        assert!(before((3, 9), (2, 1)));
        assert!(before((1, 1), (1, 2)));
        assert!(!before((1, 2), (1, 2)));
        assert!(!before((0, 1), (3, 500)));
    }

    #[test]
    fn the_cursor_is_the_later_place_in_claim_order() {
        assert_eq!(later(None, None), None);
        assert_eq!(later(None, Some(&row(3, 9))), Some((3, 9)));
        assert_eq!(later(Some((3, 9)), None), Some((3, 9)));
        // Lower priority comes later, whatever the id; within a level the higher id.
        assert_eq!(later(Some((3, 9)), Some(&row(1, 2))), Some((1, 2)));
        assert_eq!(later(Some((1, 2)), Some(&row(3, 9))), Some((1, 2)));
        assert_eq!(later(Some((1, 2)), Some(&row(1, 7))), Some((1, 7)));
    }

    #[test]
    fn the_ready_rows_cover_a_window_twice_or_claim_batch() {
        assert_eq!(ready_target(500, 10), 500);
        assert_eq!(ready_target(500, 250), 500);
        assert_eq!(ready_target(500, 1000), 2000);
        assert_eq!(ready_target(1, 0), 1);
        assert_eq!(ready_target(500, 1_000_000), 10_000);
        assert_eq!(ready_target(500, usize::MAX), 10_000);
        assert_eq!(ready_target(50_000, 1_000_000), 50_000);
    }
}
