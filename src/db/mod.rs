//! The storage layer: every query the daemon's threads run against PostgreSQL.
//!
//! Synchronous `postgres` clients, one per thread; each function takes `&mut Client` and runs
//! typed, parameterised statements (batches travel as arrays and are `unnest`ed server-side, so
//! a batch is one statement). Not here: when to connect and reconnect (the threads own that),
//! deciding outcomes (the session does). The schema is `sql/db.sql`; `tests/db.rs` runs every
//! query against a real cluster.
//!
//! - [`connect`]: opening connections, with TLS as `[database] sslmode` says.
//! - [`servers`]: the enabled SMSC account.
//! - [`claim`]: claiming messages to send (lease + `SKIP LOCKED`) and holding them.
//! - [`results`]: writing their results back.
//! - [`rx`]: storing what the SMSC sent.
//! - `doubt`: commits whose outcome is unknown (the connection died during COMMIT).
//! - [`receipts`]: matching delivery receipts to sent parts and writing message states.
//! - [`reassembly`]: holding concatenated MO parts until their set is whole.
//! - `housekeeping`: the received-PDU writer's work between batches (late receipts, due MO
//!   sets).
//! - [`held`]: the rows this process holds, whose leases it renews.
//! - [`instance`]: the instance name and the lock that keeps it unique among live processes.
//! - [`notify`]: `LISTEN notify_table_change` and waiting for changes.
//! - [`schema`]: the check at start that the schema is as new as this esmed.
//! - [`purge`]: `esmed purge`, removing finished history in short batches.

pub(crate) mod batch;
pub(crate) mod claim;
pub(crate) mod conn;
pub(crate) mod connect;
pub(crate) mod doubt;
pub(crate) mod held;
pub(crate) mod housekeeping;
pub mod instance;
pub(crate) mod notify;
pub(crate) mod partitions;
pub mod poller;
pub mod purge;
pub(crate) mod reassembly;
pub mod receipts;
pub(crate) mod results;
pub(crate) mod rx;
pub mod schema;
pub(crate) mod servers;
pub mod sql;
pub mod writer;

use std::fmt;

pub(crate) use crate::handoff::MoPart;
pub use crate::handoff::{AcceptedPart, RegisteredDelivery, RxRow, TxOutcome, TxResult, TxRow};
pub use claim::{
    claim, claim_after, first_sendable, prepare_claimer, release_untracked, renew_held, Renewal,
    MAX_TEXT_OCTETS,
};
pub use connect::PgConnector;
pub use notify::{listen, wait_for_changes, TableChanges};
pub(crate) use results::{settle_refused, Refused};
pub use results::{write_results, write_results_in, WriteSummary};
pub use rx::insert_rx;
pub use servers::{load_enabled_server, ServerRow};

/// Why a storage call failed.
#[derive(Debug)]
pub enum DbError {
    /// PostgreSQL or the connection to it failed; `what` says which call.
    Postgres {
        what: &'static str,
        source: postgres::Error,
    },
    /// The connection closed while waiting; reconnect.
    ConnectionClosed { what: &'static str },
    /// A column held a value the schema should not allow (the schema was changed by hand?).
    UnexpectedValue { column: &'static str, value: String },
    /// The TLS files for PostgreSQL (`sslrootcert`, `sslcert`, `sslkey`) could not be used.
    Tls(crate::tls::TlsError),
    /// None of several servers (`[database] host = a,b`) would do: each, and why.
    NoServer(Vec<(crate::config::DbHost, DbError)>),
    /// The server took the connection but did not complete its start within
    /// `connect_timeout` (a stopped or hung PostgreSQL whose machine still answers), or too
    /// many earlier attempts still hang to start another.
    ConnectHung(String),
}

/// Failures of the server, not of the rows, that pass: read-only transaction (a standby),
/// insufficient resources (disk full, out of memory, too many connections), serialization
/// failure, deadlock, statement completion unknown, lock not available, query cancelled,
/// system and I/O errors. Not configuration limits, which a smaller batch may get under.
const TRANSIENT_SQLSTATES: &[&str] = &[
    "25006", "53000", "53100", "53200", "53300", "40001", "40P01", "40003", "55P03", "57014",
    "58000", "58030",
];

impl DbError {
    /// True when the connection is gone and the caller should reconnect (with backoff) and
    /// retry, rather than treat the data as bad.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Postgres { source, .. } => match source.code() {
                // No SQLSTATE: an I/O or protocol failure of the connection itself.
                None => true,
                // 08: connection exception; 57P0x: the server is shutting down or restarting.
                Some(code) => {
                    source.is_closed()
                        || code.code().starts_with("08")
                        || code.code().starts_with("57P")
                }
            },
            DbError::ConnectionClosed { .. } | DbError::NoServer(_) | DbError::ConnectHung(_) => {
                true
            }
            DbError::UnexpectedValue { .. } | DbError::Tls(_) => false,
        }
    }

    /// True when the failure says nothing about the rows: the connection is gone, or the
    /// server cannot do this work now (a standby, read-only, reached after a failover; a full
    /// disk; no memory or connections left; a statement cancelled by a timeout or by an
    /// administrator; a deadlock or serialization failure; a lock not granted; an I/O error).
    /// The work must be kept and tried again on a fresh connection: splitting a batch of
    /// results and giving up on its rows would have them sent to the SMSC a second time.
    pub fn is_transient(&self) -> bool {
        if self.is_connection_lost() {
            return true;
        }
        let DbError::Postgres { source, .. } = self else {
            return false;
        };
        source
            .code()
            .is_some_and(|code| TRANSIENT_SQLSTATES.contains(&code.code()))
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Postgres { what, source } => match source.as_db_error() {
                // The server's own message and SQLSTATE say more than "db error".
                Some(server) => write!(
                    f,
                    "database: {what}: {} ({})",
                    server.message(),
                    server.code().code()
                ),
                None => write!(
                    f,
                    "database: {what}: {}{}",
                    with_causes(source),
                    read_only_hint(source)
                ),
            },
            DbError::ConnectionClosed { what } => write!(f, "database: {what}: connection closed"),
            DbError::UnexpectedValue { column, value } => {
                write!(f, "database: unexpected value {value:?} in column {column}")
            }
            DbError::Tls(e) => write!(f, "database: {e}"),
            DbError::ConnectHung(why) => write!(f, "database: connect: {why}"),
            DbError::NoServer(refusals) => {
                f.write_str("database: no server would do:")?;
                for (i, (host, error)) in refusals.iter().enumerate() {
                    let error = error.to_string();
                    let error = error.strip_prefix("database: ").unwrap_or(&error);
                    let separator = if i == 0 { " " } else { "; " };
                    write!(f, "{separator}{host}: {error}")?;
                }
                Ok(())
            }
        }
    }
}

/// What the driver's "database does not allow writes" (`target_session_attrs = read-write`
/// on a read-only server) means for an operator.
fn read_only_hint(error: &postgres::Error) -> &'static str {
    if with_causes(error).contains("does not allow writes") {
        " (a standby, or default_transaction_read_only is on)"
    } else {
        ""
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Postgres { source, .. } => Some(source),
            DbError::Tls(e) => Some(e),
            DbError::ConnectionClosed { .. }
            | DbError::UnexpectedValue { .. }
            | DbError::NoServer(_)
            | DbError::ConnectHung(_) => None,
        }
    }
}

/// True when a connection failed for a reason that retrying will not fix: PostgreSQL refused
/// us (a wrong password, an unknown role or database, no permission to connect), the TLS
/// that `sslmode` asks for failed (see [`connect::is_tls_refusal`]), or its files could not
/// be read; with several servers, when every one refused so.
pub(crate) fn is_fatal_connect_error(error: &DbError) -> bool {
    match error {
        DbError::Postgres { source, .. } => {
            let refused = source.code().is_some_and(|code| {
                let code = code.code();
                code.starts_with("28") || code == "3D000" || code == "42501"
            });
            refused || connect::is_tls_refusal(source)
        }
        DbError::Tls(_) => true,
        // Another server may take it once it is up, or promoted.
        DbError::NoServer(refusals) => refusals.iter().all(|(_, e)| is_fatal_connect_error(e)),
        DbError::ConnectionClosed { .. }
        | DbError::UnexpectedValue { .. }
        | DbError::ConnectHung(_) => false,
    }
}

/// After a DB thread's failed connection attempt: says so (log and esmed_status.last_error)
/// and sleeps the backoff's next delay before the caller tries again. A refusal that retrying
/// will not fix (see [`is_fatal_connect_error`]) is returned instead: the thread ends with it,
/// and esmed stops with a non-zero exit, as it does when refused at start.
pub(crate) fn wait_to_reconnect(
    who: &str,
    error: DbError,
    backoff: &mut crate::backoff::Backoff,
    stats: &crate::observe::counters::Stats,
) -> Result<(), DbError> {
    if is_fatal_connect_error(&error) {
        log::error!(
            "{who}: PostgreSQL refused the connection for a reason retrying will not fix: \
             {error}; stopping esmed"
        );
        return Err(error);
    }
    let delay = backoff.next_delay();
    stats.session.report(
        log::Level::Warn,
        format!(
            "{who}: cannot connect to PostgreSQL: {error}; retrying in {} ms",
            delay.as_millis()
        ),
    );
    std::thread::sleep(delay);
    Ok(())
}

/// An error and the causes under it: "error performing TLS handshake" alone does not say
/// that the certificate came from an unknown CA. A cause the text already quotes is skipped.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = e.source();
    }
    text
}

/// Wraps a postgres error with the call that failed.
pub(crate) fn pg(what: &'static str) -> impl FnOnce(postgres::Error) -> DbError {
    move |source| DbError::Postgres { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_servers_refuse_for_good_only_when_each_does() {
        use crate::config::DbHost;
        let refused = || DbError::Tls(crate::tls::TlsError::Setup("no CA file".into()));
        let closed = || DbError::ConnectionClosed { what: "connect" };
        let both = |a: DbError, b: DbError| {
            DbError::NoServer(vec![
                (DbHost::new("db1", 5432), a),
                (DbHost::new("db2", 5433), b),
            ])
        };
        assert!(is_fatal_connect_error(&both(refused(), refused())));
        // The other server may be promoted, or come back.
        assert!(!is_fatal_connect_error(&both(refused(), closed())));
        let error = both(closed(), refused());
        assert!(error.is_connection_lost() && error.is_transient());
        assert_eq!(
            error.to_string(),
            "database: no server would do: db1:5432: connect: connection closed; db2:5433: \
             TLS: no CA file"
        );
    }

    #[test]
    fn unexpected_value_is_not_a_lost_connection() {
        let error = DbError::UnexpectedValue {
            column: "smpp_priority_flag",
            value: "X".into(),
        };
        assert!(!error.is_connection_lost());
        assert!(error.to_string().contains("smpp_priority_flag"));
    }
}
