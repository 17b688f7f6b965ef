//! The command line: `esmed [-c FILE | --config FILE] [--check-config] [--version|-V] [--help|-h]`,
//! and `esmed status [-c FILE] [--json]`.
//!
//! Parsing only; `main.rs` acts on the resulting `Command`. Parsed by hand because the grammar is
//! four options and the crate list has no argument parser.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::config::DEFAULT_PATH;

/// What esmed was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon with this config file.
    Run {
        config: PathBuf,
    },
    /// Load the config, report warnings and errors, and exit.
    CheckConfig {
        config: PathBuf,
    },
    /// `esmed status`: print the instances' heartbeat rows and the queue, then exit.
    Status {
        config: PathBuf,
        json: bool,
    },
    Version,
    Help,
}

/// A command line esmed does not understand; `Display` is one line, `USAGE` follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    UnknownOption(String),
    MissingValue(&'static str),
    UnexpectedArgument(String),
    /// `--json` without `status`.
    JsonWithoutStatus,
}

/// The one-line synopsis printed after a usage error.
pub const USAGE: &str =
    "usage: esmed [-c FILE | --config FILE] [--check-config] [--version] [--help]\n       \
     esmed status [-c FILE] [--json]";

/// The `--help` text.
pub fn help_text() -> String {
    format!(
        "esmed {version}: SMPP 3.4 ESME daemon; sends SMS queued in PostgreSQL\n\
         \n\
         {USAGE}\n\
         \n\
         Options:\n  \
           -c, --config FILE   read FILE instead of {DEFAULT_PATH}\n      \
               --check-config  check the config file, print warnings and OK, then exit\n  \
           -V, --version       print the version and exit\n  \
           -h, --help          print this help and exit\n\
         \n\
         esmed status [-c FILE] [--json]: print each instance's heartbeat (esmed_status), the\n\
         queue depth, the oldest unfinished message's age and the last hour's done/failed;\n\
         --json prints the same as JSON. Exit 0 when an instance is running and bound, 1 when\n\
         none is, 2 when the config or the database is unusable.\n\
         \n\
         Signals: SIGTERM/SIGINT stop gracefully; SIGHUP re-opens the log file.\n\
         Exit codes: 0 ok, 1 config or runtime error, 2 usage error.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

/// Parses the arguments after the program name. `--help` and `--version` win over the rest,
/// but only when every argument is valid, so typos never go unnoticed.
pub fn parse_args<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut config = PathBuf::from(DEFAULT_PATH);
    let (mut check_config, mut version, mut help) = (false, false, false);
    let (mut status, mut json) = (false, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if let Some(value) = text.strip_prefix("--config=") {
            config = PathBuf::from(value);
            continue;
        }
        match text.as_ref() {
            "-c" | "--config" => {
                let value = args.next().ok_or(UsageError::MissingValue("--config"))?;
                config = PathBuf::from(value);
            }
            "--check-config" => check_config = true,
            "-V" | "--version" => version = true,
            "-h" | "--help" => help = true,
            "--json" => json = true,
            "status" if !status => status = true,
            option if option.starts_with('-') => {
                return Err(UsageError::UnknownOption(option.to_string()))
            }
            other => return Err(UsageError::UnexpectedArgument(other.to_string())),
        }
    }
    if json && !status {
        return Err(UsageError::JsonWithoutStatus);
    }
    Ok(match (help, version, check_config, status) {
        (true, ..) => Command::Help,
        (false, true, ..) => Command::Version,
        (false, false, true, _) => Command::CheckConfig { config },
        (false, false, false, true) => Command::Status { config, json },
        (false, false, false, false) => Command::Run { config },
    })
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownOption(option) => write!(f, "esmed: unknown option '{option}'"),
            UsageError::MissingValue(option) => write!(f, "esmed: {option} needs a file name"),
            UsageError::UnexpectedArgument(argument) => {
                write!(f, "esmed: unexpected argument '{argument}'")
            }
            UsageError::JsonWithoutStatus => f.write_str("esmed: --json goes with 'esmed status'"),
        }
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn run(path: &str) -> Command {
        Command::Run {
            config: PathBuf::from(path),
        }
    }

    #[test]
    fn no_arguments_runs_with_the_default_config() {
        assert_eq!(parse(&[]), Ok(run("/etc/esmed/esmed.conf")));
    }

    #[test]
    fn config_path_in_every_spelling() {
        assert_eq!(parse(&["-c", "/tmp/a.conf"]), Ok(run("/tmp/a.conf")));
        assert_eq!(parse(&["--config", "b.conf"]), Ok(run("b.conf")));
        assert_eq!(parse(&["--config=c.conf"]), Ok(run("c.conf")));
        assert_eq!(parse(&["-c", "x", "-c", "y"]), Ok(run("y")));
    }

    #[test]
    fn check_config_in_any_order() {
        let expected = Command::CheckConfig {
            config: PathBuf::from("e.conf"),
        };
        assert_eq!(
            parse(&["--check-config", "-c", "e.conf"]),
            Ok(expected.clone())
        );
        assert_eq!(parse(&["-c", "e.conf", "--check-config"]), Ok(expected));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert_eq!(parse(&["--help", "--version"]), Ok(Command::Help));
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
        assert_eq!(
            parse(&["--check-config", "--version"]),
            Ok(Command::Version)
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert_eq!(
            parse(&["--verbose"]),
            Err(UsageError::UnknownOption("--verbose".into()))
        );
        assert_eq!(parse(&["-c"]), Err(UsageError::MissingValue("--config")));
        assert_eq!(
            parse(&["esmed.conf"]),
            Err(UsageError::UnexpectedArgument("esmed.conf".into()))
        );
        assert_eq!(
            parse(&["--help", "--bogus"]).map_err(|e| e.to_string()),
            Err("esmed: unknown option '--bogus'".to_string())
        );
    }

    #[test]
    fn status_with_config_and_json() {
        let status = |path: &str, json: bool| Command::Status {
            config: PathBuf::from(path),
            json,
        };
        assert_eq!(parse(&["status"]), Ok(status(DEFAULT_PATH, false)));
        assert_eq!(
            parse(&["status", "-c", "a.conf", "--json"]),
            Ok(status("a.conf", true))
        );
        assert_eq!(
            parse(&["--json", "-c", "b.conf", "status"]),
            Ok(status("b.conf", true))
        );
        assert_eq!(parse(&["--json"]), Err(UsageError::JsonWithoutStatus));
        assert_eq!(
            parse(&["status", "status"]),
            Err(UsageError::UnexpectedArgument("status".into()))
        );
        assert!(help_text().contains("esmed status [-c FILE] [--json]"));
    }

    #[test]
    fn help_lists_every_option() {
        let help = help_text();
        for option in [
            "-c, --config FILE",
            "--check-config",
            "-V, --version",
            "-h, --help",
        ] {
            assert!(help.contains(option), "{option} missing from:\n{help}");
        }
        assert!(help.contains(DEFAULT_PATH));
    }
}
