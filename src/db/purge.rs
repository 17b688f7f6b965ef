//! `esmed purge`: removing finished history batch by batch with the functions of
//! sql/purge.sql, each batch one short transaction (autocommit), messages first, then what was
//! received. What may go and why it never holds up claims, results or receipts is said there.
//! On the partitioned layout whole days go first (`esmed_drop_partitions`,
//! sql/esmed-partitions.sql: no DELETE, no vacuum debt); the batches then take what the days
//! kept hold that may go.

use std::time::Duration;

use postgres::Client;

use super::servers::get;
use super::{pg, DbError};

/// What a purge removed (or, dry, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeTotals {
    pub messages: i64,
    pub parts: i64,
    pub receipts: i64,
    pub mo: i64,
    pub batches: u64,
    /// The cut-off, as PostgreSQL writes it.
    pub cutoff: String,
    /// On the partitioned layout, a line per day partition looked at: dropped, or kept and
    /// why.
    pub days: Vec<String>,
}

/// How a purge runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgePlan {
    pub older_than: Duration,
    /// Receipts may still come for a message this long after its last change.
    pub receipt_window: Duration,
    pub batch_rows: u32,
    pub batch_pause: Duration,
    pub dry_run: bool,
}

const MESSAGES: &str = "
    SELECT messages, parts, last_id, more FROM esmed_purge_messages(
        to_timestamp($1::float8), $2::float8 * interval '1 second', $3, $4, $5)";

const RECEIVED: &str = "
    SELECT mo, receipts, last_id, more FROM esmed_purge_received(to_timestamp($1::float8),
        $2::float8 * interval '1 second', $3, $4, $5)";

/// Runs the purge on `c` (a connection as the purge's role); returns what it removed.
pub fn purge(c: &mut Client, plan: &PurgePlan) -> Result<PurgeTotals, DbError> {
    let older = plan.older_than.as_secs_f64();
    let row = c
        .query_one(
            "SELECT extract(epoch FROM now() - $1::float8 * interval '1 second')::float8,
                    (now() - $1::float8 * interval '1 second')::text",
            &[&older],
        )
        .map_err(pg("compute the cut-off"))?;
    let cutoff: f64 = get(&row, 0)?;
    let mut totals = PurgeTotals {
        cutoff: get(&row, 1)?,
        ..PurgeTotals::default()
    };
    let window = plan.receipt_window.as_secs_f64();
    totals.days = drop_days(c, cutoff, window, plan.dry_run)?;
    let rows = i32::try_from(plan.batch_rows).unwrap_or(i32::MAX);
    let mut after: i64 = 0;
    loop {
        let row = c
            .query_one(MESSAGES, &[&cutoff, &window, &after, &rows, &plan.dry_run])
            .map_err(pg("purge messages"))?;
        totals.messages += get::<i64>(&row, 0)?;
        totals.parts += get::<i64>(&row, 1)?;
        totals.batches += 1;
        if !get::<bool>(&row, 3)? {
            break;
        }
        after = get(&row, 2)?;
        pause(plan);
    }
    after = 0;
    loop {
        let row = c
            .query_one(RECEIVED, &[&cutoff, &window, &after, &rows, &plan.dry_run])
            .map_err(pg("purge received messages"))?;
        totals.mo += get::<i64>(&row, 0)?;
        totals.receipts += get::<i64>(&row, 1)?;
        totals.batches += 1;
        if !get::<bool>(&row, 3)? {
            break;
        }
        after = get(&row, 2)?;
        pause(plan);
    }
    Ok(totals)
}

/// Drops the day partitions that may go, when the schema is the partitioned layout.
fn drop_days(
    c: &mut Client,
    cutoff: f64,
    window: f64,
    dry_run: bool,
) -> Result<Vec<String>, DbError> {
    let partitioned: bool = get(
        &c.query_one(
            "SELECT to_regprocedure('esmed_drop_partitions(timestamptz,interval,boolean)') \
             IS NOT NULL",
            &[],
        )
        .map_err(pg("look for the partitioned layout"))?,
        0,
    )?;
    if !partitioned {
        return Ok(Vec::new());
    }
    c.query(
        "SELECT * FROM esmed_drop_partitions(to_timestamp($1::float8),
             $2::float8 * interval '1 second', $3)",
        &[&cutoff, &window, &dry_run],
    )
    .map_err(pg("drop old day partitions"))?
    .iter()
    .map(|row| get(row, 0))
    .collect()
}

fn pause(plan: &PurgePlan) {
    if !plan.batch_pause.is_zero() {
        std::thread::sleep(plan.batch_pause);
    }
}

impl PurgeTotals {
    /// One line for the operator.
    pub fn summary(&self, dry_run: bool) -> String {
        format!(
            "{} {} messages ({} parts), {} receipts and {} MO older than {} in {} batches",
            if dry_run { "would remove" } else { "removed" },
            self.messages,
            self.parts,
            self.receipts,
            self.mo,
            self.cutoff,
            self.batches
        )
    }
}
