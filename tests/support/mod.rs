//! End-to-end test support: a throwaway PostgreSQL cluster with the schema, the project's test
//! SMSC on 127.0.0.1, and the real `esmed` binary run as a separate process against both.
#![allow(dead_code)]

pub mod fake_smsc;
pub mod pg_proxy;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use esmed::smpp::{Body, CommandStatus};
use esmed_smsc::{Smsc, SmscConfig, SmscHandle};
use esmed_testkit::{PgCluster, Process};
use postgres::Client;

pub const DB: &str = "esmed";
pub const ESMED_PASSWORD: &str = "esmed-db-pw";
pub const SMPP_SYSTEM_ID: &str = "esmed";
pub const SMPP_PASSWORD: &str = "secret";

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("esmed-e2e-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where cargo (and so `make build`) puts the release binaries for this test run.
pub fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("release")
}

/// A stand-in for a CARGO_TARGET_DIR: `dir/release` with copies of the release binaries,
/// swapped (its esmed is esmed-smsc and its esmed-smsc is esmed), so that a binary taken
/// from it tells where it came from.
pub fn swapped_target_dir(dir: &Path) {
    let release = release_dir();
    fs::create_dir_all(dir.join("release")).expect("mkdir release");
    for (name, from) in [("esmed", "esmed-smsc"), ("esmed-smsc", "esmed")] {
        fs::copy(release.join(from), dir.join("release").join(name)).expect("copy a binary");
    }
}

/// The schema the end-to-end tests run on: `sql/db.sql`, or the partitioned layout's
/// `sql/db-partitioned.sql` when `ESMED_TEST_LAYOUT=partitioned` (`make test` runs the queue,
/// receipt and MO tests on both).
pub fn schema_file() -> &'static str {
    match std::env::var("ESMED_TEST_LAYOUT").as_deref() {
        Ok("partitioned") => "sql/db-partitioned.sql",
        Ok("") | Ok("plain") | Err(_) => "sql/db.sql",
        Ok(other) => panic!("ESMED_TEST_LAYOUT={other}: use plain or partitioned"),
    }
}

/// PostgreSQL with the schema loaded, and a test SMSC.
pub struct Env {
    pub cluster: PgCluster,
    pub smsc: SmscHandle,
    pub dir: TempDir,
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env::with_smsc(name, smsc_config())
    }

    pub fn with_smsc(name: &str, config: SmscConfig) -> Env {
        Env::with_cluster(name, PgCluster::start().expect("start PostgreSQL"), config)
    }

    /// [`Env::with_smsc`] on a cluster of the test's own.
    pub fn with_cluster(name: &str, cluster: PgCluster, config: SmscConfig) -> Env {
        Env::with_schema(name, cluster, config, schema_file())
    }

    /// [`Env::new`] on the partitioned layout, whatever `ESMED_TEST_LAYOUT` says.
    pub fn partitioned(name: &str) -> Env {
        Env::partitioned_with_smsc(name, smsc_config())
    }

    /// [`Env::partitioned`] with this SMSC.
    pub fn partitioned_with_smsc(name: &str, config: SmscConfig) -> Env {
        let cluster = PgCluster::start().expect("start PostgreSQL");
        Env::with_schema(name, cluster, config, "sql/db-partitioned.sql")
    }

    /// The test environment with `schema` (a path in the repository) loaded.
    fn with_schema(name: &str, cluster: PgCluster, config: SmscConfig, schema: &str) -> Env {
        cluster.create_database(DB).expect("create database");
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(schema);
        cluster
            .load_schema(DB, &schema)
            .unwrap_or_else(|e| panic!("load {}: {e}", schema.display()));
        cluster
            .set_esmed_password(DB, ESMED_PASSWORD)
            .expect("set the esmed password");
        let smsc = Smsc::start(config).expect("start the test SMSC");
        Env {
            cluster,
            smsc,
            dir: TempDir::new(name),
        }
    }

    /// A superuser connection (the tests play the application and the operator).
    pub fn db(&self) -> Client {
        self.cluster
            .superuser_client(DB)
            .expect("connect as superuser")
    }

    /// Inserts the enabled server row pointing at `smsc`, with extra `column = value` pairs.
    pub fn add_server_for(&self, smsc: &SmscHandle, extra: &[(&str, &str)]) -> i32 {
        self.add_server_at(smsc.port(), extra)
    }

    /// The enabled server row for an SMSC listening on 127.0.0.1:`port`.
    pub fn add_server_at(&self, port: u16, extra: &[(&str, &str)]) -> i32 {
        let mut columns = vec!["enabled", "host", "port", "esme_system_id", "esme_password"];
        let port = port.to_string();
        let mut values = vec![
            "TRUE".to_string(),
            "'127.0.0.1'".to_string(),
            port,
            format!("'{SMPP_SYSTEM_ID}'"),
            format!("'{SMPP_PASSWORD}'"),
        ];
        for (column, value) in extra {
            columns.push(column);
            values.push((*value).to_string());
        }
        let sql = format!(
            "INSERT INTO smpp_servers ({}) VALUES ({}) RETURNING id",
            columns.join(", "),
            values.join(", ")
        );
        self.db()
            .query_one(&sql, &[])
            .expect("insert server")
            .get(0)
    }

    pub fn add_server(&self, extra: &[(&str, &str)]) -> i32 {
        self.add_server_for(&self.smsc, extra)
    }

    /// Writes esmed.conf (fast timers for tests plus `daemon_extra` lines) and starts esmed.
    pub fn esmed(&self, name: &str, daemon_extra: &str) -> Esmed {
        let (config, log) = self.write_config(name, daemon_extra, 0o600);
        Esmed::start(&config, log)
    }

    /// [`Env::esmed`] with `tls_lines` (sslmode, sslrootcert...) in [database].
    pub fn esmed_with_tls(&self, name: &str, tls_lines: &str, daemon_extra: &str) -> Esmed {
        let (config, log) = self.write_config_with(name, tls_lines, daemon_extra, 0o600);
        Esmed::start(&config, log)
    }

    /// [`Env::esmed`] reaching PostgreSQL on `port` (a proxy in front of the cluster).
    pub fn esmed_via(&self, name: &str, port: u16, daemon_extra: &str) -> Esmed {
        let (config, log) = self.write_config(name, daemon_extra, 0o600);
        let text = fs::read_to_string(&config).expect("read esmed.conf");
        let cluster_port = format!("\nport = {}\n", self.cluster.port());
        let text = text.replacen(&cluster_port, &format!("\nport = {port}\n"), 1);
        fs::write(&config, text).expect("write esmed.conf");
        Esmed::start(&config, log)
    }

    /// Writes `<name>.conf` with file mode `mode`; returns its path and the log's.
    pub fn write_config(&self, name: &str, daemon_extra: &str, mode: u32) -> (PathBuf, PathBuf) {
        self.write_config_with(name, "sslmode = disable\n", daemon_extra, mode)
    }

    /// [`Env::esmed`] without an `instance` line: esmed names itself as it does by default.
    pub fn esmed_unnamed(&self, name: &str, daemon_extra: &str) -> Esmed {
        let (config, log) = self.write_config(name, daemon_extra, 0o600);
        let text = fs::read_to_string(&config).expect("read esmed.conf");
        let text = text.replace(&format!("instance = {name}\n"), "");
        fs::write(&config, text).expect("write esmed.conf");
        Esmed::start(&config, log)
    }

    fn write_config_with(
        &self,
        name: &str,
        tls_lines: &str,
        daemon_extra: &str,
        mode: u32,
    ) -> (PathBuf, PathBuf) {
        let log = self.dir.0.join(format!("{name}.log"));
        let config = self.dir.0.join(format!("{name}.conf"));
        let text = format!(
            "[database]\nhost = {}\nport = {}\nname = {DB}\nuser = esmed\npass = {ESMED_PASSWORD}\n\
             {tls_lines}\n\
             [daemon]\ninstance = {name}\npoll_interval = 500ms\nreconnect_min = 100ms\n\
             reconnect_max = 1s\nretry_min = 100ms\nretry_max = 1s\nstats_interval = 0\n\
             {daemon_extra}\n\
             [log]\nfile = {}\nlevel = debug\nstderr = false\n",
            self.cluster.host(),
            self.cluster.port(),
            log.display()
        );
        fs::write(&config, text).expect("write esmed.conf");
        let mut perms = fs::metadata(&config).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, mode);
        fs::set_permissions(&config, perms).expect("chmod");
        (config, log)
    }

    pub fn insert(&self, destination: &str, text: &str) -> i64 {
        self.db()
            .query_one(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
                 VALUES ($1, $2) RETURNING id",
                &[&destination, &text],
            )
            .expect("insert message")
            .get(0)
    }

    /// Inserts `n` messages in one statement, to 4477 followed by their number (8 digits, so
    /// each destination maps back to its row), the text `text` followed by the number.
    pub fn insert_many(&self, n: i32, text: &str) {
        self.db()
            .execute(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message) \
                 SELECT '4477' || lpad(n::text, 8, '0'), $2 || n FROM generate_series(1, $1) n",
                &[&n, &text],
            )
            .expect("insert messages");
    }

    /// Counts rows matching `condition`.
    pub fn count(&self, condition: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM smpp_tx_queue WHERE {condition}");
        self.db().query_one(&sql, &[]).expect("count").get(0)
    }

    /// Waits until `condition` holds for every row of smpp_tx_queue.
    pub fn wait_all(&self, condition: &str, timeout: Duration, esmed: &Esmed) {
        let what = format!("every row: {condition}");
        wait_until(timeout, &what, esmed, || {
            self.count(&format!("NOT ({condition})")) == 0
        });
    }
}

pub fn smsc_config() -> SmscConfig {
    SmscConfig {
        system_id: SMPP_SYSTEM_ID.into(),
        password: SMPP_PASSWORD.into(),
        ..SmscConfig::default()
    }
}

/// Polls `done` every 20 ms; on timeout fails the test showing esmed's log.
pub fn wait_until(timeout: Duration, what: &str, esmed: &Esmed, done: impl FnMut() -> bool) {
    wait_showing(timeout, what, || esmed.log(), done);
}

/// Polls `done` every 20 ms; on timeout fails the test showing the esmed log `log` reads.
pub fn wait_showing(
    timeout: Duration,
    what: &str,
    log: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}\n--- esmed log ---\n{}",
        log()
    );
}

/// Runs `command` in the repository's directory and returns its stdout; fails the test with
/// both streams when it cannot run or exits non-zero (`what` names it in the message).
pub fn stdout_of(command: &mut Command, what: &str) -> String {
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The esmed binary running as its own process, with the log its config names.
pub struct Esmed {
    process: Process,
    pub log_path: PathBuf,
    pub config: PathBuf,
}

impl Esmed {
    pub fn start(config: &Path, log_path: PathBuf) -> Esmed {
        let process =
            Process::esmed(Path::new(env!("CARGO_BIN_EXE_esmed")), config).expect("start esmed");
        Esmed {
            process,
            log_path,
            config: config.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        if let Err(e) = self.process.signal(name) {
            panic!("{e}");
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait(timeout)
    }

    /// Waits for the exit; past `timeout` kills esmed and fails the test showing its log.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match self.process.wait(timeout) {
            Ok(status) => status,
            Err(e) => panic!("{e}\n--- log ---\n{}", self.log()),
        }
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// The bytes after the 16-octet header of a PDU given as spaced hex (the golden dumps).
pub fn body_of_hex_dump(dump: &str) -> Vec<u8> {
    let bytes = esmed::smpp::reference::dump_bytes(dump).expect("a hex dump");
    bytes[16..].to_vec()
}

/// The texts of the deliver_sm (MO and receipts) the SMSC sent: how many times it sent each,
/// and which of them it saw answered ESME_ROK (matched by connection and sequence number).
pub fn deliveries(env: &Env) -> (HashMap<String, usize>, HashSet<String>) {
    let mut sends = HashMap::new();
    let mut by_seq = HashMap::new();
    for sent in env.smsc.sent() {
        if let Body::DeliverSm(sm) = &sent.pdu.body {
            let text = String::from_utf8_lossy(&sm.short_message).into_owned();
            *sends.entry(text.clone()).or_insert(0) += 1;
            by_seq.insert((sent.connection, sent.pdu.sequence_number), text);
        }
    }
    let acked = env
        .smsc
        .deliver_sm_resps()
        .iter()
        .filter(|r| r.pdu.command_status == CommandStatus::ESME_ROK)
        .filter_map(|r| by_seq.get(&(r.connection, r.pdu.sequence_number)).cloned())
        .collect();
    (sends, acked)
}
