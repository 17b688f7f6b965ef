//! From esmed.conf's INI text to the keys of each section esmed knows, plus warnings.
//!
//! Checks each line first so a broken file gets a message with its line number, then parses with
//! rust-ini the way Python's configparser read the old daemon's file: values are literal (no
//! quotes, no escapes), keys are case-insensitive. Everything esmed ignores (unknown sections and
//! keys, the old Python logging sections) becomes a warning, never an error.

use std::collections::BTreeMap;

use ini::{Ini, ParseOption};

/// A file that is not INI: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// The keys of one known section, lower-cased; when a key repeats, the last value wins.
pub(crate) type Keys = BTreeMap<String, String>;

/// The known sections that were present, and warnings about everything that was ignored.
/// Warnings do not name the file: the caller prefixes it.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    pub(crate) keys_by_section: BTreeMap<&'static str, Keys>,
    /// The sections esmed does not know (the Python logging ones aside), as written.
    pub(crate) unknown: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

impl Sections {
    /// The keys of `section`, empty when the file does not have it.
    pub(crate) fn keys(&self, section: &str) -> Keys {
        self.keys_by_section
            .get(section)
            .cloned()
            .unwrap_or_default()
    }
}

/// Splits `text` into the sections listed in `known` (name and its keys).
pub(crate) fn split_sections(
    text: &str,
    known: &[(&'static str, &[&'static str])],
) -> Result<Sections, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = blank_comments(text);
    check_lines(&text)?;
    let ini = Ini::load_from_str_opt(&text, literal_values()).map_err(|e| SyntaxError {
        line: e.line,
        message: e.msg.to_string(),
    })?;
    let mut sections = Sections::default();
    let mut python_logging = Vec::new();
    for (name, properties) in ini.iter() {
        let pairs: Vec<(String, String)> = properties
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        match name {
            None => warn_keys_outside_sections(&pairs, &mut sections.warnings),
            Some(name) => match known
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name.trim()))
            {
                Some((section, _)) => merge_keys(section, pairs, &mut sections),
                None if is_python_logging_section(name) => python_logging.push(name.to_string()),
                None => {
                    sections.warnings.push(unknown_section_warning(name, known));
                    sections.unknown.push(name.to_string());
                }
            },
        }
    }
    if !python_logging.is_empty() {
        sections
            .warnings
            .push(python_logging_warning(&python_logging));
    }
    warn_unknown_keys(known, &mut sections);
    Ok(sections)
}

/// Python's configparser took values literally; rust-ini would strip quotes and eat
/// backslashes, which would silently change a password.
fn literal_values() -> ParseOption {
    ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..ParseOption::default()
    }
}

/// Empties comment lines, keeping the line count: rust-ini mistakes an indented comment for a
/// key, while configparser allows comments to be indented.
fn blank_comments(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !(trimmed.starts_with('#') || trimmed.starts_with(';')) {
            cleaned.push_str(line);
        }
        cleaned.push('\n');
    }
    cleaned
}

/// Finds lines that are not a comment, a `[section]` or `key = value`, before rust-ini would
/// silently glue them onto the next key.
fn check_lines(text: &str) -> Result<(), SyntaxError> {
    let mut continues_previous = false;
    for (index, line) in text.lines().enumerate() {
        if !continues_previous {
            check_line(line.trim()).map_err(|message| SyntaxError {
                line: index + 1,
                message: message.to_string(),
            })?;
        }
        // rust-ini joins a line ending in a backslash with the next one.
        continues_previous = line.trim_end().ends_with('\\');
    }
    Ok(())
}

fn check_line(line: &str) -> Result<(), &'static str> {
    if line.is_empty() {
        return Ok(());
    }
    if let Some(header) = line.strip_prefix('[') {
        return match header.split_once(']') {
            None => Err("section header has no closing ']'"),
            Some((name, _)) if name.trim().is_empty() => Err("section name is empty"),
            Some((_, rest)) if !rest.trim().is_empty() => {
                Err("text after ']' (comments must be on a line of their own)")
            }
            Some(_) => Ok(()),
        };
    }
    match line.find(['=', ':']) {
        None => Err("expected 'key = value', a [section] or a # comment"),
        Some(0) => Err("missing key before '='"),
        Some(_) => Ok(()),
    }
}

fn merge_keys(section: &'static str, pairs: Vec<(String, String)>, sections: &mut Sections) {
    let keys = sections.keys_by_section.entry(section).or_default();
    for (key, value) in pairs {
        if keys.insert(key.clone(), value).is_some() {
            sections.warnings.push(format!(
                "[{section}] key '{key}' is given more than once; the last value is used"
            ));
        }
    }
}

fn warn_keys_outside_sections(pairs: &[(String, String)], warnings: &mut Vec<String>) {
    if pairs.is_empty() {
        return;
    }
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    warnings.push(format!(
        "keys before the first [section] ignored: {}",
        names.join(", ")
    ));
}

fn warn_unknown_keys(known: &[(&'static str, &[&'static str])], sections: &mut Sections) {
    for (section, known_keys) in known {
        let Some(keys) = sections.keys_by_section.get(section) else {
            continue;
        };
        for key in keys.keys().filter(|k| !known_keys.contains(&k.as_str())) {
            sections.warnings.push(format!(
                "[{section}] unknown key '{key}' ignored (known: {})",
                known_keys.join(", ")
            ));
        }
    }
}

/// The old daemon configured Python's `logging.config.fileConfig` from the same file.
fn is_python_logging_section(name: &str) -> bool {
    matches!(name, "loggers" | "handlers" | "formatters")
        || ["logger_", "handler_", "formatter_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

fn python_logging_warning(names: &[String]) -> String {
    let listed: Vec<String> = names.iter().map(|n| format!("[{n}]")).collect();
    format!(
        "Python logging sections ignored: {}; esmed logs as [log] says (file, level, stderr)",
        listed.join(" ")
    )
}

fn known_section_list(known: &[(&'static str, &[&'static str])]) -> String {
    let listed: Vec<String> = known.iter().map(|(n, _)| format!("[{n}]")).collect();
    listed.join(" ")
}

fn unknown_section_warning(name: &str, known: &[(&'static str, &[&'static str])]) -> String {
    let guess = near_miss(name, known.iter().map(|(n, _)| *n))
        .map(|meant| format!("did you mean [{meant}]? "))
        .unwrap_or_default();
    format!(
        "[{name}] unknown section ignored ({guess}known: {})",
        known_section_list(known)
    )
}

/// The candidate `word` is most likely a misspelling of: at most two letters added, left
/// out, changed or swapped (case, spaces and `_`/`-` aside), and fewer than half its letters.
pub(crate) fn near_miss<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let folded = fold(word);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&folded, &fold(candidate)), candidate))
        .filter(|(distance, candidate)| *distance <= 2 && 2 * distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn fold(word: &str) -> Vec<char> {
    word.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut rows = vec![(0..=b.len()).collect::<Vec<usize>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1)
                .min(row[j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(&str, &[&str])] = &[("database", &["host", "port"]), ("log", &["level"])];

    fn split(text: &str) -> Sections {
        split_sections(text, KNOWN).expect("valid INI")
    }

    fn syntax_error(text: &str) -> SyntaxError {
        split_sections(text, KNOWN).expect_err("broken INI")
    }

    #[test]
    fn known_sections_and_keys_are_collected_case_insensitively() {
        let sections = split("[Database]\nHOST = db1\nport=5433\n");
        assert_eq!(sections.keys("database")["host"], "db1");
        assert_eq!(sections.keys("database")["port"], "5433");
        assert!(sections.warnings.is_empty(), "{:?}", sections.warnings);
        assert!(sections.keys("log").is_empty());
    }

    #[test]
    fn values_are_literal_like_configparser() {
        let sections = split("[database]\nhost = \"a\\b'c\" ; x # y\n");
        assert_eq!(sections.keys("database")["host"], "\"a\\b'c\" ; x # y");
    }

    #[test]
    fn colon_separates_like_configparser() {
        assert_eq!(
            split("[database]\nhost: db2\n").keys("database")["host"],
            "db2"
        );
    }

    #[test]
    fn unknown_key_warns_and_lists_known_keys() {
        let sections = split("[database]\nhots = x\n");
        assert_eq!(
            sections.warnings,
            ["[database] unknown key 'hots' ignored (known: host, port)"]
        );
    }

    #[test]
    fn unknown_section_warns() {
        let sections = split("[smpp]\nx = 1\n");
        assert_eq!(
            sections.warnings,
            ["[smpp] unknown section ignored (known: [database] [log])"]
        );
    }

    #[test]
    fn near_misses_are_a_few_edits_away() {
        let known = ["database", "daemon", "log"];
        for (word, meant) in [
            ("databse", Some("database")),
            ("Data_Base", Some("database")),
            ("datbase", Some("database")),
            ("dtaabase", Some("database")),
            ("deamon", Some("daemon")),
            ("logs", Some("log")),
            ("smsc", None),
            ("db", None),
            ("lo", Some("log")),
            ("", None),
        ] {
            assert_eq!(near_miss(word, known), meant, "{word}");
        }
    }

    #[test]
    fn unknown_sections_are_listed() {
        let sections = split("[databse]\nhost = h\n[loggers]\nkeys = root\n");
        assert_eq!(sections.unknown, ["databse"]);
        assert_eq!(
            sections.warnings[0],
            "[databse] unknown section ignored (did you mean [database]? known: [database] [log])"
        );
    }

    #[test]
    fn python_logging_sections_give_one_warning() {
        let sections = split("[loggers]\nkeys = root\n[logger_root]\nlevel = INFO\n[handlers]\n");
        assert_eq!(sections.warnings.len(), 1, "{:?}", sections.warnings);
        assert!(sections.warnings[0].starts_with(
            "Python logging sections ignored: [loggers] [logger_root] [handlers]; esmed logs"
        ));
    }

    #[test]
    fn repeated_key_warns_and_last_wins() {
        let sections = split("[database]\nport = 1\n[database]\nport = 2\n");
        assert_eq!(sections.keys("database")["port"], "2");
        assert_eq!(
            sections.warnings,
            ["[database] key 'port' is given more than once; the last value is used"]
        );
    }

    #[test]
    fn keys_outside_sections_warn() {
        let sections = split("stray = 1\n[database]\n");
        assert_eq!(
            sections.warnings,
            ["keys before the first [section] ignored: stray"]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_fine() {
        let sections = split("# c\n; c\n\n[database]\n  # indented comment\nhost = h\n");
        assert_eq!(sections.keys("database")["host"], "h");
    }

    #[test]
    fn broken_lines_name_their_line_number() {
        let error = syntax_error("[database]\nhost = h\nthis is not ini\nport = 1\n");
        assert_eq!(error.line, 3);
        assert_eq!(
            error.message,
            "expected 'key = value', a [section] or a # comment"
        );
        assert_eq!(syntax_error("\n[database\n").line, 2);
        assert_eq!(
            syntax_error("[database\n").message,
            "section header has no closing ']'"
        );
        assert_eq!(syntax_error("[]\n").message, "section name is empty");
        assert_eq!(syntax_error("[a] ; c\n").line, 1);
        assert_eq!(syntax_error("[a]\n= 5\n").message, "missing key before '='");
    }

    #[test]
    fn backslash_continuation_is_not_a_broken_line() {
        let sections = split("[database]\nhost = a\\\nb\n");
        assert_eq!(sections.keys("database")["host"], "ab");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(
            split("\u{feff}[database]\nhost = h\n").keys("database")["host"],
            "h"
        );
    }
}
