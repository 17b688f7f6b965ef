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
//! Leases: at start it releases rows still claimed under its own instance name (an earlier run
//! that died; instance names are unique among live processes), and while running it renews
//! the leases of the rows it holds every third of a lease, so a row in flight never looks
//! abandoned to another esmed however long the SMSC takes.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use log::{info, Level};
use postgres::Client;

use crate::db::sql::{Prepared, Statements};
use crate::db::PgConnector;
use crate::db::{self, TxRow};
use crate::session::flow::Backoff;
use crate::session::SubmitWindows;
use crate::stats::Stats;

pub struct PollerConfig {
    pub pg: PgConnector,
    pub instance: String,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub reconnect_max: Duration,
    /// `[daemon] claim_batch`: the fewest rows kept ready (see [`Supply::ready_target`]).
    pub claim_batch: usize,
}

/// How long one wait for a notification lasts, so that a stop is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// How long to wait before looking again when enough rows are ready.
const FULL_WAIT: Duration = Duration::from_millis(2);

/// Starts the poller, which starts its sweeper and joins it before it ends.
pub fn spawn(
    config: PollerConfig,
    outbound: Sender<TxRow>,
    submit_windows: Arc<SubmitWindows>,
    stop: Receiver<()>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    let supply = Supply {
        outbound,
        submit_windows,
        stats,
        claim_batch: config.claim_batch,
    };
    let place = Arc::new(SharedPlace::default());
    let sweeper = Sweeper {
        pg: config.pg.clone(),
        interval: config.poll_interval,
        reconnect_max: config.reconnect_max,
        stats: Arc::clone(&supply.stats),
        submit_windows: Arc::clone(&supply.submit_windows),
        place: Arc::clone(&place),
        client: None,
        statements: Statements::default(),
    };
    let sweeper_stop = stop.clone();
    let sweeper = std::thread::Builder::new()
        .name("esmed-sweeper".into())
        .spawn(move || sweeper.run(&sweeper_stop))?;
    std::thread::Builder::new()
        .name("esmed-poller".into())
        .spawn(move || {
            Poller {
                config,
                client: None,
                statements: Statements::default(),
                supply,
                place,
            }
            .run(&stop);
            if sweeper.join().is_err() {
                log::error!("poller: the sweeper thread panicked");
            }
            info!("poller: stopped claiming rows");
        })
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

    /// Hands `rows` to the sessions; returns how many were claimed.
    fn hand_over(&self, rows: Vec<TxRow>) -> usize {
        let claimed = rows.len();
        self.stats
            .claimed
            .fetch_add(claimed as u64, Ordering::Relaxed);
        for row in rows {
            if self.outbound.send(row).is_err() {
                break;
            }
        }
        claimed
    }
}

struct Poller {
    config: PollerConfig,
    client: Option<Client>,
    /// The claim statements, prepared on `client`.
    statements: Statements,
    supply: Supply,
    place: Arc<SharedPlace>,
}

impl Poller {
    fn run(&mut self, stop: &Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.reconnect_max);
        let mut leases_checked: Option<Instant> = None;
        // Claim at start: rows may be waiting from before we ran.
        let mut due = true;
        while stop.try_recv() == Err(TryRecvError::Empty) {
            if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                if !self.reconnect(&mut backoff) {
                    continue;
                }
                due = true;
            }
            if leases_checked.is_none_or(|at| at.elapsed() >= self.config.lease / 3) {
                if let Err(e) = self.look_after_leases(leases_checked.is_none()) {
                    self.back_off("renewing leases", &e, &mut backoff, stop);
                    continue;
                }
                backoff.reset();
                leases_checked = Some(Instant::now());
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
    }

    /// At start, frees what an earlier run under this name left claimed; later, renews.
    fn look_after_leases(&mut self, at_start: bool) -> Result<(), db::DbError> {
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        let instance = &self.config.instance;
        if at_start {
            let released = db::release_claims(client, instance)?;
            if released > 0 {
                info!(
                    "poller: released {released} rows still claimed by an earlier run of instance \
                     '{instance}'; they will be submitted again (the earlier run may have sent some)"
                );
            }
        } else {
            db::renew_claims(client, self.config.lease, instance)?;
        }
        Ok(())
    }

    /// Claims up to `room` rows: on from the cursor, then from the head if that was not
    /// enough (the level ran out) or a NOTIFY came. Rows are handed over as each query
    /// returns, so those from the cursor never wait for the slower claim from the head.
    fn claim(&mut self, room: usize) -> Result<usize, db::DbError> {
        let Some(client) = self.client.as_mut() else {
            return Ok(0);
        };
        let (lease, instance) = (self.config.lease, &self.config.instance);
        let client = &mut Prepared::new(client, &mut self.statements);
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
        let Some(client) = self.client.as_mut() else {
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
                self.client = None;
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
        self.client = None;
        // A stop drops the sender: the loop's own check sees it too.
        let _ = stop.recv_timeout(delay);
    }

    fn reconnect(&mut self, backoff: &mut Backoff) -> bool {
        let connected = connect_claimer(&self.config.pg).and_then(|mut client| {
            db::listen(&mut client)?;
            Ok(client)
        });
        match connected {
            // The backoff goes on until a claim succeeds: a server that takes connections
            // but refuses every claim (a standby after a failover) must not be hammered.
            Ok(client) => {
                self.client = Some(client);
                self.statements.clear();
                true
            }
            Err(e) => {
                db::wait_to_reconnect("poller", &e, backoff, &self.supply.stats);
                false
            }
        }
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

fn connect_claimer(pg: &PgConnector) -> Result<Client, db::DbError> {
    let mut client = pg.connect()?;
    db::prepare_claimer(&mut client)?;
    Ok(client)
}

/// Every `interval`, while a session can submit, looks for a sendable row: it wakes an idle
/// poller, and has it claim from the head when the row ranks before its cursor.
struct Sweeper {
    pg: PgConnector,
    interval: Duration,
    reconnect_max: Duration,
    stats: Arc<Stats>,
    submit_windows: Arc<SubmitWindows>,
    place: Arc<SharedPlace>,
    client: Option<Client>,
    statements: Statements,
}

impl Sweeper {
    fn run(mut self, stop: &Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.reconnect_max);
        while stop.recv_timeout(self.interval) == Err(RecvTimeoutError::Timeout) {
            if self.submit_windows.total() == 0 {
                continue;
            }
            if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                match connect_claimer(&self.pg) {
                    Ok(client) => {
                        self.client = Some(client);
                        self.statements.clear();
                        backoff.reset();
                    }
                    Err(e) => {
                        db::wait_to_reconnect("sweeper", &e, &mut backoff, &self.stats);
                        continue;
                    }
                }
            }
            if let Err(e) = self.sweep() {
                self.stats.session.report(
                    Level::Warn,
                    format!("sweeper: looking for rows failed: {e}; reconnecting"),
                );
                self.client = None;
            }
        }
    }

    fn sweep(&mut self) -> Result<(), db::DbError> {
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        let first = db::first_sendable(&mut Prepared::new(client, &mut self.statements))?;
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
