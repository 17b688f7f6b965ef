//! `--pg-waits`: what esmed's PostgreSQL backends were doing, sampled.
//!
//! pg_stat_statements says how long statements took; this says what that time was made of.
//! A thread with its own connection reads pg_stat_activity every [`INTERVAL`] and counts, per
//! statement, how often a backend of the esmed role was running it and what it was waiting
//! for (`IO:WALSync` = waiting for the commit's fsync, `LWLock:WALWrite` = for another
//! backend's, no wait event = on a CPU or waiting for one). A statement seen in 40 % of the
//! samples kept one backend busy 40 % of the time: near 100 %, that backend is the serial
//! limit. The sampling costs PostgreSQL some CPU: read the split from it, not the figures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;

use crate::BenchError;

const INTERVAL: Duration = Duration::from_millis(5);

/// What one sample line names: the statement (its start) and the wait.
type Key = (String, String);

pub struct WaitSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Samples, BenchError>>,
}

#[derive(Default)]
struct Samples {
    taken: u64,
    seen: BTreeMap<Key, u64>,
}

impl WaitSampler {
    /// Starts sampling on `client` (a superuser's: it sees every backend's query).
    pub fn start(mut client: Client) -> WaitSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Samples::default();
            while !stopped.load(Ordering::Relaxed) {
                samples.take(&mut client)?;
                std::thread::sleep(INTERVAL);
            }
            Ok(samples)
        });
        WaitSampler { stop, thread }
    }

    /// Stops sampling; returns the report, one line per statement, busiest first.
    pub fn finish(self) -> Result<String, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .join()
            .map_err(|_| BenchError::Process("the wait sampler panicked".into()))??;
        Ok(samples.report())
    }
}

/// One statement's samples: how many, and how many per wait.
#[derive(Default)]
struct StatementSeen<'a> {
    total: u64,
    waits: Vec<(&'a str, u64)>,
}

impl Samples {
    fn take(&mut self, client: &mut Client) -> Result<(), BenchError> {
        let rows = client
            .query(
                "SELECT regexp_replace(left(query, 70), '\\s+', ' ', 'g'),
                        COALESCE(wait_event_type || ':' || wait_event, 'CPU')
                 FROM pg_stat_activity
                 WHERE state = 'active' AND usename = 'esmed' AND pid <> pg_backend_pid()",
                &[],
            )
            .map_err(BenchError::pg("sample pg_stat_activity"))?;
        self.taken += 1;
        for row in rows {
            *self.seen.entry((row.get(0), row.get(1))).or_default() += 1;
        }
        Ok(())
    }

    fn report(&self) -> String {
        let mut per_statement: BTreeMap<&str, StatementSeen> = BTreeMap::new();
        for ((statement, wait), &count) in &self.seen {
            let seen = per_statement.entry(statement).or_default();
            seen.total += count;
            seen.waits.push((wait, count));
        }
        let mut lines: Vec<_> = per_statement.into_iter().collect();
        lines.sort_by_key(|(_, seen)| std::cmp::Reverse(seen.total));
        let taken = self.taken.max(1) as f64;
        let mut text = format!(
            "    PostgreSQL waits ({} samples, every {} ms): \
             busy% = share of samples a backend ran the statement",
            self.taken,
            INTERVAL.as_millis()
        );
        for (statement, StatementSeen { total, mut waits }) in lines.into_iter().take(8) {
            waits.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
            let split: Vec<String> = waits
                .iter()
                .take(4)
                .map(|(wait, count)| format!("{wait} {:.0}%", 100.0 * *count as f64 / total as f64))
                .collect();
            text.push_str(&format!(
                "\n    {:5.1}%  {:<52} {statement}",
                100.0 * total as f64 / taken,
                split.join(", ")
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_each_statement_its_share_and_its_waits() {
        let mut samples = Samples {
            taken: 10,
            ..Samples::default()
        };
        samples.seen.insert(("UPDATE t".into(), "CPU".into()), 6);
        samples
            .seen
            .insert(("UPDATE t".into(), "IO:WALSync".into()), 2);
        samples.seen.insert(("WITH c".into(), "CPU".into()), 3);
        let report = samples.report();
        let lines: Vec<&str> = report.lines().collect();
        assert!(lines[0].contains("10 samples"), "{report}");
        assert!(lines[1].contains(" 80.0%") && lines[1].contains("CPU 75%, IO:WALSync 25%"));
        assert!(lines[1].ends_with("UPDATE t"), "{report}");
        assert!(
            lines[2].contains(" 30.0%") && lines[2].ends_with("WITH c"),
            "{report}"
        );
    }
}
