//! Commits whose outcome is unknown. When the connection dies after COMMIT was sent and
//! before its answer arrived, the transaction may have committed or not: storing the same
//! work again would store it twice if it had (a received PDU kept twice, an attempt counted
//! twice), and answering the SMSC as if it had not would be a lie the other way.
//!
//! So a transaction whose work is kept for another try learns its own id when it begins
//! ([`begin`]: `txid_current()` in the same round trip as BEGIN), and when its COMMIT goes
//! unanswered ([`commit`] says [`Ended::Unknown`]) the caller asks a new connection what
//! became of it ([`resolve`], `txid_status`): committed, the work is done and answered as
//! such; aborted (or no longer known), it is done again; still in progress (the old backend
//! has not yet noticed its client is gone), the question is asked again, and after a while
//! the old backend is ended so that the answer cannot be put off for ever.
//!
//! Why the transaction's id rather than a key per received PDU: the id costs no round trip
//! and no column or index on the hot tables, and it answers for everything the transaction
//! did (rows, receipt states, MO parts, counters) at once.
//!
//! An id is only news from the server that handed it out, or from one that replayed its WAL:
//! a standby promoted before our transaction's WAL reached it (or a server restarted after a
//! crash before that WAL was flushed) never saw the id, and hands it out again to a
//! transaction of its own, whose status `txid_status` would then report as ours. So
//! [`begin`] also writes an empty transactional logical message (`pg_logical_emit_message`,
//! prefix `esmed`: a no-op outside logical decoding), the transaction's first WAL record,
//! which carries its id, and notes where that record ends and when the server's postmaster
//! started. When [`resolve`] finds another postmaster (a restart, or another server) that
//! recovered (`pg_last_wal_replay_lsn()` is not NULL) and whose replay ended before that
//! record's end, the id never reached it: the transaction did not commit there. Otherwise
//! the server knows the id for what it was (the same postmaster, a clean restart, or a
//! replay that went past the record), and `txid_status` is asked.

use std::time::{Duration, Instant};

use log::{info, warn};
use postgres::{Client, SimpleQueryMessage};

use crate::db::{pg, DbError};

/// A transaction whose COMMIT may go unanswered: its 64-bit (epoch-qualified) id, as
/// `txid_current()` gives it, and where to look for it (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Xid {
    pub(crate) id: i64,
    /// The end of its first WAL record, which carries its id.
    first_record_end: Lsn,
    /// When the postmaster of the server it began on started, in microseconds since 1970.
    postmaster_start: i64,
}

/// A WAL position, as PostgreSQL's `pg_lsn` (`X/Y`, two 32-bit halves in hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Lsn(pub(crate) u64);

impl Lsn {
    fn parse(text: &str) -> Option<Lsn> {
        let (high, low) = text.split_once('/')?;
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(Lsn(high << 32 | low))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & u64::from(u32::MAX))
    }
}

/// How the end of a transaction went.
#[derive(Debug)]
pub(crate) enum Ended {
    /// PostgreSQL refused the COMMIT, or the connection failed before it was sent: nothing
    /// was committed.
    Failed(DbError),
    /// The connection was lost while the COMMIT was on its way: see [`resolve`].
    Unknown(Xid, DbError),
}

/// What became of a transaction whose COMMIT went unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Committed,
    /// Aborted, or unknown to this server (it was rolled back in recovery, or this is a
    /// standby promoted before the commit reached it): do the work again.
    NotCommitted,
}

/// How long to wait before asking again about a transaction still in progress.
const IN_PROGRESS_WAIT: Duration = Duration::from_millis(100);

/// How long a transaction may stay in progress before its backend is ended: normally the
/// backend notices at once that its client is gone; after a network failure it may wait
/// for TCP to give up, which can take hours.
const IN_PROGRESS_LIMIT: Duration = Duration::from_secs(5);

/// What [`begin`] asks, after BEGIN, in the same round trip.
const BEGIN: &str = "BEGIN; SELECT txid_current(), pg_logical_emit_message(true, 'esmed', ''), \
     (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8";

/// Begins a transaction and returns it (see [`Xid`]), in one round trip.
pub(crate) fn begin(client: &mut Client) -> Result<Xid, DbError> {
    let messages = client.simple_query(BEGIN).map_err(pg("begin a batch"))?;
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let column = |n: usize, name: &'static str| {
        let text = row.and_then(|row| row.get(n));
        (text, move || DbError::UnexpectedValue {
            column: name,
            value: text.unwrap_or_default().to_string(),
        })
    };
    let (id, bad_id) = column(0, "txid_current()");
    let (lsn, bad_lsn) = column(1, "pg_logical_emit_message()");
    let (start, bad_start) = column(2, "pg_postmaster_start_time()");
    Ok(Xid {
        id: id.and_then(|t| t.parse().ok()).ok_or_else(bad_id)?,
        first_record_end: lsn.and_then(Lsn::parse).ok_or_else(bad_lsn)?,
        postmaster_start: start.and_then(|t| t.parse().ok()).ok_or_else(bad_start)?,
    })
}

/// Commits the transaction [`begin`] opened as `xid`.
pub(crate) fn commit(client: &mut Client, xid: Xid) -> Result<(), Ended> {
    match client.batch_execute("COMMIT").map_err(pg("commit a batch")) {
        Ok(()) => Ok(()),
        // Lost with the connection (or the server going down): it may have committed first.
        Err(e) if e.is_connection_lost() || client.is_closed() => Err(Ended::Unknown(xid, e)),
        Err(e) => Err(Ended::Failed(e)),
    }
}

/// Asks PostgreSQL, on a new connection, whether transaction `xid` committed; waits while
/// it is still in progress. An error means the question itself could not be answered (the
/// connection failed again): ask again on the next one.
pub(crate) fn resolve(client: &mut Client, xid: Xid) -> Result<Outcome, DbError> {
    if never_reached_here(client, xid)? {
        info!(
            "transaction {} wrote its first WAL record (ending at {}) past the end of the WAL \
             this PostgreSQL server replayed before it took writes (a standby promoted, or a \
             restart after a crash, before it had the transaction): it did not commit here",
            xid.id, xid.first_record_end
        );
        return Ok(Outcome::NotCommitted);
    }
    let since = Instant::now();
    let mut ended_backend = false;
    loop {
        let status = match client.query_one("SELECT txid_status($1)", &[&xid.id]) {
            Ok(row) => row
                .try_get::<_, Option<String>>(0)
                .map_err(pg("read a transaction's status"))?,
            // "transaction ID ... is in the future": this server never saw it begin (a
            // standby promoted since), so it never committed here.
            Err(e) if e.code().is_some_and(|c| c.code() == "22023") => {
                warn!(
                    "transaction {} is unknown to this PostgreSQL server (a failover?); \
                     taking it as not committed",
                    xid.id
                );
                return Ok(Outcome::NotCommitted);
            }
            Err(e) => return Err(pg("ask whether a transaction committed")(e)),
        };
        match status.as_deref() {
            Some("committed") => return Ok(Outcome::Committed),
            Some("in progress") => {}
            // "aborted", or NULL: too old to be known, so not one that could commit now.
            _ => return Ok(Outcome::NotCommitted),
        }
        if !ended_backend && since.elapsed() >= IN_PROGRESS_LIMIT {
            ended_backend = true;
            if let Err(e) = end_backend_of(client, xid) {
                if e.is_connection_lost() {
                    return Err(e);
                }
                // Not allowed (a role without the right to signal its own backends):
                // the backend still ends when TCP gives up on its client.
                warn!(
                    "transaction {} of a lost connection still in progress: {e}; waiting for                      it to end",
                    xid.id
                );
            }
        }
        std::thread::sleep(IN_PROGRESS_WAIT);
    }
}

/// Whether `xid` began on another postmaster than this server's and this server's replay
/// (as a standby, or after a crash) ended before `xid`'s first record: then its id never
/// reached this server, which may have handed it out again. A server still in recovery is
/// not asked (its replay goes on).
fn never_reached_here(client: &mut Client, xid: Xid) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8 <> $1
                AND NOT pg_is_in_recovery()
                AND COALESCE(pg_last_wal_replay_lsn() < $2::text::pg_lsn, false)",
            &[&xid.postmaster_start, &xid.first_record_end.to_string()],
        )
        .map_err(pg("ask where this server's WAL replay ended"))?;
    row.try_get(0)
        .map_err(pg("read where this server's WAL replay ended"))
}

/// Ends the backend still running transaction `xid`, whose client (this process's lost
/// connection) is gone. Safe either way: a backend that has begun committing finishes the
/// commit before it ends; one still waiting for the COMMIT rolls back.
fn end_backend_of(client: &mut Client, xid: Xid) -> Result<(), DbError> {
    let ended = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE backend_xid = ($1::int8 % 4294967296)::text::xid",
            &[&xid.id],
        )
        .map_err(pg("end the backend of a lost connection"))?;
    info!(
        "transaction {} of a lost connection still in progress after {} s; ended its \
         backend ({} found) to learn whether it committed",
        xid.id,
        IN_PROGRESS_LIMIT.as_secs(),
        ended.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_read_and_print_as_postgresql_writes_them() {
        for text in ["0/0", "0/3000148", "1A/FF00AB", "FFFFFFFF/FFFFFFFF"] {
            let lsn = Lsn::parse(text).expect(text);
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!(Lsn::parse("1/0"), Some(Lsn(1 << 32)));
        assert!(Lsn::parse("1/0") > Lsn::parse("0/FFFFFFFF"));
        for bad in ["", "0", "x/1", "1/", "100000000/0", "-1/0"] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
    }
}
