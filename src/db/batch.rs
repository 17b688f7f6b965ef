//! What one DB writer batch is and what its transaction does: results (and receipts that
//! waited for their parts), MO parts, received rows with their receipts matched, then the
//! states the receipts carry. The writer thread (`db::writer`) gathers the batch, retries it
//! and answers the sessions; this is the SQL side, run on the connection it gives.

use std::borrow::Cow;

use log::{debug, info, warn};
use postgres::Client;

use crate::db::doubt;
use crate::db::reassembly::{self, SetKey};
use crate::db::receipts::{self, PartState, ReceiptKeys};
use crate::db::sql::{Planning, Prepared, Sql, Statements};
use crate::db::{self, RxRow, TxResult};
use crate::handoff::{AckTo, Queued, ResultAck};
use crate::smpp::receipt::{match_keys, IdMatch, MessageState};

/// One commit's worth of work, split by table.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) results: Vec<TxResult>,
    /// One per `results` entry.
    pub(super) result_acks: Vec<Option<ResultAck>>,
    /// One per `results` entry: its place in the [`ResultOrder`].
    pub(super) result_seqs: Vec<u64>,
    /// How many results were handed over before the last of `rx_rows`: a receipt waits only
    /// for its message's result among those.
    pub(super) rx_after: u64,
    pub(super) rx_rows: Vec<RxRow>,
    /// One per `rx_rows` entry.
    pub(super) acks: Vec<Option<AckTo>>,
    /// The MO parts are stored but the sets they complete are left to housekeeping: a set's
    /// row was refused, and the parts must not be refused with it.
    pub(super) sets_later: bool,
    /// Receipts are neither matched nor their states written: they wait for housekeeping,
    /// which takes them one by one when PostgreSQL refuses one. Set when the batch was
    /// refused, so that a receipt's state refused holds back no result or received PDU.
    pub(super) receipts_later: bool,
    /// How a lone received PDU is stored: degraded once PostgreSQL has refused it.
    pub(super) rx_shape: RxShape,
}

/// How a received PDU is stored; each refusal by PostgreSQL (an operator's trigger or CHECK
/// constraint) degrades it one step, so that it is stored in some form and acknowledged at
/// its first delivery instead of refused at every delivery until the SMSC gives up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum RxShape {
    /// As it came.
    #[default]
    AsSent,
    /// In smpp_rx_queue without its text (see [`RxRow::without_text`]).
    WithoutText,
    /// In smpp_rx_refused, with the reason its row was refused.
    SetAside(String),
}

impl RxShape {
    /// The next form to try after PostgreSQL refused this one, with what esmed does next for
    /// the log; None when there is none left.
    pub(super) fn after_refusal(&self, error: &db::DbError) -> Option<(RxShape, &'static str)> {
        match self {
            RxShape::AsSent => Some((
                RxShape::WithoutText,
                "storing it without its text (pdu_raw keeps the PDU)",
            )),
            RxShape::WithoutText => Some((
                RxShape::SetAside(error.to_string()),
                "it was refused without its text too: keeping it in smpp_rx_refused with the \
                 reason and acknowledging it",
            )),
            RxShape::SetAside(_) => None,
        }
    }
}

impl Batch {
    pub(super) fn push(&mut self, queued: Queued) {
        match queued {
            Queued::Result { result, ack, seq } => {
                self.results.push(result);
                self.result_acks.push(ack);
                self.result_seqs.push(seq);
            }
            Queued::Rx { row, ack, after } => {
                self.rx_rows.push(*row);
                self.acks.push(ack);
                self.rx_after = self.rx_after.max(after);
            }
        }
    }

    /// Every `message_id_key` the batch's receipts may match.
    pub(super) fn receipt_keys(&self, id_match: IdMatch) -> Vec<String> {
        self.rx_rows
            .iter()
            .filter(|row| row.is_receipt)
            .filter_map(|row| {
                let id = row.receipted_message_id.as_deref()?;
                Some(match_keys(id, row.receipt_id_from_tlv, id_match))
            })
            .flatten()
            .map(|(key, _rank)| key)
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.results.len() + self.rx_rows.len()
    }

    /// The part, for a batch of one MO part whose set (were it completed) is still taken with
    /// it: that set's row may be what PostgreSQL refused.
    pub(super) fn lone_mo_part(&self) -> Option<db::MoPart> {
        match self.rx_rows.as_slice() {
            [row] if self.results.is_empty() && !self.sets_later => row.mo_part.clone(),
            _ => None,
        }
    }

    /// Whether committing the batch may match receipts or write their states (`waiting`:
    /// receipts may wait for the results' parts).
    pub(super) fn has_receipt_work(&self, waiting: bool) -> bool {
        !self.receipts_later
            && ((waiting && !self.results.is_empty()) || self.rx_rows.iter().any(|r| r.is_receipt))
    }

    /// Splits the batch into batches of one op each.
    pub(super) fn into_singles(self) -> Vec<Batch> {
        let results = self
            .results
            .into_iter()
            .zip(self.result_acks)
            .zip(self.result_seqs)
            .map(|((r, ack), seq)| Batch {
                results: vec![r],
                result_acks: vec![ack],
                result_seqs: vec![seq],
                receipts_later: self.receipts_later,
                ..Batch::default()
            });
        let rx_after = self.rx_after;
        let rx = self
            .rx_rows
            .into_iter()
            .zip(self.acks)
            .map(move |(row, ack)| Batch {
                rx_rows: vec![row],
                acks: vec![ack],
                rx_after,
                receipts_later: self.receipts_later,
                ..Batch::default()
            });
        results.chain(rx).collect()
    }

    /// What is at stake while the batch waits for PostgreSQL at a stop, and what giving up
    /// on it (a second SIGTERM) would mean for it.
    pub(super) fn at_stake_at_stop(&self) -> String {
        let mut parts = Vec::new();
        if !self.results.is_empty() {
            parts.push(format!(
                "the results of {} (rows submitted again when their lease runs out, possible \
                 duplicates, if esmed exits first)",
                row_list(self.results.iter().map(|r| r.id))
            ));
        }
        if !self.rx_rows.is_empty() {
            parts.push(format!(
                "{} received PDUs (not acknowledged: the SMSC delivers them again if esmed exits \
                 first)",
                self.rx_rows.len()
            ));
        }
        parts.join(" and ")
    }

    pub(super) fn describe(&self) -> String {
        match (self.results.first(), self.rx_rows.first()) {
            (Some(result), _) => format!("result for row {} not stored", result.id),
            (None, Some(row)) => format!(
                "received PDU from '{}'; answering ESME_RX_T_APPN so the SMSC delivers it again later",
                row.source_addr
            ),
            (None, None) => "empty batch".into(),
        }
    }
}

/// "row 7" or "rows 7, 8, 9, ... (40 in all)": the first few ids of a batch, for a log line.
pub(super) fn row_list(ids: impl ExactSizeIterator<Item = i64>) -> String {
    const SHOWN: usize = 10;
    let count = ids.len();
    let shown: Vec<String> = ids.take(SHOWN).map(|id| id.to_string()).collect();
    match count {
        1 => format!("row {}", shown.join("")),
        n if n <= SHOWN => format!("rows {}", shown.join(", ")),
        n => format!("rows {}, ... ({n} in all)", shown.join(", ")),
    }
}

/// What a commit needs besides the batch.
pub(super) struct Rules<'a> {
    pub(super) instance: &'a str,
    pub(super) id_match: IdMatch,
    /// Receipts look among the messages inserted this recently first (`[daemon]
    /// receipt_match_window`, see [`receipts::match_receipts`]).
    pub(super) receipt_window: std::time::Duration,
    /// Whether smpp_rx_unmatched may hold receipts (the writer keeps track).
    pub(super) receipts_may_wait: bool,
    /// Received receipts are matched now (else kept waiting: see [`Batch::receipts_later`]).
    pub(super) match_receipts: bool,
    /// An earlier try of this batch lost its connection: a one-statement batch of results
    /// may have been written by it (see [`commit`]).
    pub(super) lost_before: bool,
}

/// Logs the results not written because their rows are no longer claimed by this instance.
fn note_skipped(skipped: &[i64], rules: &Rules) {
    if skipped.is_empty() {
        return;
    }
    let rows = row_list(skipped.iter().copied());
    if rules.lost_before {
        info!(
            "DB writer: results for {rows} not written now: their rows are no longer claimed by \
             '{}' (written by the earlier try whose answer was lost with the connection, or \
             their lease went to another instance)",
            rules.instance
        );
    } else {
        warn!(
            "DB writer: results for {rows} not written: the lease is no longer held by '{}'",
            rules.instance
        );
    }
}

/// One transaction for the whole batch: results (and receipts that waited for their parts),
/// MO parts, received rows with their receipts matched, then the states receipts carry.
/// Returns whether receipts were left waiting for their parts.
///
/// Round trips are what a batch costs most at small windows (a submit waits for earlier
/// results to be committed), so statements with nothing to do are skipped, and a batch of
/// results that is one statement (the usual: all done, each in one part) runs as that
/// statement alone, its own transaction: one round trip instead of BEGIN, UPDATE, COMMIT.
///
/// A COMMIT that goes unanswered is [`doubt::Ended::Unknown`], with the transaction's id, for
/// the caller to resolve. The one-statement batch needs no id: it only marks rows done that
/// this instance holds, and done rows are never claimed again, so if it did commit, running
/// it again writes nothing (the rows are reported skipped) and counts nothing twice.
pub(super) fn commit(
    client: &mut Client,
    statements: &mut Statements,
    batch: &Batch,
    rules: &Rules,
) -> Result<bool, doubt::Ended> {
    let alone = batch.rx_rows.is_empty()
        && !rules.receipts_may_wait
        && db::results::in_one_statement(&batch.results);
    if alone {
        let mut sql = Prepared::new(client, statements);
        let summary = db::write_results_in(&mut sql, &batch.results, rules.instance)
            .map_err(doubt::Ended::Failed)?;
        note_skipped(&summary.skipped, rules);
        return Ok(false);
    }
    let xid = doubt::begin(client).map_err(doubt::Ended::Failed)?;
    let written = write_batch(&mut Prepared::new(client, statements), batch, rules);
    let done = written
        .map_err(doubt::Ended::Failed)
        .and_then(|kept_waiting| doubt::commit(client, xid).map(|()| kept_waiting));
    let failed_before_commit = matches!(done, Err(doubt::Ended::Failed(_)));
    if failed_before_commit && !client.is_closed() && client.batch_execute("ROLLBACK").is_err() {
        // The connection cannot even end the failed transaction: have the caller replace it
        // rather than send the next batch into it.
        return Err(doubt::Ended::Failed(db::DbError::ConnectionClosed {
            what: "end a failed batch",
        }));
    }
    done
}

/// The statements of [`commit`], inside its transaction.
fn write_batch(sql: &mut impl Sql, batch: &Batch, rules: &Rules) -> Result<bool, db::DbError> {
    let mut states = Vec::new();
    let mut summary = None;
    if !batch.results.is_empty() {
        let written = db::write_results_in(sql, &batch.results, rules.instance)?;
        note_skipped(&written.skipped, rules);
        summary = Some(written);
    }
    let waiting_keys = summary
        .as_ref()
        .map(|s| s.part_keys.as_slice())
        .filter(|keys| rules.receipts_may_wait && !keys.is_empty());
    if let Some(keys) = waiting_keys {
        // The results connection plans for result updates; these are lookups.
        sql.batch_execute(&Planning::Lookups.for_transaction())
            .map_err(db::pg("plan receipt statements"))?;
        states = receipts::match_waiting(sql, Some(keys))?;
    }
    let mut kept_waiting = false;
    let degraded: Vec<RxRow>;
    let rx_rows = match &batch.rx_shape {
        RxShape::AsSent => batch.rx_rows.as_slice(),
        RxShape::WithoutText => {
            degraded = batch
                .rx_rows
                .iter()
                .cloned()
                .map(RxRow::without_text)
                .collect();
            degraded.as_slice()
        }
        RxShape::SetAside(reason) => {
            for row in &batch.rx_rows {
                db::rx::set_aside(sql, row, reason)?;
            }
            &[]
        }
    };
    if !rx_rows.is_empty() {
        let rows = store_mo_parts(sql, rx_rows, batch.sets_later)?;
        let stored = store_rx(sql, &rows, rules)?;
        kept_waiting = stored.kept_waiting > 0;
        states.extend(stored.states);
    }
    receipts::apply_states(sql, &states)?;
    Ok(kept_waiting)
}

/// Stores the MO parts among `rows`; returns the rows to insert: the others as they are, plus
/// one per set the parts completed (unless `sets_later`: housekeeping stores those) and one per
/// older set a part ended by reusing its reference.
fn store_mo_parts<'a>(
    c: &mut impl Sql,
    rows: &'a [RxRow],
    sets_later: bool,
) -> Result<Vec<Cow<'a, RxRow>>, db::DbError> {
    let parts: Vec<(&RxRow, &db::MoPart)> = rows
        .iter()
        .filter_map(|r| r.mo_part.as_ref().map(|p| (r, p)))
        .collect();
    let mut whole: Vec<Cow<'a, RxRow>> = rows
        .iter()
        .filter(|r| r.mo_part.is_none())
        .map(Cow::Borrowed)
        .collect();
    for round in reassembly::in_rounds(&parts) {
        store_round(c, &round, sets_later, &mut whole)?;
    }
    Ok(whole)
}

/// Stores one round of MO parts (see [`reassembly::in_rounds`]), adding to `whole` the sets
/// it ends or completes.
fn store_round<'a>(
    c: &mut impl Sql,
    parts: &[(&'a RxRow, &'a db::MoPart)],
    sets_later: bool,
    whole: &mut Vec<Cow<'a, RxRow>>,
) -> Result<(), db::DbError> {
    for ended in reassembly::take_clashing(c, parts)? {
        let (from, to) = (&ended.source_addr, &ended.destination_addr);
        let total = ended.mo_parts.unwrap_or(0);
        if ended.mo_incomplete {
            warn!(
                "concatenated MO from '{from}' to '{to}': a new message reuses its reference \
                 before it was complete; storing the {} of {total} parts that arrived as \
                 incomplete, the new message starts a set of its own",
                ended.pdu_raw.split(',').count(),
            );
        } else {
            info!(
                "concatenated MO from '{from}' to '{to}': a new message reuses its reference; \
                 storing the {total} parts of the older one first"
            );
        }
        whole.push(Cow::Owned(ended));
    }
    for again in reassembly::store_parts(c, parts)? {
        if let Some((row, part)) = parts.get(again) {
            info!(
                "MO part {}/{} (reference {}) from '{}' to '{}' delivered again after its \
                 message was stored; acknowledging it without storing it twice",
                part.seq, part.total, part.reference, row.source_addr, row.destination_addr
            );
        }
    }
    if sets_later {
        return Ok(());
    }
    let mut keys: Vec<SetKey> = parts.iter().map(|(r, p)| SetKey::of(r, p)).collect();
    keys.sort();
    keys.dedup();
    whole.extend(
        reassembly::take_complete(c, &keys)?
            .into_iter()
            .map(Cow::Owned),
    );
    Ok(())
}

/// What [`store_rx`] did beyond inserting.
struct StoredRx {
    /// The matched receipts' states, in arrival order.
    states: Vec<PartState>,
    /// How many receipts were kept in smpp_rx_unmatched.
    kept_waiting: usize,
}

/// Inserts `rows` with each receipt's tx_id when its part is known (and `match_now`); keeps
/// the others waiting.
/// Returns the matched receipts' states, in arrival order.
fn store_rx(
    c: &mut impl Sql,
    rows: &[Cow<'_, RxRow>],
    rules: &Rules,
) -> Result<StoredRx, db::DbError> {
    let (id_match, match_now) = (rules.id_match, rules.match_receipts);
    // Each receipt's token is its index in `rows`.
    let keys: Vec<ReceiptKeys> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let id = r.receipted_message_id.as_deref().filter(|_| r.is_receipt)?;
            let token = i64::try_from(i).ok()?;
            Some(ReceiptKeys::new(token, id, r.receipt_id_from_tlv, id_match))
        })
        .collect();
    let matches = if match_now {
        receipts::match_receipts(c, &keys, rules.receipt_window)?
    } else {
        Vec::new()
    };
    let (tx_ids, states) = apply_matches(rows, &matches);
    let matched: Vec<(&RxRow, Option<i64>)> = rows
        .iter()
        .map(|r| &**r)
        .zip(tx_ids.iter().copied())
        .collect();
    let ids = db::insert_rx(c, &matched)?;
    let waiting = still_waiting(keys, &tx_ids, rows, &ids);
    for (k, _) in &waiting {
        debug!(
            "receipt (rx id {}) matches no sent message yet; matching it again as parts are stored",
            k.token
        );
    }
    receipts::keep_unmatched(c, &waiting)?;
    Ok(StoredRx {
        states,
        kept_waiting: waiting.len(),
    })
}

/// Each row's matched tx_id (None where none), and the matched receipts' states in arrival
/// order.
fn apply_matches(
    rows: &[Cow<'_, RxRow>],
    matches: &[receipts::ReceiptMatch],
) -> (Vec<Option<i64>>, Vec<PartState>) {
    let mut tx_ids = vec![None; rows.len()];
    let mut states = Vec::new();
    for m in matches {
        let Some(i) = usize::try_from(m.token).ok().filter(|&i| i < rows.len()) else {
            continue;
        };
        tx_ids[i] = Some(m.tx_id);
        let state = rows[i]
            .message_state
            .as_deref()
            .and_then(MessageState::from_name);
        if let Some(state) = state {
            let part = PartState {
                tx_id: m.tx_id,
                part_no: m.part_no,
                single: m.single,
                insert_timestamp: m.insert_timestamp,
                state,
            };
            states.push((m.token, part));
        }
    }
    states.sort_by_key(|(token, _)| *token);
    (tx_ids, states.into_iter().map(|(_, state)| state).collect())
}

/// The receipts no part matched (no tx_id), each now named by its smpp_rx_queue id (`ids`,
/// in the order of `rows`), with the state it reports.
fn still_waiting(
    keys: Vec<ReceiptKeys>,
    tx_ids: &[Option<i64>],
    rows: &[Cow<'_, RxRow>],
    ids: &[i64],
) -> Vec<(ReceiptKeys, Option<MessageState>)> {
    keys.into_iter()
        .filter_map(|mut k| {
            let i = usize::try_from(k.token).ok()?;
            if tx_ids.get(i)?.is_some() {
                return None;
            }
            let state = rows
                .get(i)?
                .message_state
                .as_deref()
                .and_then(MessageState::from_name);
            k.token = *ids.get(i)?;
            Some((k, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_names_the_first_rows_and_how_many() {
        assert_eq!(row_list([7].into_iter()), "row 7");
        assert_eq!(row_list([7, 8, 9].into_iter()), "rows 7, 8, 9");
        assert_eq!(
            row_list((1..41).collect::<Vec<i64>>().into_iter()),
            "rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... (40 in all)"
        );
    }
}
