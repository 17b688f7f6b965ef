//! Scenario 5, the ceilings esmed's throughput is compared with:
//! - PostgreSQL only: the daemon's own claim and result-write functions run from this
//!   process on two connections as esmed's poller and results writer run them (one claims,
//!   one writes; prepared statements and the connections' planner settings; claims go on
//!   from the last row claimed and from the head only when that runs out), with no SMPP at
//!   all; each claim as large as the largest esmed makes with the same window, each result
//!   batch up to esmed's result_batch. Once on a fresh queue of the burst's size (5a, best
//!   of three) and once on the backlog's queue, history and all (5c): PostgreSQL's work per
//!   row grows with the table, so the backlog is compared with a ceiling of its own shape.
//! - PostgreSQL only, result batches no larger than the window (5d, run when the window is
//!   smaller than result_batch): esmed never holds more than a window of answered results
//!   waiting for their commit (with `strict_resend_bound` or without), so no results UPDATE
//!   of esmed's is larger than the window, while 5a writes up to result_batch rows at once.
//!   5d is what PostgreSQL does with one results connection under that bound, committing
//!   window-sized batches back to back: how close esmed comes to what the database allows
//!   behind a window of this size. 5a stays the yardstick.
//! - SMSC only: a raw SMPP client pushing submit_sm to an `esmed-smsc` process with the same
//!   window as esmed, with no database.

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use esmed::db::sql::{Planning, Prepared, Statements};
use esmed::db::{self, poller, AcceptedPart, TxOutcome, TxResult, TxRow};
use esmed_smpp::pdu::{Bind, Password, ShortMessage, Sm, SystemId};
use esmed_smpp::{decode, encode, encode_to_vec, Address, Body, FieldError, FrameBuffer, Pdu};

use crate::procs;
use crate::report::Outcome;
use crate::rig::{CpuSplit, Rig};
use crate::BenchError;

/// esmed's defaults: claim_batch and result_batch.
const CLAIM_BATCH: usize = 500;
const RESULT_BATCH: usize = 1000;
const LEASE: Duration = Duration::from_secs(300);

/// How often the PostgreSQL-only loop runs; the fastest run is the ceiling. One run lasts
/// about a second, so a single one swung by a third with what else the machine was doing
/// (54k to 83k msg/s on the same code); the best of three is a steadier upper bound.
const CEILING_RUNS: usize = 3;

/// 5a: claim + write results for `rows` pending rows with no SMPP, best of [`CEILING_RUNS`].
pub fn postgres_only(rig: &mut Rig) -> Result<Outcome, BenchError> {
    best_drain(rig, "pg", "5a PostgreSQL-only ceiling", RESULT_BATCH)
}

/// Whether 5d differs from 5a: the window is smaller than a results batch may be.
pub fn window_bounds_result_batches(window: u32) -> bool {
    (window as usize) < RESULT_BATCH
}

/// 5d: as 5a, with no results UPDATE larger than the window (see the module's comment).
pub fn postgres_only_window_batches(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let batch = RESULT_BATCH.min(rig.options.window as usize);
    let title = "5d PostgreSQL-only ceiling, result batches <= window";
    best_drain(rig, "pg_window", title, batch)
}

/// The fastest of [`CEILING_RUNS`] drains of `rows` fresh rows, results `result_batch` at most
/// at a time.
fn best_drain(
    rig: &mut Rig,
    key: &'static str,
    title: &'static str,
    result_batch: usize,
) -> Result<Outcome, BenchError> {
    let mut best: Option<Outcome> = None;
    let mut rates = Vec::new();
    for _ in 0..CEILING_RUNS {
        let mut outcome = Outcome::new(key, title);
        rig.reset()?;
        let n = rig.options.rows;
        rig.insert_rows(n, "4477")?;
        drain_with_sql(rig, n, result_batch, &mut outcome)?;
        let rate = outcome.get("msgs_per_s").unwrap_or(0.0);
        rates.push(format!("{rate:.0}"));
        if best
            .as_ref()
            .is_none_or(|b| b.get("msgs_per_s").unwrap_or(0.0) < rate)
        {
            best = Some(outcome);
        }
    }
    let mut best = best.ok_or_else(|| BenchError::Process("no ceiling run".into()))?;
    best.note(format!(
        "best of {CEILING_RUNS} runs (msg/s: {})",
        rates.join(", ")
    ));
    Ok(best)
}

/// 5c: the same loop over the backlog scenario's queue: `backlog` pending rows beside
/// `history` done ones. Once: a million-row drain lasts seconds, not one.
pub fn postgres_only_backlog(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("pg_backlog", "5c PostgreSQL-only ceiling, backlog shape");
    rig.reset()?;
    let (pending, history) = (rig.options.backlog, rig.options.history);
    rig.load_backlog(pending, history, "4477")?;
    outcome.set("history_rows", history as f64);
    drain_with_sql(rig, pending, RESULT_BATCH, &mut outcome)?;
    Ok(outcome)
}

/// Claims and writes `n` pending rows as esmed's poller and results writer do, without
/// SMPP, `result_batch` results at most per UPDATE; sets the outcome's rate, CPU and first-
/// and last-tenth rates.
fn drain_with_sql(
    rig: &mut Rig,
    n: u64,
    result_batch: usize,
    outcome: &mut Outcome,
) -> Result<(), BenchError> {
    let mut claimer = rig.esmed_client()?;
    // Set up as the poller's and the results writer's connections are.
    db::prepare_claimer(&mut claimer)?;
    let mut writer = rig.esmed_client()?;
    writer
        .batch_execute(&Planning::Results.for_session())
        .map_err(BenchError::pg("set up the writing connection"))?;
    let before = rig.snapshot(None);
    let started = Instant::now();
    let deadline = rig.deadline();
    // As many rows per claim as esmed takes at most with this window (see db::poller).
    let claim_size = poller::ready_target(CLAIM_BATCH, rig.options.window as usize) as i64;
    let (batches_tx, batches_rx) = bounded::<Vec<TxRow>>(4);
    let claiming =
        std::thread::spawn(move || claim_all(&mut claimer, claim_size, deadline, &batches_tx));
    let mut statements = Statements::default();
    let mut written = 0u64;
    // (rows written, seconds) after each batch: does PostgreSQL alone slow down over a drain?
    let mut progress: Vec<(u64, f64)> = Vec::new();
    let mut pending: Vec<TxResult> = Vec::new();
    while let Ok(rows) = batches_rx.recv() {
        pending.extend(rows.iter().map(done_result));
        // Take what else is queued, as esmed's writer does, up to one result batch.
        while pending.len() < result_batch {
            match batches_rx.try_recv() {
                Ok(more) => pending.extend(more.iter().map(done_result)),
                Err(_) => break,
            }
        }
        // Single-part results are one UPDATE, committed on its own, as in esmed's writer;
        // none larger than esmed's writer would make (a claim may bring more rows).
        for batch in pending.chunks(result_batch) {
            let writing = &mut Prepared::new(&mut writer, &mut statements);
            written += db::write_results_in(writing, batch, "bench")?.written as u64;
            progress.push((written, started.elapsed().as_secs_f64()));
        }
        pending.clear();
    }
    let claimed = claiming
        .join()
        .map_err(|_| BenchError::Process("the claiming thread panicked".into()))??;
    let seconds = started.elapsed().as_secs_f64();
    let after = rig.snapshot(None);
    if written < n || claimed < n {
        return Err(BenchError::Timeout(format!(
            "the PostgreSQL ceiling loop ({written} of {n} written)"
        )));
    }
    outcome.set("rows", n as f64);
    outcome.set("seconds", seconds);
    outcome.set("msgs_per_s", n as f64 / seconds);
    if let Some((first, last)) = first_and_last_tenth(&progress, n) {
        outcome.set("first_tenth_msgs_per_s", first);
        outcome.set("last_tenth_msgs_per_s", last);
    }
    outcome.set_cpu(&CpuSplit::between(&before, &after, rig.ticks_per_second), 0);
    Ok(())
}

/// The poller's claiming, alone: on from the last row claimed, from the head when that runs
/// out, until the head has nothing either; each claim's rows go to `batches`. Returns how
/// many rows were claimed.
fn claim_all(
    claimer: &mut postgres::Client,
    claim_size: i64,
    deadline: Instant,
    batches: &Sender<Vec<TxRow>>,
) -> Result<u64, BenchError> {
    let mut statements = Statements::default();
    let client = &mut Prepared::new(claimer, &mut statements);
    let mut claimed = 0;
    let mut cursor: Option<(u8, i64)> = None;
    while Instant::now() < deadline {
        let rows = match cursor {
            Some(after) => db::claim_after(client, claim_size, LEASE, "bench", after)?,
            None => db::claim(client, claim_size, LEASE, "bench")?,
        };
        match rows.last() {
            Some(last) => cursor = Some((last.priority, last.id)),
            // The level ran out: look from the head once more, as the poller does.
            None if cursor.is_some() => {
                cursor = None;
                continue;
            }
            None => break,
        }
        claimed += rows.len() as u64;
        if batches.send(rows).is_err() {
            break;
        }
    }
    Ok(claimed)
}

/// Rows per second over the first and the last tenth of `n` rows, from (rows written so far,
/// seconds) marks taken after each batch.
fn first_and_last_tenth(progress: &[(u64, f64)], n: u64) -> Option<(f64, f64)> {
    let tenth = (n / 10).max(1);
    let &(first_rows, first_at) = progress.iter().find(|(rows, _)| *rows >= tenth)?;
    let &(end_rows, end_at) = progress.last()?;
    let &(last_from_rows, last_from_at) = progress
        .iter()
        .rev()
        .find(|(rows, _)| *rows <= end_rows - tenth)?;
    let rate = |rows: u64, seconds: f64| rows as f64 / seconds.max(1e-6);
    Some((
        rate(first_rows, first_at),
        rate(end_rows - last_from_rows, end_at - last_from_at),
    ))
}

/// What esmed writes for a row the SMSC accepted in one part.
fn done_result(row: &TxRow) -> TxResult {
    TxResult {
        id: row.id,
        insert_timestamp: row.insert_timestamp,
        outcome: TxOutcome::Done {
            parts: vec![AcceptedPart {
                part_no: 1,
                part_count: 1,
                message_id: format!("{:08x}", row.id),
            }],
        },
        attempts: 1,
        resends: 0,
    }
}

/// 5b: `rows` submit_sm from a raw client, `window` outstanding, to a journaling SMSC.
pub fn smsc_only(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("smsc", "5b SMSC-only ceiling");
    let journal = rig.dir.0.join("smsc-ceiling.journal");
    let (mut smsc, port) = procs::start_smsc(&journal, None, &[])?;
    let n = rig.options.rows;
    let window = rig.options.window as usize;
    let smsc_before = smsc.cpu_ticks();
    let started = Instant::now();
    let errors = push_submits(port, n as usize, window, rig.deadline())?;
    let seconds = started.elapsed().as_secs_f64();
    let smsc_cpu = smsc.cpu_ticks().saturating_sub(smsc_before) as f64 / rig.ticks_per_second;
    smsc.stop(Duration::from_secs(5));
    outcome.set("rows", n as f64);
    outcome.set("seconds", seconds);
    outcome.set("msgs_per_s", n as f64 / seconds);
    outcome.set("smsc_cpu_s", smsc_cpu);
    outcome.set("errors", errors as f64);
    Ok(outcome)
}

/// A raw client's rate (no database, no daemon: [`push_submits`]) sending `total` submit_sm
/// at `window` to a fresh test SMSC started with `smsc_flags` (`--delay-ms N`): what the
/// machine and the SMSC allow one bind, the reference esmed's windows scenario is held to.
pub(crate) fn raw_client_rate(
    rig: &Rig,
    name: &str,
    smsc_flags: &[String],
    total: usize,
    window: usize,
) -> Result<f64, BenchError> {
    let journal = rig.dir.0.join(format!("{name}.journal"));
    let (mut smsc, port) = procs::start_smsc(&journal, None, smsc_flags)?;
    let started = Instant::now();
    let pushed = push_submits(port, total, window, rig.deadline());
    let seconds = started.elapsed().as_secs_f64();
    smsc.stop(Duration::from_secs(5));
    pushed?;
    Ok(total as f64 / seconds)
}

/// Binds as a transmitter and sends `total` submit_sm keeping at most `window` unanswered;
/// returns how many responses were errors.
fn push_submits(
    port: u16,
    total: usize,
    window: usize,
    deadline: Instant,
) -> Result<usize, BenchError> {
    let io = |what: &'static str| move |e| BenchError::io(what, e);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(io("connect to the SMSC"))?;
    stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("set a read timeout"))?;
    let mut frames = FrameBuffer::new(70_000);
    bind(&mut stream, &mut frames)?;
    let mut template = Pdu::new(0, submit_body()?);
    let (mut sent, mut answered, mut errors) = (0usize, 0usize, 0usize);
    let mut outstanding = VecDeque::new();
    let mut out = Vec::new();
    while answered < total {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "the SMSC ceiling ({answered} of {total} answered)"
            )));
        }
        while sent < total && outstanding.len() < window {
            sent += 1;
            template.sequence_number = sent as u32;
            encode(&template, &mut out).map_err(|e| BenchError::Smpp(e.to_string()))?;
            outstanding.push_back(sent);
        }
        if !out.is_empty() {
            stream.write_all(&out).map_err(io("send submit_sm"))?;
            out.clear();
        }
        if frames
            .read_from(&mut stream)
            .map_err(io("read from the SMSC"))?
            == 0
        {
            return Err(BenchError::Smpp("the SMSC closed the connection".into()));
        }
        while let Some(frame) = frames
            .next_frame()
            .map_err(|e| BenchError::Smpp(e.to_string()))?
        {
            let pdu = decode(frame).map_err(|e| BenchError::Smpp(e.to_string()))?;
            if matches!(pdu.body, Body::SubmitSmResp(_)) {
                answered += 1;
                errors += usize::from(!pdu.command_status.is_ok());
                outstanding.pop_front();
            }
        }
    }
    Ok(errors)
}

/// A submit_sm like the ones esmed sends in the burst.
fn submit_body() -> Result<Body, BenchError> {
    let field = |what: &str, e: FieldError| BenchError::Smpp(format!("{what}: {e}"));
    let address = |ton, npi, addr: &str| Address::new(ton, npi, addr).map_err(|e| field(addr, e));
    Ok(Body::SubmitSm(Box::new(Sm {
        source: address(5, 0, "ESMED")?,
        destination: address(1, 1, "447700001234")?,
        short_message: ShortMessage::new(b"esmed benchmark message number 1234")
            .map_err(|e| field("short_message", e))?,
        ..Sm::default()
    })))
}

fn bind(stream: &mut TcpStream, frames: &mut FrameBuffer) -> Result<(), BenchError> {
    let field = |e: FieldError| BenchError::Smpp(format!("bind: {e}"));
    let bind = Body::BindTransmitter(Bind {
        system_id: SystemId::try_from("esmed").map_err(field)?,
        password: Password::try_from("secret").map_err(field)?,
        interface_version: 0x34,
        ..Bind::default()
    });
    let bytes = encode_to_vec(&Pdu::new(1, bind)).map_err(|e| BenchError::Smpp(e.to_string()))?;
    stream
        .write_all(&bytes)
        .map_err(|e| BenchError::io("send bind", e))?;
    loop {
        if let Some(frame) = frames
            .next_frame()
            .map_err(|e| BenchError::Smpp(e.to_string()))?
        {
            let resp = decode(frame).map_err(|e| BenchError::Smpp(e.to_string()))?;
            return match resp.command_status.is_ok() {
                true => Ok(()),
                false => Err(BenchError::Smpp(format!(
                    "bind refused: {}",
                    resp.command_status
                ))),
            };
        }
        if frames
            .read_from(stream)
            .map_err(|e| BenchError::io("read the bind response", e))?
            == 0
        {
            return Err(BenchError::Smpp("closed during bind".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_are_measured_from_the_batch_marks() {
        // 100 rows: 10 per 0.1 s for the first half, then 10 per 0.2 s.
        let mut progress = Vec::new();
        let (mut rows, mut at) = (0, 0.0);
        for batch in 0..10 {
            rows += 10;
            at += if batch < 5 { 0.1 } else { 0.2 };
            progress.push((rows, at));
        }
        let (first, last) = first_and_last_tenth(&progress, 100).unwrap();
        assert!((first - 100.0).abs() < 1e-6, "{first}");
        assert!((last - 50.0).abs() < 1e-6, "{last}");
        assert_eq!(first_and_last_tenth(&[], 100), None);
    }
}
