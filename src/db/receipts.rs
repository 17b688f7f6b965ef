//! Delivery receipts against the send queue: finding the part a receipt is about, keeping
//! receipts whose part is not known yet, and writing the states: a single-part message's to
//! its `smpp_tx_queue` row, a long message's to its `smpp_tx_parts` rows and their aggregate
//! to its row.
//!
//! Every function is one statement over arrays, run inside the DB writer's batch transaction,
//! so a batch's receipts cost a fixed number of round trips. Matching compares normalised ids
//! (`smpp_tx_parts.message_id_key` and `smpp_tx_queue.smpp_message_id_key` against
//! [`match_keys`]); the best rank wins, then the most recently submitted part. The state
//! rules: a final state is never replaced by a non-final one (per part and per row); the row's
//! state is its parts' worst by [`MessageState::severity`], a part without a receipt counting
//! as ENROUTE.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::sql::Sql;

use super::servers::get;
use super::{pg, DbError};
use crate::smpp::receipt::{match_keys, IdMatch, MessageState};

/// A receipt to match: `token` identifies it to the caller (a batch index or an rx id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptKeys {
    pub(crate) token: i64,
    /// (`message_id_key`, rank) pairs; lower rank is the better match.
    pub keys: Vec<(String, i32)>,
}

impl ReceiptKeys {
    pub fn new(token: i64, message_id: &str, from_tlv: bool, mode: IdMatch) -> ReceiptKeys {
        ReceiptKeys {
            token,
            keys: match_keys(message_id, from_tlv, mode),
        }
    }
}

/// A receipt found its part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptMatch {
    pub token: i64,
    pub tx_id: i64,
    pub part_no: i16,
    /// The message was sent in one part: its key and state are on the smpp_tx_queue row.
    pub single: bool,
    /// A single-part message's insert_timestamp, with which its state update finds its row
    /// (see `TxRow::insert_timestamp`); None for a part of a multi-part message.
    pub insert_timestamp: Option<SystemTime>,
}

/// A receipt's effect on one part: its state, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartState {
    pub tx_id: i64,
    pub part_no: i16,
    /// See [`ReceiptMatch::single`].
    pub single: bool,
    /// See [`ReceiptMatch::insert_timestamp`].
    pub insert_timestamp: Option<SystemTime>,
    pub state: MessageState,
}

/// The newest part with `u.match_key`: a part of a multi-part message (smpp_tx_parts) or a
/// message sent in one part (smpp_tx_queue.smpp_message_id_key, as part 1), looked up in the
/// two key indexes once per key (a LATERAL with LIMIT 1). A plain join was planned as a hash
/// join over the whole table whenever the statistics were stale, e.g. after a big INSERT:
/// 10 ms per batch of 50 receipts at 100,000 parts instead of 0.7 ms.
macro_rules! newest_part_for_key {
    () => {
        newest_part_for_key!("")
    };
    ($queue_bound:literal) => {
        concat!(
            " CROSS JOIN LATERAL (
              SELECT m.tx_id, m.part_no, m.submitted_at, m.single, m.inserted FROM (
                  SELECT p.tx_id, p.part_no, p.submitted_at, false AS single,
                         NULL::timestamptz AS inserted
                  FROM smpp_tx_parts p WHERE p.message_id_key = u.match_key
                  UNION ALL
                  SELECT t.id, 1::int2, t.submission_timestamp, true, t.insert_timestamp
                  FROM smpp_tx_queue t WHERE t.smpp_message_id_key = u.match_key ",
            $queue_bound,
            ") m
              ORDER BY m.submitted_at DESC NULLS LAST, m.tx_id DESC LIMIT 1) p "
        )
    };
}

/// `$4`, when given, bounds the single-part messages looked at to those inserted in the last
/// `$4` seconds (see [`match_receipts`]).
macro_rules! match_sql {
    ($($queue_bound:literal)?) => {
        concat!(
            "SELECT DISTINCT ON (u.token) u.token, p.tx_id, p.part_no, p.single, p.inserted
             FROM unnest($1::int8[], $2::varchar[], $3::int4[]) AS u(token, match_key, match_rank)",
            newest_part_for_key!($($queue_bound)?),
            "ORDER BY u.token, u.match_rank, p.submitted_at DESC NULLS LAST, p.tx_id DESC"
        )
    };
}

const MATCH: &str = match_sql!();
const MATCH_RECENT: &str =
    match_sql!("AND t.insert_timestamp >= now() - $4::float8 * interval '1 second'");

/// Finds the part of each receipt that has one. The best-ranked match wins whatever the
/// other keys find, so each receipt's best-ranked keys are looked up first and its others
/// only when those found nothing: most receipts match on their first key, and a batch then
/// costs one lookup per receipt instead of one per key (a receipt has up to two).
///
/// Each rank is looked up among the messages inserted within `recent` first, then, for the
/// receipts still without a part, among all: a receipt mostly comes within minutes of its
/// message, and on the partitioned layout the first lookup reads only the partitions of
/// those days instead of every day's key index (a year of days, a year of probes per
/// receipt). Which message a receipt matches is the same either way, but for an id the SMSC
/// gave to two messages, one inserted within `recent` and one before it but sent later: the
/// first lookup then takes the recent one.
pub fn match_receipts(
    c: &mut impl Sql,
    receipts: &[ReceiptKeys],
    recent: Duration,
) -> Result<Vec<ReceiptMatch>, DbError> {
    let best_rank = |r: &ReceiptKeys| r.keys.iter().map(|(_, rank)| *rank).min();
    let best = |r: &ReceiptKeys, rank| Some(rank) == best_rank(r);
    let others = |r: &ReceiptKeys, rank| Some(rank) != best_rank(r);
    let mut matches: Vec<ReceiptMatch> = Vec::new();
    for wanted in [&best as &dyn Fn(&ReceiptKeys, i32) -> bool, &others] {
        for within in [Some(recent), None] {
            let matched: HashSet<i64> = matches.iter().map(|m| m.token).collect();
            let unmatched = receipts.iter().filter(|r| !matched.contains(&r.token));
            matches.extend(match_keys_of(c, unmatched, wanted, within)?);
        }
    }
    Ok(matches)
}

/// One [`MATCH`] (or [`MATCH_RECENT`], `within` given) over the keys of `receipts` that
/// `wanted(receipt, rank)` picks; nothing (and no round trip) when it picks none.
fn match_keys_of<'a>(
    c: &mut impl Sql,
    receipts: impl IntoIterator<Item = &'a ReceiptKeys>,
    wanted: &dyn Fn(&ReceiptKeys, i32) -> bool,
    within: Option<Duration>,
) -> Result<Vec<ReceiptMatch>, DbError> {
    let (mut tokens, mut keys, mut ranks) = (Vec::new(), Vec::new(), Vec::new());
    for r in receipts {
        for (key, rank) in r.keys.iter().filter(|(_, rank)| wanted(r, *rank)) {
            tokens.push(r.token);
            keys.push(key.as_str());
            ranks.push(*rank);
        }
    }
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let rows = match within {
        Some(recent) => c.query(
            MATCH_RECENT,
            &[&tokens, &keys, &ranks, &recent.as_secs_f64()],
        ),
        None => c.query(MATCH, &[&tokens, &keys, &ranks]),
    }
    .map_err(pg("match receipts"))?;
    rows.iter()
        .map(|row| {
            Ok(ReceiptMatch {
                token: get(row, 0)?,
                tx_id: get(row, 1)?,
                part_no: get(row, 2)?,
                single: get(row, 3)?,
                insert_timestamp: get(row, 4)?,
            })
        })
        .collect()
}

const KEEP_UNMATCHED: &str = "
    INSERT INTO smpp_rx_unmatched (rx_id, match_key, match_rank, message_state)
    SELECT * FROM unnest($1::int8[], $2::varchar[], $3::int4[], $4::varchar[])
    ON CONFLICT DO NOTHING";

/// Keeps receipts (`token` = their smpp_rx_queue id) for matching later.
pub(crate) fn keep_unmatched(
    c: &mut impl Sql,
    receipts: &[(ReceiptKeys, Option<MessageState>)],
) -> Result<(), DbError> {
    let (mut ids, mut keys, mut ranks, mut states) = (Vec::new(), Vec::new(), Vec::new(), vec![]);
    for (r, state) in receipts {
        for (key, rank) in &r.keys {
            ids.push(r.token);
            keys.push(key.as_str());
            ranks.push(*rank);
            states.push(state.map(MessageState::as_str));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    c.execute(KEEP_UNMATCHED, &[&ids, &keys, &ranks, &states])
        .map_err(pg("keep unmatched receipts"))?;
    Ok(())
}

/// $1 NULL: every waiting receipt; else only those waiting for one of these keys.
/// Every waiting receipt that now has a part (the periodic housekeeping).
const MATCH_ALL_WAITING: &str = concat!(
    "SELECT DISTINCT ON (u.rx_id) u.rx_id, p.tx_id, p.part_no, p.single, u.message_state,
            p.inserted
     FROM smpp_rx_unmatched u",
    newest_part_for_key!(),
    "ORDER BY u.rx_id, u.match_rank, p.submitted_at DESC NULLS LAST, p.tx_id DESC"
);

/// The waiting receipts for the parts just stored: a statement of its own rather than one with
/// `$1 IS NULL OR ...`, so that each has one simple plan (this one looks the keys up in the
/// match_key index) whatever the planner makes of the parameter.
const MATCH_WAITING_FOR: &str = concat!(
    "SELECT DISTINCT ON (u.rx_id) u.rx_id, p.tx_id, p.part_no, p.single, u.message_state,
            p.inserted
     FROM smpp_rx_unmatched u",
    newest_part_for_key!(),
    "WHERE u.match_key = ANY($1::varchar[])
     ORDER BY u.rx_id, u.match_rank, p.submitted_at DESC NULLS LAST, p.tx_id DESC"
);

/// One waiting receipt (by its rx id), when housekeeping matches receipts one by one.
const MATCH_WAITING_RX: &str = concat!(
    "SELECT DISTINCT ON (u.rx_id) u.rx_id, p.tx_id, p.part_no, p.single, u.message_state,
            p.inserted
     FROM smpp_rx_unmatched u",
    newest_part_for_key!(),
    "WHERE u.rx_id = $1
     ORDER BY u.rx_id, u.match_rank, p.submitted_at DESC NULLS LAST, p.tx_id DESC"
);

/// Deleting is the claim: of two esmed instances matching the same receipt, one gets it.
const CLAIM_WAITING: &str = "
    DELETE FROM smpp_rx_unmatched WHERE rx_id = ANY($1::int8[]) RETURNING rx_id";

/// A linked receipt comes again in the received feed, with a new value (see
/// `finished_ids` in [`super::results`]).
const LINK_RX: &str = "
    WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(1702063462, 2)),
    linked AS (
        UPDATE smpp_rx_queue r SET tx_id = u.tx_id, result_seq = nextval('esmed_received_seq')
        FROM unnest($1::int8[], $2::int8[]) AS u(rx_id, tx_id)
        WHERE r.id = u.rx_id AND EXISTS (SELECT FROM gate)
        RETURNING r.result_seq)
    SELECT esmed_notify_feed('esmed_received', max(result_seq)) FROM linked";

/// Matches waiting receipts (all, or those that may match `keys`), links their rx rows to
/// the tx rows and forgets them; returns their states, oldest receipt first, for
/// [`apply_states`].
pub(crate) fn match_waiting(
    c: &mut impl Sql,
    keys: Option<&[String]>,
) -> Result<Vec<PartState>, DbError> {
    let rows = match keys {
        Some(keys) => c.query(MATCH_WAITING_FOR, &[&keys]),
        None => c.query(MATCH_ALL_WAITING, &[]),
    }
    .map_err(pg("match waiting receipts"))?;
    claim_matches(c, &rows)
}

/// The rx ids of the waiting receipts that now have a part, for matching them one by one
/// ([`match_waiting_receipt`]).
pub(crate) fn matchable_waiting(c: &mut impl Sql) -> Result<Vec<i64>, DbError> {
    c.query(MATCH_ALL_WAITING, &[])
        .map_err(pg("match waiting receipts"))?
        .iter()
        .map(|row| get(row, 0))
        .collect()
}

/// [`match_waiting`] for the one receipt stored as `rx_id`.
pub(crate) fn match_waiting_receipt(
    c: &mut impl Sql,
    rx_id: i64,
) -> Result<Vec<PartState>, DbError> {
    let rows = c
        .query(MATCH_WAITING_RX, &[&rx_id])
        .map_err(pg("match a waiting receipt"))?;
    claim_matches(c, &rows)
}

/// Stops matching the receipt stored as `rx_id` (its row stays, tx_id NULL).
pub(crate) fn stop_waiting(c: &mut impl Sql, rx_id: i64) -> Result<u64, DbError> {
    c.execute("DELETE FROM smpp_rx_unmatched WHERE rx_id = $1", &[&rx_id])
        .map_err(pg("stop matching a receipt"))
}

/// Claims the receipts of `rows` (rx_id, tx_id, part_no, single, state,
/// insert_timestamp), links their rx rows
/// to their messages and returns their states, oldest receipt first.
fn claim_matches(c: &mut impl Sql, rows: &[postgres::Row]) -> Result<Vec<PartState>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    type Found = (i64, i16, bool, Option<String>, Option<SystemTime>);
    let mut found: HashMap<i64, Found> = HashMap::new();
    for row in rows {
        let part = (
            get(row, 1)?,
            get(row, 2)?,
            get(row, 3)?,
            get(row, 4)?,
            get(row, 5)?,
        );
        found.insert(get(row, 0)?, part);
    }
    let wanted: Vec<i64> = found.keys().copied().collect();
    let mut claimed: Vec<i64> = c
        .query(CLAIM_WAITING, &[&wanted])
        .map_err(pg("claim waiting receipts"))?
        .iter()
        .map(|row| get(row, 0))
        .collect::<Result<_, _>>()?;
    claimed.sort_unstable();
    claimed.dedup();
    let tx_ids: Vec<i64> = claimed.iter().map(|id| found[id].0).collect();
    c.execute(LINK_RX, &[&claimed, &tx_ids])
        .map_err(pg("link receipts to their messages"))?;
    Ok(claimed
        .iter()
        .filter_map(|id| {
            let (tx_id, part_no, single, state, inserted) = &found[id];
            let state = MessageState::from_name(state.as_deref()?)?;
            Some(PartState {
                tx_id: *tx_id,
                part_no: *part_no,
                single: *single,
                insert_timestamp: *inserted,
                state,
            })
        })
        .collect())
}

/// Whether any receipt is waiting for its part (cheap: stops at the first row).
pub(crate) fn any_waiting(c: &mut impl Sql) -> Result<bool, DbError> {
    let rows = c
        .query("SELECT EXISTS (SELECT 1 FROM smpp_rx_unmatched)", &[])
        .map_err(pg("look for waiting receipts"))?;
    rows.first().map_or(Ok(false), |row| get(row, 0))
}

const EXPIRE_WAITING: &str = "
    DELETE FROM smpp_rx_unmatched
    WHERE first_seen < now() - $1::float8 * interval '1 second'
    RETURNING rx_id, match_key";

/// Forgets receipts that waited longer than `window`; returns (rx id, keys tried) for logs.
pub(crate) fn expire_waiting(
    c: &mut impl Sql,
    window: Duration,
) -> Result<Vec<(i64, Vec<String>)>, DbError> {
    let rows = c
        .query(EXPIRE_WAITING, &[&window.as_secs_f64()])
        .map_err(pg("expire unmatched receipts"))?;
    let mut by_id: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for row in &rows {
        by_id.entry(get(row, 0)?).or_default().push(get(row, 1)?);
    }
    Ok(by_id.into_iter().collect())
}

const UPDATE_PARTS: &str = "
    UPDATE smpp_tx_parts p SET message_state = u.state, state_timestamp = now()
    FROM unnest($1::int8[], $2::int2[], $3::varchar[]) AS u(tx_id, part_no, state)
    WHERE p.tx_id = u.tx_id AND p.part_no = u.part_no
      AND p.message_state IS DISTINCT FROM u.state
      AND NOT (p.message_state IS NOT NULL AND p.message_state <> ALL($4::varchar[])
               AND u.state = ANY($4::varchar[]))";

/// A receipt state update that gives each row it changes its results feed value under the
/// feed's gate and ends with the feed's NOTIFY (see `finished_ids` in [`super::results`]).
macro_rules! state_update {
    ($update:literal) => {
        concat!(
            "WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(1702063462, 1)),
             written AS (",
            $update,
            "RETURNING t.result_seq)
             SELECT esmed_notify_feed('esmed_results', max(result_seq)) FROM written"
        )
    };
}

/// $2/$3: every state's name and severity; $4: the non-final names; a part without a state
/// counts as ENROUTE.
const UPDATE_ROWS: &str = state_update!(
    "
    UPDATE smpp_tx_queue t
    SET smpp_message_state = a.state, message_state_timestamp = now(),
        result_seq = nextval('esmed_result_seq')
    FROM (SELECT DISTINCT ON (p.tx_id) p.tx_id, COALESCE(p.message_state, 'ENROUTE') AS state
          FROM smpp_tx_parts p
          LEFT JOIN unnest($2::varchar[], $3::int4[]) AS s(name, severity)
                 ON s.name = COALESCE(p.message_state, 'ENROUTE')
          WHERE p.tx_id = ANY($1::int8[])
          ORDER BY p.tx_id, s.severity DESC NULLS LAST) a
    WHERE t.id = a.tx_id AND t.smpp_message_state IS DISTINCT FROM a.state
      AND EXISTS (SELECT FROM gate)
      AND NOT (t.smpp_message_state IS NOT NULL AND t.smpp_message_state <> ALL($4::varchar[])
               AND a.state = ANY($4::varchar[]))
    "
);

/// A single-part message's state, written to its row directly (it has no parts rows), found
/// by its id and insert_timestamp (one partition on the partitioned layout: the statement is
/// planned as nested loops, `Planning::Lookups`, so each row's lookup is pruned as it runs).
/// $3: the non-final names.
const UPDATE_SINGLE_ROWS: &str = state_update!(
    "
    UPDATE smpp_tx_queue t SET smpp_message_state = u.state, message_state_timestamp = now(),
        result_seq = nextval('esmed_result_seq')
    FROM unnest($1::int8[], $2::varchar[], $4::timestamptz[]) AS u(id, state, inserted)
    WHERE t.id = u.id AND t.insert_timestamp = u.inserted
      AND t.smpp_message_state IS DISTINCT FROM u.state
      AND EXISTS (SELECT FROM gate)
      AND NOT (t.smpp_message_state IS NOT NULL AND t.smpp_message_state <> ALL($3::varchar[])
               AND u.state = ANY($3::varchar[]))
    "
);

/// Writes receipts' states (in arrival order): to single-part messages' rows, and to the
/// parts of multi-part ones, then each touched row's aggregate. At most three statements
/// whatever the count.
pub fn apply_states(c: &mut impl Sql, states: &[PartState]) -> Result<(), DbError> {
    let folded = fold_states(states);
    if folded.is_empty() {
        return Ok(());
    }
    let non_final: Vec<&str> = MessageState::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| s.as_str())
        .collect();
    let (single, multi): (Vec<&PartState>, Vec<&PartState>) = folded.iter().partition(|s| s.single);
    if !single.is_empty() {
        let ids: Vec<i64> = single.iter().map(|s| s.tx_id).collect();
        let names: Vec<&str> = single.iter().map(|s| s.state.as_str()).collect();
        let inserted: Vec<Option<SystemTime>> = single.iter().map(|s| s.insert_timestamp).collect();
        c.execute(UPDATE_SINGLE_ROWS, &[&ids, &names, &non_final, &inserted])
            .map_err(pg("write message states"))?;
    }
    if multi.is_empty() {
        return Ok(());
    }
    let tx_ids: Vec<i64> = multi.iter().map(|s| s.tx_id).collect();
    let part_nos: Vec<i16> = multi.iter().map(|s| s.part_no).collect();
    let names: Vec<&str> = multi.iter().map(|s| s.state.as_str()).collect();
    c.execute(UPDATE_PARTS, &[&tx_ids, &part_nos, &names, &non_final])
        .map_err(pg("write part states"))?;
    let all_names: Vec<&str> = MessageState::ALL.iter().map(|s| s.as_str()).collect();
    let severities: Vec<i32> = MessageState::ALL
        .iter()
        .map(|s| i32::from(s.severity()))
        .collect();
    let mut rows = tx_ids;
    rows.sort_unstable();
    rows.dedup();
    c.execute(UPDATE_ROWS, &[&rows, &all_names, &severities, &non_final])
        .map_err(pg("write message states"))?;
    Ok(())
}

/// One state per part (one UPDATE may touch a row once): later receipts win, except that a
/// final state is never replaced by a non-final one.
fn fold_states(states: &[PartState]) -> Vec<PartState> {
    let mut order: Vec<(i64, i16)> = Vec::new();
    let mut by_part: HashMap<(i64, i16), &PartState> = HashMap::new();
    for s in states {
        let key = (s.tx_id, s.part_no);
        match by_part.get(&key) {
            None => {
                order.push(key);
                by_part.insert(key, s);
            }
            Some(current) if current.state.is_final() && !s.state.is_final() => {}
            Some(_) => {
                by_part.insert(key, s);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|key| by_part.get(&key).map(|s| (*s).clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageState::*;

    fn s(tx_id: i64, part_no: i16, state: MessageState) -> PartState {
        PartState {
            tx_id,
            part_no,
            single: false,
            insert_timestamp: None,
            state,
        }
    }

    #[test]
    fn later_states_win_but_never_a_non_final_over_a_final() {
        let folded = fold_states(&[
            s(1, 1, Enroute),
            s(2, 1, Delivered),
            s(1, 1, Delivered),
            s(2, 1, Enroute),
            s(3, 1, Delivered),
            s(3, 1, Undeliverable),
        ]);
        assert_eq!(
            folded,
            [
                s(1, 1, Delivered),
                s(2, 1, Delivered),
                s(3, 1, Undeliverable)
            ]
        );
    }

    #[test]
    fn receipt_keys_follow_the_mode() {
        let r = ReceiptKeys::new(7, "1A", false, IdMatch::TextHex);
        assert_eq!(r.keys, [("26".to_string(), 0)]);
        assert_eq!(r.token, 7);
    }
}
