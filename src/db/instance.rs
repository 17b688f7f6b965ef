//! The instance name, which the rows an esmed claims carry, and the lock that keeps it unique.
//!
//! Each esmed holds a PostgreSQL session-level advisory lock keyed on its instance name, on
//! the connection it claims on, for as long as that connection lives (taken again after a
//! reconnect). A name is so used by one live process at most, and once a process holds the
//! lock of its name, rows still claimed under that name belonged to a process that is gone:
//! they are released at once instead of waiting for their lease.
//!
//! A connection pooler in transaction mode (PgBouncer's `pool_mode = transaction`) runs a
//! session's statements on different server connections, which breaks session locks: esmed
//! connects to PostgreSQL directly or through a pooler in session mode.

use std::time::{Duration, Instant};

use log::info;
use postgres::Client;

use super::servers::get;
use super::{pg, DbError};

/// The first key of esmed's advisory locks ("esme"); the second is derived from the name.
/// Locks taken with a single bigint key, as applications usually take them, never collide
/// with these.
const LOCK_CLASS: i32 = 0x6573_6D65;

/// The second key: the first 32 bits of the name's MD5, computed by PostgreSQL so that any
/// esmed (and an operator's query) finds the same lock for the same name.
macro_rules! name_key {
    () => {
        "('x' || substr(md5($2), 1, 8))::bit(32)::int4"
    };
}

/// How long a name whose lock is held is tried again before it counts as in use: the server
/// process of an esmed that was just killed may take a moment to notice and end.
const LINGER: Duration = Duration::from_secs(1);

/// The fallback names tried after the default one (`host-2` up to `host-<this>`).
const MOST_FALLBACKS: u32 = 64;

/// Keepalives for the connection that holds the lock: when the host of an esmed vanishes
/// without closing its connections, its server process ends (and frees the name) within a
/// minute or two instead of the system's default of two hours. Ignored over a Unix socket,
/// where a process's end closes its connections at once.
const KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3";

/// Why esmed may not run under the name it was given.
#[derive(Debug)]
pub enum NameError {
    Db(DbError),
    /// `[daemon] instance` names a live esmed.
    InUse {
        name: String,
        holder: String,
    },
    /// The default name and all its fallbacks are in use.
    AllInUse {
        name: String,
    },
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Db(e) => write!(f, "cannot take the instance name: {e}"),
            NameError::InUse { name, holder } => write!(
                f,
                "[daemon] instance '{name}' is in use by another running esmed ({holder}); give \
                 each esmed its own instance, or leave it unset to have one chosen"
            ),
            NameError::AllInUse { name } => write!(
                f,
                "the instance names '{name}' to '{name}-{MOST_FALLBACKS}' are all in use by \
                 running esmed processes; set [daemon] instance"
            ),
        }
    }
}

impl From<DbError> for NameError {
    fn from(e: DbError) -> Self {
        NameError::Db(e)
    }
}

/// Takes the lock of `wanted` on `c`, or, when `wanted` is the default (not `configured`)
/// and a live esmed uses it, of the first free `wanted-2`, `wanted-3`, ...; returns the name
/// this process runs as. A configured name in use is an error.
pub fn take_name(c: &mut Client, wanted: &str, configured: bool) -> Result<String, NameError> {
    keep_alive(c)?;
    if lock_patiently(c, wanted)? {
        return Ok(wanted.to_string());
    }
    let holder = holder(c, wanted)?;
    if configured {
        return Err(NameError::InUse {
            name: wanted.to_string(),
            holder,
        });
    }
    for n in 2..=MOST_FALLBACKS {
        let name = format!("{wanted}-{n}");
        if lock_patiently(c, &name)? {
            info!("instance '{wanted}' is in use by another running esmed ({holder}); this one runs as '{name}'");
            return Ok(name);
        }
    }
    Err(NameError::AllInUse {
        name: wanted.to_string(),
    })
}

/// Takes the lock of `name` again on a new connection `c` (after a reconnect); false while
/// another session holds it.
pub(crate) fn relock(c: &mut Client, name: &str) -> Result<bool, DbError> {
    keep_alive(c)?;
    try_lock(c, name)
}

fn keep_alive(c: &mut Client) -> Result<(), DbError> {
    c.batch_execute(KEEPALIVES)
        .map_err(pg("set keepalives for the instance lock"))
}

/// Takes the lock of `name` on `c` if no other PostgreSQL connection holds it; true when `c`
/// holds it now (taking it again is harmless: it only counts once more).
pub(crate) fn try_lock(c: &mut Client, name: &str) -> Result<bool, DbError> {
    let row = c
        .query_one(
            concat!("SELECT pg_try_advisory_lock($1, ", name_key!(), ")"),
            &[&LOCK_CLASS, &name],
        )
        .map_err(pg("take the instance lock"))?;
    get(&row, 0)
}

/// [`try_lock`], trying again for [`LINGER`] while another session holds it.
fn lock_patiently(c: &mut Client, name: &str) -> Result<bool, DbError> {
    let until = Instant::now() + LINGER;
    loop {
        if try_lock(c, name)? {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Which server process holds the lock of `name`, for a message.
pub(crate) fn holder(c: &mut Client, name: &str) -> Result<String, DbError> {
    let rows = c
        .query(
            concat!(
                "SELECT a.pid, COALESCE(host(a.client_addr), 'the local socket'),
                        to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                   AND l.classid = $1::int4::oid AND l.objid = ",
                name_key!(),
                "::oid"
            ),
            &[&LOCK_CLASS, &name],
        )
        .map_err(pg("look for the instance lock"))?;
    let Some(row) = rows.first() else {
        return Ok("it has just ended".to_string());
    };
    let (pid, from, since): (i32, String, Option<String>) =
        (get(row, 0)?, get(row, 1)?, get(row, 2)?);
    Ok(format!(
        "its PostgreSQL connection: server process {pid} from {from}, connected since {}",
        since.as_deref().unwrap_or("?")
    ))
}
