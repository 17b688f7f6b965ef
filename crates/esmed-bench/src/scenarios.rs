//! The scenarios, each against a fresh SMSC process and esmed process: burst,
//! burst with receipts, steady-rate latency, the drain of a large backlog beside history, and
//! one small window against an SMSC that answers after a delay.

use std::time::{Duration, Instant};

use crate::ceilings::raw_client_rate;
use crate::journal::{first_arrival_by_destination, read_arrivals};
use crate::report::Outcome;
use crate::rig::{CpuSplit, Progress, Receipts, Rig, Run};
use crate::BenchError;

/// Destination prefix of the measured rows (the warm-up row uses 44000...).
pub(crate) const PREFIX: &str = "4477";

/// 1: N rows in one INSERT ... SELECT; time from its commit until every row is done.
pub fn burst(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("burst", "1 burst");
    let mut run = rig.prepare("burst", Receipts::Off)?;
    rig.launch_warm(&mut run, "burst")?;
    timed_burst(rig, &mut run, &mut outcome)?;
    Ok(outcome)
}

/// Inserts the burst and waits for it; sets rows, insert_s, seconds, msgs_per_s, CPU, RSS.
pub(crate) fn timed_burst(
    rig: &mut Rig,
    run: &mut Run,
    outcome: &mut Outcome,
) -> Result<Instant, BenchError> {
    let n = rig.options.rows;
    let base = run.tail.lines();
    let before = rig.snapshot(Some(run));
    let insert = rig.insert_rows(n, PREFIX)?;
    let committed = Instant::now();
    let deadline = rig.deadline();
    let done = rig.wait_drained(run, base + n, deadline)?;
    let after = rig.snapshot(Some(run));
    let seconds = done.duration_since(committed).as_secs_f64();
    outcome.set("rows", n as f64);
    outcome.set("insert_s", insert.as_secs_f64());
    outcome.set("seconds", seconds);
    outcome.set("msgs_per_s", n as f64 / seconds);
    outcome.set_cpu(&CpuSplit::between(&before, &after, rig.ticks_per_second), n);
    set_rss(outcome, run);
    Ok(committed)
}

fn set_rss(outcome: &mut Outcome, run: &Run) {
    if let Some(esmed) = run.esmed() {
        outcome.set("esmed_peak_rss_mb", esmed.peak_rss_kb() as f64 / 1024.0);
    }
}

/// The windows scenario's SMSC answer delays in ms, with the share of the bind's limit
/// (window ÷ delay) each should reach.
pub const WINDOW_DELAYS: [(u64, f64); 3] = [(20, 0.97), (5, 0.95), (1, 0.90)];

/// The window of the windows scenario: the small windows real SMSCs often allow.
pub const SMALL_WINDOW: u32 = 10;

/// 6: one bind at window 10 to an SMSC that answers each submit_sm after a fixed delay, at
/// each of [`WINDOW_DELAYS`]: the rate against what the bind allows, window ÷ delay, which
/// only a window kept full (never waiting for a commit) reaches. Each delay drains about
/// `windows_seconds` worth of rows at that limit.
pub fn windows(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("windows", "6 window 10, SMSC answering after a delay");
    for (delay_ms, _) in WINDOW_DELAYS {
        let limit = f64::from(SMALL_WINDOW) * 1000.0 / delay_ms as f64;
        let rows = (limit * rig.options.windows_seconds as f64) as u64;
        let name = format!("windows-{delay_ms}ms");
        let flags = ["--delay-ms".to_string(), delay_ms.to_string()];
        let mut run = rig.prepare_with(&name, Receipts::Off, &flags, SMALL_WINDOW)?;
        rig.launch_warm(&mut run, &name)?;
        let base = run.tail.lines();
        let before = rig.snapshot(Some(&run));
        rig.insert_rows(rows, PREFIX)?;
        let committed = Instant::now();
        let deadline = rig.deadline();
        let done = rig.wait_drained(&mut run, base + rows, deadline)?;
        let after = rig.snapshot(Some(&run));
        let rate = rows as f64 / done.duration_since(committed).as_secs_f64();
        outcome.set(&format!("msgs_per_s_{delay_ms}ms"), rate);
        outcome.set(&format!("of_limit_{delay_ms}ms"), rate / limit);
        let cpu = CpuSplit::between(&before, &after, rig.ticks_per_second);
        if cpu.esmed > 0.0 {
            let us = cpu.esmed * 1e6 / rows as f64;
            outcome.set(&format!("esmed_cpu_us_per_msg_{delay_ms}ms"), us);
        }
        // esmed and its SMSC go before the raw client's SMSC comes.
        drop(run);
        let raw_name = format!("{name}-raw");
        let raw = raw_client_rate(rig, &raw_name, &flags, rows as usize, SMALL_WINDOW as usize)?;
        outcome.set(&format!("raw_of_limit_{delay_ms}ms"), raw / limit);
        outcome.set(&format!("of_raw_{delay_ms}ms"), rate / raw);
    }
    windows_with_receipts(rig, &mut outcome)?;
    Ok(outcome)
}

/// The delay of the windows scenario's run with receipts.
pub const RECEIPTS_DELAY_MS: u64 = 5;

/// Scenario 6 at [`RECEIPTS_DELAY_MS`] over a transceiver with a receipt for every message,
/// the SMSC keeping at most [`SMALL_WINDOW`] deliver_sm unanswered (each answered only once
/// its row is committed): the time until every row has its final state, as a share of
/// window ÷ delay. The receipts keep pace when it is as near 1 as the submits alone.
fn windows_with_receipts(rig: &mut Rig, outcome: &mut Outcome) -> Result<(), BenchError> {
    let delay_ms = RECEIPTS_DELAY_MS;
    let limit = f64::from(SMALL_WINDOW) * 1000.0 / delay_ms as f64;
    let rows = (limit * rig.options.windows_seconds as f64) as u64;
    let name = format!("windows-{delay_ms}ms-receipts");
    let flags = [
        "--delay-ms".to_string(),
        delay_ms.to_string(),
        "--deliver-window".to_string(),
        SMALL_WINDOW.to_string(),
    ];
    // The receipt comes one delay after the response, as an SMSC's does (it reports the
    // delivery of a message it has accepted); at once, it would come before the response
    // and every receipt would take the path of one whose message is not known yet.
    let receipts = Receipts::On {
        delay_ms: 2 * delay_ms,
    };
    let mut run = rig.prepare_with(&name, receipts, &flags, SMALL_WINDOW)?;
    rig.launch_warm(&mut run, &name)?;
    rig.insert_rows(rows, PREFIX)?;
    let committed = Instant::now();
    let tx = format!("smpp_tx_queue WHERE smpp_destination_addr LIKE '{PREFIX}%'");
    let n = rows as i64;
    let deadline = rig.deadline();
    rig.wait_every(
        Duration::from_millis(100),
        &mut run,
        deadline,
        "every final state",
        |rig, _| Ok(rig.count(&format!("{tx} AND {FINAL_STATE}"))? >= n),
    )?;
    let end = rig.latest("message_state_timestamp", &tx)?;
    let rate = rows as f64 / end.duration_since(committed).as_secs_f64();
    outcome.set(&format!("final_msgs_per_s_{delay_ms}ms_receipts"), rate);
    outcome.set(&format!("of_limit_{delay_ms}ms_receipts"), rate / limit);
    Ok(())
}

/// SMPP final message states (SMPP 3.4 §5.2.28); ENROUTE and SCHEDULED are not final.
pub(crate) const FINAL_STATE: &str = "smpp_message_state IS NOT NULL \
     AND upper(smpp_message_state) NOT IN ('ENROUTE', 'SCHEDULED')";

/// 2: the burst over a transceiver with registered delivery and SMSC receipts; time until
/// every row has a final smpp_message_state. When esmed does not set that column yet, the
/// time until every receipt is stored in smpp_rx_queue is measured instead, and said so.
pub fn burst_with_receipts(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("receipts", "2 burst + receipts");
    let mut run = rig.prepare("receipts", Receipts::On { delay_ms: 0 })?;
    rig.launch_warm(&mut run, "receipts")?;
    // The warm-up row's receipt must be in before counting.
    let deadline = Instant::now() + Duration::from_secs(30);
    rig.wait_until(&mut run, deadline, "the warm-up receipt", |rig, _| {
        Ok(rig.count("smpp_rx_queue WHERE is_receipt")? >= 1)
    })?;
    let before = rig.snapshot(Some(&run));
    let committed = timed_burst(rig, &mut run, &mut outcome)?;
    let n = rig.options.rows as i64;
    let tx = format!("smpp_tx_queue WHERE smpp_destination_addr LIKE '{PREFIX}%'");
    let deadline = rig.deadline();
    let mut states = 0;
    let mut receipts = 0;
    let mut receipts_complete_at: Option<Instant> = None;
    // Both counts scan the table: looking every 100 ms keeps the bench's own load on
    // PostgreSQL small; the end is then read from the rows' state timestamps.
    rig.wait_every(
        Duration::from_millis(100),
        &mut run,
        deadline,
        "every final state or receipt",
        |rig, _| {
            states = rig.count(&format!("{tx} AND {FINAL_STATE}"))?;
            if states >= n {
                return Ok(true);
            }
            receipts = rig.count("smpp_rx_queue WHERE is_receipt")? - 1;
            if receipts >= n && receipts_complete_at.is_none() {
                receipts_complete_at = Some(Instant::now());
            }
            // Every receipt stored but no state written for 2 s: esmed does not update the
            // column (yet); stop on the receipts.
            Ok(states == 0
                && receipts_complete_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)))
        },
    )?;
    let end = if states >= n {
        outcome.note("measured until every row had a final smpp_message_state");
        let end = rig.latest("message_state_timestamp", &tx)?;
        // The wait may have ended before counting them (every state was in at once).
        receipts = rig.count("smpp_rx_queue WHERE is_receipt")? - 1;
        end
    } else {
        outcome.note(
            "esmed does not write smpp_message_state yet: measured until every receipt was \
             stored in smpp_rx_queue",
        );
        receipts_complete_at.unwrap_or_else(Instant::now)
    };
    let after = rig.snapshot(Some(&run));
    let seconds = end.duration_since(committed).as_secs_f64();
    outcome.set("final_seconds", seconds);
    outcome.set("final_msgs_per_s", n as f64 / seconds);
    outcome.set("receipts_stored", receipts.max(0) as f64);
    outcome.set("final_states", states as f64);
    let cpu = CpuSplit::between(&before, &after, rig.ticks_per_second);
    outcome.set("esmed_cpu_s_with_receipts", cpu.esmed);
    outcome.set("postgres_cpu_s_with_receipts", cpu.postgres);
    Ok(outcome)
}

/// 3: single-row inserts at a steady rate; latency from the row's insert_timestamp to the
/// SMSC's arrival stamp of its submit_sm.
pub fn latency(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("latency", "3 latency");
    let mut run = rig.prepare("latency", Receipts::Off)?;
    rig.launch_warm(&mut run, "latency")?;
    let offset = run.tail.offset();
    let base = run.tail.lines();
    let rate = rig.options.latency_rate;
    let total = rate * rig.options.latency_seconds;
    let before = rig.snapshot(Some(&run));
    let late = insert_steadily(rig, rate, total)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    rig.wait_drained(&mut run, base + total, deadline)?;
    let after = rig.snapshot(Some(&run));
    let arrivals = read_arrivals(&run.journal, offset)?;
    let first = first_arrival_by_destination(&arrivals);
    let rows = rig
        .db
        .query(
            "SELECT smpp_destination_addr,
                    (extract(epoch FROM insert_timestamp) * 1000000)::int8
             FROM smpp_tx_queue WHERE smpp_destination_addr LIKE '4477%'",
            &[],
        )
        .map_err(BenchError::pg("read insert times"))?;
    let mut latencies_us: Vec<i64> = rows
        .iter()
        .filter_map(|row| {
            let destination: String = row.get(0);
            let inserted: i64 = row.get(1);
            first.get(destination.as_str()).map(|at| at - inserted)
        })
        .collect();
    latencies_us.sort_unstable();
    outcome.set("rows", total as f64);
    outcome.set("matched", latencies_us.len() as f64);
    for (name, q) in [("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99)] {
        outcome.set(name, percentile(&latencies_us, q) as f64 / 1000.0);
    }
    outcome.set(
        "max_ms",
        latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    outcome.set_cpu(
        &CpuSplit::between(&before, &after, rig.ticks_per_second),
        total,
    );
    if late > 0 {
        outcome.note(format!(
            "{late} inserts started more than 5 ms behind schedule"
        ));
    }
    Ok(outcome)
}

/// Inserts `total` single rows, one per 1/rate s, each its own (durable) transaction.
/// Returns how many started more than 5 ms late.
pub(crate) fn insert_steadily(rig: &mut Rig, rate: u64, total: u64) -> Result<u64, BenchError> {
    let statement = rig
        .db
        .prepare(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
             VALUES ($1, 'esmed latency probe')",
        )
        .map_err(BenchError::pg("prepare the latency insert"))?;
    let started = Instant::now();
    let mut late = 0;
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(5) {
            late += 1;
        }
        let destination = format!("{PREFIX}{i:08}");
        rig.db
            .execute(&statement, &[&destination])
            .map_err(BenchError::pg("insert a latency row"))?;
    }
    Ok(late)
}

/// The value at quantile `q` (nearest rank) of sorted `values`; 0 when empty.
pub(crate) fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// 4: `backlog` pending rows beside `history` done rows when esmed starts; overall rate and
/// the rates over the first and the last slice (100,000, or a tenth of a smaller backlog),
/// from the SMSC's arrival stamps.
pub fn backlog(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("backlog", "4 backlog");
    let mut run = rig.prepare("backlog", Receipts::Off)?;
    let (pending, history) = (rig.options.backlog, rig.options.history);
    let load = Instant::now();
    rig.load_backlog(pending, history, PREFIX)?;
    outcome.set("load_s", load.elapsed().as_secs_f64());
    let size_before = rig.queue_size_mb()?;
    let updates_before = rig.queue_updates()?;
    let checkpoints_before = rig.checkpoints()?;
    let autovacuums_before = rig.queue_autovacuums()?;
    let before = rig.snapshot(Some(&run));
    let started = Instant::now();
    rig.launch(&mut run, "backlog")?;
    let before = crate::rig::CpuSnapshot { esmed: 0, ..before };
    let deadline = rig.deadline();
    let every = Some(PROGRESS_SAMPLES);
    let (done, progress) = rig.wait_drained_sampled(&mut run, pending, deadline, every)?;
    let after = rig.snapshot(Some(&run));
    // Checkpoints during the drain: each makes the next write of every page log the whole
    // page, which shows as a slower stretch of the drain.
    outcome.set(
        "checkpoints",
        rig.checkpoints()?.saturating_sub(checkpoints_before) as f64,
    );
    // Likewise autovacuum of the queue: it reads the whole table and its indexes.
    outcome.set(
        "queue_autovacuums",
        rig.queue_autovacuums()?.saturating_sub(autovacuums_before) as f64,
    );
    // What the drain does to the table: new row versions that find no room on their page
    // go elsewhere and touch every index (not HOT), and the queue grows.
    outcome.set("queue_mb_before", size_before);
    outcome.set("queue_mb_after", rig.queue_size_mb()?);
    let (updates, hot) = rig.queue_updates()?;
    let updates = updates.saturating_sub(updates_before.0);
    if updates > 0 {
        let hot = hot.saturating_sub(updates_before.1);
        outcome.set("hot_update_pct", 100.0 * hot as f64 / updates as f64);
    }
    let seconds = done.duration_since(started).as_secs_f64();
    outcome.set("rows", pending as f64);
    outcome.set("history_rows", history as f64);
    outcome.set("seconds", seconds);
    outcome.set("msgs_per_s", pending as f64 / seconds);
    let stamps: Vec<i64> = read_arrivals(&run.journal, 0)?
        .iter()
        .map(|a| a.at_us)
        .collect();
    let slice = (pending / 10).clamp(1, 100_000) as usize;
    if let (Some(first), Some(last)) = (slice_rate(&stamps, 0, slice), tail_rate(&stamps, slice)) {
        outcome.set("slice_rows", slice as f64);
        outcome.set("first_slice_msgs_per_s", first);
        outcome.set("last_slice_msgs_per_s", last);
        outcome.set("last_vs_first_pct", 100.0 * last / first);
        // Every slice in between too: a checkpoint slows whichever slice it falls in.
        let rates: Vec<f64> = (0..stamps.len() / slice)
            .filter_map(|i| slice_rate(&stamps, i * slice, slice))
            .collect();
        let (min, max) = rates
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        if !rates.is_empty() {
            outcome.set("slowest_slice_msgs_per_s", min);
            outcome.set("fastest_slice_msgs_per_s", max);
            // The shape tells a checkpoint (one slow slice) from a drift (a slope).
            let shape: Vec<String> = rates.iter().map(|r| format!("{:.0}", r / 1000.0)).collect();
            outcome.note(format!("slices, k msg/s: {}", shape.join(" ")));
        }
        let slices: Vec<Stretch> = (0..rates.len() as u64)
            .filter_map(|i| {
                let at = i * slice as u64;
                stretch(&progress, at, at + slice as u64, rig.ticks_per_second)
            })
            .collect();
        note_slices(&mut outcome, &slices);
        if let Some(trend) = trend_last_vs_first_pct(&rates) {
            outcome.set("trend_last_vs_first_pct", trend);
        }
        let tail = (pending as usize).saturating_sub(slice) as u64;
        let first = stretch(&progress, 0, slice as u64, rig.ticks_per_second);
        let last = stretch(&progress, tail, pending, rig.ticks_per_second);
        if let (Some(first), Some(last)) = (first, last) {
            note_cpu_per_slice(&mut outcome, &first, &last);
        }
    }
    outcome.set_cpu(
        &CpuSplit::between(&before, &after, rig.ticks_per_second),
        pending,
    );
    set_rss(&mut outcome, &run);
    Ok(outcome)
}

/// How often the backlog notes its progress with a CPU snapshot.
const PROGRESS_SAMPLES: Duration = Duration::from_millis(100);

/// What each party spent per message over the stretch of a drain from the `from`th submit_sm
/// to the `to`th (widened to the samples around it), and the machine's pace then: whether a
/// slower stretch cost more work (and which), or the same work took longer.
fn stretch(progress: &[Progress], from: u64, to: u64, tps: f64) -> Option<Stretch> {
    let start = progress.iter().rposition(|p| p.arrived <= from)?;
    let end = start + progress[start..].iter().position(|p| p.arrived >= to)?;
    let (a, b) = (&progress[start], &progress[end]);
    let messages = b.arrived.checked_sub(a.arrived).filter(|&m| m > 0)? as f64;
    let split = CpuSplit::between(&a.cpu, &b.cpu, tps);
    let us = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1000.0 / messages;
    let per_message = |x: u64, y: u64| y.saturating_sub(x) as f64 / messages;
    let mut paces: Vec<Duration> = progress[start..=end].iter().map(|p| p.pace).collect();
    paces.sort();
    Some(Stretch {
        postgres_us: us(a.cpu_ns.postgres, b.cpu_ns.postgres),
        esmed_us: us(a.cpu_ns.esmed, b.cpu_ns.esmed),
        smsc_us: us(a.cpu_ns.smsc, b.cpu_ns.smsc),
        machine_busy_pct: split.machine_busy_pct,
        pace_us: paces[paces.len() / 2].as_secs_f64() * 1e6,
        wal_bytes: per_message(a.pg_io.wal_bytes, b.pg_io.wal_bytes),
        blocks_read: per_message(a.pg_io.blocks_read, b.pg_io.blocks_read),
        blocks_hit: per_message(a.pg_io.blocks_hit, b.pg_io.blocks_hit),
        backend_writes: per_message(a.pg_io.backend_writes, b.pg_io.backend_writes),
        statements: a.pg_io.statements.zip(b.pg_io.statements).map(|(a, b)| {
            let us = |x: f64, y: f64| (y - x).max(0.0) * 1000.0 / messages;
            StatementsPerMessage {
                claim_us: us(a.claim_ms, b.claim_ms),
                claim_hits: per_message(a.claim_hits, b.claim_hits),
                results_us: us(a.results_ms, b.results_ms),
                results_hits: per_message(a.results_hits, b.results_hits),
            }
        }),
    })
}

/// Per message over a stretch: CPU µs of each party (exact, from the scheduler's statistics),
/// and PostgreSQL's WAL bytes, blocks found in shared_buffers, read from outside it and
/// written out of it by its backends; how busy the machine was, and the median of the pace
/// gauge (`pace::now`, µs).
struct Stretch {
    postgres_us: f64,
    esmed_us: f64,
    smsc_us: f64,
    machine_busy_pct: f64,
    pace_us: f64,
    wal_bytes: f64,
    blocks_read: f64,
    blocks_hit: f64,
    backend_writes: f64,
    /// With --pg-stats.
    statements: Option<StatementsPerMessage>,
}

impl Stretch {
    fn statement_work(&self) -> StatementsPerMessage {
        self.statements.unwrap_or_default()
    }
}

/// Per message: execution µs and blocks found in shared_buffers of the claims and of the
/// results UPDATEs. Exact (pg_stat_statements counts each statement as it ends): whether the
/// claim costs more as the drain goes on.
#[derive(Clone, Copy, Default)]
struct StatementsPerMessage {
    claim_us: f64,
    claim_hits: f64,
    results_us: f64,
    results_hits: f64,
}

/// The drain slice by slice: each figure of [`Stretch`] on a line of its own, so that a
/// slower stretch shows beside what changed with it.
fn note_slices(outcome: &mut Outcome, slices: &[Stretch]) {
    let line = |what: &str, figure: fn(&Stretch) -> String| {
        let figures: Vec<String> = slices.iter().map(figure).collect();
        format!("slices, {what}: {}", figures.join(" "))
    };
    outcome.note(line("pace gauge µs", |s| format!("{:.0}", s.pace_us)));
    outcome.note(line("PostgreSQL CPU µs/msg", |s| {
        format!("{:.1}", s.postgres_us)
    }));
    outcome.note(line("esmed CPU µs/msg", |s| format!("{:.2}", s.esmed_us)));
    outcome.note(line("SMSC CPU µs/msg", |s| format!("{:.2}", s.smsc_us)));
    outcome.note(line("WAL bytes/msg", |s| format!("{:.0}", s.wal_bytes)));
    outcome.note(line("blocks hit in shared_buffers/msg", |s| {
        format!("{:.1}", s.blocks_hit)
    }));
    outcome.note(line("blocks read/msg", |s| format!("{:.2}", s.blocks_read)));
    outcome.note(line("blocks written by backends/msg", |s| {
        format!("{:.2}", s.backend_writes)
    }));
    // Seen in a drain: 10.9 25.6 13.1 27.0 ... blocks hit a message, the same work (the
    // claims' and results' exact figures flat at 8.1 and 13.1).
    outcome.note(
        "slices, blocks: as PostgreSQL's backends publish them, about once a second, so a \
         slice of a second or two holds one publication or two and the figures alternate; \
         their mean is the work (with --pg-stats the claims' and results' figures are exact)",
    );
    if slices.iter().all(|s| s.statements.is_some()) {
        outcome.note(line("claim µs/msg", |s| {
            format!("{:.2}", s.statement_work().claim_us)
        }));
        outcome.note(line("claim blocks hit/msg", |s| {
            format!("{:.1}", s.statement_work().claim_hits)
        }));
        outcome.note(line("results UPDATE µs/msg", |s| {
            format!("{:.2}", s.statement_work().results_us)
        }));
        outcome.note(line("results UPDATE blocks hit/msg", |s| {
            format!("{:.1}", s.statement_work().results_hits)
        }));
    }
}

fn note_cpu_per_slice(outcome: &mut Outcome, first: &Stretch, last: &Stretch) {
    for (slice, cpu) in [("first", first), ("last", last)] {
        outcome.set(
            &format!("{slice}_slice_postgres_us_per_msg"),
            cpu.postgres_us,
        );
        outcome.set(&format!("{slice}_slice_esmed_us_per_msg"), cpu.esmed_us);
        outcome.set(&format!("{slice}_slice_smsc_us_per_msg"), cpu.smsc_us);
        outcome.set(
            &format!("{slice}_slice_machine_busy_pct"),
            cpu.machine_busy_pct,
        );
        outcome.set(&format!("{slice}_slice_pace_gauge_us"), cpu.pace_us);
        outcome.set(&format!("{slice}_slice_wal_bytes_per_msg"), cpu.wal_bytes);
    }
    outcome.note(format!(
        "CPU µs per message, first slice -> last: PostgreSQL {:.1} -> {:.1}, esmed {:.1} -> \
         {:.1}, SMSC {:.1} -> {:.1}; machine busy {:.0} -> {:.0} %",
        first.postgres_us,
        last.postgres_us,
        first.esmed_us,
        last.esmed_us,
        first.smsc_us,
        last.smsc_us,
        first.machine_busy_pct,
        last.machine_busy_pct
    ));
}

/// Submits per second over `stamps[from..from + len]` (arrival µs).
fn slice_rate(stamps: &[i64], from: usize, len: usize) -> Option<f64> {
    let slice = stamps.get(from..from + len)?;
    let span_us = (slice.last()? - slice.first()?).max(1);
    Some((len.saturating_sub(1)) as f64 * 1e6 / span_us as f64)
}

fn tail_rate(stamps: &[i64], len: usize) -> Option<f64> {
    slice_rate(stamps, stamps.len().checked_sub(len)?, len)
}

/// The last slice's rate against the first's on the least-squares line through every
/// slice's rate. Two single slices differ by their noise (on two shared cores the rate
/// over 10,000 messages swings ±20 %, over 100,000 ±8 %); the line shows whether the
/// drain slows as the history grows, which is what the last-against-first figure is for.
fn trend_last_vs_first_pct(rates: &[f64]) -> Option<f64> {
    if rates.len() < 3 {
        return None;
    }
    let n = rates.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = rates.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in rates.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    let first = mean_y - slope * mean_x;
    let last = mean_y + slope * mean_x;
    (first > 0.0).then(|| 100.0 * last / first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::{CpuSnapshot, PartyCpuNs, PgIo, StatementWork};

    #[test]
    fn a_stretch_costs_what_was_spent_between_the_samples_around_it() {
        let at = Instant::now();
        // PostgreSQL spends 10 ticks per 50 messages, then 20: twice the work per message,
        // and writes 100 bytes of WAL a message throughout; the machine slows at the end.
        let progress: Vec<Progress> = [(0, 0), (50, 10), (100, 20), (150, 40), (200, 60)]
            .into_iter()
            .map(|(arrived, postgres)| Progress {
                pace: Duration::from_micros(if arrived < 150 { 40 } else { 50 }),
                cpu_ns: PartyCpuNs {
                    esmed: arrived * 1_000_000,
                    smsc: 0,
                    postgres: postgres * 10_000_000,
                },
                pg_io: PgIo {
                    wal_bytes: 100 * arrived,
                    blocks_read: arrived / 50,
                    blocks_hit: 30 * arrived,
                    statements: Some(StatementWork {
                        claim_ms: 0.004 * arrived as f64,
                        claim_hits: 8 * arrived,
                        results_ms: 0.006 * arrived as f64,
                        results_hits: 13 * arrived,
                    }),
                    backend_writes: 0,
                },
                arrived,
                cpu: CpuSnapshot {
                    at,
                    esmed: arrived / 10,
                    smsc: 0,
                    postgres,
                    bench: 0,
                    machine_busy: postgres,
                    machine_total: 2 * postgres,
                },
            })
            .collect();
        let first = stretch(&progress, 0, 100, 100.0).unwrap();
        let last = stretch(&progress, 100, 200, 100.0).unwrap();
        assert_eq!((first.postgres_us, last.postgres_us), (2000.0, 4000.0));
        assert_eq!(first.esmed_us, 1000.0);
        assert_eq!(last.machine_busy_pct, 50.0);
        assert_eq!((first.wal_bytes, last.wal_bytes), (100.0, 100.0));
        assert_eq!((first.blocks_read, first.backend_writes), (0.02, 0.0));
        assert_eq!(first.blocks_hit, 30.0);
        let statements = last.statement_work();
        assert_eq!(
            (statements.claim_hits, statements.results_hits),
            (8.0, 13.0)
        );
        assert!(
            (statements.claim_us - 4.0).abs() < 1e-9,
            "{}",
            statements.claim_us
        );
        assert!(
            (statements.results_us - 6.0).abs() < 1e-9,
            "{}",
            statements.results_us
        );
        // The median of the gauge over the samples the stretch spans.
        assert_eq!((first.pace_us, last.pace_us), (40.0, 50.0));
        // A stretch between samples widens to the samples around it.
        let widened = stretch(&progress, 30, 60, 100.0).unwrap();
        assert_eq!(widened.postgres_us, 2000.0);
        // Nothing sampled beyond the end: no figure rather than a wrong one.
        assert!(stretch(&progress, 150, 250, 100.0).is_none());
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.01), 7);
    }

    #[test]
    fn slice_rates_from_stamps() {
        // 11 stamps 100 µs apart: 10 intervals in 1 ms = 10,000/s.
        let stamps: Vec<i64> = (0..11).map(|i| i * 100).collect();
        assert_eq!(slice_rate(&stamps, 0, 11), Some(10_000.0));
        assert_eq!(tail_rate(&stamps, 6), Some(10_000.0));
        assert_eq!(slice_rate(&stamps, 5, 11), None);
    }

    #[test]
    fn the_trend_sees_a_slope_through_noise_and_no_slope_in_noise() {
        let flat_but_noisy = [100.0, 90.0, 110.0, 100.0, 110.0, 90.0];
        assert_eq!(trend_last_vs_first_pct(&flat_but_noisy), Some(100.0));
        let sagging = [100.0, 95.0, 90.0, 85.0, 80.0];
        let trend = trend_last_vs_first_pct(&sagging).unwrap();
        assert!((trend - 80.0).abs() < 1e-9, "{trend}");
        assert_eq!(trend_last_vs_first_pct(&[100.0, 50.0]), None);
    }
}
