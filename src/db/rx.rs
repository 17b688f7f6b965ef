//! Storing what the SMSC sent (deliver_sm, data_sm) in `smpp_rx_queue`.
//!
//! A whole batch is one INSERT of unnested arrays, so the DB writer commits many PDUs per round
//! trip; the SMSC gets its `_resp` only after that commit. Parts of concatenated MO messages
//! go to `smpp_rx_parts` instead ([`super::reassembly`]).

use super::sql::Sql;
use crate::smpp::text::storable::make_storable;

use super::{pg, DbError};
use crate::handoff::RxRow;

impl RxRow {
    /// The row with every string PostgreSQL could refuse made storable: a NUL (from a TLV,
    /// an address) becomes U+FFFD. The text and the JSON come storable already (the text
    /// decoder counts a NUL as invalid, the JSON writer replaces it), so the largest strings
    /// are not scanned twice. `pdu_raw` (hex) keeps the exact octets.
    pub(crate) fn storable(mut self) -> RxRow {
        make_storable(&mut self.source_addr);
        make_storable(&mut self.destination_addr);
        let optional = [
            &mut self.receipted_message_id,
            &mut self.message_state,
            &mut self.error_code,
        ];
        for value in optional.into_iter().flatten() {
            make_storable(value);
        }
        self
    }
}

/// Each row gets its received feed value under the feed's gate (the one-time filter on
/// `gate` is evaluated before any row), and the feed's NOTIFY is queued before the rows are
/// inserted (sent at commit, dropped with the rest if the INSERT fails; see
/// sql/results-feed.sql). The statement stays an INSERT, as it reports itself.
const INSERT_RX: &str = "
    WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(1702063462, 2)),
    numbered AS MATERIALIZED (
        SELECT u.*, nextval('esmed_received_seq') FROM unnest($1::varchar[], $2::varchar[],
            $3::varchar[], $4::varchar[], $5::varchar[], $6::int4[], $7::int4[], $8::bool[],
            $9::varchar[], $10::varchar[], $11::varchar[], $12::int8[], $13::bool[],
            $14::int8[], $15::int2[], $16::bool[]) AS u
        WHERE EXISTS (SELECT FROM gate)),
    notified AS MATERIALIZED (
        SELECT esmed_notify_feed('esmed_received', max(nextval)) FROM numbered)
    INSERT INTO smpp_rx_queue (pdu_raw, pdu_parsed, smpp_source_addr, smpp_destination_addr,
        smpp_short_message, esm_class, data_coding, is_receipt, receipted_message_id,
        message_state, error_code, tx_id, text_invalid, id, mo_parts, mo_incomplete,
        result_seq)
    SELECT * FROM numbered WHERE EXISTS (SELECT FROM notified)";

/// Ids are taken from the sequence first, so the caller knows which row got which id
/// (INSERT ... RETURNING promises no order) and esmed needs no SELECT on the table.
const NEXT_IDS: &str = "SELECT nextval('smpp_rx_queue_id_seq') FROM generate_series(1, $1::int4)";

/// Inserts `rows` in one statement (nothing for an empty slice), each with the
/// `smpp_tx_queue` row it matched when it is a receipt whose message is known (`tx_id`);
/// returns their ids, in order. The match goes beside the row, not into it: the DB writer
/// keeps its batch's rows as they came, for a retry, and inserts them without a copy.
pub fn insert_rx(c: &mut impl Sql, rows: &[(&RxRow, Option<i64>)]) -> Result<Vec<i64>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    let ids: Vec<i64> = c
        .query(NEXT_IDS, &[&count])
        .map_err(pg("number received PDUs"))?
        .iter()
        .map(|row| super::servers::get(row, 0))
        .collect::<Result<_, _>>()?;
    let text = |f: fn(&RxRow) -> &str| rows.iter().map(|(r, _)| f(r)).collect::<Vec<&str>>();
    let optional = |f: fn(&RxRow) -> Option<&str>| {
        rows.iter()
            .map(|(r, _)| f(r))
            .collect::<Vec<Option<&str>>>()
    };
    let int = |f: fn(&RxRow) -> i32| rows.iter().map(|(r, _)| f(r)).collect::<Vec<i32>>();
    let flag = |f: fn(&RxRow) -> bool| rows.iter().map(|(r, _)| f(r)).collect::<Vec<bool>>();
    let tx_ids: Vec<Option<i64>> = rows.iter().map(|(_, tx_id)| *tx_id).collect();
    c.execute(
        INSERT_RX,
        &[
            &text(|r| &r.pdu_raw),
            &text(|r| &r.pdu_parsed),
            &text(|r| &r.source_addr),
            &text(|r| &r.destination_addr),
            &text(|r| &r.short_message),
            &int(|r| r.esm_class),
            &int(|r| r.data_coding),
            &flag(|r| r.is_receipt),
            &optional(|r| r.receipted_message_id.as_deref()),
            &optional(|r| r.message_state.as_deref()),
            &optional(|r| r.error_code.as_deref()),
            &tx_ids,
            &flag(|r| r.text_invalid),
            &ids,
            &rows
                .iter()
                .map(|(r, _)| r.mo_parts)
                .collect::<Vec<Option<i16>>>(),
            &flag(|r| r.mo_incomplete),
        ],
    )
    .map_err(pg("store received PDUs"))?;
    Ok(ids)
}

/// Keeps a received PDU whose `smpp_rx_queue` row PostgreSQL refused, even without its text,
/// in `smpp_rx_refused` with the reason, so that it can be acknowledged instead of refused at
/// every delivery.
pub(crate) fn set_aside(c: &mut impl Sql, row: &RxRow, reason: &str) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO smpp_rx_refused (pdu_raw, pdu_parsed, smpp_source_addr,
             smpp_destination_addr, reason)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &row.pdu_raw,
            &row.pdu_parsed,
            &row.source_addr,
            &row.destination_addr,
            &reason,
        ],
    )
    .map_err(pg("set aside a refused received PDU"))?;
    Ok(())
}

impl RxRow {
    /// The degraded form of a row an operator's rule refused: the text, what such a rule
    /// usually looks at, left out (`pdu_raw` still has it).
    pub(crate) fn without_text(self) -> RxRow {
        RxRow {
            short_message: String::new(),
            text_invalid: true,
            ..self
        }
    }
}
