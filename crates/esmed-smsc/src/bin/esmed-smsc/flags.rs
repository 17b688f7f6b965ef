//! The command line's `--flag VALUE` reading. The daemon's `cli` has the same for its helper
//! programs; this crate does not depend on the daemon's library, so it keeps its own copy of
//! these few lines, with the same wording of what went wrong.

use std::fmt;
use std::process::ExitCode;

/// A `--flag VALUE` command line: the flags in order ([`Iterator`]), and for a flag that takes
/// one its value, as text or as a number.
pub(crate) struct Flags<I> {
    args: I,
}

/// A flag without its value, or a value that is not the number the flag takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagError(pub(crate) String);

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub(crate) fn new(args: I) -> Self {
        Flags { args }
    }

    /// The argument after `flag`.
    pub(crate) fn value(&mut self, flag: &str) -> Result<String, FlagError> {
        self.args
            .next()
            .ok_or_else(|| FlagError(format!("{flag} needs a value")))
    }

    /// The argument after `flag`, read as a `T` (a number, an address...).
    pub(crate) fn number<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, FlagError> {
        let text = self.value(flag)?;
        text.parse()
            .map_err(|_| FlagError(format!("{flag}: cannot read {text:?}")))
    }
}

impl<I: Iterator<Item = String>> Iterator for Flags<I> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.args.next()
    }
}

/// The parsed command line (`None`: --help): the options, or the code to exit with once the
/// help (exit 0) or the error and the help (exit 2) are printed.
pub(crate) fn options_or_exit<O, E: fmt::Display>(
    parsed: Result<Option<O>, E>,
    program: &str,
    help: &str,
) -> Result<O, ExitCode> {
    match parsed {
        Ok(Some(options)) => Ok(options),
        Ok(None) => {
            print!("{help}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{help}");
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_values_and_numbers_or_say_what_is_wrong() {
        let args = ["--rows", "12", "--rows", "many", "--last"];
        let mut flags = Flags::new(args.iter().map(|a| a.to_string()));
        assert_eq!(flags.next().as_deref(), Some("--rows"));
        assert_eq!(flags.number::<u32>("--rows"), Ok(12));
        assert_eq!(flags.next().as_deref(), Some("--rows"));
        let not_a_number = flags.number::<u32>("--rows").unwrap_err();
        assert_eq!(not_a_number.to_string(), "--rows: cannot read \"many\"");
        assert_eq!(flags.next().as_deref(), Some("--last"));
        let missing = flags.value("--last").unwrap_err();
        assert_eq!(missing.to_string(), "--last needs a value");
        assert_eq!(flags.next(), None);
    }

    #[test]
    fn exit_0_after_help_and_2_after_a_usage_error() {
        assert_eq!(
            options_or_exit::<u8, FlagError>(Ok(Some(7)), "p", ""),
            Ok(7)
        );
        let help = options_or_exit::<u8, FlagError>(Ok(None), "p", "");
        assert_eq!(help, Err(ExitCode::SUCCESS));
        let wrong = options_or_exit::<u8, _>(Err(FlagError("--x needs a value".into())), "p", "");
        assert_eq!(wrong, Err(ExitCode::from(2)));
    }
}
