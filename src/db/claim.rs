//! Claiming `smpp_tx_queue` rows to send, and holding them while they are in flight.
//!
//! Several esmed processes may share one queue. A row is claimed with `FOR UPDATE SKIP LOCKED`
//! (two claimers never get the same row) and a lease (`claimed_by`, `claimed_until`): while the
//! lease runs no one else claims the row. The poller renews the leases of the rows this process
//! holds and releases those claimed under its name that it does not hold. A row that is retried
//! gets its accepted parts back on the next claim, so they are not sent twice. Results are
//! written by [`super::results`].

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::Client;

use super::sql::{Planning, Sql};

use super::servers::get;
use super::{pg, DbError};
use crate::handoff::{AcceptedPart, RegisteredDelivery, TxRow};
use crate::smpp::concat::MAX_PAYLOAD;

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
/// The update finds each claimed row by its id and its insert_timestamp: on the partitioned
/// layout the second lets PostgreSQL look in the one partition that holds the row, where the
/// id alone made it probe every day's primary key index per row (with 60 days of history,
/// 140 blocks a row instead of 3). Every statement that finds a claimed row again does the
/// same with the timestamp the claim returned ([`TxRow::insert_timestamp`]).
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
                SELECT id, insert_timestamp AS inserted, claimed_by AS lost_by,
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
            FROM c WHERE t.id = c.id AND t.insert_timestamp = c.inserted
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
            accepted_parts_sql!("message_id"),
            ", t.insert_timestamp"
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
/// under `instance` before. The lease is `instance`'s until it runs out, [`super::write_results`]
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
        insert_timestamp: get(row, 12)?,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
