//! Logging set up from `[log]`: simplelog to a file and/or stderr, re-openable after logrotate.
//!
//! `init` installs the global logger once and returns a `LogHandle`; on SIGHUP the daemon calls
//! `LogHandle::reopen` so lines go to the new file logrotate left behind. Writing to the file
//! never panics: when the file cannot be written or re-opened, lines go to stderr with a note.
//!
//! Log lines quote what the SMSC and phones send (addresses, system_id, message ids, texts)
//! and what errors carry (a certificate's names, a server's message). Every message is
//! written as one line with its control characters escaped ([`one_line`]), whatever its
//! source, so that nobody can forge or hide a log line. Warnings that one PDU each can cause
//! are counted rather than logged past a few a minute ([`repeats`]).

pub(crate) mod repeats;

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use log::{LevelFilter, Log, Metadata, Record};
use simplelog::{
    CombinedLogger, ConfigBuilder, LevelPadding, SharedLogger, ThreadLogMode, WriteLogger,
};

use crate::config::LogConfig;

/// Lets the daemon re-open the log file; cheap to clone into the signal thread.
#[derive(Clone, Debug, Default)]
pub struct LogHandle {
    file: Option<Arc<LogFile>>,
}

/// Why logging could not start; `Display` is one line.
#[derive(Debug)]
pub enum LogError {
    OpenFile {
        path: PathBuf,
        source: io::Error,
    },
    /// A global logger was already installed (only possible in tests).
    AlreadyInitialized,
}

/// Installs the global logger as `config` says. Call once, early, before threads start: the
/// local time offset can only be read safely while the process has a single thread.
pub fn init(config: &LogConfig) -> Result<LogHandle, LogError> {
    let format = simplelog_format();
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    let mut handle = LogHandle::default();
    if let Some(path) = &config.file {
        let log_file = Arc::new(LogFile::open(path, !config.stderr)?);
        let writer = LogFileWriter(Arc::clone(&log_file));
        loggers.push(WriteLogger::new(config.level, format.clone(), writer));
        handle.file = Some(log_file);
    }
    if config.stderr {
        loggers.push(WriteLogger::new(config.level, format, io::stderr()));
    }
    let logger = CombinedLogger::new(loggers);
    let level = logger.level();
    log::set_boxed_logger(Box::new(OneLine(logger))).map_err(|_| LogError::AlreadyInitialized)?;
    log::set_max_level(level);
    Ok(handle)
}

/// `text` with every character that could end a log line or disguise one escaped as Rust
/// writes it (`\n`, `\r`, `\u{1b}`): control characters (NUL, ESC, DEL and the rest of C0
/// and C1, NEL among them), the Unicode line and paragraph separators, and the
/// bidirectional controls that make a terminal show text in another order. Backslashes
/// stay as they are, so escaping twice changes nothing.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Where the lines esmed does not write come from. The PostgreSQL client logs every
/// statement with its parameters at debug level: message texts and numbers by the thousand,
/// and whatever a statement passes. esmed logs what it does itself.
const IGNORED_TARGETS: &[&str] = &["tokio_postgres"];

/// The installed logger: every message through [`one_line`] before simplelog formats it,
/// except those of [`IGNORED_TARGETS`], which are not even formatted.
struct OneLine<L>(L);

impl<L: Log> Log for OneLine<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let target = metadata.target();
        !IGNORED_TARGETS.iter().any(|t| target.starts_with(t)) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = match record.args().as_str() {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(record.args().to_string()),
        };
        self.0.log(
            &Record::builder()
                .args(format_args!("{}", one_line(&message)))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

impl LogHandle {
    /// Opens the log file's path again (after logrotate moved the old one away). On failure the
    /// lines go to stderr until a later `reopen` succeeds. Without a log file this does nothing.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(log_file) => log_file.reopen(),
            None => Ok(()),
        }
    }

    /// The log file, if one is configured.
    #[cfg(test)]
    pub(crate) fn file_path(&self) -> Option<&Path> {
        self.file.as_deref().map(|log_file| log_file.path.as_path())
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::OpenFile { path, source } => {
                write!(f, "{}: cannot open log file: {source}", path.display())
            }
            LogError::AlreadyInitialized => f.write_str("logging is already initialised"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::OpenFile { source, .. } => Some(source),
            LogError::AlreadyInitialized => None,
        }
    }
}

/// "2026-11-25T17:59:00.123456789+01:00 [INFO ] message"; at debug and trace also the thread
/// and module.
fn simplelog_format() -> simplelog::Config {
    let mut builder = ConfigBuilder::new();
    builder
        // A custom format would need the `time` crate as a direct dependency; RFC 3339 carries
        // the date, the time and the offset, which is what matters when reading logs.
        .set_time_format_rfc3339()
        .set_level_padding(LevelPadding::Right)
        .set_thread_level(LevelFilter::Debug)
        .set_thread_mode(ThreadLogMode::Names)
        .set_target_level(LevelFilter::Debug)
        .set_location_level(LevelFilter::Off);
    // Fails once threads exist (the time crate refuses then); UTC is the fallback.
    let _ = builder.set_time_offset_to_local();
    builder.build()
}

/// The log file, shared by the logger (which writes) and the `LogHandle` (which re-opens).
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    /// Copy lines to stderr while the file is unusable; off when stderr logging already has them.
    fallback_to_stderr: bool,
    state: Mutex<LogFileState>,
}

#[derive(Debug)]
struct LogFileState {
    /// `None` after a failed re-open.
    file: Option<File>,
    /// Whether stderr has been told that the file is unusable, so the note appears once.
    failure_reported: bool,
}

/// The `Write` half handed to simplelog.
struct LogFileWriter(Arc<LogFile>);

impl LogFile {
    fn open(path: &Path, fallback_to_stderr: bool) -> Result<LogFile, LogError> {
        let file = open_append(path).map_err(|source| LogError::OpenFile {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LogFile {
            path: path.to_path_buf(),
            fallback_to_stderr,
            state: Mutex::new(LogFileState {
                file: Some(file),
                failure_reported: false,
            }),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let mut state = self.lock();
        match open_append(&self.path) {
            Ok(file) => {
                state.file = Some(file);
                state.failure_reported = false;
                Ok(())
            }
            Err(error) => {
                state.file = None;
                report_failure(&mut state, &self.path, "re-open", &error);
                Err(error)
            }
        }
    }

    /// Writes to the file, or to stderr when that fails; never returns an error so that
    /// simplelog has nothing to give up on.
    fn write_or_fall_back(&self, bytes: &[u8]) {
        let mut state = self.lock();
        let result = match state.file.as_mut() {
            Some(file) => file.write_all(bytes),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "log file is closed",
            )),
        };
        if let Err(error) = result {
            report_failure(&mut state, &self.path, "write", &error);
            if self.fallback_to_stderr {
                let _ = io::stderr().write_all(bytes);
            }
        }
    }

    /// A panic while holding the lock cannot leave the file in a state worse than a torn line.
    fn lock(&self) -> MutexGuard<'_, LogFileState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn report_failure(state: &mut LogFileState, path: &Path, action: &str, error: &io::Error) {
    if !state.failure_reported {
        state.failure_reported = true;
        let _ = writeln!(
            io::stderr(),
            "esmed: cannot {action} log file {}: {error}; logging to stderr until SIGHUP re-opens it",
            path.display()
        );
    }
}

/// Appends, creating the file readable by the owner's group only: log lines may name numbers.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl Write for LogFileWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write_or_fall_back(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(file) = self.0.lock().file.as_mut() {
            let _ = file.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("esmed-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn writer_for(path: &Path) -> (LogFileWriter, Arc<LogFile>) {
        let log_file = Arc::new(LogFile::open(path, false).expect("open"));
        (LogFileWriter(Arc::clone(&log_file)), log_file)
    }

    #[test]
    fn file_is_created_0640_and_appended() {
        let dir = temp_dir("create");
        let path = dir.join("esmed.log");
        std::fs::write(&path, "old\n").expect("seed");
        std::fs::remove_file(&path).expect("remove");
        let (mut writer, _) = writer_for(&path);
        writer.write_all(b"one\n").expect("write");
        let (mut again, _) = writer_for(&path);
        again.write_all(b"two\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o007, 0, "mode {mode:o}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn reopen_follows_logrotate() {
        let dir = temp_dir("rotate");
        let path = dir.join("esmed.log");
        let rotated = dir.join("esmed.log.1");
        let (mut writer, log_file) = writer_for(&path);
        writer.write_all(b"before\n").expect("write");
        std::fs::rename(&path, &rotated).expect("rotate");
        writer.write_all(b"still old\n").expect("write");
        log_file.reopen().expect("reopen");
        writer.write_all(b"after\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&rotated).expect("read"),
            "before\nstill old\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "after\n");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn vanished_directory_does_not_panic_and_recovers() {
        let dir = temp_dir("vanish");
        let path = dir.join("esmed.log");
        let (mut writer, log_file) = writer_for(&path);
        std::fs::remove_dir_all(&dir).expect("remove dir");
        assert!(log_file.reopen().is_err());
        writer.write_all(b"goes nowhere\n").expect("never an error");
        writer.flush().expect("never an error");
        std::fs::create_dir_all(&dir).expect("recreate");
        log_file.reopen().expect("reopen");
        writer.write_all(b"back\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "back\n");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn open_failure_is_one_line_naming_the_file() {
        let error =
            LogFile::open(Path::new("/nonexistent/dir/esmed.log"), true).expect_err("cannot open");
        assert_eq!(
            error.to_string(),
            "/nonexistent/dir/esmed.log: cannot open log file: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn control_characters_and_line_separators_are_escaped() {
        assert_eq!(one_line("plain é 😀 \\n"), "plain é 😀 \\n");
        assert!(matches!(one_line("plain"), Cow::Borrowed(_)));
        assert_eq!(
            one_line("a\nb\r\nc\td\u{1b}[2Je\0f\u{7f}g\u{85}h"),
            "a\\nb\\r\\nc\\td\\u{1b}[2Je\\u{0}f\\u{7f}g\\u{85}h"
        );
        assert_eq!(
            one_line("x\u{2028}y\u{2029}z\u{202e}w\u{2066}v"),
            "x\\u{2028}y\\u{2029}z\\u{202e}w\\u{2066}v"
        );
        let forged = "id\n2026-01-01 00:00:00 [ERROR] forged";
        assert_eq!(one_line(&one_line(forged)), one_line(forged));
        assert_eq!(one_line(forged).lines().count(), 1);
    }

    /// A `Write` that keeps what simplelog wrote, for the logger's own tests.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_logger_writes_every_message_as_one_line() {
        let captured = Captured::default();
        let inner = WriteLogger::new(LevelFilter::Info, simplelog_format(), captured.clone());
        let logger = OneLine(*inner);
        let system_id = "smsc\n2026-01-01 00:00:00 [ERROR] forged";
        logger.log(
            &Record::builder()
                .args(format_args!("bound (SMSC system_id '{system_id}')"))
                .level(log::Level::Info)
                .target("esmed")
                .build(),
        );
        logger.log(
            &Record::builder()
                .args(format_args!("not at this level\n"))
                .level(log::Level::Debug)
                .target("esmed")
                .build(),
        );
        logger.log(
            &Record::builder()
                .args(format_args!(
                    "executing statement s1 with parameters: ['secret']"
                ))
                .level(log::Level::Info)
                .target("tokio_postgres::query")
                .build(),
        );
        let written = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(written.lines().count(), 1, "{written}");
        assert!(
            written.ends_with(
                "[INFO ] bound (SMSC system_id 'smsc\\n2026-01-01 00:00:00 [ERROR] forged')\n"
            ),
            "{written}"
        );
    }

    #[test]
    fn handle_without_file_reopens_nothing() {
        let handle = LogHandle::default();
        assert!(handle.reopen().is_ok());
        assert_eq!(handle.file_path(), None);
    }
}
