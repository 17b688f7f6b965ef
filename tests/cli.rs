//! Runs the built `esmed` binary: --version, --help, --check-config on good and bad files, and a
//! start with logging. Checks exit codes, that errors are exactly one stderr line naming the
//! problem, and that the database password never appears in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWORD: &str = "pw-Zq81-secret";

/// A directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("esmed-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes `esmed.conf` with `mode` and returns its path.
    fn config(&self, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join("esmed.conf");
        std::fs::write(&path, text).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn esmed(args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_esmed"))
        .args(args)
        .output()
        .expect("run esmed");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "password leaked: {}{}",
        run.stdout,
        run.stderr
    );
    run
}

fn check_config(path: &Path) -> Run {
    esmed(&["--check-config", "-c", path.to_str().expect("utf-8 path")])
}

/// Asserts exit code 1 and that stderr is exactly `expected` on one line.
fn assert_one_line_error(run: &Run, expected: &str) {
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert_eq!(run.stderr, format!("{expected}\n"));
    assert_eq!(run.stdout, "");
}

fn good_config() -> String {
    format!("[database]\nhost = localhost\nport = 5432\nname = esmed\nuser = esmed\npass = {PASSWORD}\n")
}

#[test]
fn version_prints_the_crate_version() {
    for flag in ["--version", "-V"] {
        let run = esmed(&[flag]);
        assert_eq!(run.code, Some(0));
        assert_eq!(run.stdout, format!("esmed {}\n", env!("CARGO_PKG_VERSION")));
        assert_eq!(run.stderr, "");
    }
}

#[test]
fn help_lists_the_options() {
    let run = esmed(&["--help"]);
    assert_eq!(run.code, Some(0));
    for option in ["--config FILE", "--check-config", "--version", "--help"] {
        assert!(run.stdout.contains(option), "{option}: {}", run.stdout);
    }
}

#[test]
fn unknown_option_is_a_usage_error() {
    let run = esmed(&["--frobnicate"]);
    assert_eq!(run.code, Some(2));
    assert!(run
        .stderr
        .starts_with("esmed: unknown option '--frobnicate'\nusage: esmed"));
}

#[test]
fn check_config_accepts_a_good_file_silently() {
    let dir = TempDir::new("good");
    let path = dir.config(&good_config(), 0o640);
    let run = check_config(&path);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, format!("OK: {}\n", path.display()));
    assert_eq!(run.stderr, "");
}

#[test]
fn check_config_warns_about_unknown_keys_and_permissions() {
    let dir = TempDir::new("warn");
    let text = format!("{}[daemon]\npol_interval = 5\n", good_config());
    let path = dir.config(&text, 0o644);
    let run = check_config(&path);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, format!("OK: {}\n", path.display()));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines[0].starts_with(&format!(
        "warning: {}: [daemon] unknown key 'pol_interval' ignored (known: ",
        path.display()
    )));
    assert!(lines[1].contains("is readable by every user (mode 0644)"));
}

#[test]
fn check_config_accepts_the_old_python_daemon_file() {
    let dir = TempDir::new("python");
    let text = format!(
        "{}\n[loggers]\nkeys = root\n[handlers]\nkeys = fileHandler\n[handler_fileHandler]\n\
         args = ('/var/log/esmed/esmed.log', 'D', 1, 10)\n[formatter_myFormatter]\n\
         format = %(asctime)s | %(levelname)-8s | %(message)s\n",
        good_config()
    );
    let path = dir.config(&text, 0o600);
    let run = check_config(&path);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("Python logging sections ignored"));
}

/// A config whose only section is misspelt would run on built-in defaults: refused in one
/// line naming the near miss, by --check-config and by a start, which connects to nothing.
#[test]
fn a_config_without_its_database_section_fails_in_one_line() {
    let dir = TempDir::new("databse");
    let text = good_config().replace("[database]", "[databse]");
    let path = dir.config(&text, 0o600);
    let expected = format!(
        "{}: no [database] section: esmed does not guess which database to use (host, name, \
         user, pass); did you mean [database] for [databse]?",
        path.display()
    );
    assert_one_line_error(&check_config(&path), &expected);
    let run = esmed(&["-c", path.to_str().expect("utf-8 path")]);
    assert_one_line_error(&run, &expected);

    let path = dir.config("[database]\n[daemon]\nlease = 5m\n", 0o600);
    let run = check_config(&path);
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.ends_with(
            "[database] sets nothing: esmed does not guess which database to \
             use (host, name, user, pass)\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn missing_file_is_one_line() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("nope.conf");
    let expected = format!(
        "{}: cannot read: No such file or directory (os error 2)",
        path.display()
    );
    assert_one_line_error(&check_config(&path), &expected);
    let run = esmed(&["-c", path.to_str().expect("utf-8 path")]);
    assert_one_line_error(&run, &expected);
}

#[test]
fn broken_ini_is_one_line_with_the_line_number() {
    let dir = TempDir::new("broken");
    let text = format!("{}[daemon\npoll_interval = 5\n", good_config());
    let path = dir.config(&text, 0o600);
    let expected = format!(
        "{}: line 7: section header has no closing ']'",
        path.display()
    );
    assert_one_line_error(&check_config(&path), &expected);
}

#[test]
fn non_numeric_port_is_one_line_naming_section_and_key() {
    let dir = TempDir::new("port");
    let text = good_config().replace("port = 5432", "port = abc");
    let path = dir.config(&text, 0o600);
    let expected = format!(
        "{}: [database] port: 'abc' is not a port number (1-65535)",
        path.display()
    );
    assert_one_line_error(&check_config(&path), &expected);
    let run = esmed(&["--config", path.to_str().expect("utf-8 path")]);
    assert_one_line_error(&run, &expected);
}

/// A run against a real cluster whose esmed role has another password: esmed must stop at
/// once with one line naming the problem (retrying cannot fix a password), having logged its
/// start and the config warnings, and print the password nowhere.
#[test]
fn run_with_a_wrong_database_password_fails_in_one_line_without_the_password() {
    let cluster = cluster_with_schema("the-right-one");
    let dir = TempDir::new("run");
    let log_path = dir.0.join("esmed.log");
    let text = format!(
        "{}[daemon]\nbogus = 1\n[log]\nfile = {}\nlevel = debug\nstderr = false\n",
        good_config()
            .replace("localhost", cluster.host())
            .replace("5432", &cluster.port().to_string()),
        log_path.display()
    );
    let path = dir.config(&text, 0o600);
    let run = esmed(&["-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("password authentication failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    let log = std::fs::read_to_string(&log_path).expect("log file");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(log.contains("[WARN ] "), "{log}");
    assert!(log.contains("unknown key 'bogus'"), "{log}");
    assert!(
        log.contains(&format!("starting with {}", path.display())),
        "{log}"
    );
    let mode = std::fs::metadata(&log_path)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "log file mode {mode:o}");
}

#[test]
fn run_with_unwritable_log_file_is_one_line() {
    let dir = TempDir::new("badlog");
    let log_path = dir.0.join("missing-dir").join("esmed.log");
    let text = format!("{}[log]\nfile = {}\n", good_config(), log_path.display());
    let path = dir.config(&text, 0o600);
    let run = esmed(&["-c", path.to_str().expect("utf-8 path")]);
    let expected = format!(
        "{}: cannot open log file: No such file or directory (os error 2)",
        log_path.display()
    );
    assert_one_line_error(&run, &expected);
}

/// A schema older than this esmed (here: the development schema before receipt keys moved to
/// smpp_tx_queue and redelivered MO parts were recognised) stops esmed at start with one line naming the missing column and the fix,
/// instead of failing every result write and resending those rows after their lease.
#[test]
fn an_older_schema_stops_esmed_with_the_upgrade_to_run() {
    let cluster = cluster_with_schema(PASSWORD);
    cluster
        .superuser_client("esmed")
        .expect("superuser")
        .batch_execute(
            "ALTER TABLE smpp_tx_queue DROP COLUMN smpp_message_id_key; \
             DROP TABLE smpp_rx_parts_done",
        )
        .expect("drop the column");
    let dir = TempDir::new("old-schema");
    let text = format!(
        "{}[log]\nfile = {}\nstderr = false\n",
        good_config()
            .replace("localhost", cluster.host())
            .replace("5432", &cluster.port().to_string()),
        dir.0.join("esmed.log").display()
    );
    let path = dir.config(&text, 0o600);
    let run = esmed(&["-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains("lacks smpp_tx_queue.smpp_message_id_key, smpp_rx_parts_done.text_bytes")
            && run.stderr.contains("sql/upgrade-0.2-dev.sql")
            && run.stderr.contains("sql/upgrade-0.2.sql"),
        "{}",
        run.stderr
    );
}

/// A throwaway cluster with esmed's schema whose esmed role has `password`.
fn cluster_with_schema(password: &str) -> esmed_testkit::PgCluster {
    let cluster = esmed_testkit::PgCluster::start().expect("start PostgreSQL");
    cluster.create_database("esmed").expect("create database");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/db.sql");
    cluster.load_schema("esmed", &schema).expect("load schema");
    drop(
        cluster
            .esmed_client("esmed", password)
            .expect("set the role's password"),
    );
    cluster
}
