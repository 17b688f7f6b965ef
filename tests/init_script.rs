//! init/esmed (the SysV init script) driving the real esmed against a throwaway PostgreSQL and
//! the test SMSC: start, status, a message sent, reload re-opening the log, stop, LSB exit codes.
//! The script reads its settings from a temporary defaults file (ESMED_DEFAULTS) and runs esmed
//! as the current user, so no root and no installed files are needed.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{wait_showing, Env, DB, ESMED_PASSWORD};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/init/esmed");

/// The LSB status codes the script must return.
const RUNNING: i32 = 0;
const DEAD_WITH_PIDFILE: i32 = 1;
const STOPPED: i32 = 3;

/// The init script with its own defaults file, config, pidfile and log in a temp dir.
struct InitScript {
    defaults: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
}

impl InitScript {
    fn new(env: &Env, enabled: &str) -> InitScript {
        require_start_stop_daemon();
        let dir = &env.dir.0;
        let config = dir.join("esmed.conf");
        let log = dir.join("esmed.log");
        fs::write(&config, config_text(env, &log)).expect("write esmed.conf");
        // Inside a directory that does not exist yet, as /run/esmed after a reboot.
        let pidfile = dir.join("run/esmed.pid");
        let defaults = dir.join("default-esmed");
        let text = format!(
            "ENABLED={enabled}\nDAEMON={}\nCONFIG={}\nPIDFILE={}\nUSER={}\n",
            env!("CARGO_BIN_EXE_esmed"),
            config.display(),
            pidfile.display(),
            current_user()
        );
        fs::write(&defaults, text).expect("write the defaults file");
        InitScript {
            defaults,
            pidfile,
            log,
        }
    }

    fn run(&self, action: &str) -> Output {
        Command::new(SCRIPT)
            .arg(action)
            .env("ESMED_DEFAULTS", &self.defaults)
            .output()
            .expect("run init/esmed")
    }

    /// Runs `action` and checks its exit code; returns stdout and stderr together.
    fn expect(&self, action: &str, code: i32) -> String {
        let output = self.run(action);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            output.status.code(),
            Some(code),
            "init/esmed {action}: {text}\n--- esmed log ---\n{}",
            self.log_text()
        );
        text
    }

    /// Rotates the log with logrotate and the shipped etc/logrotate.d/esmed (its postrotate
    /// runs this script's reload), or by hand plus reload where logrotate is not installed.
    fn rotate_log(&self, dir: &Path) {
        if !have("logrotate") {
            eprintln!("logrotate not installed: rotating by hand");
            fs::rename(&self.log, self.log.with_extension("log.1")).expect("rotate the log");
            self.expect("reload", 0);
            return;
        }
        logrotate(dir, &["--force"], &self.defaults);
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for InitScript {
    /// A failed test must not leave esmed running.
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = self.run("stop");
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// Runs logrotate with the shipped etc/logrotate.d/esmed on the logs in `dir` (its
/// postrotate calls this init script with `defaults`), as the current user instead of esmed.
fn logrotate(dir: &Path, options: &[&str], defaults: &Path) {
    let shipped = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/etc/logrotate.d/esmed"
    ))
    .expect("read etc/logrotate.d/esmed");
    assert!(
        shipped.lines().any(|l| l.trim() == "su esmed esmed"),
        "rotates as esmed: {shipped}"
    );
    let config = shipped
        .replace("/var/log/esmed/", &format!("{}/", dir.display()))
        .replace("/etc/init.d/esmed", SCRIPT)
        .replace(
            "su esmed esmed",
            &format!("su {} {}", current_user(), current_group()),
        );
    let config_path = dir.join("logrotate.conf");
    fs::write(&config_path, config).expect("write logrotate.conf");
    let output = Command::new("logrotate")
        .args(options)
        .arg("--state")
        .arg(dir.join("logrotate.state"))
        .arg(&config_path)
        .env("ESMED_DEFAULTS", defaults)
        .output()
        .expect("run logrotate");
    assert!(
        output.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn require_start_stop_daemon() {
    assert!(
        have("start-stop-daemon"),
        "start-stop-daemon is missing: the init script needs it (Debian package dpkg; \
         .ci/run installs it)"
    );
}

fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn current_group() -> String {
    let output = Command::new("id").arg("-gn").output().expect("run id -gn");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn config_text(env: &Env, log: &Path) -> String {
    format!(
        "[database]\nhost = {}\nport = {}\nname = {DB}\nuser = esmed\npass = {ESMED_PASSWORD}\n\
         sslmode = disable\n\n\
         [daemon]\npoll_interval = 500ms\nreconnect_min = 100ms\nreconnect_max = 1s\n\
         stats_interval = 0\n\n\
         [log]\nfile = {}\nlevel = debug\nstderr = false\n",
        env.cluster.host(),
        env.cluster.port(),
        log.display()
    )
}

fn wait_for(what: &str, script: &InitScript, done: impl FnMut() -> bool) {
    wait_showing(Duration::from_secs(20), what, || script.log_text(), done);
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn start_status_send_reload_stop() {
    let env = Env::new("init-script");
    env.add_server(&[]);
    let script = InitScript::new(&env, "yes");

    script.expect("status", STOPPED);
    script.expect("start", 0);
    script.expect("status", RUNNING);
    let pid = script.pid().expect("start wrote the pidfile");
    script.expect("start", 0); // already running: still success, and no second daemon
    assert_eq!(script.pid(), Some(pid));

    env.insert(
        "4915112345678",
        "sent by the daemon the init script started",
    );
    wait_for("the first message to be sent", &script, || {
        env.count("submission_done") == 1
    });

    let rotated = script.log.with_extension("log.1");
    script.rotate_log(&env.dir.0);
    assert!(
        rotated.exists(),
        "the log was rotated to {}",
        rotated.display()
    );
    env.insert("4915112345678", "sent after the reload");
    wait_for("the second message to be sent", &script, || {
        env.count("submission_done") == 2
    });
    wait_for("lines in the re-opened log file", &script, || {
        !script.log_text().is_empty()
    });
    assert!(fs::metadata(&rotated).expect("rotated log").len() > 0);
    assert_eq!(script.pid(), Some(pid), "reload keeps the same process");

    script.expect("stop", 0);
    assert!(!script.pidfile.exists(), "stop removes the pidfile");
    assert!(!process_exists(pid), "esmed {pid} still running after stop");
    script.expect("status", STOPPED);
    script.expect("stop", 0); // stopping a stopped service succeeds (LSB)
    script.expect("reload", 7); // not running
}

#[test]
fn restart_replaces_the_process_and_stale_pidfile_reports_dead() {
    let env = Env::new("init-restart");
    env.add_server(&[]);
    let script = InitScript::new(&env, "yes");

    script.expect("restart", 0); // restart of a stopped service starts it
    let first = script.pid().expect("pidfile after restart");
    script.expect("force-reload", 0);
    let second = script.pid().expect("pidfile after force-reload");
    assert_ne!(
        first, second,
        "force-reload restarts (SIGHUP does not re-read esmed.conf)"
    );
    assert!(!process_exists(first));

    // A crash leaves the pidfile behind: LSB status 1.
    Command::new("kill")
        .arg("-KILL")
        .arg(second.to_string())
        .status()
        .expect("kill esmed");
    wait_for("the killed esmed to go", &script, || {
        !process_exists(second)
    });
    script.expect("status", DEAD_WITH_PIDFILE);
    script.expect("start", 0); // a stale pidfile does not block a start
    script.expect("status", RUNNING);
    script.expect("stop", 0);
}

#[test]
fn disabled_start_is_a_no_op_and_a_bad_config_fails_start() {
    let env = Env::new("init-disabled");
    let script = InitScript::new(&env, "no");
    let text = script.expect("start", 0);
    assert!(text.contains("ENABLED=no"), "{text}");
    script.expect("status", STOPPED);

    let enabled = InitScript::new(&env, "yes");
    let config = env.dir.0.join("esmed.conf");
    fs::write(&config, "[database]\nport = not-a-port\n").expect("break the config");
    // LSB 6: program is not configured; esmed's own message says why.
    let text = enabled.expect("start", 6);
    assert!(text.contains("[database] port"), "{text}");
    enabled.expect("status", STOPPED);
    let usage = enabled.run("frobnicate");
    assert_eq!(usage.status.code(), Some(2));
}

/// A log that grows fast is rotated when it passes the shipped file's size limit, before its
/// week is up: a flood cannot fill the disk between two weekly rotations.
#[test]
fn a_log_past_the_size_limit_is_rotated_before_its_week_is_up() {
    if !have("logrotate") {
        eprintln!("logrotate not installed: the shipped file's size limit not checked");
        return;
    }
    let dir = support::TempDir::new("logrotate-size");
    let log = dir.0.join("esmed.log");
    let rotated = dir.0.join("esmed.log.1");
    // No esmed runs: the postrotate's reload finds none and changes nothing.
    let defaults = dir.0.join("default-esmed");
    fs::write(&defaults, "ENABLED=no\n").expect("write the defaults file");
    fs::write(&log, "a line\n").expect("write the log");
    // The first run records the log; a week has not passed, so it stays.
    logrotate(&dir.0, &[], &defaults);
    assert!(!rotated.exists(), "rotated a small log before its week");
    // 200 MiB, sparse: far past any sensible limit, and no disk spent.
    fs::File::options()
        .append(true)
        .open(&log)
        .expect("open the log")
        .set_len(200 << 20)
        .expect("grow the log");
    logrotate(&dir.0, &[], &defaults);
    assert!(
        rotated.exists(),
        "a log past the size limit was not rotated"
    );
}
