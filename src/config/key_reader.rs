//! Typed reading of one esmed.conf section's keys, with the error message for each kind of value.
//!
//! Absent keys give the caller's default; present but unusable values give
//! `ConfigError::BadValue` naming the file, section, key and why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sections::Keys;
use super::value::{self, format_duration};
use super::{ConfigError, SessionAttrs, SslMode};

/// Reads typed values from one section, turning bad ones into `ConfigError::BadValue`.
pub(crate) struct KeyReader<'a> {
    path: &'a Path,
    section: &'static str,
    keys: Keys,
}

impl<'a> KeyReader<'a> {
    pub(crate) fn new(path: &'a Path, section: &'static str, keys: Keys) -> Self {
        KeyReader {
            path,
            section,
            keys,
        }
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    pub(crate) fn bad_value(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            path: self.path.to_path_buf(),
            section: self.section,
            key,
            value: self.raw(key).unwrap_or_default().to_string(),
            reason: reason.into(),
        }
    }

    /// A file path; absent or empty means none.
    pub(crate) fn path(&self, key: &'static str) -> Option<std::path::PathBuf> {
        self.raw(key)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    }

    /// A non-empty string; absent means `default`.
    pub(crate) fn text(&self, key: &'static str, default: &str) -> Result<String, ConfigError> {
        match self.raw(key) {
            None => Ok(default.to_string()),
            Some("") => {
                Err(self.bad_value(key, format!("is empty (leave the key out for '{default}')")))
            }
            Some(text) => Ok(text.to_string()),
        }
    }

    /// Absent or empty means none.
    pub(crate) fn optional_path(&self, key: &str) -> Option<PathBuf> {
        self.raw(key).filter(|p| !p.is_empty()).map(PathBuf::from)
    }

    /// A comma-separated list of non-empty items (libpq's host list); absent means
    /// `[default]`.
    pub(crate) fn list(
        &self,
        key: &'static str,
        default: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(vec![default.to_string()]);
        };
        if text.is_empty() {
            return Err(
                self.bad_value(key, format!("is empty (leave the key out for '{default}')"))
            );
        }
        let items: Vec<String> = text
            .split(',')
            .map(|item| item.trim().to_string())
            .collect();
        if items.iter().any(String::is_empty) {
            return Err(self.bad_value(key, "has an empty item (write the list as a,b,c)"));
        }
        Ok(items)
    }

    /// A port number, or a comma-separated list of them (libpq's port list); absent means
    /// `[default]`.
    pub(crate) fn port_list(
        &self,
        key: &'static str,
        default: u16,
    ) -> Result<Vec<u16>, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(vec![default]);
        };
        text.split(',')
            .map(|item| match item.trim().parse::<u16>() {
                Ok(port) if port != 0 => Ok(port),
                _ => Err(self.bad_value(key, "is not a port number (1-65535)")),
            })
            .collect()
    }

    /// libpq's `target_session_attrs`, the values esmed can work with.
    pub(crate) fn session_attrs(
        &self,
        key: &'static str,
        default: SessionAttrs,
    ) -> Result<SessionAttrs, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        match text.to_ascii_lowercase().as_str() {
            "any" => Ok(SessionAttrs::Any),
            "read-write" => Ok(SessionAttrs::ReadWrite),
            _ => Err(self.bad_value(
                key,
                "is not any or read-write (esmed writes: a read-only server or a standby will \
                 not do)",
            )),
        }
    }

    pub(crate) fn number(
        &self,
        key: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        match text.parse::<u32>() {
            Ok(number) if (min..=max).contains(&number) => Ok(number),
            _ => Err(self.bad_value(key, format!("is not a whole number from {min} to {max}"))),
        }
    }

    pub(crate) fn duration(
        &self,
        key: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        let Some(duration) = value::parse_duration(text) else {
            return Err(self.bad_value(key, "is not a duration (e.g. 30, 500ms, 2s, 5m)"));
        };
        if !(min..=max).contains(&duration) {
            let range = format!("{} to {}", format_duration(min), format_duration(max));
            return Err(self.bad_value(key, format!("is out of range ({range})")));
        }
        Ok(duration)
    }

    pub(crate) fn boolean(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        value::parse_bool(text).ok_or_else(|| self.bad_value(key, "is not true or false"))
    }

    pub(crate) fn level(
        &self,
        key: &'static str,
        default: log::LevelFilter,
    ) -> Result<log::LevelFilter, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        value::parse_level(text).ok_or_else(|| {
            self.bad_value(key, "is not a log level (error, warn, info, debug, trace)")
        })
    }

    pub(crate) fn sslmode(
        &self,
        key: &'static str,
        default: SslMode,
    ) -> Result<SslMode, ConfigError> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        match text.to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "allow" => Ok(SslMode::Allow),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(self.bad_value(
                key,
                "is not an sslmode (disable, allow, prefer, require, verify-ca, verify-full)",
            )),
        }
    }
}
