//! 9: a purge during a drain. Beside the burst's pending rows the queue holds twice as many
//! finished rows 40 days old; the burst is drained without a purge and with `esmed purge
//! --older-than 30d`'s work (the same library call, its own connection, esmed.conf's default
//! batches and pauses) running from the burst's insert on, alternately (without, with, three
//! times each) in one run. The drain rates are compared; the purge's own time says whether it
//! lasted the whole drain.

use std::thread;
use std::time::{Duration, Instant};

use esmed::config::PurgeConfig;
use esmed::db::purge::{purge, PurgePlan};

use crate::report::Outcome;
use crate::rig::{Receipts, Rig, DB};
use crate::scenarios::timed_burst;
use crate::BenchError;

const ROUNDS: usize = 3;

pub fn purge_during_drain(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("purge", "9 drain with a purge running");
    let history = 2 * rig.options.rows;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut purge_seconds = Vec::new();
    for round in 0..ROUNDS {
        for purging in [false, true] {
            let name = format!("purge-{round}-{purging}");
            let mut run = rig.prepare(&name, Receipts::Off)?;
            load_history(rig, history)?;
            rig.launch_warm(&mut run, &name)?;
            let purger = if purging {
                let mut client = rig.cluster.superuser_client(DB)?;
                Some(thread::spawn(move || {
                    let started = Instant::now();
                    let defaults = PurgeConfig::default();
                    let plan = PurgePlan {
                        older_than: Duration::from_secs(30 * 86_400),
                        receipt_window: Duration::from_secs(3600),
                        batch_rows: defaults.batch_rows(),
                        batch_pause: defaults.batch_pause(),
                        dry_run: false,
                    };
                    purge(&mut client, &plan).map(|totals| (totals, started.elapsed()))
                }))
            } else {
                None
            };
            let mut burst = Outcome::new("purge", "");
            timed_burst(rig, &mut run, &mut burst)?;
            let rate = burst.get("msgs_per_s").unwrap_or(0.0);
            let drain = burst.get("seconds").unwrap_or(0.0);
            if let Some(purger) = purger {
                let (totals, took) = purger
                    .join()
                    .map_err(|_| BenchError::Process("the purge thread panicked".into()))??;
                if totals.messages != history as i64 {
                    return Err(BenchError::Process(format!(
                        "the purge removed {} messages of {history}",
                        totals.messages
                    )));
                }
                eprintln!(
                    "    drain with a purge: {rate:.0} msg/s over {drain:.1} s; the purge \
                     removed {} rows in {:.1} s",
                    totals.messages,
                    took.as_secs_f64()
                );
                purge_seconds.push(took.as_secs_f64());
                with.push(rate);
            } else {
                eprintln!("    drain without a purge: {rate:.0} msg/s over {drain:.1} s");
                without.push(rate);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (without, with) = (median(&mut without), median(&mut with));
    outcome.set("history_rows", history as f64);
    outcome.set("drain_msgs_per_s", without);
    outcome.set("drain_with_purge_msgs_per_s", with);
    outcome.set(
        "purge_slowdown_pct",
        100.0 * (without - with) / without.max(1.0),
    );
    outcome.set("purge_seconds", median(&mut purge_seconds));
    outcome.note(format!(
        "medians of {ROUNDS} drains each, alternated; the purge removed {history} finished \
         rows 40 days old while the burst drained"
    ));
    Ok(outcome)
}

/// `n` messages finished 40 days ago, DELIVERED; their result_seq is set so that the feed's
/// trigger for rows inserted finished does not run (it is not what is measured here).
fn load_history(rig: &mut Rig, n: u64) -> Result<(), BenchError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    rig.db
        .execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                 insert_timestamp, submission_timestamp, submission_done, smpp_message_id,
                 smpp_message_state, message_state_timestamp, result_seq)
             SELECT '4400' || g, 'history', now() - interval '40 days',
                 now() - interval '40 days', true, 'h' || g, 'DELIVERED',
                 now() - interval '40 days', -g
             FROM generate_series(1, $1::int8) g",
            &[&n],
        )
        .map_err(BenchError::pg("load the history"))?;
    for sql in ["VACUUM ANALYZE smpp_tx_queue", "CHECKPOINT"] {
        rig.db
            .batch_execute(sql)
            .map_err(BenchError::pg("vacuum the history"))?;
    }
    Ok(())
}
