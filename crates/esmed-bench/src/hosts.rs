//! Scenario 11: the same burst drained by one esmed and by two esmed processes on one queue
//! (their own instance names, the same SMSC account, one bind each), all on the bench
//! machine: the rates, their ratio, each process's share, and the rows that reached the SMSC
//! twice (none may).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::failover::{sent_twice, wait_for};
use crate::procs::{self, Proc};
use crate::report::Outcome;
use crate::rig::{write_config, CpuSplit, Receipts, Rig, Run};
use crate::scenarios::PREFIX;
use crate::BenchError;

/// What one drain measured.
struct Drain {
    rate: f64,
    duplicates: u64,
    /// The smallest share of the submit_sm one bind carried, %.
    least_share_pct: f64,
    esmed_cpu_s: f64,
    postgres_cpu_s: f64,
    machine_busy_pct: f64,
}

/// 11: one esmed, then two, each on a fresh SMSC and emptied tables.
pub fn hosts(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("hosts", "11 one esmed and two on one queue");
    let one = drain(rig, 1)?;
    let two = drain(rig, 2)?;
    outcome.set("rows", rig.options.rows as f64);
    for (k, d) in [(1, &one), (2, &two)] {
        outcome.set(&format!("esmeds_{k}_msgs_per_s"), d.rate);
        outcome.set(&format!("esmeds_{k}_esmed_cpu_s"), d.esmed_cpu_s);
        outcome.set(&format!("esmeds_{k}_postgres_cpu_s"), d.postgres_cpu_s);
        outcome.set(&format!("esmeds_{k}_machine_busy_pct"), d.machine_busy_pct);
    }
    outcome.set("two_over_one", two.rate / one.rate);
    outcome.set("two_least_share_pct", two.least_share_pct);
    let duplicates = one.duplicates + two.duplicates;
    outcome.set("duplicates", duplicates as f64);
    if duplicates > 0 {
        outcome.error = Some(format!("{duplicates} rows reached the SMSC twice"));
    }
    Ok(outcome)
}

/// Drains the burst with `k` esmed processes, each bound before the burst goes in.
fn drain(rig: &mut Rig, k: usize) -> Result<Drain, BenchError> {
    let name = format!("hosts-{k}");
    let mut run = rig.prepare(&name, Receipts::Off)?;
    let mut esmeds: Vec<Proc> = Vec::with_capacity(k);
    for i in 1..=k {
        let config = write_config(
            &rig.dir.0,
            &format!("{name}-{i}"),
            &[rig.cluster.port()],
            &format!("bench-hosts-{i}"),
            &rig.options.daemon,
        )?;
        esmeds.push(procs::start_esmed(&config)?);
    }
    warm_up(rig, &mut run, &mut esmeds)?;
    let base = run.tail.poll()?;
    let offset = run.tail.offset();
    let n = rig.options.rows;
    let esmed_before: u64 = esmeds.iter().map(Proc::cpu_ticks).sum();
    let before = rig.snapshot(Some(&run));
    rig.insert_rows(n, PREFIX)?;
    let committed = Instant::now();
    let deadline = rig.deadline();
    // wait_drained checks the first esmed and the SMSC; the others are checked after.
    run.esmed = esmeds.pop();
    let done = rig.wait_drained(&mut run, base + n, deadline)?;
    for esmed in &mut esmeds {
        esmed.check_running()?;
    }
    let after = rig.snapshot(Some(&run));
    let esmed_after: u64 = esmeds
        .iter()
        .chain(run.esmed.as_ref())
        .map(Proc::cpu_ticks)
        .sum();
    let cpu = CpuSplit::between(&before, &after, rig.ticks_per_second);
    let shares = submits_per_connection(&run.journal, offset)?;
    let total: u64 = shares.values().sum();
    let least = if shares.len() < k {
        0
    } else {
        shares.values().copied().min().unwrap_or(0)
    };
    Ok(Drain {
        rate: n as f64 / done.duration_since(committed).as_secs_f64(),
        duplicates: sent_twice(&run.journal, offset)?,
        least_share_pct: 100.0 * least as f64 / total.max(1) as f64,
        esmed_cpu_s: esmed_after.saturating_sub(esmed_before) as f64 / rig.ticks_per_second,
        postgres_cpu_s: cpu.postgres,
        machine_busy_pct: cpu.machine_busy_pct,
    })
}

/// Waits until every esmed reports its session bound (esmed_status), then sends single rows
/// until each bind has carried one, so that no process is still starting when the burst
/// goes in.
fn warm_up(rig: &mut Rig, run: &mut Run, esmeds: &mut [Proc]) -> Result<(), BenchError> {
    let k = esmeds.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut procs: Vec<&mut Proc> = esmeds.iter_mut().collect();
    procs.push(&mut run.smsc);
    wait_for("every esmed bound", deadline, &mut procs, || {
        Ok(rig.count("esmed_status WHERE session_state LIKE 'bound%'")? >= k as i64)
    })?;
    let mut next = Instant::now();
    let mut sent = 0u32;
    wait_for("a row through every bind", deadline, &mut procs, || {
        if Instant::now() >= next {
            sent += 1;
            rig.db
                .execute(
                    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
                     VALUES ('44000' || lpad($1::text, 7, '0'), 'warm-up')",
                    &[&sent.to_string()],
                )
                .map_err(BenchError::pg("insert a warm-up row"))?;
            next += Duration::from_millis(100);
        }
        Ok(submits_per_connection(&run.journal, 0)?.len() >= k)
    })?;
    wait_for("the warm-up rows done", deadline, &mut procs, || {
        Ok(rig.pending()? == 0)
    })?;
    Ok(())
}

/// How many submit_sm each SMSC connection received, from journal byte `offset`.
fn submits_per_connection(journal: &Path, offset: u64) -> Result<HashMap<u64, u64>, BenchError> {
    let mut counts = HashMap::new();
    let mut file = match File::open(journal) {
        Ok(file) => file,
        Err(_) => return Ok(counts), // nothing arrived yet
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| BenchError::io("seek in the SMSC journal", e))?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| BenchError::io("read the SMSC journal", e))?;
        if let Some(connection) = connection_of(&line) {
            *counts.entry(connection).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// The `"connection":N` of a journal line.
fn connection_of(line: &str) -> Option<u64> {
    let key = "\"connection\":";
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_line_names_its_connection() {
        let line = r#"{"at_us":1,"connection":12,"seq":7,"destination":"4477","text_hex":"41"}"#;
        assert_eq!(connection_of(line), Some(12));
        assert_eq!(connection_of("{}"), None);
    }
}
