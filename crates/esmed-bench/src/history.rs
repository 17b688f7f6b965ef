//! Scenario 12, history: whether the claim, the receipt match and the results UPDATE cost
//! the same per message with millions of finished rows behind the queue as with none, on
//! both schema layouts. Per layout, on a cluster of its own: a burst with receipts (as
//! scenario 2) drained with an empty history, then the history loaded (`--history-rows`
//! finished messages spread over the 90 days before today, each with its receipt) and the
//! same burst drained again. PostgreSQL's time and blocks of each statement come from
//! pg_stat_statements, reset just before each burst; the figures are history ÷ empty.

use std::time::{Duration, Instant};

use crate::report::Outcome;
use crate::rig::{CpuSplit, Layout, Receipts, Rig, DB};
use crate::scenarios::{FINAL_STATE, PREFIX};
use crate::{BenchError, Options};

/// The days before today the history is spread over.
const HISTORY_DAYS: i64 = 90;

/// Rows a loading transaction inserts: big enough that the per-statement cost vanishes, small
/// enough that a failed load loses little and autovacuum can follow.
const LOAD_CHUNK: u64 = 2_000_000;

/// The burst of each drain: at most this many rows (`--rows` when smaller).
const MAX_BURST: u64 = 50_000;

/// The highest ratio of history to empty that meets the target.
pub const TARGET_RATIO: f64 = 1.10;

/// Message ids of the history: above any the test SMSC gives a burst (it counts from 1), so
/// no receipt of the burst can match a history row.
const HISTORY_ID_BASE: i64 = 1_000_000_000;

/// The statements measured, each with what picks it out of pg_stat_statements (LIKE
/// patterns on its text, from src/db/claim.rs, receipts.rs and results.rs).
pub const STATEMENTS: [(&str, &str, &str); 4] = [
    // The claim (and its variant within one priority level).
    (
        "claim",
        "%FOR UPDATE SKIP LOCKED%",
        "%RETURNING t.id, t.smpp_destination_addr%",
    ),
    // Receipts finding their message, within receipt_match_window and beyond it.
    ("match", "%AS u(token, match_key, match_rank)%", "%"),
    // The results of rows done.
    ("results", "%smpp_message_id_key = u.message_id_key%", "%"),
    // Receipt states written to single-part messages' rows.
    ("states", "%AS u(id, state, inserted)%", "%"),
];

/// The figures compared, history ÷ empty: (metric, what the table calls it).
pub const COMPARED: [(&str, &str); 9] = [
    ("claim_us", "claim µs/msg"),
    ("claim_blocks", "claim blocks/msg"),
    ("match_us", "receipt match µs/msg"),
    ("match_blocks", "receipt match blocks/msg"),
    ("results_us", "results UPDATE µs/msg"),
    ("results_blocks", "results UPDATE blocks/msg"),
    ("states_us", "receipt state UPDATE µs/msg"),
    ("states_blocks", "receipt state UPDATE blocks/msg"),
    ("drain_us", "drain time/msg (to final)"),
];

/// 12: see the module's comment.
pub fn history(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("history", "12 history");
    let rows = rig.options.history_rows;
    let burst = rig.options.rows.min(MAX_BURST);
    outcome.set("history_rows", rows as f64);
    outcome.set("rows", burst as f64);
    for layout in Layout::ALL {
        let name = layout.name();
        eprintln!("esmed-bench: history, {name} layout: a cluster of its own");
        let options = Options {
            pg_stats: true,
            pg_waits: false,
            ..rig.options.clone()
        };
        let mut own = Rig::with_layout(options, layout)?;
        let print = rig.options.pg_stats;
        let (empty_run, full_run) = (
            format!("history-{name}-empty"),
            format!("history-{name}-full"),
        );
        let empty = drain(&mut own, &empty_run, burst, None, print)?;
        let history = drain(&mut own, &full_run, burst, Some(rows), print)?;
        for (drain, when) in [(&empty, "empty"), (&history, "history")] {
            for (metric, value) in &drain.figures {
                outcome.set(&format!("{name}_{metric}_{when}"), *value);
            }
            outcome.note(format!(
                "{name}, {when}: load average {:.2} before the drain, {:.2} after; {} \
                 autovacuum/autoanalyze runs during it",
                drain.load_before, drain.load_after, drain.autovacuums
            ));
        }
        for (metric, _) in COMPARED {
            if let Some(ratio) = ratio(&empty, &history, metric) {
                outcome.set(&format!("{name}_{metric}_ratio"), ratio);
            }
        }
        if let Some(load) = &history.load {
            outcome.set(&format!("{name}_load_s"), load.seconds);
            outcome.set(
                &format!("{name}_load_rows_per_s"),
                rows as f64 / load.seconds.max(1e-9),
            );
            outcome.set(&format!("{name}_vacuum_s"), load.vacuum_seconds);
            outcome.set(&format!("{name}_queue_gb"), load.queue_gb);
            outcome.note(format!(
                "{name}: {rows} finished rows and their receipts loaded in {:.0} s \
                 ({:.0} rows/s, load average {:.2} at its end), VACUUM ANALYZE and \
                 CHECKPOINT {:.0} s; smpp_tx_queue {:.1} GB",
                load.seconds,
                rows as f64 / load.seconds.max(1e-9),
                load.load_average,
                load.vacuum_seconds,
                load.queue_gb
            ));
        }
    }
    outcome.note(
        "blocks (shared_blks_hit + shared_blks_read) do not depend on the machine's load; \
         µs and the drain time do",
    );
    Ok(outcome)
}

/// history ÷ empty of `metric`, when both were measured and the empty one is above zero.
fn ratio(empty: &Drain, history: &Drain, metric: &str) -> Option<f64> {
    let (e, h) = (empty.get(metric)?, history.get(metric)?);
    (e > 0.0).then(|| h / e)
}

/// What one drain measured.
struct Drain {
    /// Per message: `<statement>_us`, `<statement>_blocks`, `<statement>_calls`; `drain_us`,
    /// `final_msgs_per_s`, `postgres_cpu_us`, `esmed_cpu_us`.
    figures: Vec<(String, f64)>,
    load_before: f64,
    load_after: f64,
    autovacuums: u64,
    load: Option<Load>,
}

impl Drain {
    fn get(&self, metric: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(name, _)| name == metric)
            .map(|(_, v)| *v)
    }
}

/// How the history was loaded.
struct Load {
    seconds: f64,
    vacuum_seconds: f64,
    load_average: f64,
    queue_gb: f64,
}

/// A burst of `n` rows with a receipt each, with `history` finished rows loaded first (None:
/// the queue is empty); measured until every row has its final state.
/// With `print_statements` (--pg-stats), prints PostgreSQL's costliest statements of the
/// drain.
fn drain(
    rig: &mut Rig,
    name: &str,
    n: u64,
    history: Option<u64>,
    print_statements: bool,
) -> Result<Drain, BenchError> {
    let mut run = rig.prepare(name, Receipts::On { delay_ms: 0 })?;
    let load = match history {
        Some(rows) => Some(load_history(rig, rows)?),
        None => None,
    };
    // Every count below looks only at rows newer than the history, by the primary key and
    // (on the partitioned layout) today's partitions: a count over the whole queue would
    // read gigabytes every time it looks.
    let row = rig
        .db
        .query_one(
            "SELECT COALESCE(max(id), 0)::int8, (now() - interval '1 minute')::text \
             FROM smpp_tx_queue",
            &[],
        )
        .map_err(BenchError::pg("read the newest id"))?;
    let (newest, since): (i64, String) = (row.get(0), row.get(1));
    let new_rows =
        format!("smpp_tx_queue WHERE id > {newest} AND insert_timestamp >= '{since}'::timestamptz");
    rig.launch_warm(&mut run, name)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    rig.wait_until(&mut run, deadline, "the warm-up receipt", |rig, _| {
        Ok(rig.count(&format!("{new_rows} AND {FINAL_STATE}"))? >= 1)
    })?;
    let autovacuums_before = autovacuums(rig)?;
    let load_before = load_average();
    rig.db
        .batch_execute("SELECT pg_stat_statements_reset()")
        .map_err(BenchError::pg("reset pg_stat_statements"))?;
    let before = rig.snapshot(Some(&run));
    rig.insert_rows(n, PREFIX)?;
    let committed = Instant::now();
    let burst = format!("{new_rows} AND smpp_destination_addr LIKE '{PREFIX}%'");
    let deadline = rig.deadline();
    let wanted = n as i64;
    // Each look counts the burst's rows (50 ms of PostgreSQL's time at 50,000): four a
    // second keep that under a tenth of the drain's; the end is read from the rows' state
    // timestamps, not from when a look saw it.
    rig.wait_every(
        Duration::from_millis(250),
        &mut run,
        deadline,
        "every final state",
        |rig, _| Ok(rig.count(&format!("{burst} AND {FINAL_STATE}"))? >= wanted),
    )?;
    let end = rig.latest("message_state_timestamp", &burst)?;
    let after = rig.snapshot(Some(&run));
    let load_after = load_average();
    let seconds = end.duration_since(committed).as_secs_f64().max(1e-9);
    let mut figures = statement_figures(rig, n)?;
    if print_statements {
        eprintln!("esmed-bench: {name}:\n{}", rig.statement_costs()?);
    }
    figures.push(("drain_us".into(), seconds * 1e6 / n as f64));
    figures.push(("final_msgs_per_s".into(), n as f64 / seconds));
    let cpu = CpuSplit::between(&before, &after, rig.ticks_per_second);
    figures.push(("postgres_cpu_us".into(), cpu.postgres * 1e6 / n as f64));
    figures.push(("esmed_cpu_us".into(), cpu.esmed * 1e6 / n as f64));
    figures.push(("machine_busy_pct".into(), cpu.machine_busy_pct));
    let autovacuums = autovacuums(rig)?.saturating_sub(autovacuums_before);
    Ok(Drain {
        figures,
        load_before,
        load_after,
        autovacuums,
        load,
    })
}

/// Per message, from pg_stat_statements since its reset: each of [`STATEMENTS`]' calls,
/// execution µs and blocks (shared_blks_hit + shared_blks_read).
fn statement_figures(rig: &mut Rig, n: u64) -> Result<Vec<(String, f64)>, BenchError> {
    let mut figures = Vec::new();
    for (name, pattern, also) in STATEMENTS {
        let row = rig
            .db
            .query_one(
                "SELECT COALESCE(sum(calls), 0)::float8, COALESCE(sum(total_exec_time), 0)::float8,
                        COALESCE(sum(shared_blks_hit + shared_blks_read), 0)::float8
                 FROM pg_stat_statements WHERE query LIKE $1 AND query LIKE $2",
                &[&pattern, &also],
            )
            .map_err(BenchError::pg("read pg_stat_statements"))?;
        let (calls, ms, blocks): (f64, f64, f64) = (row.get(0), row.get(1), row.get(2));
        let n = n as f64;
        figures.push((format!("{name}_calls"), calls));
        figures.push((format!("{name}_us"), ms * 1000.0 / n));
        figures.push((format!("{name}_blocks"), blocks / n));
    }
    Ok(figures)
}

/// Autovacuum and autoanalyze runs so far on the queues and their partitions.
fn autovacuums(rig: &mut Rig) -> Result<u64, BenchError> {
    let n: i64 = rig
        .db
        .query_one(
            "SELECT COALESCE(sum(autovacuum_count + autoanalyze_count), 0)::int8 \
             FROM pg_stat_user_tables WHERE relname LIKE 'smpp\\_%'",
            &[],
        )
        .map_err(BenchError::pg("count autovacuums"))?
        .get(0);
    Ok(n.max(0) as u64)
}

/// The machine's one-minute load average (0 when /proc/loadavg cannot be read).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The history's day partitions of both queues, made before the rows come (on the
/// partitioned layout; the plain one has none).
const MAKE_DAYS: &str = "
    SELECT esmed_make_day_partition(q, d::date)
    FROM unnest(ARRAY['smpp_tx_queue', 'smpp_rx_queue']) q,
         generate_series(current_date - $1::int4, current_date - 1, interval '1 day') d";

/// Finished messages `$1`..`$2` (their id, in insert order): spread evenly from midnight
/// `HISTORY_DAYS` days ago, `$3` seconds apart, until a minute before today (so that every
/// receipt falls on a day before today too). One in 50 failed (refused, no message id); the
/// others done with a message id and a final state: mostly DELIVERED, one in 20 each
/// UNDELIVERABLE and EXPIRED. result_seq is given, as esmed gives it when it writes the
/// outcome, so that the insert trigger of the results feed has nothing to do.
const INSERT_TX: &str = "
    INSERT INTO smpp_tx_queue (id, insert_timestamp, smpp_destination_addr, smpp_short_message,
        smpp_registered_delivery, smpp_message_id, smpp_message_id_key, smpp_message_state,
        message_state_timestamp, submission_timestamp, submission_attempts, submission_done,
        submission_failed, submission_info, result_seq)
    SELECT i, ts, '4466' || lpad(i::text, 9, '0'), 'esmed benchmark history message ' || i,
           'SMSC_DELIVERY_RECEIPT_REQUESTED',
           CASE WHEN NOT failed THEN ($4::int8 + i)::text END,
           CASE WHEN NOT failed THEN ($4::int8 + i)::text END,
           CASE WHEN failed THEN NULL WHEN i % 20 = 7 THEN 'UNDELIVERABLE'
                WHEN i % 20 = 13 THEN 'EXPIRED' ELSE 'DELIVERED' END,
           CASE WHEN NOT failed THEN ts + interval '10 seconds' END,
           ts + interval '1 second', 1, NOT failed, failed,
           CASE WHEN failed THEN 'refused by the SMSC (bench history)' END,
           nextval('esmed_result_seq')
    FROM (SELECT i, date_trunc('day', now()) - $5::int4 * interval '1 day'
                    + (i - 1) * $3::float8 * interval '1 second' AS ts,
                 i % 50 = 0 AS failed
          FROM generate_series($1::int8, $2::int8) i) h";

/// The receipt of each message `$1`..`$2` that has a state, as esmed stores a matched one.
const INSERT_RX: &str = "
    INSERT INTO smpp_rx_queue (insert_timestamp, smpp_source_addr, smpp_destination_addr,
        smpp_short_message, esm_class, data_coding, is_receipt, receipted_message_id,
        message_state, error_code, tx_id, result_seq)
    SELECT message_state_timestamp, smpp_destination_addr, 'ESMED',
           'id:' || smpp_message_id || ' sub:001 dlvrd:001 stat:' || smpp_message_state
               || ' err:000',
           4, 0, true, smpp_message_id, smpp_message_state, '000', id,
           nextval('esmed_received_seq')
    FROM smpp_tx_queue WHERE id BETWEEN $1 AND $2 AND smpp_message_state IS NOT NULL";

/// Loads `rows` finished messages and their receipts (see [`INSERT_TX`]) in transactions of
/// [`LOAD_CHUNK`] rows on a connection of its own without waiting for each commit's flush,
/// then vacuums, analyses and checkpoints. The history's ids are 1..`rows` (the rig's reset
/// restarted the sequence); the sequence goes on after them.
fn load_history(rig: &mut Rig, rows: u64) -> Result<Load, BenchError> {
    let started = Instant::now();
    let mut db = rig.cluster.superuser_client(DB)?;
    db.batch_execute("SET synchronous_commit = off; SET TimeZone = 'UTC'")
        .map_err(BenchError::pg("set up the loading session"))?;
    let partitioned: bool = db
        .query_one(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = 'smpp_tx_queue'::regclass",
            &[],
        )
        .map_err(BenchError::pg("read the layout"))?
        .get(0);
    let days = HISTORY_DAYS as i32;
    if partitioned {
        db.execute(MAKE_DAYS, &[&days])
            .map_err(BenchError::pg("make the history's day partitions"))?;
    }
    let step = (HISTORY_DAYS * 86_400 - 60) as f64 / rows.max(1) as f64;
    let mut from = 1u64;
    while from <= rows {
        let to = (from + LOAD_CHUNK - 1).min(rows);
        let (lo, hi) = (from as i64, to as i64);
        let mut tx = db
            .transaction()
            .map_err(BenchError::pg("begin loading history"))?;
        tx.execute(INSERT_TX, &[&lo, &hi, &step, &HISTORY_ID_BASE, &days])
            .map_err(BenchError::pg("insert history messages"))?;
        tx.execute(INSERT_RX, &[&lo, &hi])
            .map_err(BenchError::pg("insert history receipts"))?;
        tx.commit().map_err(BenchError::pg("commit history"))?;
        eprintln!(
            "esmed-bench: history: {to} of {rows} rows loaded ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        from = to + 1;
    }
    db.execute(
        "SELECT setval(pg_get_serial_sequence('smpp_tx_queue', 'id'), $1::int8)",
        &[&(rows.max(1) as i64)],
    )
    .map_err(BenchError::pg("move the id sequence past the history"))?;
    let seconds = started.elapsed().as_secs_f64();
    let load_average = load_average();
    let vacuum = Instant::now();
    // Separate statements: VACUUM cannot run in the implicit transaction of a batch.
    for sql in [
        "VACUUM ANALYZE smpp_tx_queue",
        "VACUUM ANALYZE smpp_rx_queue",
        "CHECKPOINT",
    ] {
        db.batch_execute(sql)
            .map_err(BenchError::pg("vacuum the history"))?;
    }
    let vacuum_seconds = vacuum.elapsed().as_secs_f64();
    // pg_total_relation_size is 0 for a partitioned table itself: sum its partitions.
    let bytes: i64 = db
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::int8 FROM pg_class c \
             WHERE c.oid = 'smpp_tx_queue'::regclass OR c.oid IN \
             (SELECT relid FROM pg_partition_tree('smpp_tx_queue'))",
            &[],
        )
        .map_err(BenchError::pg("measure the queue"))?
        .get(0);
    Ok(Load {
        seconds,
        vacuum_seconds,
        load_average,
        queue_gb: bytes as f64 / (1u64 << 30) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(figures: &[(&str, f64)]) -> Drain {
        Drain {
            figures: figures.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            load_before: 0.0,
            load_after: 0.0,
            autovacuums: 0,
            load: None,
        }
    }

    #[test]
    fn ratios_are_history_over_empty_and_need_both() {
        let empty = drain(&[("claim_blocks", 4.0), ("match_us", 0.0)]);
        let history = drain(&[("claim_blocks", 5.0), ("match_us", 3.0), ("drain_us", 9.0)]);
        assert_eq!(ratio(&empty, &history, "claim_blocks"), Some(1.25));
        // Nothing to divide by, or nothing measured on one side: no figure.
        assert_eq!(ratio(&empty, &history, "match_us"), None);
        assert_eq!(ratio(&empty, &history, "drain_us"), None);
    }
}
