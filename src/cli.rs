//! The command line: `esmed [-c FILE | --config FILE] [--check-config] [--version|-V] [--help|-h]`,
//! `esmed status [-c FILE] [--json]` and `esmed purge --older-than AGE [--dry-run] [-c FILE]`.
//!
//! Parsing only; `main.rs` acts on the resulting `Command`. Parsed by hand because the grammar is
//! four options and the crate list has no argument parser. [`Flags`] reads the `--flag VALUE`
//! command line of the benchmark (esmed-bench; esmed-smsc keeps a copy, not depending on esmed).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
    /// `esmed purge`: remove finished history older than `older_than` (or count it), then exit.
    Purge {
        config: PathBuf,
        older_than: Duration,
        dry_run: bool,
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
    /// `--older-than` or `--dry-run` without `purge`, or `purge` without `--older-than`.
    PurgeOptions(&'static str),
    /// `--older-than` with something that is not an age (`30d`, `12h`).
    BadAge(String),
}

/// The one-line synopsis printed after a usage error.
pub const USAGE: &str =
    "usage: esmed [-c FILE | --config FILE] [--check-config] [--version] [--help]\n       \
     esmed status [-c FILE] [--json]\n       \
     esmed purge --older-than AGE [--dry-run] [-c FILE]";

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
         esmed purge --older-than AGE [--dry-run]: remove finished messages (with their parts\n\
         and receipts) and received messages older than AGE (e.g. 30d, 12h), in short batches,\n\
         over the [purge] connection; --dry-run counts them instead. Exit 0 when done, 1 when\n\
         the config or the database failed.\n\
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
    let (mut purge, mut dry_run, mut older_than) = (false, false, None);
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
            "--dry-run" => dry_run = true,
            "--older-than" => {
                let value = args
                    .next()
                    .ok_or(UsageError::MissingValue("--older-than"))?;
                older_than = Some(parse_age(&value.to_string_lossy())?);
            }
            "status" if !status && !purge => status = true,
            "purge" if !status && !purge => purge = true,
            option if option.starts_with('-') => {
                return Err(UsageError::UnknownOption(option.to_string()))
            }
            other => return Err(UsageError::UnexpectedArgument(other.to_string())),
        }
    }
    if json && !status {
        return Err(UsageError::JsonWithoutStatus);
    }
    if (dry_run || older_than.is_some()) && !purge {
        return Err(UsageError::PurgeOptions(
            "--older-than and --dry-run go with 'esmed purge'",
        ));
    }
    if purge && !help && !version {
        let older_than = older_than.ok_or(UsageError::PurgeOptions(
            "'esmed purge' needs --older-than AGE (e.g. 30d)",
        ))?;
        return Ok(Command::Purge {
            config,
            older_than,
            dry_run,
        });
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
            UsageError::MissingValue("--config") => {
                f.write_str("esmed: --config needs a file name")
            }
            UsageError::MissingValue(option) => write!(f, "esmed: {option} needs a value"),
            UsageError::UnexpectedArgument(argument) => {
                write!(f, "esmed: unexpected argument '{argument}'")
            }
            UsageError::JsonWithoutStatus => f.write_str("esmed: --json goes with 'esmed status'"),
            UsageError::PurgeOptions(why) => write!(f, "esmed: {why}"),
            UsageError::BadAge(age) => write!(
                f,
                "esmed: --older-than '{}' is not an age: a number and a unit (30d, 12h, 90m)",
                crate::logging::one_line(age)
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// `--older-than`'s age: a duration as esmed.conf writes them (`30d`, `12h`), at least a
/// minute (a smaller one is surely a mistake: it would leave nothing of the last hour).
fn parse_age(text: &str) -> Result<Duration, UsageError> {
    crate::config::parse_duration(text)
        .filter(|age| *age >= Duration::from_secs(60))
        .ok_or_else(|| UsageError::BadAge(text.to_string()))
}

/// A `--flag VALUE` command line: the flags in order ([`Iterator`]), and for a flag that takes
/// one its value, as text or as a number, with one wording of what went wrong for every
/// program that reads one.
pub struct Flags<I> {
    args: I,
}

/// A flag without its value, or a value that is not the number the flag takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub fn new(args: I) -> Self {
        Flags { args }
    }

    /// The argument after `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, FlagError> {
        self.args
            .next()
            .ok_or_else(|| FlagError(format!("{flag} needs a value")))
    }

    /// The argument after `flag`, read as a `T` (a number, an address...).
    pub fn number<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, FlagError> {
        let text = self.value(flag)?;
        text.parse()
            .map_err(|_| FlagError(format!("{flag}: cannot read {text:?}")))
    }
}

/// A helper program's parsed command line (`None`: --help): its options, or the code to exit
/// with once the help (exit 0) or the error and the help (exit 2) are printed.
pub fn options_or_exit<O, E: fmt::Display>(
    parsed: Result<Option<O>, E>,
    program: &str,
    help: &str,
) -> Result<O, std::process::ExitCode> {
    match parsed {
        Ok(Some(options)) => Ok(options),
        Ok(None) => {
            print!("{help}");
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{help}");
            Err(std::process::ExitCode::from(2))
        }
    }
}

impl<I: Iterator<Item = String>> Iterator for Flags<I> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.args.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_values_and_numbers_or_say_what_is_wrong() {
        let args = ["--rows", "12", "--name", "x", "--rows", "many", "--last"];
        let mut flags = Flags::new(args.iter().map(|a| a.to_string()));
        assert_eq!(flags.next().as_deref(), Some("--rows"));
        assert_eq!(flags.number::<u32>("--rows"), Ok(12));
        assert_eq!(flags.next().as_deref(), Some("--name"));
        assert_eq!(flags.value("--name").as_deref(), Ok("x"));
        assert_eq!(flags.next().as_deref(), Some("--rows"));
        let not_a_number = flags.number::<u32>("--rows").unwrap_err();
        assert_eq!(not_a_number.to_string(), "--rows: cannot read \"many\"");
        assert_eq!(flags.next().as_deref(), Some("--last"));
        let missing = flags.value("--last").unwrap_err();
        assert_eq!(missing.to_string(), "--last needs a value");
        assert_eq!(flags.next(), None);
    }

    #[test]
    fn helper_programs_exit_0_after_help_and_2_after_a_usage_error() {
        use std::process::ExitCode;
        assert_eq!(
            options_or_exit::<u8, FlagError>(Ok(Some(7)), "p", ""),
            Ok(7)
        );
        let help = options_or_exit::<u8, FlagError>(Ok(None), "p", "");
        assert_eq!(help, Err(ExitCode::SUCCESS));
        let wrong = options_or_exit::<u8, _>(Err(FlagError("--x needs a value".into())), "p", "");
        assert_eq!(wrong, Err(ExitCode::from(2)));
    }

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
    fn purge_takes_an_age_and_dry_run() {
        let purge = |path: &str, days: u64, dry_run: bool| Command::Purge {
            config: PathBuf::from(path),
            older_than: Duration::from_secs(days * 86_400),
            dry_run,
        };
        assert_eq!(
            parse(&["purge", "--older-than", "30d"]),
            Ok(purge(DEFAULT_PATH, 30, false))
        );
        assert_eq!(
            parse(&["--dry-run", "-c", "a.conf", "purge", "--older-than", "7d"]),
            Ok(purge("a.conf", 7, true))
        );
        assert!(matches!(
            parse(&["purge"]),
            Err(UsageError::PurgeOptions(_))
        ));
        assert!(matches!(
            parse(&["--older-than", "30d"]),
            Err(UsageError::PurgeOptions(_))
        ));
        assert_eq!(
            parse(&["purge", "--older-than", "30 days"]),
            Err(UsageError::BadAge("30 days".into()))
        );
        assert_eq!(
            parse(&["purge", "--older-than", "10s"]),
            Err(UsageError::BadAge("10s".into()))
        );
        assert_eq!(
            parse(&["purge", "--older-than"]),
            Err(UsageError::MissingValue("--older-than"))
        );
        assert_eq!(
            parse(&["purge", "status"]),
            Err(UsageError::UnexpectedArgument("status".into()))
        );
        assert!(help_text().contains("esmed purge --older-than AGE [--dry-run]"));
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
