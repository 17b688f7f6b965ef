//! A program run as a child process for a test or a benchmark, above all esmed itself: how it
//! is started (`esmed -c CONFIG`, stdout discarded, stderr passed through), signalled, waited
//! for within a timeout (killed when it overstays) and killed when dropped.

use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a wait looks whether the process has exited.
const POLL: Duration = Duration::from_millis(20);

/// What went wrong with a child process.
#[derive(Debug)]
pub enum ProcessError {
    /// It could not be started.
    Spawn(&'static str, io::Error),
    /// It was already waited for (or killed).
    NotRunning(&'static str),
    /// `kill -SIGNAL` could not be run or failed.
    Signal(&'static str, String),
    /// It did not exit within the timeout, so it was killed.
    TimedOut(&'static str, Duration),
    /// Asking whether it has exited failed.
    Wait(&'static str, io::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Spawn(name, e) => write!(f, "start {name}: {e}"),
            ProcessError::NotRunning(name) => write!(f, "{name} is not running"),
            ProcessError::Signal(name, why) => write!(f, "signal {name}: {why}"),
            ProcessError::TimedOut(name, timeout) => {
                write!(f, "{name} did not exit within {timeout:?}; killed it")
            }
            ProcessError::Wait(name, e) => write!(f, "wait for {name}: {e}"),
        }
    }
}

impl std::error::Error for ProcessError {}

/// A child process, killed (SIGKILL) when dropped unless it was waited for.
pub struct Process {
    name: &'static str,
    child: Option<Child>,
}

impl Process {
    /// Starts `command` as the process called `name` in messages.
    pub fn spawn(name: &'static str, command: &mut Command) -> Result<Process, ProcessError> {
        let child = command.spawn().map_err(|e| ProcessError::Spawn(name, e))?;
        Ok(Process {
            name,
            child: Some(child),
        })
    }

    /// Starts the esmed binary `program` with `config`: no stdin, stdout discarded (it logs
    /// where the config says), stderr passed through so a failed start shows in the output.
    pub fn esmed(program: &Path, config: &Path) -> Result<Process, ProcessError> {
        Process::spawn(
            "esmed",
            Command::new(program)
                .arg("-c")
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
    }

    /// What messages call it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The process id; 0 once it was waited for.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its stdout, when it was started with a piped one (taken once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// Sends signal `name` (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, name: &str) -> Result<(), ProcessError> {
        // Never `kill 0`: that would signal this whole process group.
        let child = self
            .child
            .as_ref()
            .ok_or(ProcessError::NotRunning(self.name))?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .map_err(|e| ProcessError::Signal(self.name, format!("run kill: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(ProcessError::Signal(
                self.name,
                format!("kill -{name} failed"),
            ))
        }
    }

    /// Its exit status if it has exited, `None` while it runs; it stays waitable.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        let child = self
            .child
            .as_mut()
            .ok_or(ProcessError::NotRunning(self.name))?;
        child
            .try_wait()
            .map_err(|e| ProcessError::Wait(self.name, e))
    }

    /// Waits up to `timeout` for the exit; past it, kills the process and says so.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(ProcessError::TimedOut(self.name, timeout));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then [`Process::wait`]; a process already gone is only waited for.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        // kill(1) fails for a process that has already exited; the wait then reaps it.
        let _ = self.signal("TERM");
        self.wait(timeout)
    }

    /// SIGKILL and reap: the crash case.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Process {
        Process::spawn("sh", Command::new("sh").args(["-c", script])).expect("start sh")
    }

    #[test]
    fn exit_status_is_returned() {
        let mut process = sh("exit 3");
        let status = process.wait(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(3));
        assert_eq!(process.pid(), 0);
        assert!(matches!(
            process.wait(Duration::from_secs(1)),
            Err(ProcessError::NotRunning("sh"))
        ));
    }

    #[test]
    fn stop_terminates_with_sigterm() {
        let mut process = sh("trap 'exit 7' TERM; while :; do sleep 0.05; done");
        std::thread::sleep(Duration::from_millis(200));
        let status = process.stop(Duration::from_secs(10)).expect("stops");
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn overstaying_process_is_killed() {
        let mut process = sh("trap '' TERM; while :; do sleep 0.05; done");
        std::thread::sleep(Duration::from_millis(200));
        let err = process.stop(Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ProcessError::TimedOut("sh", _)), "{err}");
        assert_eq!(process.pid(), 0, "killed and reaped");
    }

    #[test]
    fn signal_to_a_reaped_process_fails() {
        let mut process = sh("exit 0");
        process.wait(Duration::from_secs(10)).expect("exits");
        assert!(matches!(
            process.signal("TERM"),
            Err(ProcessError::NotRunning("sh"))
        ));
    }
}
