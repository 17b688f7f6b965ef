//! The heartbeat thread: every `[daemon] heartbeat_interval` it writes this instance's row of
//! `esmed_status` (state, window, rates, totals, last error), and deletes the row at a clean
//! exit, so a row that stops being updated means an esmed that died or lost the database.
//!
//! It has its own connection and reconnects with backoff; nothing else waits for it, so a
//! slow or absent database never holds up sending. For the same reason it also makes the
//! partitioned layout's coming partitions (`db::partitions`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{debug, info, warn};
use postgres::types::ToSql;
use postgres::Client;

use crate::backoff::Backoff;
use crate::db::conn::Conn;
use crate::db::partitions::PartitionKeeper;
use crate::db::PgConnector;
use crate::db::{pg, DbError};
use crate::observe::counters::{Snapshot, Stats};
use crate::observe::session_state::StatusSnapshot;
use crate::observe::status_table::StatusColumns;

pub(crate) struct HeartbeatConfig {
    pub(crate) pg: PgConnector,
    pub(crate) instance: String,
    pub(crate) host: String,
    pub(crate) interval: Duration,
    pub(crate) reconnect_max: Duration,
}

/// One `esmed_status` row as written.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub columns: StatusColumns,
    pub last_error_at: Option<SystemTime>,
    pub heartbeat_seconds: f32,
}

const UPSERT: &str = "
    INSERT INTO esmed_status (instance, host, pid, server_id, server_name, session_state,
        window_in_use, window_size, out_per_second, in_per_second, submitted_total, done_total,
        failed_total, received_total, last_error, tls_unverified, last_error_at,
        heartbeat_seconds, started_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        to_timestamp($17::float8), $18, now(), now())
    ON CONFLICT (instance) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
        server_id = EXCLUDED.server_id, server_name = EXCLUDED.server_name,
        session_state = EXCLUDED.session_state, window_in_use = EXCLUDED.window_in_use,
        window_size = EXCLUDED.window_size, out_per_second = EXCLUDED.out_per_second,
        in_per_second = EXCLUDED.in_per_second, submitted_total = EXCLUDED.submitted_total,
        done_total = EXCLUDED.done_total, failed_total = EXCLUDED.failed_total,
        received_total = EXCLUDED.received_total, last_error = EXCLUDED.last_error,
        tls_unverified = EXCLUDED.tls_unverified, last_error_at = EXCLUDED.last_error_at,
        heartbeat_seconds = EXCLUDED.heartbeat_seconds,
        started_at = CASE WHEN $19 THEN now() ELSE esmed_status.started_at END,
        updated_at = now()";

/// Writes `row`; `first` (the process's first write) resets `started_at`, since a row left
/// by an earlier run under the same instance name may be there.
pub fn write_status(client: &mut Client, row: &StatusRow, first: bool) -> Result<(), DbError> {
    let error_at = row.last_error_at.map(|at| {
        at.duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64())
    });
    let mut params: Vec<&(dyn ToSql + Sync)> = row.columns.params().to_vec();
    params.extend([
        &error_at as &(dyn ToSql + Sync),
        &row.heartbeat_seconds,
        &first,
    ]);
    client
        .execute(UPSERT, &params)
        .map_err(pg("write esmed_status"))?;
    Ok(())
}

/// Removes this instance's row (a clean exit).
pub fn delete_status(client: &mut Client, instance: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM esmed_status WHERE instance = $1", &[&instance])
        .map_err(pg("delete esmed_status"))?;
    Ok(())
}

/// The row for this moment; rates are over the `seconds` since `earlier`.
pub(crate) fn status_row(
    config: &HeartbeatConfig,
    status: &StatusSnapshot,
    now: &Snapshot,
    earlier: &Snapshot,
    seconds: f64,
) -> StatusRow {
    let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / seconds.max(0.001)) as f32;
    let total = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let columns = StatusColumns {
        instance: config.instance.clone(),
        host: config.host.clone(),
        pid: i32::try_from(std::process::id()).unwrap_or(0),
        server_id: status.server.as_ref().map(|s| s.id),
        server_name: status.server.as_ref().and_then(|s| s.name.clone()),
        session_state: status.state.clone(),
        window_in_use: i32::try_from(status.window_in_use).unwrap_or(i32::MAX),
        window_size: status.server.as_ref().map(|s| s.window),
        out_per_second: rate(now.submitted, earlier.submitted),
        in_per_second: rate(now.received, earlier.received),
        submitted_total: total(now.submitted),
        done_total: total(now.rows_done),
        failed_total: total(now.rows_failed),
        received_total: total(now.received),
        last_error: status.last_error.as_ref().map(|e| e.0.clone()),
        tls_unverified: status.tls_unverified,
    };
    StatusRow {
        columns,
        last_error_at: status.last_error.as_ref().map(|e| e.1),
        heartbeat_seconds: config.interval.as_secs_f32(),
    }
}

/// Starts the thread; it deletes the row and ends when `stop` is dropped, or ends with the
/// error when PostgreSQL refuses its connection for a reason retrying will not fix.
pub(crate) fn spawn(
    config: HeartbeatConfig,
    stats: Arc<Stats>,
    stop: Receiver<()>,
) -> std::io::Result<JoinHandle<Result<(), DbError>>> {
    std::thread::Builder::new()
        .name("esmed-heartbeat".into())
        .spawn(move || Heartbeat::new(config, stats).run(&stop))
}

struct Heartbeat {
    config: HeartbeatConfig,
    stats: Arc<Stats>,
    conn: Conn,
    backoff: Backoff,
    written_once: bool,
    /// The counters at the previous beat, for the rates.
    last: (Instant, Snapshot),
    /// A failure is logged once until a write succeeds again.
    failing: bool,
    partitions: PartitionKeeper,
}

impl Heartbeat {
    fn new(config: HeartbeatConfig, stats: Arc<Stats>) -> Heartbeat {
        let backoff = Backoff::new(Duration::from_secs(1), config.reconnect_max);
        let last = (Instant::now(), stats.snapshot());
        Heartbeat {
            conn: Conn::new("heartbeat", config.pg.clone(), Box::new(|_| Ok(()))),
            config,
            stats,
            backoff,
            written_once: false,
            last,
            failing: false,
            partitions: PartitionKeeper::new(),
        }
    }

    fn run(mut self, stop: &Receiver<()>) -> Result<(), DbError> {
        let mut next = Instant::now();
        // Nothing is ever sent on `stop`: it ends by being dropped.
        while let Err(RecvTimeoutError::Timeout) = stop.recv_deadline(next) {
            next = match self.beat() {
                Ok(()) => {
                    self.backoff.reset();
                    Instant::now() + self.config.interval
                }
                // No client: the connection, not the write, failed.
                Err(e) if !self.conn.has_client() && crate::db::is_fatal_connect_error(&e) => {
                    log::error!(
                        "heartbeat: PostgreSQL refused the connection for a reason retrying \
                         will not fix: {e}; stopping esmed"
                    );
                    return Err(e);
                }
                Err(e) => {
                    self.conn.lose();
                    let delay = self.backoff.next_delay().min(self.config.interval);
                    if !self.failing {
                        warn!("heartbeat: cannot write esmed_status: {e}; retrying");
                    }
                    self.failing = true;
                    Instant::now() + delay
                }
            };
        }
        self.remove_row();
        Ok(())
    }

    fn beat(&mut self) -> Result<(), DbError> {
        let now = self.stats.snapshot();
        let status = self.stats.session.snapshot();
        let seconds = self.last.0.elapsed().as_secs_f64();
        let row = status_row(&self.config, &status, &now, &self.last.1, seconds);
        let first = !self.written_once;
        let client = self.conn.open()?;
        write_status(client, &row, first)?;
        self.partitions.tick(client, Instant::now());
        self.last = (Instant::now(), now);
        self.written_once = true;
        if self.failing {
            info!("heartbeat: writing esmed_status again");
            self.failing = false;
        }
        Ok(())
    }

    fn remove_row(&mut self) {
        if !self.written_once {
            return;
        }
        let instance = self.config.instance.clone();
        match self
            .conn
            .open()
            .and_then(|client| delete_status(client, &instance))
        {
            Ok(()) => debug!("heartbeat: removed the esmed_status row"),
            Err(e) => warn!("heartbeat: cannot remove the esmed_status row: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::session_state::ServerInUse;

    #[test]
    fn row_carries_rates_totals_and_the_server() {
        let config = HeartbeatConfig {
            pg: PgConnector::plain(postgres::Config::new()),
            instance: "a".into(),
            host: "h".into(),
            interval: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(30),
        };
        let status = StatusSnapshot {
            server: Some(ServerInUse {
                id: 3,
                name: Some("main".into()),
                window: 10,
            }),
            state: "bound transceiver".into(),
            window_in_use: 4,
            tls_unverified: true,
            last_error: None,
        };
        let earlier = Snapshot {
            submitted: 10,
            received: 2,
            ..Snapshot::default()
        };
        let now = Snapshot {
            submitted: 60,
            received: 12,
            rows_done: 50,
            rows_failed: 1,
            ..Snapshot::default()
        };
        let row = status_row(&config, &status, &now, &earlier, 5.0);
        let columns = &row.columns;
        assert_eq!((columns.out_per_second, columns.in_per_second), (10.0, 2.0));
        assert_eq!(
            (
                columns.submitted_total,
                columns.done_total,
                columns.failed_total
            ),
            (60, 50, 1)
        );
        assert_eq!(
            (
                columns.server_id,
                columns.window_in_use,
                columns.window_size
            ),
            (Some(3), 4, Some(10))
        );
        assert_eq!(row.heartbeat_seconds, 5.0);
        assert!(columns.last_error.is_none());
        assert!(columns.tls_unverified);
    }
}
