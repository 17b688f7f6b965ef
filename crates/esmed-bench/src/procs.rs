//! The processes a benchmark runs: the test SMSC (`esmed-smsc`) and esmed itself, both the
//! release binaries beside this one, plus what /proc says about any process (CPU ticks, peak
//! RSS) so the CPU of PostgreSQL, esmed, the SMSC and the bench can be told apart.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use esmed_testkit::{Process, ProcessError};

use crate::BenchError;

/// A binary built beside this one (`target/release/NAME` when run from `make bench`).
pub fn sibling_binary(name: &str) -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("find the bench binary", e))?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::Process(format!(
            "{} not found: build it first (cargo build --release --workspace --bins)",
            path.display()
        )))
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc(Process);

impl Proc {
    /// Starts `command`, a program of another party (Kannel's boxes).
    pub fn spawn(name: &'static str, command: &mut Command) -> Result<Proc, BenchError> {
        Process::spawn(name, command)
            .map(Proc)
            .map_err(process_error)
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// CPU ticks (user + system) so far; 0 when the process is gone.
    pub fn cpu_ticks(&self) -> u64 {
        read_stat(self.pid()).map_or(0, |s| s.ticks)
    }

    /// CPU time so far in nanoseconds, exact (see [`cpu_ns`]); from the ticks when the
    /// kernel keeps no scheduler statistics.
    pub fn cpu_ns(&self, ticks_per_second: f64) -> u64 {
        cpu_ns(self.pid())
            .unwrap_or_else(|| (self.cpu_ticks() as f64 * 1e9 / ticks_per_second) as u64)
    }

    /// VmHWM, the peak resident set, in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        status_field_kb(self.pid(), "VmHWM:").unwrap_or(0)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit, then kills.
    pub fn stop(&mut self, timeout: Duration) {
        if let Err(e @ ProcessError::TimedOut(..)) = self.0.stop(timeout) {
            eprintln!("bench: {e}");
        }
    }

    /// Fails when the process has exited (it should run for the whole scenario).
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.0.try_status() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Process(format!(
                "{} exited early: {status}",
                self.0.name()
            ))),
            Err(_) => Err(BenchError::Process(format!(
                "{} is not running",
                self.0.name()
            ))),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A process that could not be started is an I/O error; the rest say what happened.
fn process_error(error: ProcessError) -> BenchError {
    match error {
        ProcessError::Spawn(name, source) => BenchError::io(&format!("start {name}"), source),
        other => BenchError::Process(other.to_string()),
    }
}

/// Starts `esmed-smsc` on a free loopback port with a journal file; returns it and its port.
pub fn start_smsc(
    journal: &Path,
    receipts_ms: Option<u64>,
    extra: &[String],
) -> Result<(Proc, u16), BenchError> {
    start_smsc_on(0, journal, receipts_ms, extra)
}

/// [`start_smsc`] on loopback port `port` (0: a free one), with `extra` flags (`--delay-ms
/// N`, `--deliver-window N`).
pub fn start_smsc_on(
    port: u16,
    journal: &Path,
    receipts_ms: Option<u64>,
    extra: &[String],
) -> Result<(Proc, u16), BenchError> {
    let mut command = Command::new(sibling_binary("esmed-smsc")?);
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--journal"])
        .arg(journal);
    if let Some(ms) = receipts_ms {
        command.args(["--receipts", &ms.to_string()]);
    }
    command.args(extra);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut process = Process::spawn("esmed-smsc", &mut command).map_err(process_error)?;
    let stdout = process.take_stdout();
    let proc = Proc(process);
    let port = read_listening_port(stdout)?;
    Ok((proc, port))
}

/// The port from the SMSC's first line, `listening on 127.0.0.1:PORT`.
fn read_listening_port(stdout: Option<ChildStdout>) -> Result<u16, BenchError> {
    let stdout = stdout.ok_or_else(|| BenchError::Process("esmed-smsc: no stdout".into()))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| BenchError::io("read esmed-smsc's first line", e))?;
    parse_listening_port(&line)
        .ok_or_else(|| BenchError::Process(format!("esmed-smsc said {line:?}")))
}

fn parse_listening_port(line: &str) -> Option<u16> {
    line.trim()
        .strip_prefix("listening on ")?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// Starts esmed with `config` (its log goes where the config says).
pub fn start_esmed(config: &Path) -> Result<Proc, BenchError> {
    start_esmed_at(&sibling_binary("esmed")?, config)
}

/// [`start_esmed`] with another esmed binary (another version, to compare with).
pub fn start_esmed_at(binary: &Path, config: &Path) -> Result<Proc, BenchError> {
    let process = Process::esmed(binary, config).map_err(process_error)?;
    Ok(Proc(process))
}

/// What /proc/PID/stat says that we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// cutime + cstime: the ticks of children that ended and were waited for.
    pub ended_children_ticks: u64,
}

pub fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a /proc/PID/stat line; the command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some(ProcStat {
        ppid,
        ticks: utime + stime,
        ended_children_ticks: cutime + cstime,
    })
}

fn status_field_kb(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// CPU ticks of `root` and all its direct children (the postmaster and its backends),
/// including children that have ended: a backend whose connection closed before the
/// snapshot (the ceiling's claimer) still counts.
pub fn process_tree_ticks(root: u32) -> u64 {
    let own = read_stat(root).map_or(0, |s| s.ticks + s.ended_children_ticks);
    let Ok(entries) = fs::read_dir("/proc") else {
        return own;
    };
    let children: u64 = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .filter(|s| s.ppid == root)
        .map(|s| s.ticks)
        .sum();
    own + children
}

/// CPU time of `pid`'s live threads so far, in nanoseconds, from each thread's
/// /proc/PID/task/TID/schedstat: exact to the last tick or switch, where /proc/PID/stat counts
/// whole 10 ms ticks (a tenth of a second of a drain that uses a fifth of a core is 2 ticks).
/// None when there is no such file (the process is gone, or no scheduler statistics).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let times: Vec<u64> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse().ok())
        .collect();
    (!times.is_empty()).then(|| times.iter().sum())
}

/// [`cpu_ns`] of `root` and its live children (the postmaster and its backends).
pub fn process_tree_ns(root: u32) -> Option<u64> {
    let own = cpu_ns(root)?;
    let entries = fs::read_dir("/proc").ok()?;
    let children: u64 = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| read_stat(pid).is_some_and(|s| s.ppid == root))
        .filter_map(cpu_ns)
        .sum();
    Some(own + children)
}

/// CPU ticks of this process.
pub fn own_ticks() -> u64 {
    read_stat(std::process::id()).map_or(0, |s| s.ticks)
}

/// Busy and total jiffies of the whole machine, from /proc/stat's `cpu` line.
pub fn machine_ticks() -> (u64, u64) {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let numbers: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    let total: u64 = numbers.iter().sum();
    // idle + iowait
    let idle = numbers.get(3).copied().unwrap_or(0) + numbers.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when that fails).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_counted_from_the_last_parenthesis() {
        let line = "1234 (a (weird) name) S 77 1 1 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 4 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                ppid: 77,
                ticks: 300,
                ended_children_ticks: 10,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_has_a_stat() {
        assert!(read_stat(std::process::id()).is_some());
    }

    #[test]
    fn listening_line_gives_the_port() {
        assert_eq!(
            parse_listening_port("listening on 127.0.0.1:40123\n"),
            Some(40123)
        );
        assert_eq!(parse_listening_port("hello"), None);
    }
}
