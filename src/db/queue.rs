//! The send queue: claiming `smpp_tx_queue` rows and writing their results back.
//!
//! Several esmed processes may share one queue. A row is claimed with `FOR UPDATE SKIP LOCKED`
//! (two claimers never get the same row) and a lease (`claimed_by`, `claimed_until`): while the
//! lease runs no one else claims the row, and results are only written by the instance that
//! still holds the lease, so a row taken over after a lease ran out is never overwritten by
//! the instance that lost it. Parts accepted by the SMSC go to `smpp_tx_parts`; a row that is
//! retried gets its accepted parts back on the next claim, so they are not sent twice.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient};

use super::sql::{Planning, Sql};

use super::servers::get;
use super::{pg, DbError};
use crate::handoff::{AcceptedPart, RegisteredDelivery, TxOutcome, TxResult, TxRow};
use crate::smpp::concat::MAX_PAYLOAD;
use crate::smpp::receipt::stored_key;

/// What [`write_results`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Rows updated.
    pub written: usize,
    /// Rows not updated because this instance no longer holds their lease (or they are gone).
    pub skipped: Vec<i64>,
    /// The `message_id_key`s of the parts stored, for matching receipts that waited for them.
    pub part_keys: Vec<String>,
}

/// Rows that may be claimed now, and their order: what [`claim`] takes and
/// [`first_sendable`] looks for.
macro_rules! sendable_sql {
    ($($and:literal)*) => {
        concat!(
            "FROM smpp_tx_queue
                WHERE NOT submission_done AND NOT submission_failed
                  AND (claimed_until IS NULL OR claimed_until < now())
                  AND (next_attempt_at IS NULL OR next_attempt_at <= now()) ",
            $($and,)*
            " ORDER BY smpp_priority_flag DESC NULLS LAST, id"
        )
    };
}

/// The claim statement; `$after` narrows it to the rest of one priority level (see
/// [`claim_after`]).
///
/// One statement, so that a claim is never committed without its rows' accepted parts read
/// (a connection lost in between left rows claimed that were never handed over). Rows whose
/// lease ran out under this instance's own name are not taken: this process still holds them
/// (a renewal could not get their row lock), or [`release_untracked`] releases them. A text
/// longer than [`MAX_TEXT_OCTETS`] fails its row inside the claim, measured by
/// `octet_length` (which reads no text), and none of it is returned.
macro_rules! claim_sql {
    ($after:literal) => {
        concat!(
            "WITH c AS (
                SELECT id, claimed_by AS lost_by,
                       octet_length(smpp_short_message) > $4::int8 AS too_long ",
            sendable_sql!("AND claimed_by IS DISTINCT FROM $3 " $after),
            "
                LIMIT $1
                FOR UPDATE SKIP LOCKED)
            UPDATE smpp_tx_queue t
            SET claimed_by = CASE WHEN c.too_long THEN NULL ELSE $3 END,
                claimed_until = CASE WHEN c.too_long THEN NULL
                                ELSE now() + $2::float8 * interval '1 second' END,
                submission_failed = c.too_long,
                submission_info = CASE WHEN c.too_long THEN format(
                    'text is %s octets, more than esmed can send in any coding '
                    '(at most %s): not sent', octet_length(t.smpp_short_message), $4::int8)
                    ELSE t.submission_info END,
                submission_resends = t.submission_resends + (c.lost_by IS NOT NULL)::int
            FROM c WHERE t.id = c.id
            RETURNING t.id, t.smpp_destination_addr, t.smpp_source_addr,
                      COALESCE(t.smpp_priority_flag::text, 'LEVEL_0'),
                      COALESCE(t.smpp_registered_delivery::text,
                               'NO_SMSC_DELIVERY_RECEIPT_REQUESTED'),
                      CASE WHEN NOT c.too_long THEN t.smpp_short_message END,
                      COALESCE(t.submission_attempts, 0), c.lost_by,
                      CASE WHEN c.too_long THEN octet_length(t.smpp_short_message) END, ",
            accepted_parts_sql!("part_no"),
            ", ",
            accepted_parts_sql!("COALESCE(part_count, 0::smallint)"),
            ", ",
            accepted_parts_sql!("message_id")
        )
    };
}

/// One column of a claimed row's accepted parts, as an array in part order. Only a retried
/// row can have accepted parts (Retry is the one outcome that stores parts on a row that is
/// sent again): for a fresh row the CASE skips the lookup.
macro_rules! accepted_parts_sql {
    ($column:literal) => {
        concat!(
            "CASE WHEN COALESCE(t.submission_attempts, 0) > 0 OR t.next_attempt_at IS NOT NULL
             THEN ARRAY(SELECT ",
            $column,
            " FROM smpp_tx_parts p WHERE p.tx_id = t.id ORDER BY part_no) END"
        )
    };
}

const CLAIM: &str = claim_sql!("");
const CLAIM_AFTER: &str =
    claim_sql!("AND smpp_priority_flag = $5::text::smpp_priority_flag AND id > $6");

/// The longest text, in octets as PostgreSQL stores it (UTF-8), that a claim reads. The
/// longest message esmed sends is one message_payload of 65,535 octets (the longest split
/// message, 255 segments of 160 septets, is shorter); each character takes at least one of
/// those octets and at most four UTF-8 octets (in practice two), so no text esmed could send
/// is longer. A longer one fails at the claim without being read: the column takes up to
/// 1 GB, which would otherwise be read into memory only to be refused.
pub const MAX_TEXT_OCTETS: i64 = 4 * MAX_ENCODED_OCTETS as i64;

/// The most octets of encoded text in one message esmed sends (see [`MAX_TEXT_OCTETS`]).
const MAX_ENCODED_OCTETS: usize = if MAX_PAYLOAD > 255 * 160 {
    MAX_PAYLOAD
} else {
    255 * 160
};

/// Sets up a connection that claims (the poller's): see [`Planning::Claims`]. Its
/// statements are prepared (see [`super::sql`]).
pub fn prepare_claimer(c: &mut Client) -> Result<(), DbError> {
    c.batch_execute(&Planning::Claims.for_session())
        .map_err(pg("set up the claiming connection"))
}

/// Claims up to `limit` sendable rows for `lease`, in priority (highest first) then id order.
///
/// Sendable: not done, not failed, no running lease, past its retry time, and not claimed
/// under `instance` before. The lease is `instance`'s until it runs out, [`write_results`]
/// or a release.
///
/// A row whose earlier lease ran out without a result (its instance was killed or lost
/// PostgreSQL for longer than the lease) may already have reached the SMSC: claiming it again
/// is a possible duplicate, so it is logged with the row id and counted in
/// `submission_resends`. A row whose text is longer than [`MAX_TEXT_OCTETS`] is failed,
/// logged, and not returned.
pub fn claim(
    c: &mut impl Sql,
    limit: i64,
    lease: Duration,
    instance: &str,
) -> Result<Vec<TxRow>, DbError> {
    let rows = c
        .query(
            CLAIM,
            &[&limit, &lease.as_secs_f64(), &instance, &MAX_TEXT_OCTETS],
        )
        .map_err(pg("claim messages"))?;
    claimed_rows(&rows)
}

/// Like [`claim`], but only rows of priority `after.0` with an id above `after.1`: the rest of
/// the level the previous claim stopped in. A draining backlog leaves the head of the pending
/// index full of entries for rows already done, which every claim from the start has to step
/// over until vacuum removes them (a million-row drain slowed to a quarter of its speed);
/// continuing from the last claimed row skips them. Rows behind the cursor (retries, expired
/// leases, higher priorities inserted since) are found by the next full [`claim`].
pub fn claim_after(
    c: &mut impl Sql,
    limit: i64,
    lease: Duration,
    instance: &str,
    after: (u8, i64),
) -> Result<Vec<TxRow>, DbError> {
    let level = format!("LEVEL_{}", after.0);
    let params: [&(dyn ToSql + Sync); 6] = [
        &limit,
        &lease.as_secs_f64(),
        &instance,
        &MAX_TEXT_OCTETS,
        &level,
        &after.1,
    ];
    let rows = c
        .query(CLAIM_AFTER, &params)
        .map_err(pg("claim messages"))?;
    claimed_rows(&rows)
}

const FIRST_SENDABLE: &str = concat!(
    "SELECT COALESCE(smpp_priority_flag::text, 'LEVEL_0'), id ",
    sendable_sql!(""),
    " LIMIT 1"
);

/// The place (priority, id) of the first row [`claim`] would take, without claiming it.
/// Read-only, so it can run beside the claims; like them it steps over the index entries of
/// rows done since the last VACUUM, and marks them dead for the claims that follow.
pub fn first_sendable(c: &mut impl Sql) -> Result<Option<(u8, i64)>, DbError> {
    let rows = c
        .query(FIRST_SENDABLE, &[])
        .map_err(pg("look for sendable messages"))?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some((priority_in(row, 0)?, get(row, 1)?)))
}

/// Column `index` of `row`, a priority label, as 0..=3.
fn priority_in(row: &postgres::Row, index: usize) -> Result<u8, DbError> {
    let label: &str = get(row, index)?;
    parse_priority(label).ok_or_else(|| DbError::UnexpectedValue {
        column: "smpp_priority_flag",
        value: label.to_string(),
    })
}

fn claimed_rows(rows: &[postgres::Row]) -> Result<Vec<TxRow>, DbError> {
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = get(row, 0)?;
        if let Some(lost_by) = get::<Option<String>>(row, 7)? {
            log::warn!(
                "row {id}: the lease of instance '{lost_by}' ran out without a result; \
                 submitting it again (possible duplicate if '{lost_by}' had sent it)"
            );
        }
        if let Some(octets) = get::<Option<i32>>(row, 8)? {
            log::warn!(
                "row {id}: text is {octets} octets, more than esmed can send in any coding \
                 (at most {MAX_TEXT_OCTETS}); marked failed without reading it"
            );
            continue;
        }
        claimed.push(tx_from_row(row)?);
    }
    claimed.sort_by_key(|tx| (Reverse(tx.priority), tx.id));
    Ok(claimed)
}

fn tx_from_row(row: &postgres::Row) -> Result<TxRow, DbError> {
    let delivery: &str = get(row, 4)?;
    Ok(TxRow {
        id: get(row, 0)?,
        destination: get(row, 1)?,
        source_override: get(row, 2)?,
        priority: priority_in(row, 3)?,
        registered_delivery: RegisteredDelivery::from_label(delivery).ok_or_else(|| {
            DbError::UnexpectedValue {
                column: "smpp_registered_delivery",
                value: delivery.to_string(),
            }
        })?,
        short_message: get(row, 5)?,
        attempts: get(row, 6)?,
        accepted_parts: accepted_parts(row)?,
    })
}

/// The parts the SMSC accepted in earlier attempts, from the claim's three arrays (NULL for
/// a row without any), ordered by part_no.
fn accepted_parts(row: &postgres::Row) -> Result<Vec<AcceptedPart>, DbError> {
    let part_nos: Option<Vec<i16>> = get(row, 9)?;
    let part_counts: Option<Vec<i16>> = get(row, 10)?;
    let message_ids: Option<Vec<String>> = get(row, 11)?;
    let parts = part_nos
        .unwrap_or_default()
        .into_iter()
        .zip(part_counts.unwrap_or_default())
        .zip(message_ids.unwrap_or_default())
        .map(|((part_no, part_count), message_id)| AcceptedPart {
            part_no,
            part_count,
            message_id,
        })
        .collect();
    Ok(parts)
}

/// "LEVEL_2" -> 2.
fn parse_priority(label: &str) -> Option<u8> {
    match label.strip_prefix("LEVEL_")? {
        "0" => Some(0),
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        _ => None,
    }
}

/// A result update that answers with the ids it wrote as one array (NULL for none): one
/// row to decode instead of one per result.
macro_rules! written_ids {
    ($update:literal) => {
        concat!(
            "WITH written AS (",
            $update,
            "RETURNING t.id) SELECT array_agg(id) FROM written"
        )
    };
}

// The result updates. `t.id = ANY($1)` lets the rows be found through the primary key; they
// are planned as `Planning::Results` says.
const WRITE_DONE: &str = written_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_done = true, smpp_message_id = u.message_id, submission_timestamp = now(),
        smpp_message_id_key = u.message_id_key,
        submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::varchar[], $3::varchar[], $4::int4[], $5::int4[])
         AS u(id, message_id, message_id_key, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.claimed_by = $6
    "
);

const WRITE_FAILED: &str = written_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_failed = true, submission_info = u.info,
        smpp_message_id = COALESCE(u.message_id, t.smpp_message_id),
        submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::varchar[], $3::varchar[], $4::int4[], $5::int4[])
         AS u(id, info, message_id, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.claimed_by = $6
    "
);

const WRITE_RETRY: &str = written_ids!(
    "
    UPDATE smpp_tx_queue t
    SET next_attempt_at = now() + u.delay * interval '1 second', submission_info = u.info,
        submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::varchar[], $3::float8[], $4::int4[], $5::int4[])
         AS u(id, info, delay, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.claimed_by = $6
    "
);

const WRITE_RELEASE: &str = written_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::int4[], $3::int4[]) AS u(id, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.claimed_by = $4
    "
);

/// A part whose id changed (sent again) loses the old id's receipt state.
const UPSERT_PARTS: &str = "
    INSERT INTO smpp_tx_parts (tx_id, part_no, part_count, message_id, message_id_key)
    SELECT * FROM unnest($1::int8[], $2::int2[], $3::int2[], $4::varchar[], $5::varchar[])
    ON CONFLICT (tx_id, part_no) DO UPDATE
    SET part_count = EXCLUDED.part_count, message_id = EXCLUDED.message_id,
        message_id_key = EXCLUDED.message_id_key,
        message_state = NULL, state_timestamp = NULL, submitted_at = now()
    WHERE smpp_tx_parts.message_id IS DISTINCT FROM EXCLUDED.message_id";

/// Writes a batch of results in one transaction: one statement per outcome kind plus one for
/// the parts. Only rows `instance` still holds the lease of are written; the others are
/// returned in [`WriteSummary::skipped`] (and logged), their parts not stored.
pub fn write_results(
    c: &mut impl GenericClient,
    results: &[TxResult],
    instance: &str,
) -> Result<WriteSummary, DbError> {
    let mut tx = c.transaction().map_err(pg("begin writing results"))?;
    tx.batch_execute(&Planning::Results.for_transaction())
        .map_err(pg("plan result updates"))?;
    let summary = write_results_in(&mut tx, results, instance)?;
    tx.commit().map_err(pg("commit results"))?;
    if !summary.skipped.is_empty() {
        log::warn!(
            "results not written, lease no longer held by {instance}: ids {:?}",
            summary.skipped
        );
    }
    Ok(summary)
}

/// [`write_results`] on the caller's connection or inside its transaction (the DB writer's
/// batch), without a savepoint of its own: the caller commits or rolls back everything
/// together. Planned as [`Planning::Results`] says (the DB writer's results connection is set
/// up so). One statement when [`in_one_statement`] says so: the DB writer then runs it without
/// a transaction of its own. The results not written are returned, not logged: only the
/// caller knows why (a lease lost, or a statement run again after its answer was lost).
pub fn write_results_in(
    tx: &mut impl Sql,
    results: &[TxResult],
    instance: &str,
) -> Result<WriteSummary, DbError> {
    let batches = Batches::split(results);
    let mut written = batches.write(tx, instance)?;
    written.sort_unstable();
    let is_written = |id: &i64| written.binary_search(id).is_ok();
    let mut part_keys = upsert_parts(tx, results, is_written)?;
    part_keys.extend(batches.done.into_written_keys(is_written));
    let skipped: Vec<i64> = results
        .iter()
        .map(|r| r.id)
        .filter(|id| !is_written(id))
        .collect();
    Ok(WriteSummary {
        written: written.len(),
        skipped,
        part_keys,
    })
}

/// Whether [`write_results_in`] writes these results with one statement (all done, each sent
/// in one part), which is atomic without a transaction around it.
pub fn in_one_statement(results: &[TxResult]) -> bool {
    results.iter().all(|r| match &r.outcome {
        TxOutcome::Done { parts } => !is_multi_part(parts),
        _ => false,
    })
}

/// One outcome kind's results, as the column arrays its statement unnests (columns the kind
/// doesn't use stay empty).
#[derive(Default)]
struct Columns<'a> {
    ids: Vec<i64>,
    attempts: Vec<i32>,
    resends: Vec<i32>,
    infos: Vec<&'a str>,
    message_ids: Vec<Option<&'a str>>,
    /// Done rows: the receipt key of a message sent in one part (see [`single_part_key`]).
    message_id_keys: Vec<Option<String>>,
    delays: Vec<f64>,
}

impl Columns<'_> {
    fn push(&mut self, result: &TxResult) {
        self.ids.push(result.id);
        self.attempts.push(result.attempts);
        self.resends.push(result.resends);
    }

    /// The single-part receipt keys of the rows that were written, moved out (the columns
    /// have been sent by then).
    fn into_written_keys(self, is_written: impl Fn(&i64) -> bool) -> impl Iterator<Item = String> {
        self.ids
            .into_iter()
            .zip(self.message_id_keys)
            .filter(move |(id, _)| is_written(id))
            .filter_map(|(_, key)| key)
    }
}

/// The results split by outcome.
#[derive(Default)]
struct Batches<'a> {
    done: Columns<'a>,
    failed: Columns<'a>,
    retry: Columns<'a>,
    release: Columns<'a>,
}

impl<'a> Batches<'a> {
    fn split(results: &'a [TxResult]) -> Batches<'a> {
        let mut b = Batches::default();
        for r in results {
            match &r.outcome {
                TxOutcome::Done { parts } => {
                    b.done.push(r);
                    b.done.message_ids.push(first_part_id(parts));
                    b.done.message_id_keys.push(single_part_key(parts));
                }
                TxOutcome::Failed { info, parts } => {
                    b.failed.push(r);
                    b.failed.infos.push(info);
                    b.failed.message_ids.push(first_part_id(parts));
                }
                TxOutcome::Retry { info, delay, .. } => {
                    b.retry.push(r);
                    b.retry.infos.push(info);
                    b.retry.delays.push(delay.as_secs_f64());
                }
                TxOutcome::Release => b.release.push(r),
            }
        }
        b
    }

    /// Runs the four updates; returns the ids written.
    fn write(&self, tx: &mut impl Sql, instance: &str) -> Result<Vec<i64>, DbError> {
        let (d, f, r, l) = (&self.done, &self.failed, &self.retry, &self.release);
        let mut written = Vec::new();
        let done: [&(dyn ToSql + Sync); 6] = [
            &d.ids,
            &d.message_ids,
            &d.message_id_keys,
            &d.attempts,
            &d.resends,
            &instance,
        ];
        written.extend(update_returning_ids(
            tx,
            d,
            WRITE_DONE,
            &done,
            "write done results",
        )?);
        let failed: [&(dyn ToSql + Sync); 6] = [
            &f.ids,
            &f.infos,
            &f.message_ids,
            &f.attempts,
            &f.resends,
            &instance,
        ];
        written.extend(update_returning_ids(
            tx,
            f,
            WRITE_FAILED,
            &failed,
            "write failed results",
        )?);
        let retry: [&(dyn ToSql + Sync); 6] = [
            &r.ids,
            &r.infos,
            &r.delays,
            &r.attempts,
            &r.resends,
            &instance,
        ];
        written.extend(update_returning_ids(
            tx,
            r,
            WRITE_RETRY,
            &retry,
            "write retry results",
        )?);
        let release: [&(dyn ToSql + Sync); 4] = [&l.ids, &l.attempts, &l.resends, &instance];
        written.extend(update_returning_ids(
            tx,
            l,
            WRITE_RELEASE,
            &release,
            "release rows",
        )?);
        Ok(written)
    }
}

/// Runs one batch's update; an empty batch costs no round trip.
fn update_returning_ids(
    tx: &mut impl Sql,
    batch: &Columns,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> Result<Vec<i64>, DbError> {
    if batch.ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx.query(sql, params).map_err(pg(what))?;
    let written: Option<Vec<i64>> = match rows.first() {
        Some(row) => get(row, 0)?,
        None => None,
    };
    Ok(written.unwrap_or_default())
}

/// The id of the lowest-numbered part (part 1 when present).
fn first_part_id(parts: &[AcceptedPart]) -> Option<&str> {
    parts
        .iter()
        .min_by_key(|p| p.part_no)
        .map(|p| p.message_id.as_str())
}

/// The receipt key stored on the row itself (`smpp_tx_queue.smpp_message_id_key`) for a
/// message the SMSC accepted in one part; a multi-part message's keys are in smpp_tx_parts.
fn single_part_key(parts: &[AcceptedPart]) -> Option<String> {
    match parts {
        [only] if !is_multi_part(parts) => Some(stored_key(&only.message_id)),
        _ => None,
    }
}

/// Whether the parts belong to a concatenated message (only those get smpp_tx_parts rows).
fn is_multi_part(parts: &[AcceptedPart]) -> bool {
    parts.len() > 1 || parts.iter().any(|p| p.part_count > 1)
}

/// Stores the parts of the written multi-part rows (a single-part row keeps its key itself);
/// a (row, part) given twice keeps the last one, since one INSERT ... ON CONFLICT may not
/// touch a row twice. Returns the parts' receipt keys, for matching receipts that waited for
/// them.
fn upsert_parts(
    tx: &mut impl Sql,
    results: &[TxResult],
    is_written: impl Fn(&i64) -> bool,
) -> Result<Vec<String>, DbError> {
    let mut parts: BTreeMap<(i64, i16), (i16, &str)> = BTreeMap::new();
    for r in results.iter().filter(|r| is_written(&r.id)) {
        let accepted = outcome_parts(&r.outcome);
        if !is_multi_part(accepted) {
            continue;
        }
        for p in accepted {
            parts.insert((r.id, p.part_no), (p.part_count, &p.message_id));
        }
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let tx_ids: Vec<i64> = parts.keys().map(|k| k.0).collect();
    let part_nos: Vec<i16> = parts.keys().map(|k| k.1).collect();
    let counts: Vec<i16> = parts.values().map(|v| v.0).collect();
    let message_ids: Vec<&str> = parts.values().map(|v| v.1).collect();
    let keys: Vec<String> = message_ids.iter().map(|id| stored_key(id)).collect();
    tx.execute(
        UPSERT_PARTS,
        &[&tx_ids, &part_nos, &counts, &message_ids, &keys],
    )
    .map_err(pg("store accepted parts"))?;
    Ok(keys)
}

fn outcome_parts(outcome: &TxOutcome) -> &[AcceptedPart] {
    match outcome {
        TxOutcome::Done { parts }
        | TxOutcome::Failed { parts, .. }
        | TxOutcome::Retry { parts, .. } => parts,
        TxOutcome::Release => &[],
    }
}

/// What [`renew_held`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Leases extended.
    pub renewed: u64,
    /// Rows still claimed under this instance that another transaction holds a lock on (an
    /// application's `SELECT ... FOR UPDATE`): not renewed now, rather than waiting for it.
    pub locked: u64,
}

/// Extends the leases of the rows `held` to now + `lease`, where they are still claimed by
/// `instance`, so that rows in flight longer than a lease are not claimed by another
/// instance. Only the rows this process holds: a row claimed under its name that it lost
/// track of must not stay in flight for the life of the process (see [`release_untracked`]).
/// A row another transaction has locked is skipped, never waited for.
pub fn renew_held(
    c: &mut impl Sql,
    lease: Duration,
    instance: &str,
    held: &[i64],
) -> Result<Renewal, DbError> {
    if held.is_empty() {
        return Ok(Renewal::default());
    }
    let row = c
        .query(
            "WITH mine AS (
                SELECT id FROM smpp_tx_queue WHERE id = ANY($1) AND claimed_by = $2),
             r AS (
                SELECT id FROM smpp_tx_queue WHERE id = ANY($1) AND claimed_by = $2
                FOR UPDATE SKIP LOCKED),
             u AS (
                UPDATE smpp_tx_queue t
                SET claimed_until = now() + $3::float8 * interval '1 second'
                FROM r WHERE t.id = r.id RETURNING t.id)
             SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM mine)",
            &[&held, &instance, &lease.as_secs_f64()],
        )
        .map_err(pg("renew leases"))?;
    let (renewed, mine): (i64, i64) = match row.first() {
        Some(row) => (get(row, 0)?, get(row, 1)?),
        None => (0, 0),
    };
    let renewed = u64::try_from(renewed).unwrap_or(0);
    let mine = u64::try_from(mine).unwrap_or(0);
    Ok(Renewal {
        renewed,
        locked: mine.saturating_sub(renewed),
    })
}

/// Releases the unfinished rows claimed by `instance` that are not among `held`: rows this
/// process lost track of (a claim that committed but whose answer never arrived), or, at
/// start, rows a dead predecessor under the same name left claimed. Each may have reached
/// the SMSC, so it is counted in `submission_resends`; the caller logs them. Rows another
/// transaction has locked are left for the next call. Returns the ids released.
///
/// `held` must not change while this runs (the caller is the one thread that claims).
pub fn release_untracked(
    c: &mut impl Sql,
    instance: &str,
    held: &[i64],
) -> Result<Vec<i64>, DbError> {
    let claimed = c
        .query(
            "SELECT id FROM smpp_tx_queue
             WHERE claimed_by = $1 AND NOT submission_done AND NOT submission_failed",
            &[&instance],
        )
        .map_err(pg("look for claimed rows"))?;
    let held: HashSet<i64> = held.iter().copied().collect();
    let mut untracked = Vec::new();
    for row in &claimed {
        let id: i64 = get(row, 0)?;
        if !held.contains(&id) {
            untracked.push(id);
        }
    }
    if untracked.is_empty() {
        return Ok(untracked);
    }
    let released = c
        .query(
            "WITH l AS (
                SELECT id FROM smpp_tx_queue
                WHERE id = ANY($1) AND claimed_by = $2
                  AND NOT submission_done AND NOT submission_failed
                FOR UPDATE SKIP LOCKED)
             UPDATE smpp_tx_queue t
             SET claimed_by = NULL, claimed_until = NULL,
                 submission_resends = t.submission_resends + 1
             FROM l WHERE t.id = l.id RETURNING t.id",
            &[&untracked, &instance],
        )
        .map_err(pg("release rows no one holds"))?;
    let mut ids = released
        .iter()
        .map(|row| get(row, 0))
        .collect::<Result<Vec<i64>, DbError>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// How a result PostgreSQL refused was settled by [`settle_refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The row is failed, its `submission_info` saying why.
    Failed,
    /// Even that was refused: the row is released, to be claimed again.
    Released,
    /// The row is no longer this instance's: nothing to do.
    NotHeld,
}

/// The most of a refusal's text kept in `submission_info`.
const MOST_INFO: usize = 1000;

/// Settles a result that PostgreSQL refused for a reason retrying will not change (a user's
/// trigger or constraint, an attempts counter at its maximum, a value too long): the row is
/// failed with `why` and what the SMSC had answered, touching no column but the flags, the
/// info and the lease. If PostgreSQL refuses even that, the row is released. Never left
/// claimed, so never renewed for ever.
pub fn settle_refused(
    c: &mut impl Sql,
    result: &TxResult,
    why: &str,
    instance: &str,
) -> Result<Refused, DbError> {
    let info = refusal_info(why, &result.outcome);
    let failed = c.execute(
        "UPDATE smpp_tx_queue
         SET submission_failed = true, submission_info = $3, next_attempt_at = NULL,
             claimed_by = NULL, claimed_until = NULL
         WHERE id = $1 AND claimed_by = $2",
        &[&result.id, &instance, &info],
    );
    match failed.map_err(pg("fail a row")) {
        Ok(0) => return Ok(Refused::NotHeld),
        Ok(_) => return Ok(Refused::Failed),
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => log::error!("row {}: {e}; releasing it instead", result.id),
    }
    let released = c
        .execute(
            "UPDATE smpp_tx_queue SET claimed_by = NULL, claimed_until = NULL
             WHERE id = $1 AND claimed_by = $2",
            &[&result.id, &instance],
        )
        .map_err(pg("release a row"))?;
    Ok(if released == 0 {
        Refused::NotHeld
    } else {
        Refused::Released
    })
}

/// The `submission_info` of a row whose result was refused: why, and what the SMSC answered,
/// at most [`MOST_INFO`] octets.
fn refusal_info(why: &str, outcome: &TxOutcome) -> String {
    let mut info = format!("result not stored: {why}; {}", answered(outcome));
    if info.len() > MOST_INFO {
        let mut end = MOST_INFO;
        while !info.is_char_boundary(end) {
            end -= 1;
        }
        info.truncate(end);
    }
    info
}

/// What the SMSC answered for a row, for its `submission_info`.
fn answered(outcome: &TxOutcome) -> String {
    match outcome {
        TxOutcome::Done { parts } => match first_part_id(parts) {
            Some(id) => format!("the message was accepted by the SMSC (message id '{id}')"),
            None => "the message was accepted by the SMSC".to_string(),
        },
        TxOutcome::Failed { info, .. } => format!("the SMSC refused it: {info}"),
        TxOutcome::Retry { info, .. } => format!("it was to be retried: {info}"),
        TxOutcome::Release => "it was not sent".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(part_no: i16, message_id: &str) -> AcceptedPart {
        AcceptedPart {
            part_no,
            part_count: 3,
            message_id: message_id.into(),
        }
    }

    #[test]
    fn only_multi_part_messages_keep_parts_rows() {
        let single = [AcceptedPart {
            part_no: 1,
            part_count: 1,
            message_id: "000A1b".into(),
        }];
        assert!(!is_multi_part(&single));
        assert_eq!(single_part_key(&single).as_deref(), Some("a1b"));
        // Part 1 of 3 accepted so far: a multi-part message, keys in smpp_tx_parts.
        assert!(is_multi_part(&[part(1, "x")]));
        assert_eq!(single_part_key(&[part(1, "x")]), None);
        assert_eq!(single_part_key(&[]), None);
    }

    #[test]
    fn a_refused_result_says_why_and_what_the_smsc_answered() {
        let done = TxOutcome::Done {
            parts: vec![part(2, "b"), part(1, "a")],
        };
        assert_eq!(
            refusal_info("trigger said no", &done),
            "result not stored: trigger said no; the message was accepted by the SMSC \
             (message id 'a')"
        );
        let refused = TxOutcome::Failed {
            info: "ESME_RINVDSTADR".into(),
            parts: vec![],
        };
        let long = "é".repeat(MOST_INFO);
        let info = refusal_info(&long, &refused);
        assert!(info.len() <= MOST_INFO && info.starts_with("result not stored: é"));
        assert_eq!(
            refusal_info("x", &TxOutcome::Release),
            "result not stored: x; it was not sent"
        );
    }

    #[test]
    fn the_longest_text_read_covers_the_longest_message() {
        assert_eq!(MAX_TEXT_OCTETS, 4 * 65_535);
        const { assert!(MAX_TEXT_OCTETS > 4 * 255 * 160) };
    }

    #[test]
    fn priority_labels_parse() {
        assert_eq!(parse_priority("LEVEL_0"), Some(0));
        assert_eq!(parse_priority("LEVEL_3"), Some(3));
        assert_eq!(parse_priority("LEVEL_4"), None);
        assert_eq!(parse_priority("3"), None);
    }

    #[test]
    fn registered_delivery_labels_parse() {
        let label = "SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE";
        assert_eq!(
            RegisteredDelivery::from_label(label),
            Some(RegisteredDelivery::RequestedForFailure)
        );
        assert_eq!(RegisteredDelivery::from_label("nope"), None);
    }

    #[test]
    fn message_id_is_part_ones_whatever_the_order() {
        assert_eq!(first_part_id(&[part(2, "b"), part(1, "a")]), Some("a"));
        assert_eq!(first_part_id(&[]), None);
    }

    #[test]
    fn results_split_by_outcome() {
        let results = [
            TxResult {
                id: 1,
                outcome: TxOutcome::Release,
                attempts: 0,
                resends: 0,
            },
            TxResult {
                id: 2,
                outcome: TxOutcome::Done {
                    parts: vec![part(1, "x")],
                },
                attempts: 1,
                resends: 0,
            },
            TxResult {
                id: 3,
                outcome: TxOutcome::Retry {
                    info: "t".into(),
                    delay: Duration::from_millis(1500),
                    parts: vec![],
                },
                attempts: 1,
                resends: 2,
            },
        ];
        let b = Batches::split(&results);
        assert_eq!(b.release.ids, vec![1]);
        assert_eq!(b.done.message_ids, vec![Some("x")]);
        assert_eq!((b.retry.delays[0], b.retry.resends[0]), (1.5, 2));
        assert!(b.failed.ids.is_empty());
    }
}
