//! The esmed daemon's entry point: parse the command line, load the config, start logging, run.
//!
//! Exit codes: 0 ok, 1 config or runtime error, 2 usage error. Every failure before logging
//! starts is one line on stderr.

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
            log::error!("cannot run: {error}");
            if !config.log.stderr {
                eprintln!("esmed: cannot run: {error}");
            }
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}
