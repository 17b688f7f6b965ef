//! `make demo`: esmed end to end on this machine, and a tour of how an application uses it.
//!
//! Starts a private PostgreSQL cluster (loopback, removed at the end) with esmed's schema, the
//! project's test SMSC on 127.0.0.1, and the real `esmed` binary; then, as an application would,
//! adds a server row, queues four messages and reads back what became of them and what the SMSC
//! sent (a delivery receipt, two MO messages). Every SQL statement is printed as it runs.
//!
//! `cargo build --release --bins --example demo && target/release/examples/demo`; esmed's
//! configuration and log stay in `target/release/demo/`. `cargo test` runs it too (debug build).

use std::fmt::Display;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use esmed_smsc::{MoMessage, ReceiptConfig, ReceiptMode, Smsc, SmscConfig, SmscHandle};
use esmed_testkit::PgCluster;
use postgres::{Client, Row};

const DB: &str = "esmed";
const DB_PASSWORD: &str = "demo-db-pw";
const WAIT: Duration = Duration::from_secs(20);

/// What the application runs to queue its messages: a GSM text, Unicode with emoji (sent as
/// UCS2), a long text (sent in 3 parts) and a message asking for a delivery receipt.
const MESSAGES: [&str; 4] = [
    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
     VALUES ('447700900001', 'Hello from esmed! GSM 7-bit text: @£$¥ {[~]} €') RETURNING id",
    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
     VALUES ('447700900002', 'Unicode goes as UCS2: Привет, 你好 😀🎉') RETURNING id",
    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
     VALUES ('447700900003', 'A long text goes in parts: ' \
             || repeat('esmed splits it, the phone joins it. ', 10)) RETURNING id",
    "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, \
     smpp_registered_delivery) VALUES ('447700900004', 'Please confirm delivery', \
     'SMSC_DELIVERY_RECEIPT_REQUESTED') RETURNING id",
];

/// What the application reads back: its messages' outcome, the parts of long messages, and
/// what the SMSC sent (receipts and MO messages).
const REPORTS: [(&str, &str); 3] = [
    (
        "What became of each message (the application reads its rows back)",
        "SELECT id, smpp_destination_addr AS destination, smpp_short_message AS text, \
         CASE WHEN submission_done THEN 'done' WHEN submission_failed THEN 'failed' \
         ELSE 'pending' END AS outcome, smpp_message_id AS message_id, \
         smpp_message_state AS state, submission_attempts AS attempts, \
         submission_info AS info FROM smpp_tx_queue ORDER BY id",
    ),
    (
        "The long message's parts (one SMSC message id each)",
        "SELECT tx_id, part_no, part_count, message_id, message_state \
         FROM smpp_tx_parts WHERE part_count > 1 ORDER BY tx_id, part_no",
    ),
    (
        "What the SMSC sent: the delivery receipt and the MO messages",
        "SELECT id, smpp_source_addr AS source, is_receipt AS receipt, data_coding, \
         receipted_message_id, message_state AS state, tx_id, \
         smpp_short_message AS text FROM smpp_rx_queue ORDER BY id",
    ),
];

/// What went wrong, worded so that the user knows what to do.
struct Failed(String);

/// `result.or_say("what we were doing")` turns any error into a [`Failed`].
trait OrSay<T> {
    fn or_say(self, what: &str) -> Result<T, Failed>;
}

impl<T, E: Display> OrSay<T> for Result<T, E> {
    fn or_say(self, what: &str) -> Result<T, Failed> {
        self.map_err(|e| Failed(format!("{what}: {e}")))
    }
}

fn main() -> ExitCode {
    let dir = demo_dir();
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(message)) => {
            eprintln!("\ndemo FAILED: {message}");
            show_log_tail(&dir.join("esmed.log"));
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> Result<(), Failed> {
    let esmed_bin = esmed_binary()?;
    fs::create_dir_all(dir).or_say(&format!("create {}", dir.display()))?;

    step("Starting a private PostgreSQL cluster and loading sql/db.sql");
    let cluster = PgCluster::start().or_say("start a private PostgreSQL cluster")?;
    cluster.create_database(DB).or_say("create the database")?;
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/db.sql");
    cluster.load_schema(DB, &schema).or_say("load the schema")?;
    // The daemon logs in as the role `esmed` that sql/db.sql made; it needs a password.
    cluster
        .esmed_client(DB, DB_PASSWORD)
        .or_say("set the esmed role's password")?;
    let (host, port) = (cluster.host(), cluster.port());
    println!("  PostgreSQL on {host}:{port}, database {DB}");
    // The demo plays the application; any role with INSERT/SELECT on the queues will do.
    let mut db = cluster
        .superuser_client(DB)
        .or_say("connect to PostgreSQL")?;

    step("Starting the test SMSC (accepts esmed/secret, receipts after 500 ms when asked)");
    let mut smsc = Smsc::start(SmscConfig {
        receipts: ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(500))),
        ..SmscConfig::default()
    })
    .or_say("start the test SMSC")?;
    println!("  SMSC on {}", smsc.addr());

    step("Telling esmed about the SMSC: one enabled row in smpp_servers");
    let server = format!(
        "INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password, \
         esme_source_addr, esme_bind_transceiver, esme_registered_delivery) \
         VALUES (true, '127.0.0.1', {}, 'esmed', 'secret', 'ESMED', true, false)",
        smsc.port()
    );
    sql(&mut db, &server)?;

    step("Starting esmed");
    let mut esmed = start_esmed(&esmed_bin, dir, &cluster)?;
    wait_for_bind(&smsc, &mut esmed)?;
    println!("  esmed (pid {}) is bound as a transceiver", esmed.0.id());

    step("Queueing messages: an application only INSERTs into smpp_tx_queue");
    for statement in MESSAGES {
        queue(&mut db, statement)?;
    }

    step("A phone answers: the SMSC sends two MO messages, esmed stores them in smpp_rx_queue");
    smsc.send_mo(MoMessage::text("447700900001", "ESMED", "Thanks!"));
    smsc.send_mo(MoMessage::text("447700900002", "ESMED", "Спасибо 👍"));

    step(&format!(
        "Waiting (at most {WAIT:?}) until every message and the receipt are in"
    ));
    let waited = wait_until_finished(&mut db);
    show_results(&mut db)?;
    waited?;

    step("Stopping esmed with SIGTERM (it finishes what is in flight, unbinds, exits 0)");
    stop_esmed(&mut esmed)?;
    smsc.stop();
    drop(db);
    drop(cluster);
    println!("  Stopped esmed and the SMSC; the PostgreSQL cluster is removed.");
    println!("  esmed's configuration and log stay in {}", dir.display());
    println!("\ndemo OK");
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Runs `statement` the way an application would, after printing it.
fn sql(db: &mut Client, statement: &str) -> Result<Vec<Row>, Failed> {
    println!("  sql> {statement}");
    db.query(statement, &[]).or_say("run the statement above")
}

/// Runs one INSERT … RETURNING id and shows the new row's id.
fn queue(db: &mut Client, statement: &str) -> Result<(), Failed> {
    let rows = sql(db, statement)?;
    if let Some(id) = rows.first().and_then(|r| r.try_get::<_, i64>(0).ok()) {
        println!("       -> id {id}");
    }
    Ok(())
}

/// target/release/demo: next to the binaries (the example runs from target/release/examples).
fn demo_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let release = exe.parent().and_then(Path::parent);
    release.unwrap_or(Path::new(".")).join("demo")
}

fn esmed_binary() -> Result<PathBuf, Failed> {
    let path = demo_dir().with_file_name("esmed");
    match path.is_file() {
        true => Ok(path),
        false => Err(Failed(format!(
            "{} not found: build it first with `cargo build --release --bins` (`make demo` does)",
            path.display()
        ))),
    }
}

/// esmed as its own process; killed if the demo stops early.
struct Esmed(Child);

impl Drop for Esmed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_esmed(bin: &Path, dir: &Path, cluster: &PgCluster) -> Result<Esmed, Failed> {
    let log = dir.join("esmed.log");
    let _ = fs::remove_file(&log);
    let config = dir.join("esmed.conf");
    let text = format!(
        "[database]\nhost = {}\nport = {}\nname = {DB}\nuser = esmed\npass = {DB_PASSWORD}\n\
         sslmode = disable\n\n[daemon]\npoll_interval = 1s\nstats_interval = 0\n\n\
         [log]\nfile = {}\nlevel = debug\nstderr = false\n",
        cluster.host(),
        cluster.port(),
        log.display()
    );
    // Only the owner may read it: it holds the database password (esmed warns otherwise).
    fs::write(&config, text).or_say("write esmed.conf")?;
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).or_say("chmod esmed.conf")?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .or_say(&format!("start {}", bin.display()))?;
    println!("  {} -c {}", bin.display(), config.display());
    Ok(Esmed(child))
}

/// Waits until esmed has bound to the SMSC; fails early if it exits instead.
fn wait_for_bind(smsc: &SmscHandle, esmed: &mut Esmed) -> Result<(), Failed> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if smsc.wait_for_bound(1, Duration::from_millis(100)) {
            return Ok(());
        }
        if let Some(status) = esmed.0.try_wait().or_say("wait for esmed")? {
            return Err(Failed(format!(
                "esmed stopped ({status}) instead of binding"
            )));
        }
    }
    Err(Failed(format!(
        "esmed did not bind to the SMSC within {WAIT:?}"
    )))
}

fn wait_until_finished(db: &mut Client) -> Result<(), Failed> {
    let deadline = Instant::now() + WAIT;
    let counts = "SELECT (SELECT count(*) FROM smpp_tx_queue \
                          WHERE NOT (submission_done OR submission_failed)), \
                  (SELECT count(*) FROM smpp_rx_queue WHERE is_receipt), \
                  (SELECT count(*) FROM smpp_rx_queue WHERE NOT is_receipt)";
    loop {
        let row = db.query_one(counts, &[]).or_say("count the rows")?;
        let (pending, receipts, mo): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if pending == 0 && receipts >= 1 && mo >= 2 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failed(format!(
                "after {WAIT:?}: {pending} messages still pending, {receipts} receipts, {mo} MO"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show_results(db: &mut Client) -> Result<(), Failed> {
    for (title, statement) in REPORTS {
        step(title);
        print_table(&sql(db, statement)?);
    }
    Ok(())
}

/// Prints rows as an aligned table; long texts are shortened.
fn print_table(rows: &[Row]) {
    let Some(first) = rows.first() else {
        return println!("  (no rows)");
    };
    let header = first.columns().iter().map(|c| c.name().to_string());
    let mut lines: Vec<Vec<String>> = vec![header.collect()];
    for row in rows {
        lines.push((0..row.len()).map(|i| cell(row, i)).collect());
    }
    let mut widths = vec![0; first.len()];
    for line in &lines {
        for (width, text) in widths.iter_mut().zip(line) {
            *width = (*width).max(text.chars().count());
        }
    }
    for line in &lines {
        let mut out = String::new();
        for (text, width) in line.iter().zip(&widths) {
            out += &format!(" | {text:<width$}");
        }
        println!(" {}", out.trim_start_matches(" |").trim_end());
    }
}

/// One value as text, whatever its column type; NULL is empty.
fn cell(row: &Row, i: usize) -> String {
    let text = if let Ok(v) = row.try_get::<_, Option<String>>(i) {
        v.unwrap_or_default()
    } else if let Ok(v) = row.try_get::<_, Option<i64>>(i) {
        v.map(|n| n.to_string()).unwrap_or_default()
    } else if let Ok(v) = row.try_get::<_, Option<i32>>(i) {
        v.map(|n| n.to_string()).unwrap_or_default()
    } else if let Ok(v) = row.try_get::<_, Option<i16>>(i) {
        v.map(|n| n.to_string()).unwrap_or_default()
    } else if let Ok(v) = row.try_get::<_, Option<bool>>(i) {
        v.map_or(String::new(), |b| if b { "yes" } else { "no" }.to_string())
    } else {
        "?".to_string()
    };
    let flat = text.replace(['\n', '\r'], " ");
    match flat.chars().count() > 32 {
        true => format!("{}…", flat.chars().take(31).collect::<String>()),
        false => flat,
    }
}

fn stop_esmed(esmed: &mut Esmed) -> Result<(), Failed> {
    // `sh -c kill` rather than /bin/kill, which minimal systems lack.
    let pid = esmed.0.id();
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {pid}"))
        .status()
        .or_say("send SIGTERM")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(status) = esmed.0.try_wait().or_say("wait for esmed")? {
            if !status.success() {
                return Err(Failed(format!("esmed exited with {status}, expected 0")));
            }
            println!("  esmed exited with {status}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Failed("esmed did not exit within 15 s of SIGTERM".into()))
}

fn show_log_tail(log: &Path) {
    let Ok(text) = fs::read_to_string(log) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("esmed's log: {} (last lines below)", log.display());
    for line in &lines[lines.len().saturating_sub(20)..] {
        eprintln!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    /// `cargo test --all-targets` runs the whole demo against the debug binaries.
    #[test]
    fn the_demo_runs_to_the_end() {
        if let Err(super::Failed(message)) = super::run(&super::demo_dir()) {
            panic!("{message}");
        }
    }
}
