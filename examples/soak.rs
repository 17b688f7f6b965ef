//! Soak test (`make soak`, not part of `make test`; Reliability guarantees, case 11): a throwaway PostgreSQL,
//! the test SMSC with delivery receipts, and the release `esmed` binary as a child process.
//! Inserts `--rows` messages (default 1,000,000), samples esmed's RSS and open file
//! descriptors every two seconds, and checks at the end that every row is done, every receipt
//! stored, RSS stayed flat after warm-up (the later peak within 20 % of the earlier one) and
//! the descriptor count constant.
//!
//! `cargo build --release && cargo run --release --example soak -- --rows 100000`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use esmed_smsc::{ReceiptConfig, ReceiptMode, Smsc, SmscConfig};
use esmed_testkit::PgCluster;

const DB: &str = "esmed";
const PASSWORD: &str = "soak-db-pw";
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples before this share of rows is done are warm-up.
const WARM_UP: f64 = 0.2;

struct Sample {
    done: i64,
    rss_kb: u64,
    fds: usize,
}

fn main() -> ExitCode {
    let rows = match parse_rows() {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("soak: {e}\nusage: soak [--rows N]");
            return ExitCode::from(2);
        }
    };
    match run(rows) {
        Ok(()) => {
            println!("soak: PASS ({rows} rows)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("soak: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_rows() -> Result<i64, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(1_000_000),
        [flag, n] if flag == "--rows" => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(format!("--rows {n:?} is not a positive number")),
        _ => Err(format!("unknown arguments {args:?}")),
    }
}

fn run(rows: i64) -> Result<(), String> {
    let cluster = PgCluster::start().map_err(|e| e.to_string())?;
    cluster.create_database(DB).map_err(|e| e.to_string())?;
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/db.sql");
    cluster
        .load_schema(DB, &schema)
        .map_err(|e| e.to_string())?;
    drop(
        cluster
            .esmed_client(DB, PASSWORD)
            .map_err(|e| e.to_string())?,
    );
    let smsc = Smsc::start(SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(50))),
        journal_in_memory: false,
        ..SmscConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let mut db = cluster.superuser_client(DB).map_err(|e| e.to_string())?;
    db.execute(
        "INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password, \
         esme_bind_transceiver, esme_registered_delivery, smpp_window) \
         VALUES (TRUE, '127.0.0.1', $1, 'esmed', 'secret', TRUE, TRUE, 50)",
        &[&i32::from(smsc.port())],
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for chunk_start in (1..=rows).step_by(100_000) {
        let chunk_end = (chunk_start + 99_999).min(rows);
        db.execute(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
             SELECT '44' || lpad(n::text, 10, '0'), 'soak message ' || n \
             FROM generate_series($1::int8, $2::int8) n",
            &[&chunk_start, &chunk_end],
        )
        .map_err(|e| e.to_string())?;
    }
    println!("soak: {rows} rows inserted in {:?}", started.elapsed());

    let dir = std::env::temp_dir().join(format!("esmed-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut esmed = start_esmed(&cluster, &dir)?;
    let result = watch(&mut db, &esmed, rows);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(esmed.id().to_string())
        .status();
    let _ = esmed.wait();
    if result.is_err() {
        eprintln!("soak: esmed log kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn start_esmed(cluster: &PgCluster, dir: &Path) -> Result<Child, String> {
    let config = dir.join("esmed.conf");
    let text = format!(
        "[database]\nhost = {}\nport = {}\nname = {DB}\nuser = esmed\npass = {PASSWORD}\n\
         sslmode = disable\n\n[daemon]\ninstance = soak\nstats_interval = 10s\n\n\
         [log]\nfile = {}\nlevel = info\nstderr = false\n",
        cluster.host(),
        cluster.port(),
        dir.join("esmed.log").display()
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut perms = std::fs::metadata(&config)
        .map_err(|e| e.to_string())?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&config, perms).map_err(|e| e.to_string())?;
    Command::new(esmed_binary()?)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start esmed: {e}"))
}

/// The `esmed` binary of the same profile: target/<profile>/esmed next to examples/.
fn esmed_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let binary = profile_dir.join("esmed");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release)",
            binary.display()
        ))
    }
}

fn watch(db: &mut postgres::Client, esmed: &Child, rows: i64) -> Result<(), String> {
    let pid = esmed.id();
    let started = Instant::now();
    // Generous: the slowest machine we care about still does 500 rows/s.
    let deadline = started + Duration::from_secs(60) + Duration::from_secs((rows / 500) as u64);
    let mut samples = Vec::new();
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let (done, failed, receipts) = progress(db)?;
        let sample = Sample {
            done,
            rss_kb: rss_kb(pid)?,
            fds: fd_count(pid)?,
        };
        let secs = started.elapsed().as_secs_f64();
        println!(
            "soak: {secs:6.0} s  done {done:>8}  failed {failed}  receipts {receipts:>8}  \
             {:.0}/s  RSS {} kB  fds {}",
            done as f64 / secs,
            sample.rss_kb,
            sample.fds
        );
        samples.push(sample);
        if failed > 0 {
            return Err(format!("{failed} rows failed"));
        }
        if done == rows && receipts == rows {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("not finished in time: {done}/{rows} done"));
        }
    }
    check_flat(&samples, rows)
}

fn progress(db: &mut postgres::Client) -> Result<(i64, i64, i64), String> {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE submission_done), \
             count(*) FILTER (WHERE submission_failed), \
             (SELECT count(*) FROM smpp_rx_queue WHERE is_receipt) FROM smpp_tx_queue",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Flat RSS: the allocator returns and takes memory in steps, so single samples swing by
/// tens of percent; growth shows as a higher peak later. The peak of the second half of the
/// post-warm-up samples must stay within 20 % of the first half's. Fds constant (±2 for a
/// reconnect in progress at a sample).
fn check_flat(samples: &[Sample], rows: i64) -> Result<(), String> {
    let warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.done as f64 >= rows as f64 * WARM_UP)
        .collect();
    if warm.len() < 2 {
        return Err("fewer than two samples after warm-up".into());
    }
    let (first, second) = warm.split_at(warm.len() / 2);
    let peak = |half: &[&Sample]| half.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let (early, late) = (peak(first), peak(second));
    let (min_fds, max_fds) = warm.iter().fold((usize::MAX, 0), |(lo, hi), s| {
        (lo.min(s.fds), hi.max(s.fds))
    });
    println!(
        "soak: after warm-up peak RSS {early} kB then {late} kB, fds {min_fds}..{max_fds} \
         ({} samples)",
        warm.len()
    );
    if late as f64 > early as f64 * 1.2 {
        return Err(format!("peak RSS grew from {early} kB to {late} kB"));
    }
    if max_fds > min_fds + 2 {
        return Err(format!("open fds varied {min_fds}..{max_fds}"));
    }
    Ok(())
}

fn rss_kb(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("esmed is gone? {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS".into())
}

fn fd_count(pid: u32) -> Result<usize, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .map_err(|e| format!("esmed is gone? {e}"))
}
