//! Scenario 10: a PostgreSQL failover under load. Each run starts its own durable primary
//! with a synchronous streaming standby (the bench's cluster stays idle meanwhile), esmed
//! given both as `host = a,b` (primary first), a burst drained over a transceiver with
//! receipts; a third of the way through the primary is stopped as a crash would stop it
//! and the standby promoted. Measured on the promoted server once every row is done: the
//! outage, the rows sent twice against esmed's bound, the rows lost (none may be), and the
//! drain rate before and after.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use esmed_testkit::{PgCluster, PgClusterOptions};
use postgres::Client;

use crate::journal::{read_arrivals, JournalTail};
use crate::procs::{self, Proc};
use crate::report::Outcome;
use crate::rig::{insert_rows, insert_warm_up, write_config, Rig, DB, ESMED_PASSWORD};
use crate::scenarios::PREFIX;
use crate::BenchError;

/// Runs of the scenario, each on new clusters: the outage is reported as p50 and max.
pub const RUNS: usize = 3;

/// esmed's default `[daemon] max_uncommitted_results`.
const DEFAULT_MAX_UNCOMMITTED_RESULTS: u64 = 1000;

/// What one failover run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct FailoverRun {
    /// From the last result committed on the old primary to the first on the promoted one.
    outage_s: f64,
    /// From the moment the old primary was gone to the first result on the promoted one.
    crash_to_first_s: f64,
    /// How long `pg_ctl promote` took.
    promote_s: f64,
    /// Rows done on the old primary, and their rate from the burst's commit.
    done_before: u64,
    rate_before: f64,
    /// Rows done on the promoted server, and their rate from its first result.
    done_after: u64,
    rate_after: f64,
    /// Sum of submission_resends of the burst's rows.
    resends: u64,
    /// Burst rows that reached the SMSC more than once (its journal).
    sent_twice: u64,
    /// Burst rows not done (pending or failed) at the end.
    lost: u64,
}

/// 10: [`RUNS`] failovers; p50 and max of the outage, the worst of the rest.
pub fn failover(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("failover", "10 PostgreSQL failover");
    let bound = resend_bound(rig.options.window, &rig.options.daemon);
    let mut runs = Vec::with_capacity(RUNS);
    for i in 1..=RUNS {
        eprintln!("esmed-bench: failover run {i} of {RUNS}: new primary and synchronous standby");
        let run = one_failover(rig, i)?;
        eprintln!(
            "    outage {:.3} s (crash to first result {:.3} s, promote {:.3} s), \
             {} resends, {} rows sent twice, {} lost, {:.0} msg/s before, {:.0} after",
            run.outage_s,
            run.crash_to_first_s,
            run.promote_s,
            run.resends,
            run.sent_twice,
            run.lost,
            run.rate_before,
            run.rate_after
        );
        runs.push(run);
    }
    summarize(&runs, bound, rig.options.rows, &mut outcome);
    Ok(outcome)
}

/// Puts the runs' figures into `outcome`: per run, then p50 and max of the outage, the worst
/// of the resends and losses, the median rates.
fn summarize(runs: &[FailoverRun], bound: u64, rows: u64, outcome: &mut Outcome) {
    outcome.set("rows", rows as f64);
    outcome.set("runs", runs.len() as f64);
    for (i, run) in runs.iter().enumerate() {
        outcome.set(&format!("outage_s_run{}", i + 1), run.outage_s);
    }
    let outages: Vec<f64> = runs.iter().map(|r| r.outage_s).collect();
    outcome.set("outage_p50_s", median(&outages));
    outcome.set("outage_max_s", max(&outages));
    let crash: Vec<f64> = runs.iter().map(|r| r.crash_to_first_s).collect();
    outcome.set("crash_to_first_result_p50_s", median(&crash));
    outcome.set("crash_to_first_result_max_s", max(&crash));
    let promote: Vec<f64> = runs.iter().map(|r| r.promote_s).collect();
    outcome.set("promote_max_s", max(&promote));
    let resends: Vec<f64> = runs.iter().map(|r| r.resends as f64).collect();
    outcome.set("resends_max", max(&resends));
    let twice: Vec<f64> = runs.iter().map(|r| r.sent_twice as f64).collect();
    outcome.set("sent_twice_max", max(&twice));
    outcome.set("resend_bound", bound as f64);
    outcome.set("rows_lost", runs.iter().map(|r| r.lost as f64).sum());
    let before: Vec<f64> = runs.iter().map(|r| r.rate_before).collect();
    let after: Vec<f64> = runs.iter().map(|r| r.rate_after).collect();
    outcome.set("before_msgs_per_s", median(&before));
    outcome.set("after_msgs_per_s", median(&after));
    let done_before: Vec<f64> = runs.iter().map(|r| r.done_before as f64).collect();
    outcome.set("done_before_failover_p50", median(&done_before));
    if runs
        .iter()
        .any(|r| r.resends > bound || r.sent_twice > bound)
    {
        outcome.note(format!(
            "more rows sent twice than esmed's bound of {bound} (window + \
             max_uncommitted_results, one session)"
        ));
    }
    if runs.iter().any(|r| r.lost > 0) {
        outcome.error = Some("rows not done after the failover".into());
    }
    outcome.note(
        "outage: from the latest submission_timestamp of a row done on the old primary to \
         the earliest of one done on the promoted server (each its results transaction's \
         start)",
    );
}

/// The rows one session may send twice when the primary goes: the submits in flight (the
/// window) plus the answered results waiting for their commit (`max_uncommitted_results`),
/// or the window alone with `strict_resend_bound`.
pub(crate) fn resend_bound(window: u32, daemon: &[String]) -> u64 {
    let value = |key: &str| {
        daemon.iter().rev().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if value("strict_resend_bound").is_some_and(|v| v == "true") {
        return u64::from(window);
    }
    let uncommitted = value("max_uncommitted_results")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_UNCOMMITTED_RESULTS);
    u64::from(window) + uncommitted
}

/// The median (the lower middle of an even count); 0 when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n => sorted[(n - 1) / 2],
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// The seconds since the Unix epoch now, on the clock PostgreSQL's timestamps use (the same
/// machine's).
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One run: clusters, SMSC and esmed of its own, all stopped when it returns.
fn one_failover(rig: &mut Rig, index: usize) -> Result<FailoverRun, BenchError> {
    let options = &rig.options;
    let mut primary = PgCluster::start_with(PgClusterOptions {
        durable: true,
        stat_statements: false,
        extra: options.pg_settings.clone(),
        tls: None,
    })?;
    primary.create_database(DB)?;
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql/db.sql");
    primary.load_schema(DB, &schema)?;
    primary.set_esmed_password(DB, ESMED_PASSWORD)?;
    let mut db = primary.superuser_client(DB)?;
    crate::rig::warm_wal(&mut db, wal_segments_for(options.rows))?;
    let standby = primary.start_standby()?;
    make_synchronous(&mut db)?;

    let name = format!("failover-{index}");
    let journal = rig.dir.0.join(format!("{name}.journal"));
    let (mut smsc, smsc_port) = procs::start_smsc(&journal, Some(0), &[])?;
    db.execute(
        "INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password,
             esme_source_addr, esme_bind_transceiver, esme_registered_delivery, smpp_window)
         VALUES (true, '127.0.0.1', $1, 'esmed', 'secret', 'ESMED', true, true, $2)",
        &[&i32::from(smsc_port), &(options.window as i32)],
    )
    .map_err(BenchError::pg("insert the server row"))?;
    let config = write_config(
        &rig.dir.0,
        &name,
        &[primary.port(), standby.port()],
        "bench-failover",
        &options.daemon,
    )?;
    let mut esmed = procs::start_esmed(&config)?;
    let mut tail = JournalTail::new(&journal);
    insert_warm_up(&mut db)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    wait_for(
        "the warm-up row to be sent",
        deadline,
        &mut [&mut esmed, &mut smsc],
        || Ok(pending(&mut db)? == 0),
    )?;
    let base = tail.poll()?;
    let offset = tail.offset();

    let n = options.rows;
    insert_rows(&mut db, n, PREFIX)?;
    let inserted_at = epoch_now();
    let deadline = rig.deadline();
    wait_for(
        "a third of the burst at the SMSC",
        deadline,
        &mut [&mut esmed, &mut smsc],
        || Ok(tail.poll()? >= base + n / 3),
    )?;
    drop(db);
    primary.stop_immediate()?;
    // Every transaction of the old primary started before this moment, every one of the
    // promoted server after it.
    let gone_at = epoch_now();
    let promoting = Instant::now();
    standby.promote()?;
    let promote_s = promoting.elapsed().as_secs_f64();
    let mut db = standby.superuser_client(DB)?;
    wait_for(
        "every row done on the promoted server",
        deadline,
        &mut [&mut esmed, &mut smsc],
        || Ok(pending(&mut db)? == 0),
    )?;
    let row = db
        .query_one(
            "SELECT extract(epoch FROM max(submission_timestamp)
                        FILTER (WHERE submission_timestamp < to_timestamp($1)))::float8,
                    extract(epoch FROM min(submission_timestamp)
                        FILTER (WHERE submission_timestamp >= to_timestamp($1)))::float8,
                    extract(epoch FROM max(submission_timestamp))::float8,
                    count(*) FILTER (WHERE submission_timestamp < to_timestamp($1)),
                    count(*) FILTER (WHERE submission_timestamp >= to_timestamp($1)),
                    COALESCE(sum(submission_resends), 0)::int8
             FROM smpp_tx_queue
             WHERE smpp_destination_addr LIKE $2 AND submission_done",
            &[&gone_at, &format!("{PREFIX}%")],
        )
        .map_err(BenchError::pg("read the burst's results"))?;
    let last_old: Option<f64> = row.get(0);
    let first_new: Option<f64> = row.get(1);
    let last: Option<f64> = row.get(2);
    let (done_before, done_after, resends): (i64, i64, i64) = (row.get(3), row.get(4), row.get(5));
    let (Some(last_old), Some(first_new), Some(last)) = (last_old, first_new, last) else {
        return Err(BenchError::Process(format!(
            "failover run {index}: no result on one side of the failover \
             ({done_before} rows done before, {done_after} after)"
        )));
    };
    let done = done_before + done_after;
    let sent_twice = sent_twice(&journal, offset)?;
    Ok(FailoverRun {
        outage_s: first_new - last_old,
        crash_to_first_s: first_new - gone_at,
        promote_s,
        done_before: done_before as u64,
        rate_before: done_before as f64 / (last_old - inserted_at).max(1e-3),
        done_after: done_after as u64,
        rate_after: done_after as f64 / (last - first_new).max(1e-3),
        resends: resends.max(0) as u64,
        sent_twice,
        lost: n.saturating_sub(done.max(0) as u64),
    })
}

/// WAL segments for a burst with receipts (under 2 KB of WAL a row), 4 to 128.
fn wal_segments_for(rows: u64) -> u32 {
    (rows * 2048).div_ceil(16 << 20).clamp(4, 128) as u32
}

/// Makes the streaming standby synchronous (`synchronous_commit` stays `on`): a commit is
/// acknowledged once the standby has flushed it, so the promoted server has every result
/// esmed was told was committed. Waits until the primary reports it so.
fn make_synchronous(db: &mut Client) -> Result<(), BenchError> {
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
        "SELECT pg_reload_conf()",
    ] {
        db.batch_execute(sql)
            .map_err(BenchError::pg("make the standby synchronous"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sync: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                &[],
            )
            .map_err(BenchError::pg("read pg_stat_replication"))?
            .get(0);
        if sync > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(
                "the standby to become synchronous".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rows neither done nor failed.
fn pending(db: &mut Client) -> Result<i64, BenchError> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM smpp_tx_queue \
             WHERE NOT submission_done AND NOT submission_failed",
            &[],
        )
        .map_err(BenchError::pg("count pending rows"))?
        .get(0))
}

/// Burst rows whose submit_sm reached the SMSC more than once, from journal byte `offset`.
pub(crate) fn sent_twice(journal: &Path, offset: u64) -> Result<u64, BenchError> {
    let arrivals = read_arrivals(journal, offset)?;
    let mut seen = std::collections::HashMap::new();
    for a in arrivals
        .iter()
        .filter(|a| a.destination.starts_with(PREFIX))
    {
        *seen.entry(a.destination.as_str()).or_insert(0u32) += 1;
    }
    Ok(seen.values().filter(|&&n| n > 1).count() as u64)
}

/// Calls `done` every 20 ms until it holds or `deadline` passes (then `Timeout`); fails at
/// once when one of `procs` exited.
pub(crate) fn wait_for(
    what: &str,
    deadline: Instant,
    procs: &mut [&mut Proc],
    mut done: impl FnMut() -> Result<bool, BenchError>,
) -> Result<(), BenchError> {
    loop {
        if done()? {
            return Ok(());
        }
        for proc in procs.iter_mut() {
            proc.check_running()?;
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(what.to_string()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resend_bound_is_the_window_plus_the_uncommitted_results() {
        assert_eq!(resend_bound(100, &[]), 1100);
        let lines = ["max_uncommitted_results = 50".to_string()];
        assert_eq!(resend_bound(100, &lines), 150);
        let strict = ["strict_resend_bound = true".to_string()];
        assert_eq!(resend_bound(100, &strict), 100);
    }

    #[test]
    fn the_median_of_three_runs_is_the_middle_one() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 1.0);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(max(&[0.5, 2.5, 1.0]), 2.5);
    }

    #[test]
    fn a_failed_run_makes_the_scenario_fail_and_the_outage_is_summarized() {
        let run = |outage_s, lost| FailoverRun {
            outage_s,
            lost,
            ..FailoverRun::default()
        };
        let mut outcome = Outcome::new("failover", "10");
        summarize(
            &[run(1.0, 0), run(3.0, 0), run(2.0, 0)],
            1100,
            10,
            &mut outcome,
        );
        assert_eq!(outcome.get("outage_p50_s"), Some(2.0));
        assert_eq!(outcome.get("outage_max_s"), Some(3.0));
        assert!(outcome.error.is_none());
        let mut outcome = Outcome::new("failover", "10");
        summarize(&[run(1.0, 2)], 1100, 10, &mut outcome);
        assert_eq!(outcome.get("rows_lost"), Some(2.0));
        assert!(outcome.error.is_some());
    }
}
