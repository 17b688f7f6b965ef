//! The `esmed_status` table's columns, in one definition: the heartbeat writes them
//! ([`super::heartbeat`]) and `esmed status` reads them back ([`super::report`]) in this order.

use postgres::types::ToSql;

/// The columns of an `esmed_status` row that the heartbeat writes and `esmed status` reads
/// back as they are (times are written and read in different forms, so they are not here).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusColumns {
    pub instance: String,
    pub host: String,
    pub pid: i32,
    pub server_id: Option<i32>,
    pub server_name: Option<String>,
    pub session_state: String,
    pub window_in_use: i32,
    pub window_size: Option<i32>,
    pub out_per_second: f32,
    pub in_per_second: f32,
    pub submitted_total: i64,
    pub done_total: i64,
    pub failed_total: i64,
    pub received_total: i64,
    pub last_error: Option<String>,
    /// The bound session runs TLS without checking the SMSC's certificate.
    pub tls_unverified: bool,
}

impl StatusColumns {
    /// How many there are: they are the first parameters of the upsert and the first
    /// columns of `esmed status`'s query, in this order.
    pub(crate) const COUNT: usize = 16;

    /// The columns as statement parameters, in table order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); Self::COUNT] {
        [
            &self.instance,
            &self.host,
            &self.pid,
            &self.server_id,
            &self.server_name,
            &self.session_state,
            &self.window_in_use,
            &self.window_size,
            &self.out_per_second,
            &self.in_per_second,
            &self.submitted_total,
            &self.done_total,
            &self.failed_total,
            &self.received_total,
            &self.last_error,
            &self.tls_unverified,
        ]
    }

    /// Reads them from the first [`StatusColumns::COUNT`] columns of `row`.
    pub(crate) fn from_row(row: &postgres::Row) -> StatusColumns {
        StatusColumns {
            instance: row.get(0),
            host: row.get(1),
            pid: row.get(2),
            server_id: row.get(3),
            server_name: row.get(4),
            session_state: row.get(5),
            window_in_use: row.get(6),
            window_size: row.get(7),
            out_per_second: row.get(8),
            in_per_second: row.get(9),
            submitted_total: row.get(10),
            done_total: row.get(11),
            failed_total: row.get(12),
            received_total: row.get(13),
            last_error: row.get(14),
            tls_unverified: row.get(15),
        }
    }
}
