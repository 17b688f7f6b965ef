//! A throwaway PostgreSQL cluster for tests, the demo and benchmarks.
//!
//! [`PgCluster::start`] finds the server tools (`initdb`, `pg_ctl`: `PATH` first, then the newest
//! `/usr/lib/postgresql/*/bin`), copies a per-machine template data directory into a fresh
//! temporary directory (in `/dev/shm` unless durable), and starts the server on `127.0.0.1`
//! at a free port, with its unix socket inside that directory. It never touches port 5432 or a system cluster. Dropping the
//! value stops the server (`pg_ctl stop -m immediate`) and removes the directory.
//!
//! The template (one `initdb`, about 40 MB) lives in the system temp directory, named after the
//! PostgreSQL version and the user, and is reused by every later cluster and process: `initdb`
//! takes about a second, a copy a few milliseconds.
//!
//! [`PgCluster::start_standby`] adds a streaming standby of a cluster (a base backup started
//! on another free port), for failover tests: [`PgCluster::stop_immediate`] the primary,
//! [`PgCluster::promote`] the standby.
//!
//! PostgreSQL refuses to run as root. When the caller is root (as in CI), the directories are
//! given to the `postgres` user and the tools run through `runuser -u postgres --`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

/// The clusters' superuser; it needs no password (other roles do, see `write_hba`).
pub const SUPERUSER: &str = "postgres";

/// How the cluster is tuned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgClusterOptions {
    /// `false` turns off fsync, synchronous_commit and full_page_writes: fast, fine for tests
    /// (a crash loses the throwaway data anyway). `true` keeps PostgreSQL's defaults, so
    /// benchmarks measure what a real installation would do.
    pub durable: bool,
    /// Loads pg_stat_statements (tracking nested statements too), for benchmarks that show
    /// where PostgreSQL's time goes; the database still needs `CREATE EXTENSION`.
    pub stat_statements: bool,
    /// Further postgresql.conf lines (`name = value`), last so that they win.
    pub extra: Vec<String>,
    /// Serve TLS with this certificate and key (PEM), and let roles other than the superuser
    /// in over TLS only, so that a test sees a client without it refused.
    pub tls: Option<ServerTls>,
}

/// A server certificate chain and its key, PEM; with `client_ca_pem`, roles other than the
/// superuser must also show a client certificate that CA issued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

/// Why a cluster could not be made, started or used.
#[derive(Debug)]
pub enum PgError {
    /// initdb/pg_ctl are not installed where we look.
    ToolsNotFound { searched: Vec<PathBuf> },
    /// A file system operation failed.
    Io { what: String, source: io::Error },
    /// A tool ran but failed; `output` holds what it printed (and the server log's tail).
    Tool { command: String, output: String },
    /// A database name that is not `[a-z0-9_]+`.
    BadDatabaseName(String),
    /// Connecting or running SQL failed.
    Postgres {
        what: String,
        source: postgres::Error,
    },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::ToolsNotFound { searched } => write!(
                f,
                "PostgreSQL server tools (initdb, pg_ctl) not found in {}; install them with \
                 `apt-get install postgresql` (Debian/Ubuntu)",
                searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PgError::Io { what, source } => write!(f, "{what}: {source}"),
            PgError::Tool { command, output } => write!(f, "`{command}` failed: {output}"),
            PgError::BadDatabaseName(name) => {
                write!(
                    f,
                    "database name {name:?} is not lower-case letters, digits and _"
                )
            }
            PgError::Postgres { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Io { source, .. } => Some(source),
            PgError::Postgres { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A running private PostgreSQL cluster; stopped and deleted on drop.
pub struct PgCluster {
    root: PathBuf,
    port: u16,
    tools: Tools,
    running: bool,
}

impl PgCluster {
    /// A fast, non-durable cluster (the usual choice for tests).
    pub fn start() -> Result<PgCluster, PgError> {
        PgCluster::start_with(PgClusterOptions::default())
    }

    /// A cluster tuned by `options`.
    pub fn start_with(options: PgClusterOptions) -> Result<PgCluster, PgError> {
        let tools = Tools::find()?;
        let template = template_dir(&tools)?;
        let parent = cluster_parent_dir(&options);
        reap_orphans(&tools, &parent);
        let root = make_unique_dir(&parent, "esmed-pg")?;
        // From here on `cluster` owns the directory: an error drops it and removes the dir.
        let mut cluster = PgCluster {
            root,
            port: 0,
            tools,
            running: false,
        };
        cluster.tools.give_to_postgres(&cluster.root)?;
        let mut copy = cluster.tools.command_as_owner("cp");
        copy.arg("-a")
            .arg(template.join("data"))
            .arg(cluster.data_dir());
        run(copy, "copy the template data directory")?;
        cluster.append_settings(&settings(&options, &cluster.root))?;
        cluster.write_hba(options.tls.as_ref())?;
        if let Some(tls) = &options.tls {
            cluster.write_server_tls(tls)?;
        }
        cluster.start_on_free_port()?;
        Ok(cluster)
    }

    /// The TCP port the server listens on (on [`PgCluster::host`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory holding the unix socket (usable as `host` by libpq clients such as psql).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server's log file: look here when something in the database went wrong.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Creates an empty database; `name` must be `[a-z0-9_]+`.
    pub fn create_database(&self, name: &str) -> Result<(), PgError> {
        check_database_name(name)?;
        let mut client = self.superuser_client("postgres")?;
        let sql = format!("CREATE DATABASE {name}");
        client
            .batch_execute(&sql)
            .map_err(|e| pg_error(format!("create database {name}"), e))
    }

    /// Runs the SQL file at `path` in database `db` as the superuser (e.g. `sql/db.sql`).
    pub fn load_schema(&self, db: &str, path: &Path) -> Result<(), PgError> {
        let sql = read_sql(path)?;
        self.superuser_client(db)?
            .batch_execute(&sql)
            .map_err(|e| pg_error(format!("run {} in {db}", path.display()), e))
    }

    /// A connection to `db` as the superuser.
    pub fn superuser_client(&self, db: &str) -> Result<Client, PgError> {
        self.connect(db, SUPERUSER, None)
    }

    /// Sets the `esmed` role's password (the role comes from `sql/db.sql`), then connects to `db`
    /// as `esmed`, with the privileges the daemon has in production.
    pub fn esmed_client(&self, db: &str, password: &str) -> Result<Client, PgError> {
        self.set_esmed_password(db, password)?;
        self.connect(db, "esmed", Some(password))
    }

    /// Sets the `esmed` role's password (the role comes from `sql/db.sql`).
    pub fn set_esmed_password(&self, db: &str, password: &str) -> Result<(), PgError> {
        let sql = format!(
            "ALTER ROLE esmed PASSWORD '{}'",
            password.replace('\'', "''")
        );
        self.superuser_client(db)?
            .batch_execute(&sql)
            .map_err(|e| pg_error("set the esmed role's password".to_string(), e))
    }

    /// Stops the server the way an administrator would (`pg_ctl stop -m fast`); for tests of a
    /// lost database connection. [`PgCluster::start_again`] brings it back on the same port.
    pub fn stop_fast(&mut self) -> Result<(), PgError> {
        self.pg_ctl_stop("fast")
    }

    /// Starts a stopped server again, on the same port.
    pub fn start_again(&mut self) -> Result<(), PgError> {
        self.pg_ctl_start()
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`): no shutdown
    /// checkpoint, connections cut at once; for failover tests.
    pub fn stop_immediate(&mut self) -> Result<(), PgError> {
        self.pg_ctl_stop("immediate")
    }

    /// A streaming standby of this cluster: a base backup (`pg_basebackup -R`) started on
    /// another free port of the same address, with its own socket directory, once this
    /// cluster sees it streaming. It is no synchronous standby itself (a promoted standby
    /// would otherwise wait for one of its own); see [`PgCluster::make_synchronous`].
    pub fn start_standby(&self) -> Result<PgCluster, PgError> {
        let parent = self
            .root
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .to_path_buf();
        let root = make_unique_dir(&parent, "esmed-pg")?;
        let mut standby = PgCluster {
            root,
            port: 0,
            tools: Tools {
                bin_dir: self.tools.bin_dir.clone(),
                as_postgres: self.tools.as_postgres,
            },
            running: false,
        };
        standby.tools.give_to_postgres(&standby.root)?;
        let mut backup = standby.tools.command("pg_basebackup");
        backup
            .arg("-D")
            .arg(standby.data_dir())
            .args(["-R", "-X", "stream", "-c", "fast", "-h", self.host()])
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER]);
        run(backup, "pg_basebackup")?;
        standby.append_settings(&format!(
            "\n# standby\nunix_socket_directories = '{}'\nsynchronous_standby_names = ''\n\
             hot_standby = on\n",
            standby.root.display()
        ))?;
        standby.start_on_free_port()?;
        self.wait_for_streaming()?;
        Ok(standby)
    }

    /// Waits (up to a minute) until a standby streams from this cluster.
    fn wait_for_streaming(&self) -> Result<(), PgError> {
        let mut client = self.superuser_client("postgres")?;
        for _ in 0..600 {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .map_err(|e| pg_error("read pg_stat_replication".into(), e))?;
            if row.get::<_, i64>(0) > 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(PgError::Tool {
            command: "wait for the standby to stream".into(),
            output: "no standby in pg_stat_replication after a minute".into(),
        })
    }

    /// Makes every commit wait until the standby has applied it (`synchronous_commit =
    /// remote_apply` with the standby synchronous): a standby promoted after this cluster
    /// stopped has every transaction that was reported committed.
    pub fn make_synchronous(&self) -> Result<(), PgError> {
        let mut client = self.superuser_client("postgres")?;
        // ALTER SYSTEM runs alone, outside a transaction block.
        for sql in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "ALTER SYSTEM SET synchronous_commit = 'remote_apply'",
            "SELECT pg_reload_conf()",
        ] {
            client
                .batch_execute(sql)
                .map_err(|e| pg_error("make replication synchronous".into(), e))?;
        }
        Ok(())
    }

    /// Promotes a standby (`pg_ctl promote`, waiting until it takes writes).
    pub fn promote(&self) -> Result<(), PgError> {
        let mut command = self.tools.command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "promote"]);
        run(command, "pg_ctl promote").map(|_| ())
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A connection to `db` as `user` (for a role a test made, e.g. an unprivileged one).
    pub fn connect(&self, db: &str, user: &str, password: Option<&str>) -> Result<Client, PgError> {
        let mut config = postgres::Config::new();
        config
            .host(self.host())
            .port(self.port)
            .user(user)
            .dbname(db);
        if let Some(password) = password {
            config.password(password);
        }
        config
            .connect(NoTls)
            .map_err(|e| pg_error(format!("connect to {db} as {user}"), e))
    }

    /// The superuser is trusted; every other role must give its password, as on a real
    /// installation, so that a wrong password in esmed.conf fails as it would in production
    /// (and, with `tls_only`, come over TLS).
    fn write_hba(&self, tls: Option<&ServerTls>) -> Result<(), PgError> {
        let path = self.data_dir().join("pg_hba.conf");
        let others = match tls {
            None => "host all all 127.0.0.1/32 scram-sha-256",
            Some(ServerTls {
                client_ca_pem: None,
                ..
            }) => "hostssl all all 127.0.0.1/32 scram-sha-256",
            Some(_) => "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca",
        };
        // The superuser also streams to a standby (see `start_standby`).
        let rules = format!(
            "local all all trust\n\
             local replication postgres trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host replication postgres 127.0.0.1/32 trust\n\
             {others}\n"
        );
        fs::write(&path, rules).map_err(|e| io_error(format!("write {}", path.display()), e))
    }

    /// The certificate and key in the data directory, the key readable by its owner only
    /// (PostgreSQL refuses it otherwise), both owned as the cluster is.
    fn write_server_tls(&self, tls: &ServerTls) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        let mut files = vec![("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem)];
        if let Some(client_ca) = &tls.client_ca_pem {
            files.push(("root.crt", client_ca));
        }
        for (name, pem) in files {
            let path = data.join(name);
            let what = || format!("write {}", path.display());
            fs::write(&path, pem).map_err(|e| io_error(what(), e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error(what(), e))?;
        }
        self.tools.give_to_postgres(&data)
    }

    fn append_settings(&self, lines: &str) -> Result<(), PgError> {
        let path = self.data_dir().join("postgresql.conf");
        let what = || format!("append to {}", path.display());
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_error(what(), e))?;
        file.write_all(lines.as_bytes())
            .map_err(|e| io_error(what(), e))
    }

    /// Picks a free port and starts there; retries when another process took the port between
    /// our probe and the server's bind.
    fn start_on_free_port(&mut self) -> Result<(), PgError> {
        let mut last_error = None;
        for _ in 0..5 {
            self.port = free_port()?;
            self.append_settings(&format!("port = {}\n", self.port))?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| PgError::Tool {
            command: "pg_ctl start".to_string(),
            output: "no attempt was made".to_string(),
        }))
    }

    fn pg_ctl_start(&mut self) -> Result<(), PgError> {
        let mut command = self.tools.command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path());
        command.args(["-w", "-t", "60", "start"]);
        run(command, "pg_ctl start").map_err(|e| self.with_log_tail(e))?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<(), PgError> {
        let mut command = self.tools.command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        run(command, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    fn with_log_tail(&self, error: PgError) -> PgError {
        let PgError::Tool {
            command,
            mut output,
        } = error
        else {
            return error;
        };
        if let Ok(log) = fs::read_to_string(self.log_path()) {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            output.push_str("\nserver log (last lines):\n");
            for line in tail.iter().rev() {
                output.push_str(line);
                output.push('\n');
            }
        }
        PgError::Tool { command, output }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl_stop("immediate");
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Where the server tools are and whether they must run as the `postgres` user.
struct Tools {
    bin_dir: PathBuf,
    as_postgres: bool,
}

impl Tools {
    fn find() -> Result<Tools, PgError> {
        let mut searched: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        searched.extend(versioned_bin_dirs());
        let has_tools =
            |dir: &PathBuf| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        match searched.iter().find(|dir| has_tools(dir)) {
            Some(dir) => Ok(Tools {
                bin_dir: dir.clone(),
                as_postgres: running_as_root(),
            }),
            None => Err(PgError::ToolsNotFound { searched }),
        }
    }

    /// A PostgreSQL tool, run as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        self.command_as_owner(&self.locate(tool).to_string_lossy())
    }

    /// `tool` next to initdb, or else next to the file initdb links to: a `PATH` directory
    /// may link only the server tools (initdb, pg_ctl) and not the others (pg_basebackup).
    fn locate(&self, tool: &str) -> PathBuf {
        let beside = self.bin_dir.join(tool);
        if beside.is_file() {
            return beside;
        }
        fs::canonicalize(self.bin_dir.join("initdb"))
            .ok()
            .and_then(|initdb| Some(initdb.parent()?.join(tool)))
            .filter(|linked| linked.is_file())
            .unwrap_or(beside)
    }

    /// Any program, run as the user who owns the cluster files.
    fn command_as_owner(&self, program: &str) -> Command {
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--", program]);
            runuser
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }

    fn give_to_postgres(&self, dir: &Path) -> Result<(), PgError> {
        if !self.as_postgres {
            return Ok(());
        }
        let mut chown = Command::new("chown");
        chown.arg("-R").arg("postgres:").arg(dir);
        run(chown, "chown the cluster directory to postgres").map(|_| ())
    }

    fn version(&self) -> Result<String, PgError> {
        let mut command = Command::new(self.bin_dir.join("initdb"));
        command.arg("--version");
        let output = run(command, "initdb --version")?;
        // "initdb (PostgreSQL) 15.18 (Debian ...)": keep a file-name-safe version word.
        let version = output.split_whitespace().nth(2).unwrap_or("unknown");
        Ok(version
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect())
    }
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = name
                .split('.')
                .map(|part| part.parse().unwrap_or(0))
                .collect();
            (key, entry.path().join("bin"))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).collect()
}

fn running_as_root() -> bool {
    current_uid() == Some(0)
}

/// The effective uid, read from /proc/self's owner (std has no geteuid).
fn current_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The per-machine template data directory, made by `initdb` the first time.
fn template_dir(tools: &Tools) -> Result<PathBuf, PgError> {
    static TEMPLATE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = TEMPLATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(dir) = cached.as_ref() {
        return Ok(dir.clone());
    }
    let uid = current_uid().unwrap_or(u32::MAX);
    let name = format!("esmed-pg-template-{}-u{uid}", tools.version()?);
    let dir = std::env::temp_dir().join(name);
    if !dir.join("ready").is_file() {
        build_template(tools, &dir)?;
    }
    *cached = Some(dir.clone());
    Ok(dir)
}

/// Runs initdb into a private directory, then renames it into place; a concurrent process
/// doing the same loses the rename and uses the winner's.
fn build_template(tools: &Tools, dir: &Path) -> Result<(), PgError> {
    let building = make_unique_dir(&std::env::temp_dir(), "esmed-pg-template-building")?;
    let result = initdb_into(tools, &building);
    if result.is_ok() && fs::rename(&building, dir).is_ok() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(&building);
    result?;
    match dir.join("ready").is_file() {
        true => Ok(()),
        false => Err(io_error(
            format!("move the template into {}", dir.display()),
            io::Error::other("rename failed and no usable template is there"),
        )),
    }
}

/// The SQL of `path` as psql runs it: each `\ir FILE` line (include, relative to `path`'s
/// directory) replaced by that file's SQL, and the variables and conditionals the schema
/// files use (`\set NAME VALUE`, `\if :NAME`, `\if :{?NAME}`, `\else`, `\endif`) applied.
pub fn read_sql(path: &Path) -> Result<String, PgError> {
    read_sql_with(path, &mut HashMap::new())
}

/// [`read_sql`] with psql variables already set (`\set` in an including file, or `-v`).
pub fn read_sql_with(path: &Path, vars: &mut HashMap<String, String>) -> Result<String, PgError> {
    let text =
        fs::read_to_string(path).map_err(|e| io_error(format!("read {}", path.display()), e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut sql = String::with_capacity(text.len());
    // Whether each open \if's current branch is taken, and whether one of its branches was.
    let mut branches: Vec<(bool, bool)> = Vec::new();
    for line in text.lines() {
        let command = line.trim();
        let taking = branches.iter().all(|&(taken, _)| taken);
        if let Some(condition) = command.strip_prefix("\\if ") {
            let holds = taking && psql_condition(condition.trim(), vars, path)?;
            branches.push((holds, holds));
        } else if command == "\\else" {
            let Some((taken, any)) = branches.last_mut() else {
                return Err(sql_file_error(path, "\\else without \\if"));
            };
            *taken = !*any;
            *any = true;
        } else if command == "\\endif" {
            if branches.pop().is_none() {
                return Err(sql_file_error(path, "\\endif without \\if"));
            }
        } else if taking {
            if let Some(assignment) = command.strip_prefix("\\set ") {
                let mut words = assignment.split_whitespace();
                if let Some(name) = words.next() {
                    vars.insert(name.to_string(), words.collect::<Vec<_>>().join(""));
                }
            } else if let Some(included) = command.strip_prefix("\\ir ") {
                sql.push_str(&read_sql_with(&dir.join(included.trim()), vars)?);
                sql.push('\n');
            } else {
                sql.push_str(line);
                sql.push('\n');
            }
        }
    }
    if !branches.is_empty() {
        return Err(sql_file_error(path, "\\if without \\endif"));
    }
    Ok(sql)
}

/// `:NAME` (the variable's value as a boolean, as psql reads it) or `:{?NAME}` (whether it
/// is set).
fn psql_condition(
    condition: &str,
    vars: &HashMap<String, String>,
    path: &Path,
) -> Result<bool, PgError> {
    if let Some(name) = condition
        .strip_prefix(":{?")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        return Ok(vars.contains_key(name));
    }
    let value = condition
        .strip_prefix(':')
        .and_then(|name| vars.get(name))
        .ok_or_else(|| sql_file_error(path, &format!("\\if {condition}: not a set variable")))?;
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        other => Err(sql_file_error(
            path,
            &format!("\\if {condition}: {other:?} is not a boolean"),
        )),
    }
}

fn sql_file_error(path: &Path, why: &str) -> PgError {
    io_error(
        format!("read {}", path.display()),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string()),
    )
}

fn initdb_into(tools: &Tools, root: &Path) -> Result<(), PgError> {
    tools.give_to_postgres(root)?;
    let mut initdb = tools.command("initdb");
    initdb.arg("-D").arg(root.join("data"));
    initdb.args([
        "-A",
        "trust",
        "--no-sync",
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    initdb.arg("--no-instructions");
    run(initdb, "initdb")?;
    fs::write(root.join("ready"), b"").map_err(|e| io_error("mark the template ready".into(), e))
}

fn settings(options: &PgClusterOptions, root: &Path) -> String {
    let mut lines = String::from("\n# esmed testkit\nlisten_addresses = '127.0.0.1'\n");
    // Lets tests compare when a row was committed with when the SMSC got its response.
    lines.push_str("track_commit_timestamp = on\n");
    lines.push_str(&format!("unix_socket_directories = '{}'\n", root.display()));
    if !options.durable {
        lines.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        lines.push_str("shared_buffers = 32MB\n");
    }
    if options.stat_statements {
        lines.push_str("shared_preload_libraries = 'pg_stat_statements'\n");
        lines.push_str("pg_stat_statements.track = all\n");
    }
    if let Some(tls) = &options.tls {
        lines.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        if tls.client_ca_pem.is_some() {
            lines.push_str("ssl_ca_file = 'root.crt'\n");
        }
    }
    for line in &options.extra {
        lines.push_str(line);
        lines.push('\n');
    }
    lines
}

/// A port the kernel just handed out as free; never PostgreSQL's default 5432.
fn free_port() -> Result<u16, PgError> {
    for _ in 0..10 {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| io_error("find a free port".into(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| io_error("find a free port".into(), e))?
            .port();
        if port != 5432 {
            return Ok(port);
        }
    }
    Err(io_error(
        "find a free port".into(),
        io::Error::other("only 5432 was offered"),
    ))
}

/// Where a cluster's directory goes: a throwaway cluster in RAM (`/dev/shm`, when there is
/// one) since copying the template and writing there is several times faster than to disk on
/// a busy machine; a durable one in the system temp directory, on disk.
fn cluster_parent_dir(options: &PgClusterOptions) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    match !options.durable && writable {
        true => shm.to_path_buf(),
        false => std::env::temp_dir(),
    }
}

/// Stops and removes clusters whose test process died without dropping them (killed by a
/// timeout, say), so they don't keep running and holding memory in `/dev/shm`.
fn reap_orphans(tools: &Tools, parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("esmed-pg-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let owner_alive = Path::new("/proc").join(pid).exists();
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || owner_alive {
            continue;
        }
        let mut stop = tools.command("pg_ctl");
        stop.arg("-D")
            .arg(entry.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = run(stop, "pg_ctl stop (orphaned cluster)");
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// Creates `<parent>/<prefix>-<pid>-<counter>-<nanos>`, failing rather than reusing a directory.
fn make_unique_dir(parent: &Path, prefix: &str) -> Result<PathBuf, PgError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir(&dir).map_err(|e| io_error(format!("create {}", dir.display()), e))?;
    Ok(dir)
}

/// Runs a command to completion; its stdout on success, a [`PgError::Tool`] otherwise.
fn run(mut command: Command, what: &str) -> Result<String, PgError> {
    let output = command
        .output()
        .map_err(|e| io_error(format!("run {what}"), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(PgError::Tool {
        command: what.to_string(),
        output: format!("{}{stdout}{stderr}", output.status),
    })
}

fn check_database_name(name: &str) -> Result<(), PgError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match valid {
        true => Ok(()),
        false => Err(PgError::BadDatabaseName(name.to_string())),
    }
}

fn io_error(what: String, source: io::Error) -> PgError {
    PgError::Io { what, source }
}

fn pg_error(what: String, source: postgres::Error) -> PgError {
    PgError::Postgres { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_files_are_read_with_their_includes_variables_and_conditionals() {
        let dir = std::env::temp_dir().join(format!("testkit-read-sql-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("main.sql"),
            "\\if :{?layout}\n\\else\n\\set layout false\n\\endif\nA;\n\\ir part.sql\n",
        )
        .unwrap();
        fs::write(
            dir.join("part.sql"),
            "\\if :layout\nB (\n\\if :layout\n  inner\n\\endif\n)\n\\else\nC;\n\\endif\nD;\n",
        )
        .unwrap();
        fs::write(
            dir.join("wrapper.sql"),
            "\\set layout true\n\\ir main.sql\n",
        )
        .unwrap();
        let lines = |path: &str| -> Vec<String> {
            read_sql(&dir.join(path))
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(lines("main.sql"), ["A;", "C;", "D;"]);
        assert_eq!(lines("wrapper.sql"), ["A;", "B (", "  inner", ")", "D;"]);
        fs::write(dir.join("open.sql"), "\\if :{?x}\nA;\n").unwrap();
        assert!(
            read_sql(&dir.join("open.sql")).is_err(),
            "an \\if left open"
        );
        fs::write(dir.join("unset.sql"), "\\if :x\nA;\n\\endif\n").unwrap();
        assert!(
            read_sql(&dir.join("unset.sql")).is_err(),
            "an unset variable"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn database_names_are_checked() {
        assert!(check_database_name("esmed_test_1").is_ok());
        assert!(check_database_name("").is_err());
        assert!(check_database_name("x; DROP").is_err());
        assert!(check_database_name("Upper").is_err());
    }

    #[test]
    fn missing_tools_error_says_how_to_install() {
        let error = PgError::ToolsNotFound {
            searched: vec![PathBuf::from("/usr/bin")],
        };
        assert!(error.to_string().contains("apt-get install postgresql"));
    }

    #[test]
    fn fast_settings_turn_off_fsync_and_durable_ones_do_not() {
        let fast = settings(
            &PgClusterOptions {
                durable: false,
                ..Default::default()
            },
            Path::new("/tmp/x"),
        );
        assert!(
            fast.contains("fsync = off") && fast.contains("unix_socket_directories = '/tmp/x'")
        );
        let durable = settings(
            &PgClusterOptions {
                durable: true,
                ..Default::default()
            },
            Path::new("/tmp/x"),
        );
        assert!(!durable.contains("fsync") && !durable.contains("pg_stat_statements"));
        let traced = PgClusterOptions {
            stat_statements: true,
            ..Default::default()
        };
        assert!(settings(&traced, Path::new("/tmp/x"))
            .contains("shared_preload_libraries = 'pg_stat_statements'"));
        let tuned = PgClusterOptions {
            extra: vec!["max_wal_size = 8GB".into()],
            ..Default::default()
        };
        assert!(settings(&tuned, Path::new("/tmp/x")).ends_with("max_wal_size = 8GB\n"));
    }

    #[test]
    fn free_port_is_never_5432() {
        assert_ne!(free_port().unwrap(), 5432);
    }
}
