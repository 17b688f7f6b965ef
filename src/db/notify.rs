//! Hearing about table changes at once: `LISTEN notify_table_change`.
//!
//! The schema's statement-level triggers send one notification per statement on channel
//! `notify_table_change` with the table's name as payload (as the older daemon did): on any
//! change to `smpp_servers` and on inserts into `smpp_tx_queue`.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::{pg, DbError};

/// Which tables changed while waiting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// `smpp_servers` changed: reload the enabled server.
    pub servers: bool,
    /// Rows were inserted into `smpp_tx_queue`: claim now.
    pub tx_queue: bool,
    /// How many notifications arrived (any payload).
    pub notifications: usize,
}

impl TableChanges {
    fn record(&mut self, payload: &str) {
        self.notifications += 1;
        match payload {
            "smpp_servers" => self.servers = true,
            "smpp_tx_queue" => self.tx_queue = true,
            _ => {}
        }
    }
}

/// Subscribes this connection to the channel the schema's triggers notify on.
pub fn listen(c: &mut Client) -> Result<(), DbError> {
    c.batch_execute("LISTEN notify_table_change")
        .map_err(pg("listen for table changes"))
}

/// Waits up to `timeout` for the first notification, then takes every one already pending.
/// Returns an empty [`TableChanges`] on timeout; an error when the connection is gone.
pub fn wait_for_changes(c: &mut Client, timeout: Duration) -> Result<TableChanges, DbError> {
    let mut changes = TableChanges::default();
    let first = c
        .notifications()
        .timeout_iter(timeout)
        .next()
        .map_err(pg("wait for notifications"))?;
    match first {
        Some(notification) => changes.record(notification.payload()),
        None if c.is_closed() => {
            return Err(DbError::ConnectionClosed {
                what: "wait for notifications",
            })
        }
        None => return Ok(changes),
    }
    let mut notifications = c.notifications();
    let mut pending = notifications.iter();
    while let Some(notification) = pending.next().map_err(pg("read notifications"))? {
        changes.record(notification.payload());
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_map_to_tables() {
        let mut changes = TableChanges::default();
        changes.record("smpp_tx_queue");
        changes.record("smpp_tx_queue");
        changes.record("other");
        assert_eq!(
            changes,
            TableChanges {
                servers: false,
                tx_queue: true,
                notifications: 3
            }
        );
    }
}
