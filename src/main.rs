//! The esmed daemon's entry point: parse the command line, load the config, start logging, run.
//!
//! Exit codes: 0 ok, 1 config or runtime error (a database thread that gave up or panicked),
//! 2 usage error. Every failure before logging starts is one line on stderr. `esmed status`:
//! 0 an instance is running and bound, 1 none is, 2 the config or the database is unusable.
//! `esmed purge`: 0 done, 1 the config or the database failed.

use std::path::Path;
use std::process::ExitCode;

use esmed::cli::{self, Command};
use esmed::config::Config;
use esmed::logging;

const EXIT_CONFIG_ERROR: u8 = 1;
const EXIT_USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::help_text());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("esmed {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::CheckConfig { config }) => check_config(&config),
        Ok(Command::Run { config }) => run(&config),
        Ok(Command::Status { config, json }) => status(&config, json),
        Ok(Command::Purge {
            config,
            older_than,
            dry_run,
        }) => purge(&config, older_than, dry_run),
        Err(usage_error) => {
            eprintln!("{usage_error}\n{}", cli::USAGE);
            ExitCode::from(EXIT_USAGE_ERROR)
        }
    }
}

/// `--check-config`: warnings on stderr, `OK: <path>` on stdout, or the one-line error.
fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            println!("OK: {}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// `esmed purge`: removes (or counts) finished history over the `[purge]` connection; the
/// totals on stdout, or one line on stderr and exit 1.
fn purge(path: &Path, older_than: std::time::Duration, dry_run: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let database = config.purge.database(&config.database);
    let plan = esmed::db::purge::PurgePlan {
        older_than,
        receipt_window: config.receipt_match_window(),
        batch_rows: config.purge.batch_rows(),
        batch_pause: config.purge.batch_pause(),
        dry_run,
    };
    let purged = esmed::db::PgConnector::new(&database)
        .connect()
        .and_then(|mut client| esmed::db::purge::purge(&mut client, &plan));
    match purged {
        Ok(totals) => {
            for day in &totals.days {
                println!("esmed purge: {day}");
            }
            println!("esmed purge: {}", totals.summary(dry_run));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("esmed purge: {}", logging::one_line(&error.to_string()));
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// `esmed status`: the report on stdout, or one line on stderr and exit 2.
fn status(path: &Path, json: bool) -> ExitCode {
    const STATUS_NOT_RUNNING: u8 = 1;
    const STATUS_UNUSABLE: u8 = 2;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(STATUS_UNUSABLE);
        }
    };
    match esmed::observe::report::connect_and_gather(&config.database) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(STATUS_NOT_RUNNING)
            }
        }
        Err(error) => {
            eprintln!("esmed status: {}", logging::one_line(&error.to_string()));
            ExitCode::from(STATUS_UNUSABLE)
        }
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    let log_handle = match logging::init(&config.log) {
        Ok(log_handle) => log_handle,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    log::info!(
        "esmed {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    match esmed::daemon::run(&config, &log_handle) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A thread that failed ended a run that had started: not a "cannot run".
            let what = match error {
                esmed::daemon::DaemonError::ThreadFailed(_) => "stopped",
                _ => "cannot run",
            };
            log::error!("{what}: {error}");
            if !config.log.stderr {
                eprintln!("esmed: {what}: {}", logging::one_line(&error.to_string()));
            }
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}
