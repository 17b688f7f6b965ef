//! esmed.conf: what the daemon reads at start, with defaults for every key.
//!
//! `Config::load` reads the INI file (the old Python daemon's file keeps working); every
//! problem that stops esmed from running is a `ConfigError` whose `Display` is one line naming
//! the file, section, key and why. Everything merely ignored (unknown keys and sections, Python
//! logging sections) lands in `Config::warnings` for the caller to log. Each key and its default
//! is documented in `etc/esmed.conf`. This module does no logging itself.

mod key_reader;
mod purge;
mod sections;
mod value;

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::smpp::receipt::IdMatch;
use crate::tls::{TlsParams, Verify};
use key_reader::KeyReader;
pub use purge::PurgeConfig;
pub(crate) use value::{format_duration, parse_duration};

/// Where esmed looks for its config when `-c` is not given.
pub(crate) const DEFAULT_PATH: &str = "/etc/esmed/esmed.conf";

/// How long the init script and the systemd unit wait after SIGTERM before they KILL esmed
/// (init/esmed, init/esmed.service): the longest drain, the unbind and the last commits.
pub(crate) const STOP_BEFORE_KILL: Duration = Duration::from_secs(90);

/// The longest `shutdown_timeout` esmed uses, so that its stop ends before
/// [`STOP_BEFORE_KILL`]: after the drain come the unbind (at most
/// [`crate::session::UNBIND_WAIT`]) and the last commits.
pub(crate) const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// TCP keepalives on esmed's connections to PostgreSQL (ignored over a Unix socket): the
/// first probe after this long without traffic, the next ones this far apart, the
/// connection given up after this many unanswered.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// How long data esmed sent to PostgreSQL may stay unacknowledged by the server's TCP stack
/// before the connection counts as lost (Linux's TCP_USER_TIMEOUT).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything esmed.conf configures.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for messages.
    pub path: PathBuf,
    pub database: DatabaseConfig,
    pub(crate) daemon: DaemonConfig,
    pub log: LogConfig,
    /// `[purge]`: the connection and pace of `esmed purge`.
    pub purge: PurgeConfig,
    /// Things that were ignored or look risky, each one line naming the file; the caller logs them.
    pub warnings: Vec<String>,
}

/// `[database]`: how to reach PostgreSQL. The keys are the old daemon's, plus a few.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The servers to try, in order, as libpq's `host` and `port` lists give them; the first
    /// that takes the connection (and, with `target_session_attrs = read-write`, allows
    /// writes) is used.
    pub hosts: Vec<DbHost>,
    /// Which server of `hosts` will do (libpq's `target_session_attrs`).
    pub target_session_attrs: SessionAttrs,
    pub name: String,
    pub user: String,
    pub pass: Secret,
    pub sslmode: SslMode,
    /// The CAs to trust for the server's certificate (libpq's `sslrootcert`, a PEM file);
    /// None: the system's trust store.
    pub sslrootcert: Option<PathBuf>,
    /// Our certificate chain and its key (libpq's `sslcert` and `sslkey`, PEM), for a server
    /// whose pg_hba.conf asks for a client certificate; both or neither.
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Shown in `pg_stat_activity`, so a DBA can tell esmed's connections apart.
    pub application_name: String,
}

/// One PostgreSQL server of `[database] host`: a host name or address, or the directory of
/// its Unix socket when it starts with `/`, and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbHost {
    pub host: String,
    pub port: u16,
}

impl DbHost {
    pub fn new(host: impl Into<String>, port: u16) -> DbHost {
        DbHost {
            host: host.into(),
            port,
        }
    }

    /// Whether this is a Unix socket directory, where TLS does not apply.
    pub(crate) fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

/// How log lines and `esmed status` name the server: `host:port`, `[v6]:port`, or the
/// socket's file.
impl fmt::Display for DbHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = crate::logging::one_line(&self.host);
        if self.is_unix_socket() {
            write!(f, "{}/.s.PGSQL.{}", host.trim_end_matches('/'), self.port)
        } else if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

/// libpq's `target_session_attrs`, the values that make sense for esmed, which writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    /// The first server that takes the connection, even a standby (where every write fails
    /// until esmed reconnects).
    Any,
    /// Only a server that allows writes: a standby in the list is passed over, so after a
    /// failover esmed finds the new primary.
    ReadWrite,
}

/// libpq's sslmode values, with libpq's meaning (see `db::connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `[daemon]`: how the daemon paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DaemonConfig {
    /// Written at start and removed at exit when set; the init script passes one.
    pub(crate) pidfile: Option<PathBuf>,
    /// Names this process in the rows it claims, so several esmed processes can share a queue;
    /// unique among live processes (see `db::instance`). Default: the host name.
    pub(crate) instance: String,
    /// Whether `instance` was set in the file: a set name in use by another esmed stops this
    /// one; the default name is then replaced by another (`host-2`, ...).
    pub(crate) instance_given: bool,
    /// Fallback poll of the queue, for when a NOTIFY was missed.
    pub(crate) poll_interval: Duration,
    /// Claimed rows kept ready to submit, at least (see `db::poller`).
    pub(crate) claim_batch: u32,
    /// Results written back per transaction.
    pub(crate) result_batch: u32,
    /// How long a claimed row stays reserved for this process before another may take it.
    pub(crate) lease: Duration,
    /// Longest message accepted, in SMS segments.
    pub(crate) max_segments: u32,
    /// Largest PDU read from the SMSC (command_length cap) before the connection is dropped.
    pub(crate) max_pdu_size: u32,
    /// On SIGTERM, how long to wait for outstanding responses before unbinding anyway.
    pub(crate) shutdown_timeout: Duration,
    /// First and largest delay between SMSC reconnect attempts (exponential backoff).
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    /// Period of the info line with counts and rates; zero turns it off.
    pub(crate) stats_interval: Duration,
    /// Largest delay between PostgreSQL reconnect attempts.
    pub(crate) db_reconnect_max: Duration,
    /// Delay before a row that failed transiently is tried again, doubled per attempt up to
    /// retry_max.
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    /// How receipt ids are compared with submit_sm_resp ids.
    pub(crate) receipt_id_match: IdMatch,
    /// How long a receipt whose message is not known (yet) keeps being matched.
    pub(crate) receipt_match_window: Duration,
    /// How long the parts of a concatenated MO wait for the rest of their set.
    pub(crate) mo_reassembly_timeout: Duration,
    /// How often this instance's esmed_status row is written; zero turns it off.
    pub(crate) heartbeat_interval: Duration,
    /// Segments the SMSC accepted whose results are not committed yet, per session, besides
    /// the window: a killed esmed resends at most `smpp_window` plus this many.
    pub(crate) max_uncommitted_results: u32,
    /// Count answered-but-uncommitted results inside the window instead, so a killed esmed
    /// resends at most one window, at the cost of each window waiting for a commit.
    pub(crate) strict_resend_bound: bool,
}

/// `[log]`: where log lines go. Replaces the old Python logging sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Appended to and re-opened on SIGHUP; `None` logs to stderr only.
    pub(crate) file: Option<PathBuf>,
    pub(crate) level: log::LevelFilter,
    pub stderr: bool,
}

/// A password: prints as `***` so it cannot leak through `Debug`, `Display` or a log line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// Why esmed cannot run with this config; `Display` is one line.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read at all.
    Unreadable { path: PathBuf, source: io::Error },
    /// The file is not INI; `line` is 1-based.
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A section esmed cannot run without is missing or sets nothing.
    Incomplete { path: PathBuf, reason: String },
    /// A key's value is unusable.
    BadValue {
        path: PathBuf,
        section: &'static str,
        key: &'static str,
        value: String,
        reason: String,
    },
}

const DATABASE_KEYS: &[&str] = &[
    "host",
    "port",
    "target_session_attrs",
    "name",
    "user",
    "pass",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
];
const DAEMON_KEYS: &[&str] = &[
    "pidfile",
    "instance",
    "poll_interval",
    "claim_batch",
    "result_batch",
    "lease",
    "max_segments",
    "max_pdu_size",
    "shutdown_timeout",
    "reconnect_min",
    "reconnect_max",
    "stats_interval",
    "db_reconnect_max",
    "retry_min",
    "retry_max",
    "receipt_id_match",
    "receipt_match_window",
    "mo_reassembly_timeout",
    "heartbeat_interval",
    "max_uncommitted_results",
    "strict_resend_bound",
];
const LOG_KEYS: &[&str] = &["file", "level", "stderr"];
const KNOWN_SECTIONS: &[(&str, &[&str])] = &[
    ("database", DATABASE_KEYS),
    ("daemon", DAEMON_KEYS),
    ("log", LOG_KEYS),
    ("purge", purge::PURGE_KEYS),
];

impl Config {
    /// Reads and checks `path`; adds a warning when the file is readable by every user.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.warnings.extend(permission_warning(path));
        Ok(config)
    }

    /// `[daemon] receipt_match_window`: how long a receipt may still come for a message
    /// (`esmed purge` keeps messages that recent).
    pub fn receipt_match_window(&self) -> Duration {
        self.daemon.receipt_match_window
    }

    /// Checks `text` as if read from `path_for_messages`, which only appears in messages.
    pub(crate) fn parse(text: &str, path_for_messages: &Path) -> Result<Config, ConfigError> {
        let path = path_for_messages;
        let mut sections =
            sections::split_sections(text, KNOWN_SECTIONS).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: e.line,
                message: e.message,
            })?;
        require_database(&sections, path)?;
        let mut warnings = std::mem::take(&mut sections.warnings);
        let database = read_database(
            &KeyReader::new(path, "database", sections.keys("database")),
            &mut warnings,
        )?;
        let daemon = read_daemon(
            &KeyReader::new(path, "daemon", sections.keys("daemon")),
            &mut warnings,
        )?;
        let log = read_log(
            &KeyReader::new(path, "log", sections.keys("log")),
            &mut warnings,
        )?;
        let purge = purge::read_purge(&KeyReader::new(path, "purge", sections.keys("purge")))?;
        let prefix = display_name(path);
        Ok(Config {
            path: path.to_path_buf(),
            database,
            daemon,
            log,
            purge,
            warnings: warnings
                .into_iter()
                .map(|w| format!("{prefix}: {w}"))
                .collect(),
        })
    }
}

impl DatabaseConfig {
    /// Whether every server is reached over a Unix socket, where TLS does not apply.
    fn only_unix_sockets(&self) -> bool {
        self.hosts.iter().all(DbHost::is_unix_socket)
    }

    /// How TLS is set up for `host`; None when it is never used.
    pub(crate) fn tls_params(&self, host: &DbHost) -> Option<TlsParams> {
        let verify = match self.sslmode {
            SslMode::Disable => return None,
            _ if host.is_unix_socket() => return None,
            SslMode::Allow | SslMode::Prefer => Verify::Off,
            // As libpq: require checks the chain once a root certificate is named.
            SslMode::Require if self.sslrootcert.is_none() => Verify::Off,
            SslMode::Require | SslMode::VerifyCa => Verify::ChainOnly,
            SslMode::VerifyFull => Verify::Full,
        };
        Some(TlsParams {
            ca_file: self.sslrootcert.clone(),
            verify,
            server_name: host.host.clone(),
            client_cert_file: self.sslcert.clone(),
            client_key_file: self.sslkey.clone(),
        })
    }

    /// The connection settings for the `postgres` crate, for one server of `hosts`;
    /// `db::PgConnector` tries them in turn and adds the TLS.
    pub(crate) fn pg_config(&self, host: &DbHost) -> postgres::Config {
        let mut pg = postgres::Config::new();
        // `host` treats a value starting with '/' as the Unix socket directory.
        pg.host(&host.host)
            .port(host.port)
            .dbname(&self.name)
            .user(&self.user)
            .connect_timeout(self.connect_timeout)
            // A server whose machine or network is gone (a failover, not a clean stop) is
            // noticed within about a minute, not after TCP's own limits: some 15 minutes of
            // retransmitting a statement on its way, two hours on an idle connection. Only
            // unanswered TCP counts: a slow statement or commit is not cut short.
            .keepalives(true)
            .keepalives_idle(TCP_KEEPALIVE_IDLE)
            .keepalives_interval(TCP_KEEPALIVE_INTERVAL)
            .keepalives_retries(TCP_KEEPALIVE_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .application_name(&self.application_name)
            .target_session_attrs(match self.target_session_attrs {
                SessionAttrs::Any => postgres::config::TargetSessionAttrs::Any,
                SessionAttrs::ReadWrite => postgres::config::TargetSessionAttrs::ReadWrite,
            })
            .ssl_mode(match self.sslmode {
                _ if host.is_unix_socket() => postgres::config::SslMode::Disable,
                SslMode::Disable => postgres::config::SslMode::Disable,
                // For allow, `db::PgConnector` tries a plain connection before this one.
                SslMode::Allow | SslMode::Prefer => postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    postgres::config::SslMode::Require
                }
            });
        if !self.pass.is_empty() {
            pg.password(self.pass.expose());
        }
        pg
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            hosts: vec![DbHost::new("localhost", 5432)],
            target_session_attrs: SessionAttrs::ReadWrite,
            name: "esmed".to_string(),
            user: "esmed".to_string(),
            pass: Secret::default(),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            connect_timeout: Duration::from_secs(10),
            application_name: "esmed".to_string(),
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            pidfile: None,
            instance: hostname(),
            instance_given: false,
            poll_interval: Duration::from_secs(5),
            claim_batch: 500,
            result_batch: 1000,
            lease: Duration::from_secs(300),
            max_segments: 10,
            max_pdu_size: crate::smpp::frame::DEFAULT_MAX_PDU_LEN,
            shutdown_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            stats_interval: Duration::from_secs(60),
            db_reconnect_max: Duration::from_secs(30),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            receipt_id_match: IdMatch::Auto,
            receipt_match_window: Duration::from_secs(3600),
            mo_reassembly_timeout: Duration::from_secs(600),
            heartbeat_interval: Duration::from_secs(5),
            max_uncommitted_results: 1000,
            strict_resend_bound: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            file: None,
            level: log::LevelFilter::Info,
            stderr: true,
        }
    }
}

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The real value; only for handing to the database driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unreadable { path, source } => {
                write!(f, "{}: cannot read: {source}", display_name(path))
            }
            ConfigError::Syntax {
                path,
                line,
                message,
            } => write!(f, "{}: line {line}: {message}", display_name(path)),
            ConfigError::Incomplete { path, reason } => {
                write!(f, "{}: {reason}", display_name(path))
            }
            ConfigError::BadValue {
                path,
                section,
                key,
                value,
                reason,
            } => write!(
                f,
                "{}: [{section}] {key}: '{}' {reason}",
                display_name(path),
                crate::logging::one_line(value)
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Unreadable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A warning when `path` is readable by every user, since it holds the database password.
pub(crate) fn permission_warning(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    if mode & 0o004 == 0 {
        return None;
    }
    Some(format!(
        "{name} is readable by every user (mode {mode:04o}) and holds the database password; \
         chmod 640 {name}",
        name = display_name(path)
    ))
}

pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .map(|text| text.trim().to_string())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Paths in messages: lossy but one line (a newline in a file name is escaped).
fn display_name(path: &Path) -> String {
    crate::logging::one_line(&path.display().to_string()).into_owned()
}

/// A config without a [database] section that sets something would run on the built-in
/// defaults, most likely against the wrong database or none: refused, naming the near miss
/// (a misspelt section or keys) when there is one.
fn require_database(sections: &sections::Sections, path: &Path) -> Result<(), ConfigError> {
    const WHY: &str = "esmed does not guess which database to use (host, name, user, pass)";
    let incomplete = |reason: String| ConfigError::Incomplete {
        path: path.to_path_buf(),
        reason,
    };
    let Some(keys) = sections.keys_by_section.get("database") else {
        let guess = sections
            .unknown
            .iter()
            .find(|name| sections::near_miss(name, ["database"]).is_some())
            .map(|name| {
                let name = crate::logging::one_line(name);
                format!("; did you mean [database] for [{name}]?")
            })
            .unwrap_or_default();
        return Err(incomplete(format!("no [database] section: {WHY}{guess}")));
    };
    if keys.keys().any(|key| DATABASE_KEYS.contains(&key.as_str())) {
        return Ok(());
    }
    let guesses: Vec<String> = keys
        .keys()
        .filter_map(|key| {
            let meant = sections::near_miss(key, DATABASE_KEYS.iter().copied())?;
            Some(format!("{meant} for '{}'", crate::logging::one_line(key)))
        })
        .collect();
    let guess = if guesses.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", guesses.join(", "))
    };
    Err(incomplete(format!("[database] sets nothing: {WHY}{guess}")))
}

fn read_database(
    keys: &KeyReader<'_>,
    warnings: &mut Vec<String>,
) -> Result<DatabaseConfig, ConfigError> {
    let default = DatabaseConfig::default();
    let (sslmode, sslrootcert) = read_trust(keys, default.sslmode)?;
    let database = DatabaseConfig {
        hosts: read_hosts(keys)?,
        target_session_attrs: keys
            .session_attrs("target_session_attrs", default.target_session_attrs)?,
        name: keys.text("name", &default.name)?,
        user: keys.text("user", &default.user)?,
        // Taken as written: a password may be empty (trust or peer authentication).
        pass: Secret::new(keys.raw("pass").unwrap_or_default()),
        sslmode,
        sslrootcert,
        sslcert: keys.path("sslcert"),
        sslkey: keys.path("sslkey"),
        connect_timeout: keys.duration(
            "connect_timeout",
            default.connect_timeout,
            secs(1),
            HOUR,
        )?,
        application_name: keys.text("application_name", &default.application_name)?,
    };
    check_tls(keys, &database, warnings)?;
    Ok(database)
}

/// `host` and `port` as libpq reads them: `host` a comma-separated list of servers tried in
/// order, `port` one port for all of them or a list with one per host.
fn read_hosts(keys: &KeyReader<'_>) -> Result<Vec<DbHost>, ConfigError> {
    let names = keys.list("host", "localhost")?;
    let ports = keys.port_list("port", 5432)?;
    if ports.len() != 1 && ports.len() != names.len() {
        return Err(keys.bad_value(
            "port",
            format!(
                "gives {} ports for {} hosts (give one port for all of them, or one per host)",
                ports.len(),
                names.len()
            ),
        ));
    }
    let port_of = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| DbHost::new(name, port_of(i)))
        .collect())
}

/// `sslmode` and `sslrootcert`, which libpq 16 ties together: `sslrootcert = system` means the
/// system's trust store (esmed's default anyway) and makes `verify-full` the default sslmode,
/// a weaker one an error, since the system store trusts every public CA and only the host
/// name then tells our server from anyone else's.
fn read_trust(
    keys: &KeyReader<'_>,
    default: SslMode,
) -> Result<(SslMode, Option<PathBuf>), ConfigError> {
    if keys.raw("sslrootcert") != Some("system") {
        return Ok((keys.sslmode("sslmode", default)?, keys.path("sslrootcert")));
    }
    match keys.sslmode("sslmode", SslMode::VerifyFull)? {
        SslMode::VerifyFull => Ok((SslMode::VerifyFull, None)),
        _ => Err(keys.bad_value(
            "sslmode",
            "must be verify-full with sslrootcert = system (as libpq): any public CA's \
             certificate would do otherwise",
        )),
    }
}

/// Reads the trust store now, so that a missing or broken `sslrootcert` is a config error
/// (and `--check-config` finds it) rather than a connection that fails at every retry.
fn check_tls(
    keys: &KeyReader<'_>,
    database: &DatabaseConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match (&database.sslcert, &database.sslkey) {
        (Some(_), None) => return Err(keys.bad_value("sslcert", "needs sslkey as well")),
        (None, Some(_)) => return Err(keys.bad_value("sslkey", "needs sslcert as well")),
        _ => {}
    }
    let strict = !matches!(
        database.sslmode,
        SslMode::Disable | SslMode::Allow | SslMode::Prefer
    );
    if database.only_unix_sockets() && (strict || database.sslrootcert.is_some()) {
        let dirs: Vec<&str> = database.hosts.iter().map(|h| h.host.as_str()).collect();
        warnings.push(format!(
            "[database] sslmode: host {} is a Unix socket directory, where TLS does not apply; \
             connecting without it",
            dirs.join(",")
        ));
        return Ok(());
    }
    let mut tcp_hosts = database.hosts.iter().filter(|h| !h.is_unix_socket());
    let Some(params) = tcp_hosts.next().and_then(|h| database.tls_params(h)) else {
        return Ok(());
    };
    crate::tls::client_config(&params).map(|_| ()).map_err(|e| {
        // The key whose file the message names; else the mode that asked for TLS.
        let message = e.to_string();
        let files = [
            ("sslrootcert", &database.sslrootcert),
            ("sslcert", &database.sslcert),
            ("sslkey", &database.sslkey),
        ];
        let named = files.into_iter().find(|(_, file)| {
            file.as_ref()
                .is_some_and(|f| message.contains(&f.display().to_string()))
        });
        keys.bad_value(named.map_or("sslmode", |(key, _)| key), message)
    })
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn read_daemon(
    keys: &KeyReader<'_>,
    warnings: &mut Vec<String>,
) -> Result<DaemonConfig, ConfigError> {
    let default = DaemonConfig::default();
    let reconnect_min = keys.duration("reconnect_min", default.reconnect_min, ms(100), HOUR)?;
    let reconnect_max = keys.duration("reconnect_max", default.reconnect_max, secs(1), DAY)?;
    if reconnect_max < reconnect_min {
        // Blame the key the user wrote: a raised reconnect_min may collide with the default max.
        return Err(if keys.raw("reconnect_max").is_some() {
            let min = format_duration(reconnect_min);
            keys.bad_value(
                "reconnect_max",
                format!("is less than reconnect_min ({min})"),
            )
        } else {
            let max = format_duration(reconnect_max);
            keys.bad_value(
                "reconnect_min",
                format!("is more than reconnect_max ({max})"),
            )
        });
    }
    Ok(DaemonConfig {
        pidfile: keys.optional_path("pidfile"),
        instance: keys.text("instance", &default.instance)?,
        instance_given: keys.raw("instance").is_some(),
        poll_interval: keys.duration("poll_interval", default.poll_interval, ms(100), HOUR)?,
        claim_batch: keys.number("claim_batch", default.claim_batch, 1, 100_000)?,
        result_batch: keys.number("result_batch", default.result_batch, 1, 100_000)?,
        lease: keys.duration("lease", default.lease, secs(2), DAY)?,
        max_segments: keys.number("max_segments", default.max_segments, 1, 255)?,
        max_pdu_size: keys.number("max_pdu_size", default.max_pdu_size, 1024, 16 << 20)?,
        shutdown_timeout: shutdown_timeout(keys, default.shutdown_timeout, warnings)?,
        reconnect_min,
        reconnect_max,
        stats_interval: keys.duration("stats_interval", default.stats_interval, secs(0), DAY)?,
        db_reconnect_max: keys.duration(
            "db_reconnect_max",
            default.db_reconnect_max,
            secs(1),
            HOUR,
        )?,
        retry_min: keys.duration("retry_min", default.retry_min, ms(10), HOUR)?,
        retry_max: keys.duration("retry_max", default.retry_max, ms(10), DAY)?,
        receipt_id_match: receipt_id_match(keys, default.receipt_id_match)?,
        receipt_match_window: keys.duration(
            "receipt_match_window",
            default.receipt_match_window,
            secs(1),
            7 * DAY,
        )?,
        mo_reassembly_timeout: keys.duration(
            "mo_reassembly_timeout",
            default.mo_reassembly_timeout,
            secs(1),
            7 * DAY,
        )?,
        heartbeat_interval: heartbeat_interval(keys, default.heartbeat_interval)?,
        max_uncommitted_results: keys.number(
            "max_uncommitted_results",
            default.max_uncommitted_results,
            1,
            100_000,
        )?,
        strict_resend_bound: keys.boolean("strict_resend_bound", default.strict_resend_bound)?,
    })
}

/// Up to [`MAX_SHUTDOWN_TIMEOUT`]; a longer one (accepted up to an hour, as earlier versions
/// did) is used as that, with a warning: the init system would KILL esmed before it ran out.
fn shutdown_timeout(
    keys: &KeyReader<'_>,
    default: Duration,
    warnings: &mut Vec<String>,
) -> Result<Duration, ConfigError> {
    let timeout = keys.duration("shutdown_timeout", default, secs(1), HOUR)?;
    if timeout <= MAX_SHUTDOWN_TIMEOUT {
        return Ok(timeout);
    }
    let max = format_duration(MAX_SHUTDOWN_TIMEOUT);
    warnings.push(format!(
        "[daemon] shutdown_timeout: '{}' is more than {max}, the longest esmed waits for \
         responses at a stop (the init script and the systemd unit KILL esmed {} s after \
         SIGTERM); using {max}",
        format_duration(timeout),
        STOP_BEFORE_KILL.as_secs()
    ));
    Ok(MAX_SHUTDOWN_TIMEOUT)
}

/// Zero (off) or at least a second: a faster heartbeat only loads the database.
fn heartbeat_interval(keys: &KeyReader<'_>, default: Duration) -> Result<Duration, ConfigError> {
    let interval = keys.duration("heartbeat_interval", default, secs(0), HOUR)?;
    if !interval.is_zero() && interval < secs(1) {
        return Err(keys.bad_value("heartbeat_interval", "must be 0 (off) or at least 1s"));
    }
    Ok(interval)
}

fn receipt_id_match(keys: &KeyReader<'_>, default: IdMatch) -> Result<IdMatch, ConfigError> {
    let Some(text) = keys.raw("receipt_id_match") else {
        return Ok(default);
    };
    IdMatch::from_word(text).ok_or_else(|| {
        keys.bad_value(
            "receipt_id_match",
            "is not auto, exact, text_hex or text_decimal",
        )
    })
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn read_log(keys: &KeyReader<'_>, warnings: &mut Vec<String>) -> Result<LogConfig, ConfigError> {
    let default = LogConfig::default();
    let log = LogConfig {
        file: keys.optional_path("file"),
        level: keys.level("level", default.level)?,
        stderr: keys.boolean("stderr", default.stderr)?,
    };
    if log.file.is_none() && !log.stderr {
        warnings.push("[log] stderr is false and no file is set: esmed logs nowhere".to_string());
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/esmed/esmed.conf";

    /// The old Python daemon's file, as users have it.
    const OLD_PYTHON_CONFIG: &str = "\
[database]
host = localhost
port = 5432
name = esmed
user = esmed
pass = password

[loggers]
keys = root,twisted,ptsmpp
[handlers]
keys = fileHandler,consoleHandler
[formatters]
keys = myFormatter
[logger_root]
level = INFO
handlers = fileHandler,consoleHandler
[handler_fileHandler]
class = logging.handlers.TimedRotatingFileHandler
level = DEBUG
formatter = myFormatter
args = ('/var/log/esmed/esmed.log', 'D', 1, 10)
[formatter_myFormatter]
format = %(asctime)s | %(levelname)-8s | %(message)s
";

    /// `text`, with a [database] section naming the database when it has none (a config
    /// without one is an error of its own).
    fn with_database(text: &str) -> String {
        if text.contains("[database]") {
            text.to_string()
        } else {
            format!("[database]\nname = esmed\n{text}")
        }
    }

    fn parse(text: &str) -> Config {
        Config::parse(&with_database(text), Path::new(PATH)).expect("valid config")
    }

    fn error(text: &str) -> String {
        raw_error(&with_database(text))
    }

    /// The error for `text` exactly as given.
    fn raw_error(text: &str) -> String {
        Config::parse(text, Path::new(PATH))
            .expect_err("invalid config")
            .to_string()
    }

    /// The TLS settings for the first server.
    fn tls_of(database: &DatabaseConfig) -> Option<TlsParams> {
        database.tls_params(&database.hosts[0])
    }

    /// The driver's settings for the first server.
    fn pg_of(database: &DatabaseConfig) -> postgres::Config {
        database.pg_config(&database.hosts[0])
    }

    fn daemon(key: &str, value: &str) -> DaemonConfig {
        parse(&format!("[daemon]\n{key} = {value}\n")).daemon
    }

    fn daemon_error(key: &str, value: &str) -> String {
        error(&format!("[daemon]\n{key} = {value}\n"))
    }

    #[test]
    fn a_database_section_alone_gives_every_other_default() {
        let config = parse("[database]\nname = esmed\n");
        assert_eq!(config.database, DatabaseConfig::default());
        assert_eq!(config.log, LogConfig::default());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let daemon = config.daemon;
        assert_eq!(daemon.pidfile, None);
        assert_eq!(daemon.poll_interval, secs(5));
        assert_eq!(daemon.claim_batch, 500);
        assert_eq!(daemon.result_batch, 1000);
        assert_eq!(daemon.lease, secs(300));
        assert_eq!(daemon.max_segments, 10);
        assert_eq!(daemon.max_pdu_size, 66560);
        assert_eq!(daemon.shutdown_timeout, secs(30));
        assert_eq!(daemon.reconnect_min, secs(1));
        assert_eq!(daemon.reconnect_max, secs(60));
        assert_eq!(daemon.stats_interval, secs(60));
        assert_eq!(daemon.db_reconnect_max, secs(30));
        assert_eq!(daemon.max_uncommitted_results, 1000);
        assert!(!daemon.strict_resend_bound);
    }

    #[test]
    fn database_defaults_match_the_old_daemon() {
        let database = DatabaseConfig::default();
        assert_eq!(
            (
                database.hosts[0].host.as_str(),
                database.hosts[0].port,
                database.name.as_str()
            ),
            ("localhost", 5432, "esmed")
        );
        assert_eq!(database.user, "esmed");
        assert!(database.pass.is_empty());
        assert_eq!(database.sslmode, SslMode::Prefer);
        assert_eq!(database.connect_timeout, secs(10));
        assert_eq!(database.application_name, "esmed");
    }

    #[test]
    fn default_instance_is_the_host_name_and_stays_the_same_across_restarts() {
        let defaults = parse("").daemon;
        assert_eq!(defaults.instance, hostname());
        assert!(!defaults.instance.is_empty() && !defaults.instance_given);
        assert!(daemon("instance", "a:1").instance_given);
    }

    #[test]
    fn old_python_config_parses_with_one_logging_warning() {
        let config = parse(OLD_PYTHON_CONFIG);
        assert_eq!(config.database.hosts, [DbHost::new("localhost", 5432)]);
        assert_eq!(config.database.pass.expose(), "password");
        assert_eq!(config.log, LogConfig::default());
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].starts_with(
            "/etc/esmed/esmed.conf: Python logging sections ignored: [loggers] [handlers] \
             [formatters] [logger_root] [handler_fileHandler] [formatter_myFormatter]; \
             esmed logs as [log] says"
        ));
    }

    #[test]
    fn every_database_key_is_read() {
        let database = parse(
            "[database]\nhost = /var/run/postgresql\nport = 5433\nname = sms\nuser = app\n\
             pass = s3cret\nsslmode = disable\nconnect_timeout = 3\napplication_name = esmed-a\n",
        )
        .database;
        assert_eq!(database.hosts, [DbHost::new("/var/run/postgresql", 5433)]);
        assert_eq!(database.name, "sms");
        assert_eq!(database.user, "app");
        assert_eq!(database.pass.expose(), "s3cret");
        assert_eq!(database.sslmode, SslMode::Disable);
        assert_eq!(database.connect_timeout, secs(3));
        assert_eq!(database.application_name, "esmed-a");
    }

    #[test]
    fn password_is_taken_literally() {
        let text = "[database]\npass = \"a\\b;c#d\" \n";
        assert_eq!(parse(text).database.pass.expose(), "\"a\\b;c#d\"");
        assert!(parse("[database]\npass =\n").database.pass.is_empty());
    }

    #[test]
    fn every_daemon_key_is_read() {
        assert_eq!(
            daemon("pidfile", "/run/esmed.pid").pidfile,
            Some(PathBuf::from("/run/esmed.pid"))
        );
        assert_eq!(daemon("pidfile", "").pidfile, None);
        assert_eq!(daemon("instance", "a:1").instance, "a:1");
        assert_eq!(daemon("poll_interval", "500ms").poll_interval, ms(500));
        assert_eq!(daemon("claim_batch", "50").claim_batch, 50);
        assert_eq!(
            daemon("receipt_id_match", "TEXT_HEX").receipt_id_match,
            IdMatch::TextHex
        );
        assert_eq!(
            daemon("mo_reassembly_timeout", "30s").mo_reassembly_timeout,
            Duration::from_secs(30)
        );
        assert!(daemon_error("receipt_id_match", "hex").ends_with("text_hex or text_decimal"));
        assert!(daemon_error("receipt_match_window", "0").contains("out of range"));
        assert_eq!(
            daemon("heartbeat_interval", "2s").heartbeat_interval,
            secs(2)
        );
        assert_eq!(
            daemon("heartbeat_interval", "0").heartbeat_interval,
            secs(0)
        );
        assert!(daemon_error("heartbeat_interval", "500ms").contains("at least 1s"));
        assert_eq!(
            daemon("max_uncommitted_results", "50").max_uncommitted_results,
            50
        );
        assert!(daemon_error("max_uncommitted_results", "0").ends_with("from 1 to 100000"));
        assert!(daemon("strict_resend_bound", "true").strict_resend_bound);
        assert_eq!(daemon("result_batch", "20").result_batch, 20);
        assert_eq!(daemon("lease", "5m").lease, secs(300));
        assert_eq!(daemon("max_segments", "255").max_segments, 255);
        assert_eq!(daemon("max_pdu_size", "4096").max_pdu_size, 4096);
        assert_eq!(daemon("shutdown_timeout", "2s").shutdown_timeout, secs(2));
        assert_eq!(daemon("shutdown_timeout", "1m").shutdown_timeout, secs(60));
        assert_eq!(daemon("reconnect_min", "2").reconnect_min, secs(2));
        assert_eq!(daemon("reconnect_max", "1h").reconnect_max, secs(3600));
        assert_eq!(daemon("stats_interval", "0").stats_interval, secs(0));
        assert_eq!(daemon("db_reconnect_max", "10s").db_reconnect_max, secs(10));
    }

    #[test]
    fn every_log_key_is_read() {
        let log = parse("[log]\nfile = /var/log/esmed/esmed.log\nlevel = DEBUG\nstderr = no\n").log;
        assert_eq!(log.file, Some(PathBuf::from("/var/log/esmed/esmed.log")));
        assert_eq!(log.level, log::LevelFilter::Debug);
        assert!(!log.stderr);
    }

    #[test]
    fn a_shutdown_timeout_beyond_the_init_systems_kill_is_capped_with_a_warning() {
        let config = parse("[daemon]\nshutdown_timeout = 5m\n");
        assert_eq!(config.daemon.shutdown_timeout, secs(60));
        assert_eq!(
            config.warnings,
            [
                "/etc/esmed/esmed.conf: [daemon] shutdown_timeout: '5m' is more than 1m, the \
              longest esmed waits for responses at a stop (the init script and the systemd \
              unit KILL esmed 90 s after SIGTERM); using 1m"
            ]
        );
        assert!(parse("[daemon]\nshutdown_timeout = 60s\n")
            .warnings
            .is_empty());
        assert!(daemon_error("shutdown_timeout", "2h").contains("out of range (1s to 1h)"));
    }

    #[test]
    fn logging_nowhere_warns() {
        let config = parse("[log]\nstderr = false\n");
        assert_eq!(
            config.warnings,
            ["/etc/esmed/esmed.conf: [log] stderr is false and no file is set: esmed logs nowhere"]
        );
    }

    #[test]
    fn unknown_key_warning_names_file_section_and_known_keys() {
        let config = parse("[daemon]\npol_interval = 5\n");
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].starts_with(
            "/etc/esmed/esmed.conf: [daemon] unknown key 'pol_interval' ignored (known: pidfile, \
             instance, poll_interval,"
        ));
    }

    #[test]
    fn unknown_section_warns() {
        let config = parse("[smsc]\nhost = x\n");
        assert_eq!(
            config.warnings,
            ["/etc/esmed/esmed.conf: [smsc] unknown section ignored (known: [database] [daemon] [log] [purge])"]
        );
    }

    #[test]
    fn no_database_section_is_an_error() {
        for text in [
            "",
            "# nothing but a comment\n",
            "[daemon]\nlease = 5m\n[log]\nlevel = info\n",
        ] {
            assert_eq!(
                raw_error(text),
                "/etc/esmed/esmed.conf: no [database] section: esmed does not guess which \
                 database to use (host, name, user, pass)"
            );
        }
    }

    #[test]
    fn a_misspelt_database_section_is_an_error_naming_the_near_miss() {
        assert_eq!(
            raw_error("[databse]\nhost = db.example.net\nname = sms\n"),
            "/etc/esmed/esmed.conf: no [database] section: esmed does not guess which \
             database to use (host, name, user, pass); did you mean [database] for [databse]?"
        );
        let message = raw_error("[daemon]\nlease = 5m\n[Data_base]\nhost = db\n");
        assert!(
            message.ends_with("did you mean [database] for [Data_base]?"),
            "{message}"
        );
    }

    #[test]
    fn a_database_section_that_sets_nothing_is_an_error() {
        assert_eq!(
            raw_error("[database]\n[daemon]\nlease = 5m\n"),
            "/etc/esmed/esmed.conf: [database] sets nothing: esmed does not guess which \
             database to use (host, name, user, pass)"
        );
        assert_eq!(
            raw_error("[database]\nhots = db\nnmae = sms\n"),
            "/etc/esmed/esmed.conf: [database] sets nothing: esmed does not guess which \
             database to use (host, name, user, pass); did you mean host for 'hots', name \
             for 'nmae'?"
        );
    }

    #[test]
    fn an_empty_password_is_a_setting() {
        let config = parse("[database]\npass =\n");
        assert!(config.database.pass.is_empty());
    }

    #[test]
    fn a_misspelt_section_beside_the_database_is_a_warning_with_the_near_miss() {
        let config = parse("[database]\nname = sms\n[deamon]\nlease = 5m\n");
        assert_eq!(
            config.warnings,
            [
                "/etc/esmed/esmed.conf: [deamon] unknown section ignored (did you mean [daemon]? \
              known: [database] [daemon] [log] [purge])"
            ]
        );
    }

    #[test]
    fn bad_port_is_one_line_naming_file_section_and_key() {
        assert_eq!(
            error("[database]\nport = abc\n"),
            "/etc/esmed/esmed.conf: [database] port: 'abc' is not a port number (1-65535)"
        );
        for port in ["0", "65536", "-1", ""] {
            let message = error(&format!("[database]\nport = {port}\n"));
            assert!(
                message.ends_with("is not a port number (1-65535)"),
                "{message}"
            );
        }
    }

    #[test]
    fn sslmode_takes_libpq_values_and_sets_how_the_certificate_is_checked() {
        let tls = |text: &str| tls_of(&parse(text).database).map(|p| p.verify);
        assert_eq!(tls("[database]\nsslmode = disable\n"), None);
        // prefer (the default) and allow (after a refused plain connection) use TLS when the
        // server offers it, checking nothing, as libpq.
        assert_eq!(tls(""), Some(Verify::Off));
        assert_eq!(tls("[database]\nsslmode = Allow\n"), Some(Verify::Off));
        assert_eq!(tls("[database]\nsslmode = require\n"), Some(Verify::Off));
        assert_eq!(
            tls("[database]\nsslmode = verify-full\n"),
            Some(Verify::Full)
        );
        let database = parse("[database]\nhost = db.example.net\nsslmode = verify-full\n").database;
        let params = tls_of(&database).expect("TLS");
        assert_eq!(
            (params.server_name.as_str(), params.ca_file),
            ("db.example.net", None)
        );
        assert_eq!(
            pg_of(&database).get_ssl_mode(),
            postgres::config::SslMode::Require
        );
        assert_eq!(
            error("[database]\nsslmode = maybe\n"),
            "/etc/esmed/esmed.conf: [database] sslmode: 'maybe' is not an sslmode (disable, \
             allow, prefer, require, verify-ca, verify-full)"
        );
    }

    #[test]
    fn sslrootcert_system_means_the_system_store_and_verify_full_as_libpq_16() {
        let database = parse("[database]\nsslrootcert = system\n").database;
        assert_eq!(
            (database.sslmode, &database.sslrootcert),
            (SslMode::VerifyFull, &None)
        );
        let params = tls_of(&database).expect("TLS");
        assert_eq!((params.verify, params.ca_file), (Verify::Full, None));
        let database = parse("[database]\nsslmode = verify-full\nsslrootcert = system\n").database;
        assert_eq!(database.sslmode, SslMode::VerifyFull);
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let message = error(&format!(
                "[database]\nsslmode = {mode}\nsslrootcert = system\n"
            ));
            assert_eq!(
                message,
                format!(
                    "/etc/esmed/esmed.conf: [database] sslmode: '{mode}' must be verify-full \
                     with sslrootcert = system (as libpq): any public CA's certificate would \
                     do otherwise"
                )
            );
        }
    }

    #[test]
    fn a_root_certificate_is_read_at_load_and_makes_require_check_the_chain() {
        let dir = std::env::temp_dir().join(format!("esmed-config-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca = dir.join("root.crt");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["db.example.net".into()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        std::fs::write(&ca, cert.pem()).expect("write the CA");
        for mode in ["require", "verify-ca"] {
            let text = format!(
                "[database]\nsslmode = {mode}\nsslrootcert = {}\n",
                ca.display()
            );
            let params = tls_of(&parse(&text).database).expect("TLS");
            assert_eq!(params.verify, Verify::ChainOnly, "{mode}");
            assert_eq!(params.ca_file.as_deref(), Some(ca.as_path()));
        }
        let missing = dir.join("missing.crt");
        let text = format!(
            "[database]\nsslmode = verify-full\nsslrootcert = {}\n",
            missing.display()
        );
        let message = error(&text);
        assert!(message.contains("[database] sslrootcert:"), "{message}");
        assert!(message.contains("cannot read the CA file"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let message = error("[database]\nsslcert = /etc/esmed/pg-cert.pem\n");
        assert!(message.contains("[database] sslcert:"), "{message}");
        assert!(message.contains("needs sslkey as well"), "{message}");
        let message = error("[database]\nsslkey = /etc/esmed/pg-key.pem\n");
        assert!(message.contains("needs sslcert as well"), "{message}");
        let message =
            error("[database]\nsslcert = /nonexistent/cert.pem\nsslkey = /nonexistent/key.pem\n");
        assert!(message.contains("[database] sslcert:"), "{message}");
        assert!(message.contains("/nonexistent/cert.pem"), "{message}");
    }

    #[test]
    fn tls_does_not_apply_to_a_unix_socket() {
        let config = parse("[database]\nhost = /run/postgresql\nsslmode = verify-full\n");
        assert_eq!(tls_of(&config.database), None);
        assert_eq!(
            pg_of(&config.database).get_ssl_mode(),
            postgres::config::SslMode::Disable
        );
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].contains("Unix socket"),
            "{:?}",
            config.warnings
        );
        // The default (prefer) says nothing: it never asked for TLS.
        assert!(parse("[database]\nhost = /run/postgresql\n")
            .warnings
            .is_empty());
    }

    #[test]
    fn empty_text_values_are_errors() {
        assert_eq!(
            error("[database]\nhost =\n"),
            "/etc/esmed/esmed.conf: [database] host: '' is empty (leave the key out for 'localhost')"
        );
        assert!(error("[daemon]\ninstance =\n").contains("[daemon] instance: '' is empty"));
    }

    #[test]
    fn bad_numbers_name_their_range() {
        assert_eq!(
            daemon_error("claim_batch", "lots"),
            "/etc/esmed/esmed.conf: [daemon] claim_batch: 'lots' is not a whole number from 1 to 100000"
        );
        assert!(daemon_error("result_batch", "0").ends_with("from 1 to 100000"));
        assert!(daemon_error("max_segments", "256").ends_with("from 1 to 255"));
        assert!(daemon_error("max_pdu_size", "100").ends_with("from 1024 to 16777216"));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        assert_eq!(
            daemon_error("poll_interval", "5x"),
            "/etc/esmed/esmed.conf: [daemon] poll_interval: '5x' is not a duration (e.g. 30, 500ms, 2s, 5m)"
        );
        assert_eq!(
            daemon_error("poll_interval", "0"),
            "/etc/esmed/esmed.conf: [daemon] poll_interval: '0' is out of range (100ms to 1h)"
        );
        assert!(daemon_error("lease", "1s").ends_with("is out of range (2s to 24h)"));
        assert!(error("[database]\nconnect_timeout = 0\n").contains("[database] connect_timeout"));
    }

    #[test]
    fn reconnect_max_below_min_is_an_error() {
        assert_eq!(
            error("[daemon]\nreconnect_min = 10s\nreconnect_max = 5s\n"),
            "/etc/esmed/esmed.conf: [daemon] reconnect_max: '5s' is less than reconnect_min (10s)"
        );
        assert_eq!(
            error("[daemon]\nreconnect_min = 2m\n"),
            "/etc/esmed/esmed.conf: [daemon] reconnect_min: '2m' is more than reconnect_max (1m)"
        );
    }

    #[test]
    fn bad_log_values_are_errors() {
        assert_eq!(
            error("[log]\nlevel = verbose\n"),
            "/etc/esmed/esmed.conf: [log] level: 'verbose' is not a log level (error, warn, info, debug, trace)"
        );
        assert_eq!(
            error("[log]\nstderr = perhaps\n"),
            "/etc/esmed/esmed.conf: [log] stderr: 'perhaps' is not true or false"
        );
    }

    #[test]
    fn broken_ini_names_the_line() {
        assert_eq!(
            error("[database]\nhost = x\n[daemon\n"),
            "/etc/esmed/esmed.conf: line 3: section header has no closing ']'"
        );
    }

    #[test]
    fn missing_file_is_cannot_read() {
        let message = Config::load(Path::new("/nonexistent/esmed.conf"))
            .expect_err("missing")
            .to_string();
        assert_eq!(
            message,
            "/nonexistent/esmed.conf: cannot read: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn control_characters_in_values_stay_on_one_line() {
        let message = error("[database]\nport = 1\t\u{1b}2\n");
        assert_eq!(message.lines().count(), 1, "{message}");
    }

    #[test]
    fn secret_never_prints() {
        let config = parse("[database]\npass = hunter2\n");
        assert_eq!(format!("{}", config.database.pass), "***");
        let debug = format!("{config:?} {:?}", pg_of(&config.database));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn pg_config_carries_every_setting() {
        let database = parse(
            "[database]\nhost = db.example\nport = 6000\nname = n\nuser = u\npass = p\n\
             sslmode = disable\nconnect_timeout = 7\napplication_name = app\n",
        )
        .database;
        let pg = pg_of(&database);
        assert_eq!(
            pg.get_hosts(),
            [postgres::config::Host::Tcp("db.example".into())]
        );
        assert_eq!(pg.get_ports(), [6000]);
        assert_eq!(pg.get_dbname(), Some("n"));
        assert_eq!(pg.get_user(), Some("u"));
        assert_eq!(pg.get_password(), Some(&b"p"[..]));
        assert_eq!(pg.get_ssl_mode(), postgres::config::SslMode::Disable);
        assert_eq!(pg.get_connect_timeout(), Some(&secs(7)));
        assert_eq!(pg.get_application_name(), Some("app"));
    }

    #[test]
    fn several_hosts_take_one_port_or_one_each_as_libpq() {
        let hosts = |text: &str| parse(text).database.hosts;
        assert_eq!(
            hosts("[database]\nhost = db1, db2.example\n"),
            [DbHost::new("db1", 5432), DbHost::new("db2.example", 5432)]
        );
        assert_eq!(
            hosts("[database]\nhost = db1,db2,/run/postgresql\nport = 5433\n"),
            [
                DbHost::new("db1", 5433),
                DbHost::new("db2", 5433),
                DbHost::new("/run/postgresql", 5433)
            ]
        );
        assert_eq!(
            hosts("[database]\nhost = db1,::1\nport = 5432, 6432\n"),
            [DbHost::new("db1", 5432), DbHost::new("::1", 6432)]
        );
        assert_eq!(
            error("[database]\nhost = db1,db2,db3\nport = 5432,5433\n"),
            "/etc/esmed/esmed.conf: [database] port: '5432,5433' gives 2 ports for 3 hosts \
             (give one port for all of them, or one per host)"
        );
        assert_eq!(
            error("[database]\nhost = db1,,db2\n"),
            "/etc/esmed/esmed.conf: [database] host: 'db1,,db2' has an empty item (write the \
             list as a,b,c)"
        );
        assert!(error("[database]\nhost = a,b\nport = 1,x\n")
            .ends_with("is not a port number (1-65535)"));
    }

    #[test]
    fn a_vanished_server_is_noticed_within_a_minute() {
        let pg = pg_of(&parse("[database]\nhost = db1,db2\n").database);
        assert!(pg.get_keepalives());
        let probing = pg.get_keepalives_idle()
            + pg.get_keepalives_interval().unwrap_or_default()
                * pg.get_keepalives_retries().unwrap_or_default();
        assert!(probing <= secs(60), "{probing:?}");
        assert_eq!(pg.get_tcp_user_timeout(), Some(&secs(30)));
    }

    #[test]
    fn servers_are_named_in_logs_by_address_and_port() {
        assert_eq!(DbHost::new("db1", 5432).to_string(), "db1:5432");
        assert_eq!(DbHost::new("::1", 5433).to_string(), "[::1]:5433");
        assert_eq!(
            DbHost::new("/run/postgresql/", 5432).to_string(),
            "/run/postgresql/.s.PGSQL.5432"
        );
    }

    #[test]
    fn target_session_attrs_is_read_write_unless_any() {
        let attrs = |text: &str| parse(text).database.target_session_attrs;
        assert_eq!(attrs("[database]\nname = esmed\n"), SessionAttrs::ReadWrite);
        assert_eq!(
            attrs("[database]\ntarget_session_attrs = any\n"),
            SessionAttrs::Any
        );
        let database =
            parse("[database]\nhost = a,b\ntarget_session_attrs = Read-Write\n").database;
        for host in &database.hosts {
            assert_eq!(
                database.pg_config(host).get_target_session_attrs(),
                postgres::config::TargetSessionAttrs::ReadWrite
            );
            assert_eq!(
                database.pg_config(host).get_hosts(),
                [postgres::config::Host::Tcp(host.host.clone())]
            );
        }
        assert!(error("[database]\ntarget_session_attrs = read-only\n")
            .contains("is not any or read-write (esmed writes"));
    }

    #[test]
    fn each_server_is_checked_against_its_own_name() {
        let database = parse("[database]\nhost = db1.example,db2.example,/run/pg\n").database;
        let names: Vec<Option<String>> = database
            .hosts
            .iter()
            .map(|h| database.tls_params(h).map(|p| p.server_name))
            .collect();
        assert_eq!(
            names,
            [Some("db1.example".into()), Some("db2.example".into()), None]
        );
    }

    #[test]
    fn pg_config_uses_unix_socket_directory_without_tls() {
        let pg = parse("[database]\nhost = /run/postgresql\nsslmode = allow\n").database;
        let pg = pg_of(&pg);
        assert_eq!(
            pg.get_hosts(),
            [postgres::config::Host::Unix("/run/postgresql".into())]
        );
        assert_eq!(pg.get_ssl_mode(), postgres::config::SslMode::Disable);
        assert_eq!(pg.get_password(), None);
    }

    #[test]
    fn permission_warning_fires_only_when_world_readable() {
        let dir = std::env::temp_dir().join(format!("esmed-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("esmed.conf");
        std::fs::write(&file, "[database]\nname = esmed\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let warning = permission_warning(&file).expect("world-readable");
        assert!(
            warning.contains("is readable by every user (mode 0644)"),
            "{warning}"
        );
        assert!(Config::load(&file)
            .expect("loads")
            .warnings
            .contains(&warning));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(permission_warning(&file), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

#[cfg(test)]
mod shipped_file_tests {
    use super::*;

    const SHIPPED: &str = include_str!("../etc/esmed.conf");

    /// The shipped file with every `#key = value` line uncommented.
    fn uncommented() -> String {
        let mut text = String::new();
        for line in SHIPPED.lines() {
            let is_key = line
                .strip_prefix('#')
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()));
            text.push_str(if is_key { &line[1..] } else { line });
            text.push('\n');
        }
        text
    }

    #[test]
    fn shipped_file_gives_defaults_without_warnings() {
        let config = Config::parse(SHIPPED, Path::new("esmed.conf")).expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.database, DatabaseConfig::default());
        assert_eq!(config.log, LogConfig::default());
    }

    #[test]
    fn documented_defaults_are_the_real_defaults() {
        let text = uncommented();
        let config = Config::parse(&text, Path::new("esmed.conf")).expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.database, DatabaseConfig::default());
        let daemon = DaemonConfig {
            pidfile: None,
            instance: hostname(),
            instance_given: false,
            ..config.daemon
        };
        assert_eq!(daemon, DaemonConfig::default());
        let log = LogConfig {
            file: None,
            ..config.log
        };
        assert_eq!(log, LogConfig::default());
        assert_eq!(config.purge, PurgeConfig::default());
    }

    /// The number in `text` right after `prefix`.
    fn seconds_after(text: &str, prefix: &str) -> u64 {
        let (_, rest) = text
            .split_once(prefix)
            .unwrap_or_else(|| panic!("no '{prefix}'"));
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a number of seconds")
    }

    #[test]
    fn the_init_script_and_the_unit_kill_only_after_the_longest_stop() {
        let script = include_str!("../init/esmed");
        let unit = include_str!("../init/esmed.service");
        let waits = [
            seconds_after(script, "--retry TERM/"),
            seconds_after(unit, "\nTimeoutStopSec="),
        ];
        for wait in waits {
            assert_eq!(Duration::from_secs(wait), STOP_BEFORE_KILL);
        }
        // The drain, then the unbind's wait for its response, then the last commits.
        let longest_stop =
            MAX_SHUTDOWN_TIMEOUT + crate::session::UNBIND_WAIT + Duration::from_secs(20);
        assert!(longest_stop <= STOP_BEFORE_KILL, "{longest_stop:?}");
        let config = Config::parse(
            "[database]\nname = esmed\n[daemon]\nshutdown_timeout = 1h\n",
            Path::new("esmed.conf"),
        )
        .expect("valid");
        assert_eq!(config.daemon.shutdown_timeout, MAX_SHUTDOWN_TIMEOUT);
    }

    const MAN_PAGE: &str = include_str!("../man/esmed.conf.5");

    /// Every key esmed.conf(5) documents, as (section, key, the default it gives), read from
    /// its `.BR key " (default: X)"` lines (`.BR a ", " b " (default: X)"` for two keys).
    fn man_page_keys() -> Vec<(String, String, String)> {
        let mut keys = Vec::new();
        let mut section = String::new();
        for line in MAN_PAGE.lines() {
            if let Some(name) = line.strip_prefix(".SH [") {
                section = name.trim_end_matches(']').to_string();
                continue;
            }
            let Some((names, default)) = line
                .strip_prefix(".BR ")
                .and_then(|rest| rest.split_once(" \" (default: "))
            else {
                continue;
            };
            let default = default.split([';', ')']).next().unwrap_or_default();
            for name in names.split(" \", \" ") {
                keys.push((section.clone(), name.to_string(), default.to_string()));
            }
        }
        keys
    }

    #[test]
    fn the_man_page_lists_every_key_with_its_real_default() {
        let documented = man_page_keys();
        let mut text = String::new();
        for (section, keys) in KNOWN_SECTIONS {
            text.push_str(&format!("[{section}]\n"));
            for key in *keys {
                let found: Vec<&str> = documented
                    .iter()
                    .filter(|(s, k, _)| s == section && k == key)
                    .map(|(_, _, default)| default.as_str())
                    .collect();
                assert_eq!(found.len(), 1, "esmed.conf(5) [{section}] {key}: {found:?}");
                match found[0] {
                    "none" | "empty" => text.push_str(&format!("{key} =\n")),
                    "the host name" => {}
                    default => text.push_str(&format!("{key} = {default}\n")),
                }
            }
        }
        for (section, key, _) in &documented {
            let known = KNOWN_SECTIONS
                .iter()
                .any(|(s, keys)| s == section && keys.contains(&key.as_str()));
            assert!(
                known,
                "esmed.conf(5) documents [{section}] {key}, which esmed does not know"
            );
        }
        let config = Config::parse(&text, Path::new("esmed.conf.5")).expect("valid");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.database, DatabaseConfig::default());
        assert_eq!(config.daemon, DaemonConfig::default());
        assert_eq!(config.log, LogConfig::default());
        assert_eq!(config.purge, PurgeConfig::default());
    }

    #[test]
    fn every_known_key_is_documented() {
        let text = uncommented();
        for (section, keys) in KNOWN_SECTIONS {
            assert!(text.contains(&format!("[{section}]")), "[{section}]");
            for key in *keys {
                assert!(text.contains(&format!("\n{key} =")), "[{section}] {key}");
            }
        }
    }
}
