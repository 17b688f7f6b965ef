//! The supervisor: starts the daemon's threads, follows the enabled smpp_servers row (a change
//! is noticed within a second through NOTIFY, and re-read every few seconds anyway), handles
//! signals, and shuts down in order.
//!
//! SIGTERM / SIGINT, step by step: the poller stops claiming; each session stops taking rows,
//! hands back the ones it has not sent, waits (up to the response timer) for the outstanding
//! responses and for the commits of received messages, unbinds and closes; rows still in the
//! hand-over channel are released; the DB writer commits everything and exits; exit code 0.
//! A database thread that ends before it is asked to (PostgreSQL refused it for a reason
//! retrying will not fix, or it panicked) stops esmed the same way, and the exit code is 1 with
//! the reason, for the init system to start it again.
//! A second SIGTERM exits at once. SIGHUP reopens the log file and re-reads the servers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use log::{error, info, warn};
use postgres::Client;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::Config;
use crate::db::conn::Conn;
use crate::db::held::HeldRows;
use crate::db::instance;
use crate::db::poller::{self, PollerConfig};
use crate::db::writer::{self as db_writer, DbWriterConfig};
use crate::db::PgConnector;
use crate::db::{self, ServerRow};
use crate::handoff::{DbOp, DbSender, Links, Signal, TxOutcome, TxResult, TxRow};
use crate::logging::LogHandle;
use crate::observe::counters::Stats;
use crate::observe::heartbeat::{self, HeartbeatConfig};
use crate::observe::session_state::ServerInUse;
use crate::server_settings::{bind_kinds, server_label, session_params};
use crate::session::runner::{self, SessionHandle};
use crate::session::SubmitWindows;

/// Why the daemon could not run or stopped: problems at start, and a database thread that
/// failed later. Everything else later is logged and retried.
#[derive(Debug)]
pub enum DaemonError {
    Pidfile(PathBuf, std::io::Error),
    Signals(std::io::Error),
    Thread(std::io::Error),
    /// PostgreSQL refused us for a reason retrying will not fix (password, database name).
    Database(String),
    /// A database thread gave up (PostgreSQL refused it for good) or panicked: each such
    /// thread and why, `; `-separated. esmed stopped in order and exits non-zero, for the init
    /// system to start it again.
    ThreadFailed(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Pidfile(path, e) => {
                write!(f, "cannot write pidfile {}: {e}", path.display())
            }
            DaemonError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            DaemonError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            DaemonError::Database(why) => f.write_str(why),
            DaemonError::ThreadFailed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DaemonError {}

/// How often the servers are re-read even without a NOTIFY.
const SERVER_RECHECK: Duration = Duration::from_secs(5);
/// How long the supervisor sleeps between looks at notifications.
const TICK: Duration = Duration::from_millis(250);

pub fn run(config: &Config, log: &LogHandle) -> Result<(), DaemonError> {
    let _pidfile = config
        .daemon
        .pidfile
        .as_deref()
        .map(Pidfile::create)
        .transpose()?;
    let term_now = Arc::new(AtomicBool::new(false));
    let signals = spawn_signal_thread(&term_now)?;
    let pg = PgConnector::new(&config.database);
    let Some(conn) = connect_at_start(&pg, &signals)? else {
        info!("stopped before PostgreSQL was reachable");
        return Ok(());
    };
    let (instance, locked) = take_instance_name(config, &pg)?;
    let held = Arc::new(HeldRows::default());
    let stats = Arc::new(Stats::default());
    let (db_tx, writers) = db_writer::spawn(
        db_writer_config(config, &pg, &instance, &held),
        stats.clone(),
    )
    .map_err(DaemonError::Thread)?;
    // Bounded by the poller, which claims no more than the sessions' windows can take.
    let (out_tx, out_rx) = unbounded::<TxRow>();
    let submit_windows = Arc::new(SubmitWindows::default());
    let (poll_stop_tx, poll_stop_rx) = bounded::<()>(0);
    let pollers = poller::spawn(
        poller_config(config, &pg, &instance, held),
        locked,
        out_tx,
        submit_windows.clone(),
        poll_stop_rx,
        stats.clone(),
    )
    .map_err(DaemonError::Thread)?;
    let (heartbeat_stop, heartbeat) = spawn_heartbeat(config, &pg, &instance, &stats)?;
    let mut threads = Threads {
        poller: Some(pollers.poller),
        sweeper: Some(pollers.sweeper),
        writers,
        heartbeat,
        failures: Vec::new(),
    };
    let links = Links {
        outbound: out_rx.clone(),
        db: db_tx.clone(),
        stats: stats.clone(),
        submit_windows,
    };
    let mut supervisor = Supervisor {
        config,
        conn,
        links,
        current: None,
        sessions: Vec::new(),
    };
    info!(
        "esmed {} running as instance '{instance}'",
        env!("CARGO_PKG_VERSION")
    );
    supervisor.watch(&signals, log, &stats, &threads);
    term_now.store(true, Ordering::SeqCst);
    stats.session.stopping.store(true, Ordering::Relaxed);
    info!("stopping: no more claims; draining sessions");
    drop(poll_stop_tx);
    // Holds the instance's lock until every result is written.
    let _lock = threads.join_pollers();
    supervisor.stop_sessions();
    release_unsent(&out_rx, &db_tx);
    drop(supervisor);
    drop(db_tx);
    threads.join_writers();
    drop(heartbeat_stop);
    threads.join_heartbeat();
    info!(
        "stopped: {}",
        stats.snapshot().describe_since(&Default::default(), 1.0)
    );
    threads.outcome()
}

/// A thread's outcome through `join`: it ended as asked, or with the error that made it
/// give up.
type Joined<T> = std::thread::JoinHandle<Result<T, db::DbError>>;

/// The database threads the supervisor started. Each ends when asked to (its stop channel
/// dropped, or every sender of its queue gone) or before that, with the reason, when
/// PostgreSQL refuses it for good; a panic ends one too. Either early end stops esmed.
struct Threads {
    poller: Option<Joined<Option<Client>>>,
    sweeper: Option<Joined<()>>,
    writers: Vec<Joined<()>>,
    heartbeat: Option<Joined<()>>,
    /// "the X thread: why", for each thread that failed.
    failures: Vec<String>,
}

impl Threads {
    /// The name of a thread that has ended, if one has: while esmed runs, none should.
    fn one_ended(&self) -> Option<&'static str> {
        let ended = |handle: Option<bool>| handle.unwrap_or(false);
        if ended(self.poller.as_ref().map(|h| h.is_finished())) {
            return Some("poller");
        }
        if ended(self.sweeper.as_ref().map(|h| h.is_finished())) {
            return Some("sweeper");
        }
        if self.writers.iter().any(|h| h.is_finished()) {
            return Some("DB writer");
        }
        if ended(self.heartbeat.as_ref().map(|h| h.is_finished())) {
            return Some("heartbeat");
        }
        None
    }

    /// Joins the poller and the sweeper (asked to stop); returns the connection holding the
    /// instance's lock, when the poller still has it.
    fn join_pollers(&mut self) -> Option<Client> {
        let lock = self
            .poller
            .take()
            .and_then(|h| self.settle("poller", h))
            .flatten();
        if let Some(sweeper) = self.sweeper.take() {
            self.settle("sweeper", sweeper);
        }
        lock
    }

    fn join_writers(&mut self) {
        for writer in std::mem::take(&mut self.writers) {
            self.settle("DB writer", writer);
        }
    }

    fn join_heartbeat(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            self.settle("heartbeat", heartbeat);
        }
    }

    /// Joins one thread; a failure is logged and kept for [`Threads::outcome`].
    fn settle<T>(&mut self, name: &str, handle: Joined<T>) -> Option<T> {
        let failure = match handle.join() {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => format!("the {name} thread gave up: {e}"),
            Err(panic) => format!("the {name} thread panicked: {}", panic_text(&*panic)),
        };
        error!("{failure}");
        self.failures.push(failure);
        None
    }

    /// Ok when every thread ended as asked.
    fn outcome(self) -> Result<(), DaemonError> {
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(DaemonError::ThreadFailed(self.failures.join("; ")))
    }
}

/// What a panicking thread said, when it said it in words.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The name this process runs as, and the connection that holds its lock (see
/// `db::instance`): the poller claims on it.
fn take_instance_name(config: &Config, pg: &PgConnector) -> Result<(String, Client), DaemonError> {
    let mut client = pg
        .connect()
        .map_err(|e| DaemonError::Database(format!("cannot connect to PostgreSQL: {e}")))?;
    let name = instance::take_name(
        &mut client,
        &config.daemon.instance,
        config.daemon.instance_given,
    )
    .map_err(|e| DaemonError::Database(e.to_string()))?;
    Ok((name, client))
}

/// The DB writers' part of the configuration.
fn db_writer_config(
    config: &Config,
    pg: &PgConnector,
    instance: &str,
    held: &Arc<HeldRows>,
) -> DbWriterConfig {
    DbWriterConfig {
        pg: pg.clone(),
        instance: instance.to_string(),
        held: Arc::clone(held),
        batch: config.daemon.result_batch as usize,
        reconnect_max: config.daemon.db_reconnect_max,
        id_match: config.daemon.receipt_id_match,
        receipt_match_window: config.daemon.receipt_match_window,
        mo_reassembly_timeout: config.daemon.mo_reassembly_timeout,
    }
}

/// The poller's part of the configuration.
fn poller_config(
    config: &Config,
    pg: &PgConnector,
    instance: &str,
    held: Arc<HeldRows>,
) -> PollerConfig {
    PollerConfig {
        pg: pg.clone(),
        instance: instance.to_string(),
        held,
        lease: config.daemon.lease,
        poll_interval: config.daemon.poll_interval,
        reconnect_max: config.daemon.db_reconnect_max,
        claim_batch: config.daemon.claim_batch.max(1) as usize,
    }
}

struct Supervisor<'a> {
    config: &'a Config,
    /// Reads smpp_servers and listens for its changes.
    conn: Conn,
    links: Links,
    current: Option<ServerRow>,
    sessions: Vec<SessionHandle>,
}

impl Supervisor<'_> {
    /// Follows the servers table and the signals until told to stop, or until one of `threads`
    /// ends.
    fn watch(
        &mut self,
        signals: &Receiver<Signal>,
        log: &LogHandle,
        stats: &Stats,
        threads: &Threads,
    ) {
        let mut reload = true;
        let mut next_check = Instant::now();
        let mut last_stats = (Instant::now(), stats.snapshot());
        // While PostgreSQL cannot be asked, the next try waits a growing delay, not a tick:
        // one warning a tick for the length of an outage would flood the log.
        let mut backoff = crate::backoff::Backoff::new(TICK, self.config.daemon.db_reconnect_max);
        let mut retry_at: Option<Instant> = None;
        // The servers are read first and the wait comes last: waiting for a tick first
        // delayed every start's bind by TICK.
        loop {
            let now = Instant::now();
            if retry_at.is_none_or(|at| now >= at) {
                reload |= self.servers_changed() || now >= next_check;
            }
            if reload && retry_at.is_none_or(|at| now >= at) {
                next_check = now + SERVER_RECHECK;
                match self.reload() {
                    Ok(()) => {
                        reload = false;
                        retry_at = None;
                        backoff.reset();
                    }
                    Err(why) => {
                        let delay = backoff.next_delay();
                        warn!(
                            "{why}; the current session goes on; trying again in {} ms",
                            delay.as_millis()
                        );
                        retry_at = Some(now + delay);
                    }
                }
            }
            if stats_due(last_stats.0.elapsed(), self.config.daemon.stats_interval) {
                let now = stats.snapshot();
                info!(
                    "{}",
                    now.describe_since(&last_stats.1, last_stats.0.elapsed().as_secs_f64())
                );
                last_stats = (Instant::now(), now);
            }
            select! {
                recv(signals) -> signal => match signal {
                    Ok(Signal::Stop) | Err(_) => return,
                    Ok(Signal::Reload) => {
                        info!("SIGHUP: reopening the log file and re-reading the servers");
                        if let Err(e) = log.reopen() {
                            warn!("cannot reopen the log file: {e}; logging goes on where it was");
                        }
                        reload = true;
                    }
                },
                default(TICK) => {}
            }
            if let Some(name) = threads.one_ended() {
                error!("the {name} thread has ended; stopping esmed");
                return;
            }
        }
    }

    /// Re-reads the enabled server and restarts the sessions when it changed; the reason
    /// when PostgreSQL could not be asked.
    fn reload(&mut self) -> Result<(), String> {
        let client = self
            .conn
            .open()
            .map_err(|e| format!("cannot reach PostgreSQL to read smpp_servers: {e}"))?;
        let server = db::load_enabled_server(client)
            .map_err(|e| format!("cannot read smpp_servers: {e}"))?;
        if server == self.current {
            return Ok(());
        }
        self.stop_sessions();
        self.links
            .stats
            .session
            .set_server(server.as_ref().map(|row| ServerInUse {
                id: row.id,
                name: row.name.clone(),
                window: row.smpp_window,
            }));
        match &server {
            None => info!("no enabled row in smpp_servers: idle until one is enabled"),
            Some(row) => self.start_sessions(row),
        }
        self.current = server;
        Ok(())
    }

    fn start_sessions(&mut self, row: &ServerRow) {
        let label = server_label(row);
        // Reported, so that `esmed status` shows them as the last error too.
        let report = |level, message| self.links.stats.session.report(level, message);
        let usable = row
            .usable_port()
            .and_then(|port| Ok((port, row.credentials()?)));
        let (port, credentials) = match usable {
            Ok(usable) => usable,
            Err(why) => {
                report(
                    log::Level::Error,
                    format!(
                        "{label}: {why}: not connecting; esmed reads the row again when it changes"
                    ),
                );
                return;
            }
        };
        for note in row.stand_ins() {
            report(log::Level::Warn, format!("{label}: {note}"));
        }
        info!(
            "using {label}: {}:{}{} as '{}', {}",
            row.host,
            row.port,
            if row.smpp_tls { " (TLS)" } else { "" },
            row.esme_system_id,
            if row.esme_bind_transceiver {
                "transceiver"
            } else {
                "transmitter"
            }
        );
        for kind in bind_kinds(row) {
            let params = session_params(row, port, credentials.clone(), kind, self.config);
            match runner::spawn(params, self.links.clone()) {
                Ok(handle) => self.sessions.push(handle),
                Err(e) => error!("{label}: cannot start the {kind} session thread: {e}"),
            }
        }
    }

    /// True when a NOTIFY about smpp_servers arrived since the last look (or the connection
    /// broke, so that the reload notices and reconnects).
    fn servers_changed(&mut self) -> bool {
        self.conn.client().is_none_or(|client| {
            db::wait_for_changes(client, Duration::ZERO).map_or(true, |changes| changes.servers)
        })
    }

    /// Tells every session to stop, then waits for them: they drain side by side, so a stop
    /// takes one shutdown_timeout at most, whatever the number of binds.
    fn stop_sessions(&mut self) {
        for session in &mut self.sessions {
            info!("{}: stopping", session.label);
            session.ask_to_stop();
        }
        for session in self.sessions.drain(..) {
            session.stop();
        }
    }
}

/// The esmed_status writer, unless `heartbeat_interval` is 0; dropping the sender stops it.
fn spawn_heartbeat(
    config: &Config,
    pg: &PgConnector,
    instance: &str,
    stats: &Arc<Stats>,
) -> Result<(Sender<()>, Option<Joined<()>>), DaemonError> {
    let (stop_tx, stop_rx) = bounded::<()>(0);
    if config.daemon.heartbeat_interval.is_zero() {
        return Ok((stop_tx, None));
    }
    let heartbeat_config = HeartbeatConfig {
        pg: pg.clone(),
        instance: instance.to_string(),
        host: crate::config::hostname(),
        interval: config.daemon.heartbeat_interval,
        reconnect_max: config.daemon.db_reconnect_max,
    };
    let handle =
        heartbeat::spawn(heartbeat_config, stats.clone(), stop_rx).map_err(DaemonError::Thread)?;
    Ok((stop_tx, Some(handle)))
}

/// Whether the periodic info line is due; `stats_interval = 0` turns it off.
fn stats_due(elapsed: Duration, interval: Duration) -> bool {
    !interval.is_zero() && elapsed >= interval
}

/// A new connection of the supervisor's listens for changes to smpp_servers; without that it
/// still re-reads them every few seconds.
fn listen_or_warn(client: &mut Client) -> Result<(), db::DbError> {
    if let Err(e) = db::listen(client) {
        warn!("cannot LISTEN for server changes: {e}");
    }
    Ok(())
}

/// Hands rows claimed but never given to a session back to the queue.
fn release_unsent(outbound: &Receiver<TxRow>, db: &DbSender) {
    let mut released = 0;
    while let Ok(row) = outbound.try_recv() {
        let result = TxResult {
            id: row.id,
            insert_timestamp: row.insert_timestamp,
            outcome: TxOutcome::Release,
            attempts: 0,
            resends: 0,
        };
        if db.send(DbOp::Result { result, ack: None }).is_ok() {
            released += 1;
        }
    }
    if released > 0 {
        info!("released {released} claimed rows that were not sent");
    }
}

/// The supervisor's connection, made at start: retried while PostgreSQL is not up yet (or
/// the connection breaks before the schema is checked), fatal when PostgreSQL refuses us or
/// the schema lacks what esmed writes.
fn connect_at_start(
    pg: &PgConnector,
    signals: &Receiver<Signal>,
) -> Result<Option<Conn>, DaemonError> {
    let mut conn = Conn::new("supervisor", pg.clone(), Box::new(listen_or_warn));
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let error = match conn.open().and_then(db::schema::check) {
            Ok(Ok(())) => {
                if let Some(client) = conn.client() {
                    warn_about_fillfactor(client);
                }
                return Ok(Some(conn));
            }
            Ok(Err(missing)) => return Err(DaemonError::Database(missing.to_string())),
            Err(e) if db::is_fatal_connect_error(&e) => {
                return Err(DaemonError::Database(format!(
                    "PostgreSQL refused the connection: {e}"
                )));
            }
            Err(e) => e,
        };
        conn.lose();
        let delay = backoff.next_delay();
        warn!(
            "cannot connect to PostgreSQL: {error}; retrying in {} s",
            delay.as_secs()
        );
        if let Ok(Signal::Stop) = signals.recv_timeout(delay) {
            return Ok(None);
        }
    }
}

/// A queue without room for claims on its pages works, only slower: a warning, not a stop.
fn warn_about_fillfactor(client: &mut Client) {
    match db::schema::queue_fillfactor(client) {
        Ok(fillfactor) => {
            if let Some(advice) = db::schema::fillfactor_advice(fillfactor) {
                warn!("{advice}");
            }
        }
        Err(e) => warn!("cannot check the send queue's storage settings: {e}; going on"),
    }
}

fn spawn_signal_thread(term_now: &Arc<AtomicBool>) -> Result<Receiver<Signal>, DaemonError> {
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, term_now.clone())
            .map_err(DaemonError::Signals)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(DaemonError::Signals)?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("esmed-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        })
        .map_err(DaemonError::Thread)?;
    Ok(rx)
}

/// The pidfile, removed again when the daemon exits.
struct Pidfile(PathBuf);

impl Pidfile {
    fn create(path: &Path) -> Result<Pidfile, DaemonError> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| DaemonError::Pidfile(path.to_path_buf(), e))?;
        Ok(Pidfile(path.to_path_buf()))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_info_line_comes_every_stats_interval_and_never_with_zero() {
        let minute = Duration::from_secs(60);
        assert!(!stats_due(Duration::from_secs(59), minute));
        assert!(stats_due(minute, minute));
        assert!(!stats_due(Duration::ZERO, Duration::ZERO));
        assert!(!stats_due(Duration::from_secs(3600), Duration::ZERO));
    }
}
