//! The poller thread: claims pending rows and hands them to the sessions.
//!
//! It LISTENs for the queue's NOTIFY (so an INSERT is claimed at once) and also polls every
//! `poll_interval` (for rows whose retry time has come, or a lost notification). It claims
//! only while a session can submit, and keeps only so many rows ready in the hand-over
//! channel (see [`Poller::ready_target`]), so claimed rows never pile up behind a slow SMSC:
//! the window's backpressure reaches the claim.
//!
//! Leases: at start it releases rows still claimed under its own instance name (an earlier run
//! that died; instance names are unique among live processes), and while running it renews
//! the leases of the rows it holds every third of a lease, so a row in flight never looks
//! abandoned to another esmed however long the SMSC takes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{info, Level};
use postgres::Client;

use crate::db::sql::{Prepared, Statements};
use crate::db::{self, TxRow};
use crate::session::flow::Backoff;
use crate::session::SubmitWindows;
use crate::stats::Stats;

pub struct PollerConfig {
    pub pg: postgres::Config,
    pub instance: String,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub reconnect_max: Duration,
    /// `[daemon] claim_batch`: the fewest rows kept ready (see [`Poller::ready_target`]).
    pub claim_batch: usize,
}

/// How long one wait for a notification lasts, so that a stop is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// How long to wait before looking again when enough rows are ready.
const FULL_WAIT: Duration = Duration::from_millis(2);

pub fn spawn(
    config: PollerConfig,
    outbound: Sender<TxRow>,
    submit_windows: Arc<SubmitWindows>,
    stop: Receiver<()>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("esmed-poller".into())
        .spawn(move || {
            Poller {
                config,
                client: None,
                statements: Statements::default(),
                outbound,
                submit_windows,
                stats,
                cursor: None,
                last_full_claim: None,
            }
            .run(&stop);
            info!("poller: stopped claiming rows");
        })
}

struct Poller {
    config: PollerConfig,
    client: Option<Client>,
    /// The claim statements, prepared on `client`.
    statements: Statements,
    /// Unbounded: [`Poller::room`] bounds what is in it.
    outbound: Sender<TxRow>,
    submit_windows: Arc<SubmitWindows>,
    stats: Arc<Stats>,
    /// Priority and id of the last row claimed, to continue from (see `db::claim_after`).
    cursor: Option<(u8, i32)>,
    /// When a claim last started from the head of the queue; one happens at least every
    /// poll_interval and after every NOTIFY, so rows behind the cursor wait no longer.
    last_full_claim: Option<Instant>,
}

impl Poller {
    fn run(&mut self, stop: &Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.reconnect_max);
        let mut leases_checked: Option<Instant> = None;
        // Claim at start: rows may be waiting from before we ran.
        let mut due = true;
        let mut next_poll = Instant::now() + self.config.poll_interval;
        while stop.try_recv() == Err(TryRecvError::Empty) {
            if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                if !self.reconnect(&mut backoff) {
                    continue;
                }
                due = true;
            }
            if leases_checked.is_none_or(|at| at.elapsed() >= self.config.lease / 3) {
                if let Err(e) = self.look_after_leases(leases_checked.is_none()) {
                    self.stats.session.report(
                        Level::Warn,
                        format!("poller: renewing leases failed: {e}; reconnecting"),
                    );
                    self.client = None;
                    continue;
                }
                leases_checked = Some(Instant::now());
            }
            let room = self.room();
            let worth_claiming = room >= self.smallest_claim();
            if due && worth_claiming && self.submit_windows.total() > 0 {
                match self.claim(room) {
                    // A full claim means more rows are probably pending.
                    Ok(claimed) => due = claimed == room,
                    Err(e) => {
                        self.stats.session.report(
                            Level::Warn,
                            format!("poller: claiming rows failed: {e}; reconnecting"),
                        );
                        self.client = None;
                        continue;
                    }
                }
                if due {
                    continue;
                }
                next_poll = Instant::now() + self.config.poll_interval;
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
            due = self.wait_for_work(next_poll) || Instant::now() >= next_poll;
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

    /// How many claimed rows to keep ready: `claim_batch`, or twice the windows of the
    /// sessions that submit (at most 10,000) if that is more. A claim starts when half are
    /// gone (see [`Poller::smallest_claim`]), so a whole window's worth is still ready while
    /// it runs: a session whose window empties at once (a large window at full speed)
    /// refills it without waiting for the claim. Sized by claim_batch alone, a window of 1000
    /// waited for claims: 80k msg/s against 95-103k with the window's worth ready.
    fn ready_target(&self) -> usize {
        ready_target(self.config.claim_batch, self.submit_windows.total())
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

    fn claim(&mut self, room: usize) -> Result<usize, db::DbError> {
        let Some(client) = self.client.as_mut() else {
            return Ok(0);
        };
        let (lease, instance) = (self.config.lease, &self.config.instance);
        let limit = i64::try_from(room).unwrap_or(i64::MAX);
        let full_due = self
            .last_full_claim
            .is_none_or(|at| at.elapsed() >= self.config.poll_interval);
        let client = &mut Prepared::new(client, &mut self.statements);
        let mut rows = match self.cursor {
            Some(after) if !full_due => db::claim_after(client, limit, lease, instance, after)?,
            _ => Vec::new(),
        };
        if rows.len() < room {
            // The level is exhausted (or a full claim is due): start from the head.
            let rest = i64::try_from(room - rows.len()).unwrap_or(i64::MAX);
            rows.extend(db::claim(client, rest, lease, instance)?);
            self.last_full_claim = Some(Instant::now());
            rows.sort_by_key(|row| (std::cmp::Reverse(row.priority), row.id));
        }
        self.cursor = rows.last().map(|row| (row.priority, row.id));
        let claimed = rows.len();
        self.stats
            .claimed
            .fetch_add(claimed as u64, Ordering::Relaxed);
        for row in rows {
            if self.outbound.send(row).is_err() {
                break;
            }
        }
        Ok(claimed)
    }

    /// Waits for a NOTIFY, the poll time, or one wait slice, whichever is first; true when
    /// the queue changed.
    fn wait_for_work(&mut self, next_poll: Instant) -> bool {
        let Some(client) = self.client.as_mut() else {
            return true;
        };
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(WAIT_SLICE);
        match db::wait_for_changes(client, wait) {
            Ok(changes) => {
                if changes.tx_queue {
                    // New rows may rank before the cursor: the next claim starts at the head.
                    self.last_full_claim = None;
                }
                changes.tx_queue
            }
            Err(e) => {
                self.stats.session.report(
                    Level::Warn,
                    format!("poller: waiting for notifications failed: {e}; reconnecting"),
                );
                self.client = None;
                true
            }
        }
    }

    fn reconnect(&mut self, backoff: &mut Backoff) -> bool {
        let connected = self
            .config
            .pg
            .connect(postgres::NoTls)
            .map_err(db::pg("connect"))
            .and_then(|mut client| {
                db::listen(&mut client)?;
                db::prepare_claimer(&mut client)?;
                Ok(client)
            });
        match connected {
            Ok(client) => {
                self.client = Some(client);
                self.statements.clear();
                backoff.reset();
                true
            }
            Err(e) => {
                db::wait_to_reconnect("poller", &e, backoff, &self.stats);
                false
            }
        }
    }
}

/// Rows kept ready for the windows at most, whatever their size (an smpp_window of a million
/// would otherwise claim two million rows at once); claim_batch can still ask for more.
const MOST_READY_FOR_WINDOWS: usize = 10_000;

/// See [`Poller::ready_target`]; the most rows one claim takes.
pub fn ready_target(claim_batch: usize, submit_windows: usize) -> usize {
    claim_batch.max(submit_windows.saturating_mul(2).min(MOST_READY_FOR_WINDOWS))
}

#[cfg(test)]
mod tests {
    use super::*;

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
