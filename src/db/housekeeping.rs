//! The received-PDU writer's housekeeping between batches (every `db::writer::HOUSEKEEPING`):
//! receipts that waited for their message are matched late against parts other instances
//! stored, receipts older than the match window are forgotten with a log line, and MO sets
//! that are whole or past their timeout are stored. Each job has a transaction of its own,
//! batched; only when PostgreSQL refuses the batch are its receipts or sets taken one by one,
//! in savepoints, so that the one it refuses (an operator's trigger or constraint) is stored
//! degraded or set aside, with a log line, and holds up no other.

use std::time::Duration;

use log::{error, warn};
use postgres::Client;

use crate::db::reassembly::{self, SetKey};
use crate::db::receipts;
use crate::db::sql::Sql;
use crate::db::{self, RxRow};

/// Matches waiting receipts late and forgets expired ones; returns whether some still wait.
/// All in one transaction, the usual case; when PostgreSQL refuses that, receipt by receipt
/// (see [`match_receipts_one_by_one`]).
pub(crate) fn tidy_receipts(
    client: &mut Client,
    match_window: Duration,
) -> Result<bool, db::DbError> {
    let mut transaction = client.transaction().map_err(db::pg("begin housekeeping"))?;
    let matched = receipts::match_waiting(&mut transaction, None)
        .and_then(|states| receipts::apply_states(&mut transaction, &states));
    match matched {
        Ok(()) => {}
        Err(e) if e.is_transient() => return Err(e),
        Err(error) => {
            drop(transaction);
            warn!(
                "DB writer: matching waiting receipts together was refused: {error}; matching \
                 them one by one"
            );
            transaction = client.transaction().map_err(db::pg("begin housekeeping"))?;
            match_receipts_one_by_one(&mut transaction)?;
        }
    }
    for (rx_id, keys) in receipts::expire_waiting(&mut transaction, match_window)? {
        warn!(
            "receipt (rx id {rx_id}) matched no sent message within {}; left unmatched (ids tried: {})",
            crate::config::format_duration(match_window),
            keys.join(", ")
        );
    }
    let still_waiting = receipts::any_waiting(&mut transaction)?;
    transaction
        .commit()
        .map_err(db::pg("commit housekeeping"))?;
    Ok(still_waiting)
}

/// Each waiting receipt that has found its part, in a savepoint of its own: linked and its
/// state written; if PostgreSQL refuses that (an operator's trigger on the message's row),
/// the receipt stops waiting, its row left unlinked, with a log line.
fn match_receipts_one_by_one(
    transaction: &mut postgres::Transaction<'_>,
) -> Result<(), db::DbError> {
    for rx_id in receipts::matchable_waiting(transaction)? {
        let matched = in_savepoint(transaction, |savepoint| {
            let states = receipts::match_waiting_receipt(savepoint, rx_id)?;
            receipts::apply_states(savepoint, &states)
        });
        let error = match matched {
            Ok(()) => continue,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => e,
        };
        receipts::stop_waiting(transaction, rx_id)?;
        error!(
            "receipt (rx id {rx_id}) matched its message but writing the state was refused: \
             {error}; no longer matched (its smpp_rx_queue row stays, tx_id NULL)"
        );
    }
    Ok(())
}

/// Stores the MO sets that are due (whole, or past the timeout) and forgets old stored parts:
/// all in one transaction, the usual case; when PostgreSQL refuses that, set by set (see
/// [`store_sets_one_by_one`]). Returns how many rows it stored.
pub(crate) fn tidy_sets(client: &mut Client, timeout: Duration) -> Result<usize, db::DbError> {
    let mut transaction = client.transaction().map_err(db::pg("begin housekeeping"))?;
    let stored = store_due_sets(&mut transaction, timeout);
    let error = match stored {
        Ok(n) => {
            transaction
                .commit()
                .map_err(db::pg("commit housekeeping"))?;
            return Ok(n);
        }
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => e,
    };
    drop(transaction);
    warn!("DB writer: storing due MO sets together was refused: {error}; storing them one by one");
    let mut transaction = client.transaction().map_err(db::pg("begin housekeeping"))?;
    let stored = store_sets_one_by_one(&mut transaction, timeout)?;
    reassembly::forget_done(&mut transaction, timeout)?;
    transaction
        .commit()
        .map_err(db::pg("commit housekeeping"))?;
    Ok(stored)
}

/// Takes the due sets and stores them in one statement each.
fn store_due_sets(c: &mut impl Sql, timeout: Duration) -> Result<usize, db::DbError> {
    let rows = reassembly::take_due(c, timeout)?;
    for row in rows.iter().filter(|r| r.mo_incomplete) {
        warn_incomplete(row, timeout);
    }
    let unmatched: Vec<(&RxRow, Option<i64>)> = rows.iter().map(|r| (r, None)).collect();
    db::insert_rx(c, &unmatched)?;
    reassembly::forget_done(c, timeout)?;
    Ok(rows.len())
}

fn warn_incomplete(row: &RxRow, timeout: Duration) {
    warn!(
        "concatenated MO from '{}' to '{}' incomplete after {}; stored the parts that arrived",
        row.source_addr,
        row.destination_addr,
        crate::config::format_duration(timeout)
    );
}

/// Each due set in a savepoint of its own: stored as it is; if PostgreSQL refuses its row,
/// stored without its text (`smpp_short_message` empty, `text_invalid`); if that is refused
/// too, its parts are set aside in smpp_rx_parts_refused with the reason, and not tried
/// again. Each outcome but the first has a log line naming the set. Returns how many rows
/// it stored.
fn store_sets_one_by_one(
    transaction: &mut postgres::Transaction<'_>,
    timeout: Duration,
) -> Result<usize, db::DbError> {
    let mut stored = 0;
    for key in reassembly::due_sets(transaction, timeout)? {
        let error = match store_set(transaction, &key, std::convert::identity, timeout) {
            Ok(n) => {
                stored += n;
                continue;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => e,
        };
        let set = describe_set(&key);
        match store_set(transaction, &key, RxRow::without_text, timeout) {
            Ok(n) => {
                stored += n;
                error!("{set}: its message was refused: {error}; stored it without its text (pdu_raw has the parts)");
                continue;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(_) => {}
        }
        let parts = in_savepoint(transaction, |savepoint| {
            reassembly::set_aside(savepoint, &key, &error.to_string())
        })?;
        error!(
            "{set}: its message was refused, even without its text: {error}; its {parts} parts \
             are set aside in smpp_rx_parts_refused and not tried again (move them back into \
             smpp_rx_parts to try again)"
        );
    }
    Ok(stored)
}

/// Takes one set and stores its row as `shape` makes it, in a savepoint: rolled back (the
/// parts waiting again) when PostgreSQL refuses it. Returns how many rows it stored.
fn store_set(
    transaction: &mut postgres::Transaction<'_>,
    key: &SetKey,
    shape: impl FnOnce(RxRow) -> RxRow,
    timeout: Duration,
) -> Result<usize, db::DbError> {
    let stored = in_savepoint(transaction, |savepoint| {
        let Some(row) = reassembly::take_set(savepoint, key)? else {
            return Ok(None);
        };
        let row = shape(row);
        db::insert_rx(savepoint, &[(&row, None)])?;
        Ok(Some(row))
    })?;
    let Some(row) = stored else {
        return Ok(0);
    };
    if row.mo_incomplete {
        warn_incomplete(&row, timeout);
    }
    Ok(1)
}

/// Runs `work` in a savepoint of `transaction`: released when it succeeds, rolled back when
/// it fails, so that the transaction goes on either way.
fn in_savepoint<T>(
    transaction: &mut postgres::Transaction<'_>,
    work: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, db::DbError>,
) -> Result<T, db::DbError> {
    let mut savepoint = transaction
        .transaction()
        .map_err(db::pg("begin a savepoint"))?;
    let value = work(&mut savepoint)?;
    savepoint.commit().map_err(db::pg("release a savepoint"))?;
    Ok(value)
}

/// "concatenated MO from 'a' to 'b' (udh8 reference 7, 3 parts)", for a log line.
fn describe_set(key: &SetKey) -> String {
    format!(
        "concatenated MO from '{}' to '{}' ({} reference {}, {} parts)",
        key.source, key.destination, key.ref_kind, key.reference, key.total
    )
}
