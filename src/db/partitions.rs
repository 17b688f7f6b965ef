//! The partitioned layout's day partitions (`sql/esmed-partitions.sql`): esmed makes the
//! coming days' partitions itself, from the heartbeat thread once an hour — slow, periodic
//! work on a connection of its own, off the claim and result paths. On the plain layout there
//! is nothing to do.

use std::time::{Duration, Instant};

use log::{info, warn};
use postgres::Client;

use super::servers::get;
use super::{pg, DbError};

/// How often the partitions ahead are made (a week ahead: a day's partition is made six days
/// before it is needed).
const EVERY: Duration = Duration::from_secs(3600);
/// After a failure (a queue locked for more than a second by someone else, say).
const AGAIN_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// When to make partitions next.
pub(crate) struct PartitionKeeper {
    due: Instant,
}

impl PartitionKeeper {
    /// Due at once: a database loaded days ago has days to catch up.
    pub(crate) fn new() -> PartitionKeeper {
        PartitionKeeper {
            due: Instant::now(),
        }
    }

    /// Makes the partitions ahead when due, logging what was made and what waits in a
    /// default partition.
    pub(crate) fn tick(&mut self, client: &mut Client, now: Instant) {
        if now < self.due {
            return;
        }
        self.due = match make_ahead(client) {
            Ok(lines) => {
                for line in lines {
                    if line.contains("_default holds") {
                        warn!(
                            "partitions: {line}; they are kept and found as in any partition \
                             (see esmed_make_day_partition to give their days partitions)"
                        );
                    } else {
                        info!("partitions: {line}");
                    }
                }
                now + EVERY
            }
            Err(e) => {
                warn!(
                    "partitions: cannot make the coming days' partitions: {e}; trying again in \
                     {} minutes (rows for a day without one land in the default partition)",
                    AGAIN_AFTER_FAILURE.as_secs() / 60
                );
                now + AGAIN_AFTER_FAILURE
            }
        };
    }
}

/// Runs `esmed_make_partitions()` when the schema has it (the partitioned layout); its lines.
pub(crate) fn make_ahead(client: &mut Client) -> Result<Vec<String>, DbError> {
    let row = client
        .query_one(
            "SELECT to_regprocedure('esmed_make_partitions(integer)') IS NOT NULL",
            &[],
        )
        .map_err(pg("look for the partitioned layout"))?;
    let partitioned: bool = get(&row, 0)?;
    if !partitioned {
        return Ok(Vec::new());
    }
    client
        .query("SELECT * FROM esmed_make_partitions()", &[])
        .map_err(pg("make the coming days' partitions"))?
        .iter()
        .map(|row| get(row, 0))
        .collect()
}
