//! The benchmark program end to end, at toy sizes: every scenario runs against its own durable
//! PostgreSQL, the test SMSC and esmed, and reports figures; the diagnostics print what they
//! promise. (The figures themselves are docs/benchmarks.md's business, not a test's.)

use std::path::Path;
use std::process::Command;

/// esmed-bench runs the esmed and esmed-smsc built beside it. They belong to other packages
/// of the workspace, which `cargo test --workspace` builds but `cargo test -p esmed-bench`
/// does not: build them (a no-op when they are up to date) into the same place and profile.
fn build_the_programs_beside_the_bench() {
    let bench = Path::new(env!("CARGO_BIN_EXE_esmed-bench"));
    let profile_dir = bench.parent().expect("the bench's directory");
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // What cargo set for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*...) would look like a
    // changed environment to build scripts that watch it, and rebuild them every time.
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("CARGO_") && text != "CARGO_HOME" {
            build.env_remove(&name);
        }
    }
    let status = build
        .args([
            "build",
            "--bins",
            "-p",
            "esmed",
            "-p",
            "esmed-smsc",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of esmed and esmed-smsc failed"
    );
}

#[test]
fn every_scenario_runs_and_reports_at_toy_sizes() {
    build_the_programs_beside_the_bench();
    let dir = std::env::temp_dir().join(format!("esmed-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_esmed-bench"))
        .args([
            "--rows",
            "2000",
            "--backlog",
            "3000",
            "--history",
            "1000",
            "--history-rows",
            "3000",
            "--latency-seconds",
            "2",
            "--latency-rate",
            "20",
            "--windows-seconds",
            "1",
            "--kannel-rows",
            "300",
            "--timeout",
            "120",
            "--pg-stats",
            "--pg-waits",
            "--pg",
            "max_wal_size = 2GB",
            "--daemon",
            "claim_batch = 300",
            // Results trail the submits by at most this many rows, less than a slice of the
            // toy backlog (300): every slice then holds results commits to measure.
            "--daemon",
            "max_uncommitted_results = 100",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("making 4 WAL segments ready, as a server in service has them"),
        "{stderr}"
    );
    let report = std::fs::read_to_string(&json).unwrap();
    for scenario in [
        "burst",
        "receipts",
        "latency",
        "windows",
        "pg",
        "pg_window",
        "smsc",
        "backlog",
        "pg_backlog",
        "failover",
        "hosts",
        "history",
    ] {
        let at = report
            .find(&format!("\"{scenario}\": {{"))
            .unwrap_or_else(|| panic!("no {scenario} in {report}"));
        let rest = &report[at..];
        let end = rest.find('}').unwrap();
        assert!(rest[..end].contains("\"ok\": true"), "{}", &rest[..end]);
    }
    assert!(
        report.contains(
            "\"postgresql\": [\"max_wal_size = 8GB\", \"min_wal_size = 2GB\", \
             \"max_wal_size = 2GB\"]"
        ),
        "{report}"
    );
    assert!(
        report.contains("\"daemon\": [\"claim_batch = 300\", \"max_uncommitted_results = 100\"]"),
        "{report}"
    );
    // The table: every row of toy-size figures filled in, the extra settings named.
    for figure in [
        "1 burst ",
        "4 backlog drain",
        "5a PostgreSQL-only ceiling",
        "5d PostgreSQL-only, result batches <= window",
        "5c PostgreSQL-only ceiling, backlog shape",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no {figure} row\n{stdout}"));
        assert!(line.contains("msg/s"), "{line}");
    }
    // The failover: nothing lost, and the bound is the window plus the uncommitted results
    // of the one session; two processes: nothing sent twice.
    for (figure, value) in [
        ("10 failover: rows lost", "0"),
        ("10 failover: bound, window + uncommitted", "200"),
        ("11 rows sent twice", "0"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(figure))
            .unwrap_or_else(|| panic!("no {figure} row\n{stdout}"));
        assert_eq!(line.split('|').nth(2).unwrap().trim(), value, "{line}");
    }
    assert!(stdout.contains("10 failover: outage p50"), "{stdout}");
    assert!(stderr.contains("failover run 3 of 3"), "{stderr}");
    // History behind the queue: each figure of each layout as history ÷ empty.
    for layout in ["plain", "partitioned"] {
        for figure in [
            "claim blocks/msg",
            "receipt match blocks/msg",
            "drain time/msg",
        ] {
            let what = format!("12 {layout}: {figure}");
            let line = stdout
                .lines()
                .find(|l| l.contains(&what))
                .unwrap_or_else(|| panic!("no {what} row\n{stdout}"));
            let ratio: f64 = line.split('|').nth(2).unwrap().trim().parse().unwrap();
            assert!(ratio > 0.0, "{line}");
            assert!(line.contains("<= 1.10"), "{line}");
        }
    }
    // Kannel side by side, when it is installed: a ratio for each window.
    if Path::new("/usr/sbin/bearerbox").is_file() && Path::new("/usr/sbin/smsbox").is_file() {
        for window in ["10", "100", "1000"] {
            let what = format!("7 esmed ÷ Kannel (file store), window {window} ");
            let line = stdout
                .lines()
                .find(|l| l.contains(&what))
                .unwrap_or_else(|| panic!("no {what} row\n{stdout}\n{stderr}"));
            let ratio: f64 = line.split('|').nth(2).unwrap().trim().parse().unwrap();
            assert!(ratio > 0.0, "{line}");
        }
    } else {
        assert!(stderr.contains("Kannel is not installed"), "{stderr}");
    }
    // The windows scenario: a share of window ÷ delay for each delay.
    for delay in ["20 ms", "5 ms", "1 ms"] {
        let what = format!("6 window 10, {delay}: of window ÷ delay");
        let line = stdout
            .lines()
            .find(|l| l.contains(&what))
            .unwrap_or_else(|| panic!("no {what} row\n{stdout}"));
        let share: f64 = line.split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!(share > 0.0 && share < 1.1, "{line}");
    }
    assert!(
        stdout.contains("6 the same, 5 ms, with receipts (final)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "postgresql.conf also: max_wal_size = 8GB; min_wal_size = 2GB; max_wal_size = 2GB"
        ),
        "{stdout}"
    );
    // The diagnostics: statements with their cost, backends with what they waited for.
    assert!(
        stderr.contains("PostgreSQL statements: total_ms"),
        "{stderr}"
    );
    assert!(stderr.contains("UPDATE smpp_tx_queue"), "{stderr}");
    assert!(stderr.contains("PostgreSQL waits ("), "{stderr}");
    assert!(stderr.contains("slices, k msg/s:"), "{stderr}");
    assert!(
        stderr.contains("CPU µs per message, first slice -> last: PostgreSQL"),
        "{stderr}"
    );
    // The drain slice by slice: each of its ten slices wrote WAL, and the gauge ran.
    // With --pg-stats, the claims' and the results' work too.
    for what in [
        "WAL bytes/msg",
        "pace gauge µs",
        "claim blocks hit/msg",
        "results UPDATE blocks hit/msg",
    ] {
        let prefix = format!("slices, {what}: ");
        let line = stderr
            .lines()
            .find_map(|l| l.split_once(&prefix).map(|(_, figures)| figures))
            .unwrap_or_else(|| panic!("no {what} line\n{stderr}"));
        let figures: Vec<f64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        assert_eq!(figures.len(), 10, "{line}");
        // Claims run up to a claim batch ahead of the drain: at toy sizes the last slice's
        // rows may all have been claimed during the one before.
        let (last, rest) = figures.split_last().unwrap();
        let claims = what == "claim blocks hit/msg";
        assert!(rest.iter().all(|&f| f > 0.0), "{line}");
        assert!(*last > 0.0 || (claims && *last == 0.0), "{line}");
    }
    for line in [
        "PostgreSQL CPU µs/msg",
        "esmed CPU µs/msg",
        "SMSC CPU µs/msg",
        "blocks hit in shared_buffers/msg",
        "blocks read/msg",
        "blocks written by backends/msg",
        "claim µs/msg",
        "results UPDATE µs/msg",
    ] {
        assert!(stderr.contains(&format!("slices, {line}: ")), "{stderr}");
    }
    let trend = stdout
        .lines()
        .find(|l| l.contains("fitted trend, last vs first"))
        .unwrap_or_else(|| panic!("no trend row\n{stdout}"));
    assert!(trend.contains(" %"), "{trend}");
    let _ = std::fs::remove_dir_all(&dir);
}
