//! `esmed-bench`: esmed's benchmark. Starts a private durable PostgreSQL cluster, the
//! test SMSC (`esmed-smsc`) and esmed (both release binaries beside this one) as separate
//! processes on 127.0.0.1, runs the scenarios (burst, burst with receipts, latency, backlog,
//! the PostgreSQL-only and SMSC-only ceilings, and history behind the queue on both schema
//! layouts), prints a table and optionally writes JSON.
//!
//! `make bench` / `make bench-quick`; `esmed-bench --help` for the flags.

mod ceilings;
mod failover;
mod feed;
mod history;
mod hosts;
mod journal;
mod kannel;
mod pace;
mod procs;
mod purge;
mod report;
mod rig;
mod scenarios;
mod waits;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use esmed::cli::{options_or_exit, FlagError, Flags};
use report::Outcome;

const HELP: &str = "\
esmed-bench: end-to-end benchmark of esmed (PostgreSQL -> esmed -> test SMSC)

USAGE: esmed-bench [OPTIONS]
  --rows N              burst size (default 100000)
  --backlog N           pending rows of the backlog scenario (default 1000000)
  --history N           done rows beside the backlog (default: same as --backlog)
  --history-rows N      finished rows behind the queue in the history scenario (default
                        20000000); its bursts are --rows, at most 50000
  --latency-seconds S   length of the latency scenario (default 20)
  --latency-rate R      single-row inserts per second (default 50)
  --window W            smpp_window of the server row and of the SMSC-only ceiling (default 100)
  --windows-seconds S   length of each delay of the windows scenario (default 5)
  --kannel-rows N       messages of each window of the Kannel scenario (default 20000); that
                        scenario runs when Debian's kannel package is installed
  --timeout S           per-scenario limit in seconds (default 900); a scenario over it fails
  --only LIST           comma-separated subset: burst,receipts,latency,windows,feed,purge,pg,
                        pg_window,smsc,backlog,pg_backlog,kannel,failover,hosts,history
                        (pg_window runs only with a window below esmed's result_batch, 1000)
  --quick               10,000 rows, 50,000 backlog, 5 s latency, 2 s per delay of the windows
                        scenario, 1,000,000 history rows: a few minutes
  --json FILE           also write the results as JSON
  --before-esmed PATH   an esmed binary without the results feed (how to build one:
                        docs/benchmarks.md, scenario 8): the feed scenario compares the
                        burst with it (triggers off) and with this version's (feed on);
                        without it, only the latter is measured
  --daemon 'KEY = VALUE'  an extra [daemon] line of esmed.conf (repeatable), e.g.
                        --daemon 'strict_resend_bound = true'
  --pg 'NAME = VALUE'   a postgresql.conf line for the bench's cluster (repeatable), after
                        its settings that are not PostgreSQL's defaults, max_wal_size = 8GB
                        and min_wal_size = 2GB (the advice for sustained rates in docs/scaling.md);
                        --pg 'max_wal_size = 1GB' --pg 'min_wal_size = 80MB' runs with every
                        default. Shown in the table and JSON
  --pg-stats            after each scenario, print PostgreSQL's costliest statements
                        (pg_stat_statements): where its time went
  --pg-waits            after each scenario, print what esmed's PostgreSQL backends were
                        doing (pg_stat_activity sampled every 5 ms): running or waiting,
                        for what (the sampling costs PostgreSQL some CPU)
";

/// The bench cluster's postgresql.conf lines besides PostgreSQL's defaults: what docs/scaling.md
/// advises for sustained rates. At the default 1 GB a checkpoint falls somewhere in a
/// million-row drain and the slices after it run 10-15 % slower (the checkpointer's writes
/// share the disk with the commits' fsyncs), so the backlog's last-against-first figure
/// would tell where that checkpoint fell rather than whether claiming slows as history
/// grows. `min_wal_size` keeps 2 GB of WAL segments for reuse after a checkpoint (see
/// `rig::warm_wal`), so that commits write into files made earlier, as on a server in
/// service, even after a quiet spell. The ceilings run on the same cluster, so the ratios
/// compare like with like.
const ADVISED_PG_SETTINGS: &[&str] = &["max_wal_size = 8GB", "min_wal_size = 2GB"];

/// WAL segments are 16 MB; `min_wal_size` keeps 2 GB of them.
const WAL_SEGMENT_BYTES: u64 = 16 << 20;
const MAX_WAL_SEGMENTS_TO_WARM: u64 = (2 << 30) / WAL_SEGMENT_BYTES;

/// Why a benchmark step failed.
#[derive(Debug)]
pub enum BenchError {
    Usage(String),
    Io {
        what: String,
        source: std::io::Error,
    },
    Cluster(esmed_testkit::PgError),
    Postgres {
        what: String,
        source: postgres::Error,
    },
    Db(esmed::db::DbError),
    Process(String),
    Smpp(String),
    /// A scenario did not finish in time; the string says what it was waiting for.
    Timeout(String),
}

impl BenchError {
    pub fn io(what: &str, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub fn pg(what: &str) -> impl FnOnce(postgres::Error) -> BenchError + '_ {
        move |source| BenchError::Postgres {
            what: what.to_string(),
            source,
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Usage(why) => write!(f, "usage: {why}"),
            BenchError::Io { what, source } => write!(f, "{what}: {source}"),
            BenchError::Cluster(e) => write!(f, "PostgreSQL cluster: {e}"),
            BenchError::Postgres { what, source } => match source.as_db_error() {
                Some(db) => write!(f, "{what}: {}", db.message()),
                None => write!(f, "{what}: {source}"),
            },
            BenchError::Db(e) => write!(f, "{e}"),
            BenchError::Process(why) => f.write_str(why),
            BenchError::Smpp(why) => write!(f, "SMPP: {why}"),
            BenchError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<FlagError> for BenchError {
    fn from(e: FlagError) -> Self {
        BenchError::Usage(e.0)
    }
}

impl From<esmed_testkit::PgError> for BenchError {
    fn from(e: esmed_testkit::PgError) -> Self {
        BenchError::Cluster(e)
    }
}

impl From<esmed::db::DbError> for BenchError {
    fn from(e: esmed::db::DbError) -> Self {
        BenchError::Db(e)
    }
}

/// The sizes and limits of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub rows: u64,
    pub backlog: u64,
    pub history: u64,
    /// Finished rows behind the queue in the history scenario.
    pub history_rows: u64,
    pub latency_seconds: u64,
    pub latency_rate: u64,
    pub window: u32,
    /// Each delay of the windows scenario drains about this many seconds' worth of rows.
    pub windows_seconds: u64,
    /// Messages each window of the Kannel scenario drains.
    pub kannel_rows: u64,
    pub timeout: Duration,
    pub only: Option<Vec<String>>,
    pub json: Option<PathBuf>,
    /// An esmed without the results feed, for the feed scenario's comparison.
    pub before_esmed: Option<PathBuf>,
    pub pg_stats: bool,
    pub pg_waits: bool,
    /// Extra `[daemon]` lines for esmed.conf.
    pub daemon: Vec<String>,
    /// Extra postgresql.conf lines for the bench's cluster.
    pub pg_settings: Vec<String>,
}

impl Options {
    /// How many WAL segments to make ready before the scenarios (see `rig::warm_wal`): about
    /// what the longest stretch between two checkpoints writes, the backlog's load of pending
    /// and history rows (under 1 KB of WAL a row) or a burst with receipts (under 2 KB a
    /// row); at least 4, at most the 2 GB `min_wal_size` keeps.
    pub fn wal_segments_to_warm(&self) -> u32 {
        let bytes = (self.backlog + self.history).max(2 * self.rows) * 1024;
        bytes
            .div_ceil(WAL_SEGMENT_BYTES)
            .clamp(4, MAX_WAL_SEGMENTS_TO_WARM) as u32
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rows: 100_000,
            backlog: 1_000_000,
            history: 1_000_000,
            history_rows: 20_000_000,
            latency_seconds: 20,
            latency_rate: 50,
            window: 100,
            windows_seconds: 5,
            kannel_rows: 20_000,
            timeout: Duration::from_secs(900),
            only: None,
            json: None,
            before_esmed: None,
            pg_stats: false,
            pg_waits: false,
            daemon: Vec::new(),
            pg_settings: ADVISED_PG_SETTINGS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Options {
    pub fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == scenario))
    }
}

/// Parses the flags; `Ok(None)` for --help.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Options>, BenchError> {
    let mut o = Options::default();
    let mut history = None;
    let mut history_rows = None;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--rows" => o.rows = flags.number(&flag)?,
            "--backlog" => o.backlog = flags.number(&flag)?,
            "--history" => history = Some(flags.number(&flag)?),
            "--history-rows" => history_rows = Some(flags.number(&flag)?),
            "--latency-seconds" => o.latency_seconds = flags.number(&flag)?,
            "--latency-rate" => o.latency_rate = flags.number::<u64>(&flag)?.max(1),
            "--window" => o.window = flags.number::<u32>(&flag)?.max(1),
            "--windows-seconds" => o.windows_seconds = flags.number::<u64>(&flag)?.max(1),
            "--kannel-rows" => o.kannel_rows = flags.number::<u64>(&flag)?.max(2),
            "--timeout" => o.timeout = Duration::from_secs(flags.number(&flag)?),
            "--only" => {
                let only = flags.value(&flag)?;
                o.only = Some(only.split(',').map(str::to_string).collect());
            }
            "--json" => o.json = Some(PathBuf::from(flags.value(&flag)?)),
            "--before-esmed" => o.before_esmed = Some(PathBuf::from(flags.value(&flag)?)),
            "--pg-stats" => o.pg_stats = true,
            "--pg-waits" => o.pg_waits = true,
            "--daemon" => o.daemon.push(flags.value(&flag)?),
            "--pg" => o.pg_settings.push(flags.value(&flag)?),
            "--quick" => {
                o.rows = 10_000;
                o.backlog = 50_000;
                o.latency_seconds = 5;
                o.windows_seconds = 2;
                o.kannel_rows = 5_000;
                o.history_rows = 1_000_000;
                o.timeout = Duration::from_secs(120);
            }
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    o.history = history.unwrap_or(o.backlog);
    o.history_rows = history_rows.unwrap_or(o.history_rows);
    Ok(Some(o))
}

fn main() -> ExitCode {
    let parsed = parse_args(std::env::args().skip(1));
    let options = match options_or_exit(parsed, "esmed-bench", HELP) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("esmed-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every wanted scenario; a failed scenario is reported and the others still run.
/// Returns whether all succeeded.
fn run(options: &Options) -> Result<bool, BenchError> {
    eprintln!("esmed-bench: starting a durable PostgreSQL cluster");
    let mut rig = rig::Rig::new(options.clone())?;
    let machine = report::Machine::describe(&mut rig);
    let mut outcomes: Vec<Outcome> = Vec::new();
    type Scenario = fn(&mut rig::Rig) -> Result<Outcome, BenchError>;
    let plan: [(&str, &str, Scenario); 15] = [
        ("burst", "1 burst", scenarios::burst),
        (
            "receipts",
            "2 burst + receipts",
            scenarios::burst_with_receipts,
        ),
        ("latency", "3 latency", scenarios::latency),
        (
            "windows",
            "6 window 10, SMSC answering after a delay",
            scenarios::windows,
        ),
        ("feed", "8 results feed", feed::feed),
        (
            "purge",
            "9 drain with a purge running",
            purge::purge_during_drain,
        ),
        ("pg", "5a PostgreSQL-only ceiling", ceilings::postgres_only),
        (
            "pg_window",
            "5d PostgreSQL-only ceiling, result batches <= window",
            ceilings::postgres_only_window_batches,
        ),
        ("smsc", "5b SMSC-only ceiling", ceilings::smsc_only),
        ("backlog", "4 backlog", scenarios::backlog),
        (
            "pg_backlog",
            "5c PostgreSQL-only ceiling, backlog shape",
            ceilings::postgres_only_backlog,
        ),
        (
            "kannel",
            "7 esmed and Kannel side by side",
            kannel::side_by_side,
        ),
        ("failover", "10 PostgreSQL failover", failover::failover),
        ("hosts", "11 one esmed and two on one queue", hosts::hosts),
        ("history", "12 history", history::history),
    ];
    for (key, title, scenario) in plan {
        if !options.wants(key) {
            continue;
        }
        if key == "pg_window" && !ceilings::window_bounds_result_batches(options.window) {
            continue; // the same as 5a at this window
        }
        if key == "kannel" && !kannel::installed() {
            eprintln!(
                "esmed-bench: scenario {title} skipped: Kannel is not installed \
                 (make bench-kannel installs Debian's kannel package when root)"
            );
            continue;
        }
        eprintln!("esmed-bench: scenario {title}");
        let outcome = scenario(&mut rig).unwrap_or_else(|e| {
            eprintln!("esmed-bench: scenario {title} FAILED: {e}");
            Outcome::failed(key, title, e.to_string())
        });
        eprintln!("{}", outcome.one_line());
        if options.pg_stats {
            match rig.statement_costs() {
                Ok(lines) => eprintln!("{lines}"),
                Err(e) => eprintln!("esmed-bench: pg_stat_statements: {e}"),
            }
        }
        if let Some(waits) = rig.finish_waits() {
            match waits {
                Ok(lines) => eprintln!("{lines}"),
                Err(e) => eprintln!("esmed-bench: pg_stat_activity sampling: {e}"),
            }
        }
        outcomes.push(outcome);
    }
    let table = report::table(&outcomes, options);
    println!("\n{machine}\n{table}");
    if let Some(path) = &options.json {
        let text = report::json(&machine, options, &outcomes);
        std::fs::write(path, text).map_err(|e| BenchError::io("write the JSON results", e))?;
        println!("results written to {}", path.display());
    }
    Ok(outcomes.iter().all(|o| o.error.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, BenchError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_wal_made_ready_covers_the_backlogs_load_within_min_wal_size() {
        let default = Options::default();
        // 2,000,000 rows of about 1 KB of WAL each, in 16 MB segments.
        assert_eq!(default.wal_segments_to_warm(), 123);
        let toy = Options {
            rows: 2000,
            backlog: 3000,
            history: 1000,
            ..Options::default()
        };
        assert_eq!(toy.wal_segments_to_warm(), 4);
        let huge = Options {
            backlog: 10_000_000,
            ..Options::default()
        };
        assert_eq!(huge.wal_segments_to_warm(), 128);
    }

    #[test]
    fn quick_sets_small_sizes_and_history_follows_backlog() {
        let o = parse(&["--quick"]).unwrap().unwrap();
        assert_eq!(o.rows, 10_000);
        assert_eq!(o.history, o.backlog);
        assert_eq!(o.history_rows, 1_000_000);
        let o = parse(&["--history-rows", "5", "--quick"]).unwrap().unwrap();
        assert_eq!(o.history_rows, 5);
        let o = parse(&["--backlog", "7", "--history", "3", "--only", "pg,smsc"])
            .unwrap()
            .unwrap();
        assert_eq!((o.backlog, o.history), (7, 3));
        assert!(o.wants("pg") && !o.wants("burst"));
        assert!(parse(&["--rows"]).is_err());
        assert!(parse(&["--rows", "x"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
        let o = parse(&["--daemon", "strict_resend_bound = true"])
            .unwrap()
            .unwrap();
        assert_eq!(o.daemon, ["strict_resend_bound = true"]);
        let o = parse(&["--pg", "max_wal_size = 1GB"]).unwrap().unwrap();
        assert_eq!(
            o.pg_settings,
            [
                "max_wal_size = 8GB",
                "min_wal_size = 2GB",
                "max_wal_size = 1GB"
            ]
        );
    }
}
