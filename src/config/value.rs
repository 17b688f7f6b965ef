//! Text-to-value parsers for esmed.conf: durations, booleans, log levels.
//!
//! Pure functions with no knowledge of sections or error messages; `config.rs` turns a `None`
//! into a `ConfigError` that names the file, section and key.

use std::time::Duration;

/// Parses "30" (seconds), "500ms", "2s", "5m", "1h" or "30d"; a space before the unit is
/// allowed.
/// Returns `None` for anything else, including overflow.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let millis_per_unit: u64 = match unit.trim_start() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    amount
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
}

/// Formats a duration the way esmed.conf writes it, in the largest unit that is exact.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1_000 != 0 {
        format!("{millis}ms")
    } else if millis != 0 && millis % 3_600_000 == 0 {
        format!("{}h", millis / 3_600_000)
    } else if millis != 0 && millis % 60_000 == 0 {
        format!("{}m", millis / 60_000)
    } else {
        format!("{}s", millis / 1_000)
    }
}

/// Accepts the spellings Python's configparser accepted, so old files keep working.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Log level names, case-insensitive; "warning" is accepted because Python spelled it so.
pub(crate) fn parse_level(text: &str) -> Option<log::LevelFilter> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" | "warning" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_number_is_seconds() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 0 "), Some(Duration::ZERO));
    }

    #[test]
    fn units_are_understood() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5 m"), Some(Duration::from_secs(300)));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in [
            "",
            "s",
            "-1",
            "1.5s",
            "5x",
            "5 minutes",
            "ms5",
            "99999999999999999999",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
        assert_eq!(parse_duration(&format!("{}h", u64::MAX / 1000)), None);
    }

    #[test]
    fn durations_format_in_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn booleans_accept_configparser_spellings() {
        for text in ["true", "Yes", "ON", "1"] {
            assert_eq!(parse_bool(text), Some(true), "{text}");
        }
        for text in ["false", "no", "Off", "0"] {
            assert_eq!(parse_bool(text), Some(false), "{text}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn levels_are_case_insensitive() {
        assert_eq!(parse_level("INFO"), Some(log::LevelFilter::Info));
        assert_eq!(parse_level("warning"), Some(log::LevelFilter::Warn));
        assert_eq!(parse_level("trace"), Some(log::LevelFilter::Trace));
        assert_eq!(parse_level("verbose"), None);
    }
}
