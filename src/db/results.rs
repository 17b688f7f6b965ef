//! Writing results back to `smpp_tx_queue`: a batch of outcomes in one transaction (or one
//! statement), the accepted parts to `smpp_tx_parts`, and a result PostgreSQL refuses settled
//! so that its row is never left claimed.
//!
//! Results are only written by the instance that still holds the row's lease, so a row taken
//! over after a lease ran out is never overwritten by the instance that lost it. Parts accepted
//! by the SMSC go to `smpp_tx_parts`; a retried row gets them back at its next claim
//! ([`super::claim`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use postgres::types::ToSql;
use postgres::GenericClient;

use super::sql::{Planning, Sql};

use super::servers::get;
use super::{pg, DbError};
use crate::handoff::{AcceptedPart, TxOutcome, TxResult};
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

/// [`written_ids`] for an update that finishes rows: each gets its results feed value
/// (`result_seq = nextval('esmed_result_seq')`) under the feed's gate (see
/// sql/results-feed.sql), and the statement ends with the feed's NOTIFY. The update's
/// `EXISTS (SELECT FROM gate)` is a one-time filter, evaluated before any row is read, so the
/// gate is held before the first value is taken; a join would do the same but, with nested
/// loops off (`Planning::Results`), cost the plan enough to be JIT-compiled (a second).
macro_rules! finished_ids {
    ($update:literal) => {
        concat!(
            "WITH gate AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(1702063462, 1)),
             written AS (",
            $update,
            "RETURNING t.id, t.result_seq)
             SELECT array_agg(id), esmed_notify_feed('esmed_results', max(result_seq))
             FROM written"
        )
    };
}

// The result updates. `t.id = ANY($1)` lets the rows be found through the primary key; they
// are planned as `Planning::Results` says. The range of the rows' insert_timestamps (the
// batch's earliest and latest, see `Columns::inserted_range`) lets PostgreSQL leave out the
// partitions that hold none of them on the partitioned layout, in a cached (generic) plan
// too: a range of two parameters prunes when the statement starts, where
// `= ANY($timestamps)` prunes only in a plan made for the values given.
const WRITE_DONE: &str = finished_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_done = true, smpp_message_id = u.message_id, submission_timestamp = now(),
        result_seq = nextval('esmed_result_seq'),
        smpp_message_id_key = u.message_id_key,
        submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::varchar[], $3::varchar[], $4::int4[], $5::int4[])
         AS u(id, message_id, message_id_key, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.insert_timestamp BETWEEN $7 AND $8
      AND t.claimed_by = $6 AND EXISTS (SELECT FROM gate)
    "
);

const WRITE_FAILED: &str = finished_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_failed = true, submission_info = u.info,
        result_seq = nextval('esmed_result_seq'),
        smpp_message_id = COALESCE(u.message_id, t.smpp_message_id),
        submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::varchar[], $3::varchar[], $4::int4[], $5::int4[])
         AS u(id, info, message_id, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.insert_timestamp BETWEEN $7 AND $8
      AND t.claimed_by = $6 AND EXISTS (SELECT FROM gate)
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
    WHERE t.id = ANY($1) AND t.id = u.id AND t.insert_timestamp BETWEEN $7 AND $8
      AND t.claimed_by = $6
    "
);

const WRITE_RELEASE: &str = written_ids!(
    "
    UPDATE smpp_tx_queue t
    SET submission_attempts = COALESCE(t.submission_attempts, 0) + u.attempts,
        submission_resends = t.submission_resends + u.resends,
        claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::int8[], $2::int4[], $3::int4[]) AS u(id, attempts, resends)
    WHERE t.id = ANY($1) AND t.id = u.id AND t.insert_timestamp BETWEEN $5 AND $6
      AND t.claimed_by = $4
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
pub(crate) fn in_one_statement(results: &[TxResult]) -> bool {
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
    /// The rows' insert_timestamps, for [`Columns::inserted_range`].
    inserted: Vec<SystemTime>,
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
        self.inserted.push(result.insert_timestamp);
        self.attempts.push(result.attempts);
        self.resends.push(result.resends);
    }

    /// The earliest and the latest insert_timestamp of the rows (the epoch twice for none:
    /// an empty batch is not run).
    fn inserted_range(&self) -> (SystemTime, SystemTime) {
        let first = self.inserted.iter().min().copied();
        let last = self.inserted.iter().max().copied();
        (
            first.unwrap_or(SystemTime::UNIX_EPOCH),
            last.unwrap_or(SystemTime::UNIX_EPOCH),
        )
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
        let (d_range, f_range, r_range, l_range) = (
            d.inserted_range(),
            f.inserted_range(),
            r.inserted_range(),
            l.inserted_range(),
        );
        let mut written = Vec::new();
        let done: [&(dyn ToSql + Sync); 8] = [
            &d.ids,
            &d.message_ids,
            &d.message_id_keys,
            &d.attempts,
            &d.resends,
            &instance,
            &d_range.0,
            &d_range.1,
        ];
        written.extend(update_returning_ids(
            tx,
            d,
            WRITE_DONE,
            &done,
            "write done results",
        )?);
        let failed: [&(dyn ToSql + Sync); 8] = [
            &f.ids,
            &f.infos,
            &f.message_ids,
            &f.attempts,
            &f.resends,
            &instance,
            &f_range.0,
            &f_range.1,
        ];
        written.extend(update_returning_ids(
            tx,
            f,
            WRITE_FAILED,
            &failed,
            "write failed results",
        )?);
        let retry: [&(dyn ToSql + Sync); 8] = [
            &r.ids,
            &r.infos,
            &r.delays,
            &r.attempts,
            &r.resends,
            &instance,
            &r_range.0,
            &r_range.1,
        ];
        written.extend(update_returning_ids(
            tx,
            r,
            WRITE_RETRY,
            &retry,
            "write retry results",
        )?);
        let release: [&(dyn ToSql + Sync); 6] = [
            &l.ids,
            &l.attempts,
            &l.resends,
            &instance,
            &l_range.0,
            &l_range.1,
        ];
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

/// How a result PostgreSQL refused was settled by [`settle_refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
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
pub(crate) fn settle_refused(
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
    use std::time::Duration;

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
    fn message_id_is_part_ones_whatever_the_order() {
        assert_eq!(first_part_id(&[part(2, "b"), part(1, "a")]), Some("a"));
        assert_eq!(first_part_id(&[]), None);
    }

    #[test]
    fn results_split_by_outcome() {
        let results = [
            TxResult {
                id: 1,
                insert_timestamp: SystemTime::UNIX_EPOCH,
                outcome: TxOutcome::Release,
                attempts: 0,
                resends: 0,
            },
            TxResult {
                id: 2,
                insert_timestamp: SystemTime::UNIX_EPOCH,
                outcome: TxOutcome::Done {
                    parts: vec![part(1, "x")],
                },
                attempts: 1,
                resends: 0,
            },
            TxResult {
                id: 3,
                insert_timestamp: SystemTime::UNIX_EPOCH,
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
