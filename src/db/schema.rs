//! Checks at start that the database has the columns this esmed writes, so that a schema from
//! an older version stops esmed with a clear message instead of failing every result write
//! (each unwritten result would leave its row to be sent again when its lease ran out).

use super::servers::get;
use super::{pg, DbError};

/// Columns added by esmed, newest of each table last: if these exist, so do the older ones
/// (the upgrade scripts add a table's columns together).
const REQUIRED: &[(&str, &str)] = &[
    ("smpp_servers", "smpp_window"),
    ("smpp_servers", "smpp_tls_server_name"),
    ("smpp_tx_queue", "claimed_by"),
    ("smpp_tx_queue", "submission_resends"),
    ("smpp_tx_queue", "smpp_message_id_key"),
    ("smpp_tx_parts", "message_id_key"),
    ("smpp_rx_queue", "tx_id"),
    ("smpp_rx_queue", "mo_incomplete"),
    ("smpp_rx_unmatched", "match_key"),
    ("smpp_rx_parts", "text_bytes"),
    ("esmed_status", "instance"),
];

/// How to add what the previous esmed 0.2 development schema lacks.
const UPGRADE_FROM_0_2_DEV: &str = "ALTER TABLE smpp_tx_queue ADD COLUMN smpp_message_id_key \
     varchar; CREATE INDEX smpp_tx_queue_message_id_key ON smpp_tx_queue \
     (smpp_message_id_key) WHERE smpp_message_id_key IS NOT NULL;";

/// The schema is too old for this esmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumns(pub Vec<String>);

impl std::fmt::Display for MissingColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database schema is older than this esmed: it lacks {}. Upgrade it as the \
             database owner: from the old esmed's schema with sql/upgrade-0.1.sql; from an \
             earlier esmed 0.2 with: {UPGRADE_FROM_0_2_DEV}",
            self.0.join(", ")
        )
    }
}

/// The required columns (`table.column`) the database lacks, in [`REQUIRED`] order. Reads
/// the catalog, which every role may, so it works with esmed's own narrow privileges.
pub fn missing_columns(c: &mut postgres::Client) -> Result<Vec<String>, DbError> {
    let tables: Vec<&str> = REQUIRED.iter().map(|(t, _)| *t).collect();
    let columns: Vec<&str> = REQUIRED.iter().map(|(_, c)| *c).collect();
    let rows = c
        .query(
            "SELECT r.tbl || '.' || r.col FROM unnest($1::text[], $2::text[])
                 WITH ORDINALITY AS r(tbl, col, n)
             WHERE NOT EXISTS (
                 SELECT 1 FROM pg_attribute a
                 WHERE a.attrelid = to_regclass(r.tbl) AND a.attname = r.col
                   AND NOT a.attisdropped)
             ORDER BY r.n",
            &[&tables, &columns],
        )
        .map_err(pg("check the schema"))?;
    rows.iter().map(|row| get(row, 0)).collect()
}

/// `Ok(Err(..))` when columns are missing; `Err` when the check itself failed.
pub fn check(c: &mut postgres::Client) -> Result<Result<(), MissingColumns>, DbError> {
    let missing = missing_columns(c)?;
    Ok(if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingColumns(missing))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_columns_and_the_fix() {
        let text = MissingColumns(vec!["smpp_tx_queue.smpp_message_id_key".into()]).to_string();
        assert!(text.contains("lacks smpp_tx_queue.smpp_message_id_key"));
        assert!(text.contains("sql/upgrade-0.1.sql"));
        assert!(text.contains("ADD COLUMN smpp_message_id_key"));
    }
}
