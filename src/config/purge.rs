//! `[purge]`: how `esmed purge` connects and paces itself. It connects as the `[database]`
//! section says, but as another role: one that may DELETE from the queues, which the daemon's
//! role may not (see sql/purge.sql).

use std::time::Duration;

use super::key_reader::KeyReader;
use super::{ConfigError, DatabaseConfig, Secret};

/// `[purge]` as read; empty `user` and `pass` mean `[database]`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeConfig {
    /// The role the purge connects as; None: `[database] user`.
    pub(crate) user: Option<String>,
    /// Its password; None: `[database] pass`.
    pub(crate) pass: Option<Secret>,
    /// Rows looked at per transaction (each batch is one short transaction).
    pub(crate) batch_rows: u32,
    /// A pause after each batch, so that the purge takes a share of the machine, not all of
    /// it: its deletes write WAL that esmed's commits wait behind. At 1,000 rows a batch and
    /// 100 ms, at most 10,000 rows a second, far more than the history a day adds.
    pub(crate) batch_pause: Duration,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            user: None,
            pass: None,
            batch_rows: 1000,
            batch_pause: Duration::from_millis(100),
        }
    }
}

pub(super) const PURGE_KEYS: &[&str] = &["user", "pass", "batch_rows", "batch_pause"];

pub(super) fn read_purge(keys: &KeyReader<'_>) -> Result<PurgeConfig, ConfigError> {
    let default = PurgeConfig::default();
    let user = keys.raw("user").map(str::trim).filter(|u| !u.is_empty());
    Ok(PurgeConfig {
        user: user.map(str::to_string),
        pass: keys.raw("pass").filter(|p| !p.is_empty()).map(Secret::new),
        batch_rows: keys.number("batch_rows", default.batch_rows, 1, 100_000)?,
        batch_pause: keys.duration(
            "batch_pause",
            default.batch_pause,
            Duration::ZERO,
            Duration::from_secs(60),
        )?,
    })
}

impl PurgeConfig {
    /// `[database]` with the purge's role.
    pub fn database(&self, database: &DatabaseConfig) -> DatabaseConfig {
        let mut purge = database.clone();
        if let Some(user) = &self.user {
            purge.user = user.clone();
        }
        if let Some(pass) = &self.pass {
            purge.pass = pass.clone();
        }
        purge
    }

    pub fn batch_rows(&self) -> u32 {
        self.batch_rows
    }

    pub fn batch_pause(&self) -> Duration {
        self.batch_pause
    }
}
