//! Results: one [`Outcome`] per scenario (named figures plus notes), the printed table with
//! the targets and the ratios to the ceilings, and the hand-written JSON file.

use std::fmt::{self, Write};

use crate::rig::{CpuSplit, Rig};
use crate::Options;

/// One scenario's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub key: &'static str,
    pub title: &'static str,
    /// (name, value); names carry their unit (`_s`, `_per_s`, `_ms`, `_mb`, `_us`).
    pub metrics: Vec<(String, f64)>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(key: &'static str, title: &'static str) -> Outcome {
        Outcome {
            key,
            title,
            metrics: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    pub fn failed(key: &'static str, title: &'static str, error: String) -> Outcome {
        Outcome {
            error: Some(error),
            ..Outcome::new(key, title)
        }
    }

    pub fn set(&mut self, name: &str, value: f64) {
        self.metrics.push((name.to_string(), value));
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Adds the CPU seconds of each party and the esmed cost per message.
    pub fn set_cpu(&mut self, cpu: &CpuSplit, messages: u64) {
        self.set("esmed_cpu_s", cpu.esmed);
        self.set("postgres_cpu_s", cpu.postgres);
        self.set("smsc_cpu_s", cpu.smsc);
        self.set("bench_cpu_s", cpu.bench);
        self.set("machine_busy_pct", cpu.machine_busy_pct);
        if messages > 0 && cpu.esmed > 0.0 {
            self.set("esmed_cpu_us_per_msg", cpu.esmed * 1e6 / messages as f64);
        }
    }

    /// All figures on one line (progress output).
    pub fn one_line(&self) -> String {
        let mut line = format!("  {}:", self.key);
        if let Some(e) = &self.error {
            let _ = write!(line, " FAILED: {e}");
        }
        for (name, value) in &self.metrics {
            let _ = write!(line, " {name}={}", short(*value));
        }
        for note in &self.notes {
            let _ = write!(line, "\n    note: {note}");
        }
        line
    }
}

/// A number with sensible precision for a table.
fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// What the machine and its PostgreSQL are.
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub postgres: String,
}

impl Machine {
    pub fn describe(rig: &mut Rig) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or("unknown".to_string(), |s| s.trim().to_string());
        let postgres = rig
            .db
            .query_one("SHOW server_version", &[])
            .map_or("unknown".to_string(), |r| r.get(0));
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or(String::new(), |s| s.trim().to_string());
        Machine {
            date,
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            postgres,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "esmed-bench {}: {} cores ({}), PostgreSQL {} (durable: fsync on)",
            self.date, self.cores, self.cpu, self.postgres
        )
    }
}

fn find<'a>(outcomes: &'a [Outcome], key: &str) -> Option<&'a Outcome> {
    outcomes.iter().find(|o| o.key == key && o.error.is_none())
}

fn metric(outcomes: &[Outcome], key: &str, name: &str) -> Option<f64> {
    find(outcomes, key).and_then(|o| o.get(name))
}

/// One table row: what, measured, target.
fn row(out: &mut String, what: &str, value: Option<f64>, unit: &str, target: &str) {
    let measured = value.map_or("-".to_string(), |v| format!("{} {unit}", short(v)));
    let _ = writeln!(out, "| {what:<44} | {measured:>16} | {target:<22} |");
}

/// The summary table: headline figures, targets, ratios to the ceilings; then failures.
pub fn table(outcomes: &[Outcome], options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sizes: burst {} rows, backlog {} (+{} history), latency {} s at {}/s, window {}",
        options.rows,
        options.backlog,
        options.history,
        options.latency_seconds,
        options.latency_rate,
        options.window
    );
    if !options.daemon.is_empty() {
        let _ = writeln!(
            out,
            "esmed.conf [daemon] also: {}",
            options.daemon.join("; ")
        );
    }
    if !options.pg_settings.is_empty() {
        let _ = writeln!(
            out,
            "postgresql.conf also: {}",
            options.pg_settings.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "| {:<44} | {:>16} | {:<22} |",
        "figure", "measured", "target"
    );
    let _ = writeln!(out, "|{:-<46}|{:-<18}|{:-<24}|", "", "", "");
    let burst = metric(outcomes, "burst", "msgs_per_s");
    let backlog = metric(outcomes, "backlog", "msgs_per_s");
    let pg = metric(outcomes, "pg", "msgs_per_s");
    let pg_backlog = metric(outcomes, "pg_backlog", "msgs_per_s");
    let pg_window = metric(outcomes, "pg_window", "msgs_per_s");
    let smsc = metric(outcomes, "smsc", "msgs_per_s");
    let ratio = |a: Option<f64>, b: Option<f64>| Some(100.0 * a? / b?);
    row(&mut out, "1 burst", burst, "msg/s", ">= 20000");
    let esmed_us = metric(outcomes, "burst", "esmed_cpu_us_per_msg");
    row(
        &mut out,
        "1 burst: esmed CPU per message",
        esmed_us,
        "µs",
        "< 20",
    );
    let rss = metric(outcomes, "burst", "esmed_peak_rss_mb");
    row(&mut out, "1 burst: esmed peak RSS", rss, "MB", "< 30");
    let receipts = metric(outcomes, "receipts", "final_msgs_per_s");
    row(
        &mut out,
        "2 burst + receipts (to final)",
        receipts,
        "msg/s",
        ">= 10000",
    );
    for (name, target) in [("p50_ms", "< 5"), ("p99_ms", "< 20"), ("max_ms", "")] {
        let v = metric(outcomes, "latency", name);
        row(&mut out, &format!("3 latency {name}"), v, "ms", target);
    }
    for (delay_ms, share) in crate::scenarios::WINDOW_DELAYS {
        let what = format!("6 window 10, {delay_ms} ms: of window ÷ delay");
        let v = metric(outcomes, "windows", &format!("of_limit_{delay_ms}ms"));
        row(&mut out, &what, v, "", &format!(">= {share:.2}"));
        let what = format!("6   a raw client, {delay_ms} ms: of window ÷ delay");
        let v = metric(outcomes, "windows", &format!("raw_of_limit_{delay_ms}ms"));
        row(&mut out, &what, v, "", "");
        let what = format!("6   esmed ÷ the raw client, {delay_ms} ms");
        let v = metric(outcomes, "windows", &format!("of_raw_{delay_ms}ms"));
        row(&mut out, &what, v, "", "");
    }
    let delay_ms = crate::scenarios::RECEIPTS_DELAY_MS;
    let what = format!("6 the same, {delay_ms} ms, with receipts (final)");
    let v = metric(
        outcomes,
        "windows",
        &format!("of_limit_{delay_ms}ms_receipts"),
    );
    row(&mut out, &what, v, "", "as without");
    for (name, what, unit, target) in [
        ("visible_p50_ms", "8 feed: result visible p50", "ms", ""),
        ("visible_p99_ms", "8 feed: result visible p99", "ms", ""),
        (
            "burst_feed_off_msgs_per_s",
            "8 feed: burst, feed off",
            "msg/s",
            "",
        ),
        (
            "burst_feed_on_msgs_per_s",
            "8 feed: burst, feed on",
            "msg/s",
            "",
        ),
        ("feed_cost_pct", "8 feed: cost on the burst", "%", "< 5"),
        (
            "burst_feed_off_cpu_us_per_msg",
            "8 feed: CPU/msg, feed off",
            "µs",
            "",
        ),
        (
            "burst_feed_on_cpu_us_per_msg",
            "8 feed: CPU/msg, feed on",
            "µs",
            "",
        ),
        (
            "feed_cpu_cost_pct",
            "8 feed: CPU cost on the burst",
            "%",
            "< 5",
        ),
    ] {
        row(&mut out, what, metric(outcomes, "feed", name), unit, target);
    }
    for (name, what, unit, target) in [
        ("drain_msgs_per_s", "9 drain, no purge", "msg/s", ""),
        (
            "drain_with_purge_msgs_per_s",
            "9 drain, purge running",
            "msg/s",
            "",
        ),
        (
            "purge_slowdown_pct",
            "9 drain slowed by the purge",
            "%",
            "< 10",
        ),
        ("purge_seconds", "9 the purge's own time", "s", ""),
    ] {
        row(
            &mut out,
            what,
            metric(outcomes, "purge", name),
            unit,
            target,
        );
    }
    row(&mut out, "4 backlog drain", backlog, "msg/s", ">= 30000");
    let first = metric(outcomes, "backlog", "first_slice_msgs_per_s");
    let last = metric(outcomes, "backlog", "last_slice_msgs_per_s");
    row(&mut out, "4 backlog: first slice", first, "msg/s", "");
    row(
        &mut out,
        "4 backlog: last slice",
        last,
        "msg/s",
        "within 10% of first",
    );
    let trend = metric(outcomes, "backlog", "trend_last_vs_first_pct");
    row(
        &mut out,
        "4 backlog: fitted trend, last vs first",
        trend,
        "%",
        "",
    );
    let rss = metric(outcomes, "backlog", "esmed_peak_rss_mb");
    row(&mut out, "4 backlog: esmed peak RSS", rss, "MB", "< 30");
    row(&mut out, "5a PostgreSQL-only ceiling", pg, "msg/s", "");
    if pg_window.is_some() {
        let what = "5d PostgreSQL-only, result batches <= window";
        row(&mut out, what, pg_window, "msg/s", "");
    }
    row(&mut out, "5b SMSC-only ceiling", smsc, "msg/s", ">> 100000");
    row(
        &mut out,
        "5c PostgreSQL-only ceiling, backlog shape",
        pg_backlog,
        "msg/s",
        "",
    );
    row(
        &mut out,
        "burst / PostgreSQL ceiling",
        ratio(burst, pg),
        "%",
        ">= 70",
    );
    row(
        &mut out,
        "backlog / PostgreSQL ceiling, backlog shape",
        ratio(backlog, pg_backlog),
        "%",
        ">= 70",
    );
    row(
        &mut out,
        "backlog / PostgreSQL ceiling (5a)",
        ratio(backlog, pg),
        "%",
        "",
    );
    if pg_window.is_some() {
        let what = "burst / 5d (results in window-sized batches)";
        row(&mut out, what, ratio(burst, pg_window), "%", "");
    }
    row(
        &mut out,
        "burst / SMSC ceiling",
        ratio(burst, smsc),
        "%",
        "",
    );
    for window in crate::kannel::KANNEL_WINDOWS {
        let what = format!("7 esmed ÷ Kannel (file store), window {window}");
        let v = metric(outcomes, "kannel", &format!("esmed_over_kannel_w{window}"));
        let target = if window >= 1000 { ">= 1.5" } else { ">= 1.0" };
        if v.is_some() {
            row(&mut out, &what, v, "", target);
        }
    }
    for (key, name, what, unit, target) in [
        (
            "failover",
            "outage_p50_s",
            "10 failover: outage p50",
            "s",
            "",
        ),
        (
            "failover",
            "outage_max_s",
            "10 failover: outage max",
            "s",
            "",
        ),
        (
            "failover",
            "resends_max",
            "10 failover: resends counted, max",
            "",
            "<= bound",
        ),
        (
            "failover",
            "sent_twice_max",
            "10 failover: rows sent twice, max",
            "",
            "<= bound",
        ),
        (
            "failover",
            "resend_bound",
            "10 failover: bound, window + uncommitted",
            "",
            "",
        ),
        ("failover", "rows_lost", "10 failover: rows lost", "", "0"),
        (
            "failover",
            "before_msgs_per_s",
            "10 failover: drain before",
            "msg/s",
            "",
        ),
        (
            "failover",
            "after_msgs_per_s",
            "10 failover: drain after",
            "msg/s",
            "",
        ),
        ("hosts", "esmeds_1_msgs_per_s", "11 one esmed", "msg/s", ""),
        ("hosts", "esmeds_2_msgs_per_s", "11 two esmeds", "msg/s", ""),
        ("hosts", "two_over_one", "11 two ÷ one", "", ""),
        ("hosts", "duplicates", "11 rows sent twice", "", "0"),
    ] {
        row(&mut out, what, metric(outcomes, key, name), unit, target);
    }
    history_rows(&mut out, outcomes);
    for o in outcomes {
        if let Some(e) = &o.error {
            let _ = writeln!(out, "FAILED {}: {e}", o.title);
        }
    }
    out
}

/// Scenario 12's rows: each figure with history ÷ without, against its target.
fn history_rows(out: &mut String, outcomes: &[Outcome]) {
    if find(outcomes, "history").is_none() {
        return;
    }
    let target = crate::history::TARGET_RATIO;
    for layout in crate::rig::Layout::ALL {
        let layout = layout.name();
        for (figure, what) in crate::history::COMPARED {
            let name = format!("{layout}_{figure}_ratio");
            let v = metric(outcomes, "history", &name);
            let verdict = match v {
                Some(v) if v <= target => " met",
                Some(_) => " MISSED",
                None => "",
            };
            let what = format!("12 {layout}: {what}, history ÷ empty");
            row(out, &what, v, "", &format!("<= {target:.2}{verdict}"));
        }
    }
}

/// The results as JSON: machine, options, and per scenario its figures, notes and error.
pub fn json(machine: &Machine, options: &Options, outcomes: &[Outcome]) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(
        out,
        "  \"date\": {},\n  \"machine\": {{\"cpu\": {}, \"cores\": {}, \"postgres\": {}}},",
        quote(&machine.date),
        quote(&machine.cpu),
        machine.cores,
        quote(&machine.postgres)
    );
    let _ = writeln!(
        out,
        "  \"options\": {{\"rows\": {}, \"backlog\": {}, \"history\": {}, \
         \"latency_seconds\": {}, \"latency_rate\": {}, \"window\": {}, \"daemon\": [{}], \
         \"postgresql\": [{}]}},",
        options.rows,
        options.backlog,
        options.history,
        options.latency_seconds,
        options.latency_rate,
        options.window,
        quoted_list(&options.daemon),
        quoted_list(&options.pg_settings)
    );
    out.push_str("  \"scenarios\": {");
    for (i, o) in outcomes.iter().enumerate() {
        let comma = if i + 1 < outcomes.len() { "," } else { "" };
        let _ = write!(out, "\n    {}: {}{comma}", quote(o.key), scenario_json(o));
    }
    out.push_str("\n  }\n}\n");
    out
}

fn scenario_json(o: &Outcome) -> String {
    let metrics: Vec<String> = o
        .metrics
        .iter()
        .map(|(name, value)| format!("{}: {}", quote(name), number(*value)))
        .collect();
    let notes: Vec<String> = o.notes.iter().map(|n| quote(n)).collect();
    let error = o.error.as_deref().map_or("null".to_string(), quote);
    format!(
        "{{\"title\": {}, \"ok\": {}, \"error\": {error}, \"metrics\": {{{}}}, \"notes\": [{}]}}",
        quote(o.title),
        o.error.is_none(),
        metrics.join(", "),
        notes.join(", ")
    )
}

/// JSON has no NaN or infinity.
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    esmed_smpp::json::push_json_string(&mut out, text);
    out
}

/// `["a", "b"]` as the inside of a JSON array: `"a", "b"`.
fn quoted_list(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| quote(line))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_quotes_and_rejects_non_finite_numbers() {
        let mut o = Outcome::new("burst", "1 burst");
        o.set("msgs_per_s", 1234.5);
        o.set("bad", f64::NAN);
        o.note("said \"hi\"");
        let text = scenario_json(&o);
        assert!(text.contains("\"msgs_per_s\": 1234.5"));
        assert!(text.contains("\"bad\": null"));
        assert!(text.contains("said \\\"hi\\\""));
        assert!(text.contains("\"ok\": true"));
    }

    #[test]
    fn table_shows_ratios_to_the_ceilings() {
        let mut burst = Outcome::new("burst", "1 burst");
        burst.set("msgs_per_s", 5000.0);
        let mut pg = Outcome::new("pg", "5a");
        pg.set("msgs_per_s", 10000.0);
        let failed = Outcome::failed("smsc", "5b", "boom".into());
        let mut backlog = Outcome::new("backlog", "4");
        backlog.set("msgs_per_s", 3000.0);
        let mut pg_backlog = Outcome::new("pg_backlog", "5c");
        pg_backlog.set("msgs_per_s", 4000.0);
        let mut pg_window = Outcome::new("pg_window", "5d");
        pg_window.set("msgs_per_s", 8000.0);
        let outcomes = [burst, pg, pg_window, failed, backlog, pg_backlog];
        let text = table(&outcomes, &Options::default());
        let line = |figure: &str| {
            let found = text.lines().find(|l| l.contains(figure));
            found
                .unwrap_or_else(|| panic!("no {figure}\n{text}"))
                .to_string()
        };
        assert!(line("burst / PostgreSQL ceiling").contains("50 %"));
        // The backlog against the ceiling of its own shape, and against the burst's.
        assert!(line("backlog / PostgreSQL ceiling, backlog shape").contains("75 %"));
        assert!(line("backlog / PostgreSQL ceiling (5a)").contains("30 %"));
        // The burst against PostgreSQL bound as esmed is: no results batch over the window.
        assert!(line("burst / 5d").contains("62.50 %"));
        assert!(text.contains("FAILED 5b: boom"));
    }

    #[test]
    fn the_extra_settings_are_shown_and_kept_in_the_json() {
        let options = Options {
            daemon: vec!["strict_resend_bound = true".into()],
            pg_settings: vec!["max_wal_size = 8GB".into()],
            ..Options::default()
        };
        let text = table(&[], &options);
        assert!(text.contains("esmed.conf [daemon] also: strict_resend_bound = true"));
        assert!(text.contains("postgresql.conf also: max_wal_size = 8GB"));
        let machine = Machine {
            date: "2026-11-25".into(),
            cpu: "test".into(),
            cores: 2,
            postgres: "15".into(),
        };
        let json = json(&machine, &options, &[]);
        assert!(
            json.contains("\"daemon\": [\"strict_resend_bound = true\"]"),
            "{json}"
        );
        assert!(
            json.contains("\"postgresql\": [\"max_wal_size = 8GB\"]"),
            "{json}"
        );
    }
}
