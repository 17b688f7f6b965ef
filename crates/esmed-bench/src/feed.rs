//! 8: the results feed. Its cost: the burst run by an esmed without the feed (`--before-esmed`,
//! with the feed's triggers disabled, so that nothing of it runs) and by this one, alternately
//! (before, after, before, after, before, after) in one run, so that both see the same machine
//! and the same state of the cluster. Its latency: rows inserted at a steady rate while an application
//! LISTENs on `esmed_results` and reads `esmed_results_since` at each notification; for each
//! row, the time from the SMSC's arrival stamp of its submit_sm (the test SMSC answers at
//! once, so this is the submit_sm_resp to within its writing) to the moment the application
//! has the row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use crate::journal::{first_arrival_by_destination, read_arrivals};
use crate::report::Outcome;
use crate::rig::{Receipts, Rig, DB};
use crate::scenarios::{insert_steadily, percentile, timed_burst};
use crate::BenchError;

/// The triggers that make the feed (sql/results-feed.sql).
const TRIGGERS: &[(&str, &str)] = &[
    ("smpp_tx_queue", "smpp_tx_queue_result_seq"),
    ("smpp_tx_queue", "smpp_tx_queue_result_seq_insert"),
    ("smpp_rx_queue", "smpp_rx_queue_result_seq"),
    ("smpp_rx_queue", "smpp_rx_queue_result_seq_link"),
];

/// Bursts of each kind in the comparison.
const ROUNDS: usize = 3;

pub fn feed(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("feed", "8 results feed");
    let result = measure(rig, &mut outcome);
    // Whatever happened, the other scenarios run with the schema and esmed as shipped.
    rig.esmed_binary = None;
    set_feed(rig, true)?;
    result.map(|()| outcome)
}

fn measure(rig: &mut Rig, outcome: &mut Outcome) -> Result<(), BenchError> {
    let before = rig.options.before_esmed.clone();
    let kinds: &[bool] = if before.is_some() {
        &[false, true]
    } else {
        &[true]
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut off_cpu, mut on_cpu) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for &enabled in kinds {
            set_feed(rig, enabled)?;
            rig.esmed_binary = if enabled { None } else { before.clone() };
            let name = format!("feed-{round}-{}", if enabled { "on" } else { "off" });
            let (rate, cpu_us) = one_burst(rig, &name)?;
            let what = if enabled {
                "this esmed, feed on"
            } else {
                "without the feed"
            };
            eprintln!(
                "    burst, {what}: {rate:.0} msg/s, esmed + PostgreSQL {cpu_us:.1} µs CPU/msg"
            );
            if enabled {
                on.push(rate);
                on_cpu.push(cpu_us);
            } else {
                off.push(rate);
                off_cpu.push(cpu_us);
            }
        }
    }
    rig.esmed_binary = None;
    set_feed(rig, true)?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let (off, on) = (median(&mut off), median(&mut on));
    let (off_cpu, on_cpu) = (median(&mut off_cpu), median(&mut on_cpu));
    if let (Some(on), Some(on_cpu)) = (on, on_cpu) {
        outcome.set("burst_feed_on_msgs_per_s", on);
        outcome.set("burst_feed_on_cpu_us_per_msg", on_cpu);
    }
    if let (Some(off), Some(on), Some(off_cpu), Some(on_cpu)) = (off, on, off_cpu, on_cpu) {
        outcome.set("burst_feed_off_msgs_per_s", off);
        outcome.set("burst_feed_off_cpu_us_per_msg", off_cpu);
        outcome.set("feed_cost_pct", 100.0 * (off - on) / off.max(1.0));
        outcome.set(
            "feed_cpu_cost_pct",
            100.0 * (on_cpu - off_cpu) / off_cpu.max(0.001),
        );
        outcome.note(format!(
            "burst rates: median of {ROUNDS} runs each, alternated before/after"
        ));
    } else {
        outcome.note("no --before-esmed: the burst with the feed only");
    }
    visible_latency(rig, outcome)
}

/// One burst against a fresh esmed: its rate, and the CPU esmed and PostgreSQL spent per
/// message (less sensitive than the rate to what else the machine runs).
fn one_burst(rig: &mut Rig, name: &str) -> Result<(f64, f64), BenchError> {
    let mut burst = Outcome::new("feed", "");
    let mut run = rig.prepare(name, Receipts::Off)?;
    rig.launch_warm(&mut run, name)?;
    timed_burst(rig, &mut run, &mut burst)?;
    let cpu_s =
        burst.get("esmed_cpu_s").unwrap_or(0.0) + burst.get("postgres_cpu_s").unwrap_or(0.0);
    let rows = burst.get("rows").unwrap_or(1.0).max(1.0);
    Ok((burst.get("msgs_per_s").unwrap_or(0.0), cpu_s * 1e6 / rows))
}

/// Enables or disables the feed's triggers (esmed is not running between scenarios' runs).
fn set_feed(rig: &mut Rig, enabled: bool) -> Result<(), BenchError> {
    let verb = if enabled { "ENABLE" } else { "DISABLE" };
    let sql: String = TRIGGERS
        .iter()
        .map(|(table, trigger)| format!("ALTER TABLE {table} {verb} TRIGGER {trigger};"))
        .collect();
    rig.db
        .batch_execute(&sql)
        .map_err(BenchError::pg("switch the results feed"))
}

/// Rows at the latency scenario's rate; an application follows the feed meanwhile.
fn visible_latency(rig: &mut Rig, outcome: &mut Outcome) -> Result<(), BenchError> {
    let mut run = rig.prepare("feed-latency", Receipts::Off)?;
    rig.launch_warm(&mut run, "feed-latency")?;
    let offset = run.tail.offset();
    let base = run.tail.lines();
    let mut app = rig.cluster.superuser_client(DB)?;
    app.batch_execute("LISTEN esmed_results")
        .map_err(BenchError::pg("LISTEN esmed_results"))?;
    let cursor: i64 = app
        .query_one(
            "SELECT coalesce(max(result_seq), 0) FROM smpp_tx_queue",
            &[],
        )
        .map_err(BenchError::pg("read the feed's start"))?
        .get(0);
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || follow(app, cursor, &stop))
    };
    let rate = rig.options.latency_rate;
    let total = rate * rig.options.latency_seconds;
    insert_steadily(rig, rate, total)?;
    rig.wait_drained(
        &mut run,
        base + total,
        Instant::now() + Duration::from_secs(60),
    )?;
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let seen = follower
        .join()
        .map_err(|_| BenchError::Process("the feed follower panicked".into()))??;
    let arrivals = read_arrivals(&run.journal, offset)?;
    let first = first_arrival_by_destination(&arrivals);
    let mut latencies_us: Vec<i64> = seen
        .iter()
        .filter_map(|(destination, at)| first.get(destination.as_str()).map(|sent| at - sent))
        .collect();
    latencies_us.sort_unstable();
    outcome.set("feed_rows", total as f64);
    outcome.set("feed_rows_seen", latencies_us.len() as f64);
    for (name, q) in [("visible_p50_ms", 0.50), ("visible_p99_ms", 0.99)] {
        outcome.set(name, percentile(&latencies_us, q) as f64 / 1000.0);
    }
    Ok(())
}

/// The application: at each notification (or every 100 ms) reads on from its cursor; returns
/// (destination, µs since the epoch when it had the row) for each row read.
fn follow(
    mut app: Client,
    mut cursor: i64,
    stop: &AtomicBool,
) -> Result<Vec<(String, i64)>, BenchError> {
    let mut seen = Vec::new();
    let mut by_destination: HashMap<String, ()> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let rows = app
            .query(
                "SELECT result_seq, smpp_destination_addr FROM esmed_results_since($1, 1000)",
                &[&cursor],
            )
            .map_err(BenchError::pg("read the results feed"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        for row in &rows {
            cursor = row.get(0);
            let destination: String = row.get(1);
            if by_destination.insert(destination.clone(), ()).is_none() {
                seen.push((destination, now));
            }
        }
        let mut notifications = app.notifications();
        let waited = notifications
            .timeout_iter(Duration::from_millis(100))
            .next()
            .map_err(BenchError::pg("wait for esmed_results"))?;
        if waited.is_some() {
            while notifications
                .iter()
                .next()
                .map_err(BenchError::pg("read notifications"))?
                .is_some()
            {}
        }
    }
    Ok(seen)
}
