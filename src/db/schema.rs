//! Checks at start that the database has the columns this esmed writes, so that a schema from
//! an older version stops esmed with a clear message instead of failing every result write
//! (each unwritten result would leave its row to be sent again when its lease ran out); and
//! that the send queue leaves room on its pages for claims, else a warning says how to fix it.

use super::servers::get;
use super::{pg, DbError};

/// Columns added by esmed, newest of each table last: if these exist, so do the older ones
/// (the upgrade scripts add a table's columns together).
const REQUIRED: &[(&str, &str)] = &[
    ("smpp_servers", "smpp_window"),
    ("smpp_servers", "smpp_tls_key_file"),
    ("smpp_tx_queue", "claimed_by"),
    ("smpp_tx_queue", "submission_resends"),
    ("smpp_tx_queue", "smpp_message_id_key"),
    ("smpp_tx_queue", "result_seq"),
    ("smpp_tx_parts", "message_id_key"),
    ("smpp_rx_queue", "tx_id"),
    ("smpp_rx_queue", "mo_incomplete"),
    ("smpp_rx_queue", "result_seq"),
    ("smpp_rx_unmatched", "match_key"),
    ("smpp_rx_parts", "text_bytes"),
    ("smpp_rx_parts_done", "text_bytes"),
    ("smpp_rx_parts_refused", "reason"),
    ("smpp_rx_refused", "reason"),
    ("esmed_status", "instance"),
    ("esmed_status", "tls_unverified"),
];

/// The schema is too old for this esmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingColumns(pub(crate) Vec<String>);

impl std::fmt::Display for MissingColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database schema is older than this esmed: it lacks {}. Upgrade it as the \
             database owner: from esmed 0.2 with sql/upgrade-0.2.sql; from the old esmed's \
             schema with sql/upgrade-0.1.sql; from an esmed 0.2 development build with \
             sql/upgrade-0.2-dev.sql",
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
pub(crate) fn check(c: &mut postgres::Client) -> Result<Result<(), MissingColumns>, DbError> {
    let missing = missing_columns(c)?;
    Ok(if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingColumns(missing))
    })
}

/// The send queue's fillfactor in sql/db.sql. A claim writes a new version of every row it
/// takes; it stays on the row's page and touches no index (a HOT update) only if the page
/// has room for it, which a page filled to at most half always has. 40 leaves room for the
/// result's version too, before the claim's dead one is pruned. Measured on a million-row
/// drain against 60: every claim HOT (was two in three), the queue grows 8-9 % (was 38 %),
/// PostgreSQL CPU per message -20 %, the last tenth at 84-92 % of the first (was 74 %).
pub(crate) const QUEUE_FILLFACTOR: u32 = 40;

/// Above this, some claims find no room on their page.
const QUEUE_FILLFACTOR_MOST: u32 = 50;

/// smpp_tx_queue's fillfactor (100 when not set); on the partitioned layout, the highest of
/// its partitions'.
pub fn queue_fillfactor(c: &mut postgres::Client) -> Result<u32, DbError> {
    let row = c
        .query_one(
            "SELECT coalesce(max(coalesce(
                 (SELECT split_part(o, '=', 2)::int4 FROM unnest(c.reloptions) o
                  WHERE o LIKE 'fillfactor=%'), 100)), 100)
             FROM pg_class c
             WHERE (c.oid = to_regclass('smpp_tx_queue') AND c.relkind = 'r')
                OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass('smpp_tx_queue'))
                             WHERE isleaf)",
            &[],
        )
        .map_err(pg("read the send queue's fillfactor"))?;
    let fillfactor: i32 = get(&row, 0)?;
    Ok(u32::try_from(fillfactor).unwrap_or(100))
}

/// What to tell the operator about a send queue with this fillfactor, if anything.
pub fn fillfactor_advice(fillfactor: u32) -> Option<String> {
    (fillfactor > QUEUE_FILLFACTOR_MOST).then(|| {
        format!(
            "smpp_tx_queue has fillfactor {fillfactor}: claimed rows find no room on their page, \
             so claims update every index and the queue grows and slows over a long drain; \
             esmed runs anyway. To fix, run as the table's owner: ALTER TABLE smpp_tx_queue \
             SET (fillfactor = {QUEUE_FILLFACTOR}); (on the partitioned layout, on each partition; it \
             applies to rows inserted from then on)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_fillfactor_gets_advice_with_the_statement() {
        assert_eq!(fillfactor_advice(QUEUE_FILLFACTOR), None);
        assert_eq!(fillfactor_advice(50), None);
        let advice = fillfactor_advice(100).expect("advice for 100");
        assert!(advice.contains("fillfactor 100"), "{advice}");
        assert!(
            advice.contains("ALTER TABLE smpp_tx_queue SET (fillfactor = 40);"),
            "{advice}"
        );
    }

    #[test]
    fn the_message_names_the_columns_and_the_fix() {
        let text = MissingColumns(vec!["smpp_tx_queue.smpp_message_id_key".into()]).to_string();
        assert!(text.contains("lacks smpp_tx_queue.smpp_message_id_key"));
        assert!(text.contains("sql/upgrade-0.1.sql"));
        assert!(text.contains("sql/upgrade-0.2.sql"));
        assert!(text.contains("sql/upgrade-0.2-dev.sql"));
    }
}
