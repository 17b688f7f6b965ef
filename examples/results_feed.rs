//! An application following esmed's results feed: plain SQL and the `postgres` crate.
//!
//!   cargo run --example results_feed -- 'host=/run/postgresql dbname=esmed user=app' cursor.txt
//!
//! It prints one line per result (`id result_seq done|failed|pending state`) as esmed commits
//! them. The cursor (the last result_seq handled) is kept in a file, written after each batch
//! is handled, so that a restart goes on where it stopped; a lost connection is made again
//! and the reading goes on from the cursor, so no result is lost. A result handled just before
//! a crash, whose cursor was not stored yet, is handled again: an application that must handle
//! each exactly once stores the cursor in the same transaction as what it does with the rows.
//!
//! The role needs only SELECT on smpp_tx_queue. `cargo test --example results_feed` runs it
//! against a private PostgreSQL with a connection cut in the middle.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

/// How many rows one read returns at most.
const BATCH: i32 = 500;

/// How long to wait for a notification before reading anyway (a notification is only a
/// hint: the cursor decides what is read).
const IDLE_READ: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conninfo, cursor_file] = args.as_slice() else {
        eprintln!("usage: results_feed <connection string> <cursor file>");
        std::process::exit(2);
    };
    let stop = AtomicBool::new(false);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    follow(conninfo, Path::new(cursor_file), &stop, |result| {
        let _ = writeln!(out, "{result}");
    });
}

/// One row of the feed, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FeedResult {
    id: i64,
    result_seq: i64,
    outcome: &'static str,
    state: Option<String>,
}

impl std::fmt::Display for FeedResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.id,
            self.result_seq,
            self.outcome,
            self.state.as_deref().unwrap_or("-")
        )
    }
}

/// Follows the feed until `stop` is set: connects (again after any error, with a growing
/// pause), LISTENs, reads on from the stored cursor, hands each row to `handle`, stores the
/// cursor, and waits for the next notification. Returns how many connections it made.
fn follow(
    conninfo: &str,
    cursor_file: &Path,
    stop: &AtomicBool,
    mut handle: impl FnMut(FeedResult),
) -> u32 {
    let mut connections = 0;
    let mut pause = Duration::from_millis(100);
    while !stop.load(Ordering::SeqCst) {
        match Client::connect(conninfo, NoTls) {
            Ok(client) => {
                connections += 1;
                pause = Duration::from_millis(100);
                if let Err(e) = read_while_connected(client, cursor_file, stop, &mut handle) {
                    eprintln!("results_feed: {e}; connecting again");
                }
            }
            Err(e) => eprintln!("results_feed: cannot connect: {e}; trying again in {pause:?}"),
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(10));
    }
    connections
}

/// The loop on one connection; returns at the first error (or when `stop` is set).
fn read_while_connected(
    mut client: Client,
    cursor_file: &Path,
    stop: &AtomicBool,
    handle: &mut impl FnMut(FeedResult),
) -> Result<(), Box<dyn std::error::Error>> {
    // LISTEN first, then read: a result committed in between is read now or notified later.
    client.batch_execute("LISTEN esmed_results")?;
    let mut cursor = load_cursor(cursor_file)?;
    while !stop.load(Ordering::SeqCst) {
        let rows = client.query(
            "SELECT id, result_seq, submission_done, submission_failed, smpp_message_state
             FROM esmed_results_since($1, $2)",
            &[&cursor, &BATCH],
        )?;
        for row in &rows {
            let (done, failed): (bool, bool) = (row.get(2), row.get(3));
            let result = FeedResult {
                id: row.get(0),
                result_seq: row.get(1),
                outcome: if done {
                    "done"
                } else if failed {
                    "failed"
                } else {
                    "pending"
                },
                state: row.get(4),
            };
            cursor = result.result_seq;
            handle(result);
        }
        if !rows.is_empty() {
            store_cursor(cursor_file, cursor)?;
        }
        if rows.len() < BATCH as usize {
            // Wait for a notification (or the idle timeout); those that came meanwhile are
            // all answered by the next read.
            let mut notifications = client.notifications();
            if notifications.timeout_iter(IDLE_READ).next()?.is_some() {
                while notifications.iter().next()?.is_some() {}
            }
        }
    }
    Ok(())
}

/// The stored cursor; 0 (everything) when there is none yet.
fn load_cursor(path: &Path) -> io::Result<i64> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Stores the cursor so that a crash leaves either the old or the new one.
fn store_cursor(path: &Path, cursor: i64) -> io::Result<()> {
    let mut temporary = PathBuf::from(path);
    temporary.set_extension("new");
    fs::write(&temporary, format!("{cursor}\n"))?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    use esmed_testkit::PgCluster;

    /// The consumer follows the feed while results are committed in batches; its connection
    /// is cut in the middle. Every result comes exactly once, the cursor file ends at the
    /// last one, and the consumer connected again.
    #[test]
    fn the_consumer_sees_every_result_once_across_a_lost_connection() {
        let cluster = PgCluster::start().unwrap();
        cluster.create_database("esmed").unwrap();
        let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/db.sql");
        cluster.load_schema("esmed", &schema).unwrap();
        let mut admin = cluster.superuser_client("esmed").unwrap();
        admin
            .batch_execute(
                "CREATE ROLE app LOGIN PASSWORD 'app';
                 GRANT SELECT ON smpp_tx_queue TO app;
                 INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
                     SELECT '4670' || g, 'x' FROM generate_series(1, 2000) g;",
            )
            .unwrap();
        let dir = std::env::temp_dir().join(format!("esmed-results-feed-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let cursor_file = dir.join("cursor");
        let _ = fs::remove_file(&cursor_file);
        let conninfo = format!(
            "host={} port={} dbname=esmed user=app password=app",
            cluster.host(),
            cluster.port()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let (sender, seen) = mpsc::channel();
        let consumer = {
            let (stop, cursor_file) = (Arc::clone(&stop), cursor_file.clone());
            thread::spawn(move || {
                follow(&conninfo, &cursor_file, &stop, |r| {
                    let _ = sender.send(r);
                })
            })
        };

        let ids: Vec<i64> = admin
            .query("SELECT id FROM smpp_tx_queue ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (n, batch) in ids.chunks(50).enumerate() {
            admin
                .execute(
                    "UPDATE smpp_tx_queue
                     SET submission_done = (id % 7 <> 0), submission_failed = (id % 7 = 0)
                     WHERE id = ANY($1)",
                    &[&batch],
                )
                .unwrap();
            if n == 20 {
                let cut: i64 = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE usename = 'app'",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(cut, 1, "the consumer's connection is cut");
            }
            thread::sleep(Duration::from_millis(5));
        }

        let mut times: HashMap<i64, usize> = HashMap::new();
        let mut last_seq = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while times.len() < ids.len() && Instant::now() < deadline {
            if let Ok(r) = seen.recv_timeout(Duration::from_millis(200)) {
                assert!(r.result_seq > last_seq, "in order: {r:?} after {last_seq}");
                assert_eq!(r.outcome, if r.id % 7 == 0 { "failed" } else { "done" });
                last_seq = r.result_seq;
                *times.entry(r.id).or_default() += 1;
            }
        }
        // Anything more would be a row seen twice.
        thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        while let Ok(r) = seen.try_recv() {
            *times.entry(r.id).or_default() += 1;
        }
        assert_eq!(times.len(), ids.len(), "every result seen");
        assert!(times.values().all(|n| *n == 1), "each once");
        // Wait for the consumer to notice the stop (at most one idle wait).
        let connections = consumer.join().unwrap();
        assert!(connections >= 2, "it connected again ({connections})");
        assert_eq!(load_cursor(&cursor_file).unwrap(), last_seq);
        let _ = fs::remove_dir_all(&dir);
    }
}
