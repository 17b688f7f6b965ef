//! How the storage functions run their statements: through [`Sql`], so that one function serves
//! a plain connection (tests, the benchmark's ceiling, one-off calls) and a connection with its
//! prepared statements cached ([`Prepared`], the poller's and the DB writer's).
//!
//! Why cache: a statement given as text is parsed, analysed and planned by PostgreSQL on every
//! call and costs two round trips (prepare, then execute). The hot statements run once per
//! batch, thousands of times a second; prepared once per connection they cost one round trip
//! and PostgreSQL reuses their parse tree and, once it judges it as good, their plan.
//!
//! A cached (generic) plan is made once and kept until the table is next analyzed: one made
//! while a table was nearly empty (a new installation, the benchmark right after TRUNCATE)
//! scanned the whole table per batch once it held 100,000 rows (receipt state updates went
//! from 0.8 to 7.6 ms per batch). So the connections that cache statements run them with
//! sequential scans off and a fixed join method ([`Planning`]): every statement of a batch
//! touches a batch of rows, found through an index.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

/// Runs esmed's statements. The SQL of [`Sql::query`] and [`Sql::execute`] is `'static`: the
/// fixed statements of the code, which [`Prepared`] prepares once per connection.
pub trait Sql {
    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error>;
    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error>;
    /// Runs statements without parameters as text, never prepared (SET and the like).
    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error>;
}

impl<C: GenericClient> Sql for C {
    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        GenericClient::query(self, sql, params)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        GenericClient::execute(self, sql, params)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        GenericClient::batch_execute(self, sql)
    }
}

/// The statements prepared on one connection, by their SQL. Belongs with that connection:
/// [`Statements::clear`] it whenever the connection is replaced.
#[derive(Default)]
pub struct Statements {
    by_sql: HashMap<&'static str, Statement>,
}

impl Statements {
    pub(crate) fn clear(&mut self) {
        self.by_sql.clear();
    }

    fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.by_sql.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.by_sql.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A connection (or a transaction on it) together with its prepared statements.
pub struct Prepared<'a, C> {
    client: &'a mut C,
    statements: &'a mut Statements,
}

impl<'a, C: GenericClient> Prepared<'a, C> {
    /// `statements` must be the ones prepared on `client`'s connection.
    pub fn new(client: &'a mut C, statements: &'a mut Statements) -> Self {
        Prepared { client, statements }
    }

    /// Runs `run` with the statement; after an error the cache is dropped, so that a statement
    /// PostgreSQL no longer accepts (the table changed under it) is prepared afresh next time.
    fn with<T>(
        &mut self,
        sql: &'static str,
        run: impl FnOnce(&mut C, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let result = self
            .statements
            .get(self.client, sql)
            .and_then(|statement| run(self.client, &statement));
        if result.is_err() {
            self.statements.clear();
        }
        result
    }
}

impl<C: GenericClient> Sql for Prepared<'_, C> {
    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.with(sql, |c, statement| c.query(statement, params))
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        self.with(sql, |c, statement| c.execute(statement, params))
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }
}

/// How a connection's (or a transaction's) statements are planned, whatever the statistics
/// say and whatever plan is cached: each touches a batch of rows and finds them through an
/// index, never by reading a table whole; and never JIT-compiled. A plan made for a batch's
/// values on the partitioned layout is costed as if it probed every day's partition, since
/// the partitions left out by now() or by each row's insert_timestamp are known only when it
/// runs: with 90 days of history, the receipt match of a batch of 500 receipts was costed
/// at 410,000, over jit_above_cost, and spent 120 ms compiling for 13 ms of work (the match
/// and the receipt state update took 8-12 times the time of an empty queue, same blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// Result updates: the rows by primary key (`id = ANY($1)`), joined to the batch's arrays
    /// by hash. Without nested loops: when the table was analyzed while no row was claimed,
    /// the planner believed `claimed_by = $instance` matched one row and re-scanned the
    /// arrays per row (186 ms for 1,000 results instead of 4 ms).
    Results,
    /// Lookups (receipts, received PDUs, MO parts): only nested loops, each array element
    /// looked up in an index. A hash or merge join cached while the tables were small read
    /// them whole (or up to the highest id wanted) once they were big.
    Lookups,
    /// The poller's claims: lookups, and no sorts or bitmap scans, so that a claim walks the
    /// pending index in order and stops after `limit` rows (a bitmap scan that collected and
    /// sorted every pending row doubled PostgreSQL's CPU per message in the benchmark).
    Claims,
}

impl Planning {
    fn settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Planning::Results => &[
                ("enable_seqscan", "off"),
                ("enable_nestloop", "off"),
                ("jit", "off"),
            ],
            Planning::Lookups => &[
                ("enable_seqscan", "off"),
                ("enable_nestloop", "on"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
                ("jit", "off"),
            ],
            Planning::Claims => &[
                ("enable_seqscan", "off"),
                ("enable_nestloop", "on"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
                ("enable_sort", "off"),
                ("enable_bitmapscan", "off"),
                ("jit", "off"),
            ],
        }
    }

    /// The SETs for the rest of the session.
    pub fn for_session(self) -> String {
        self.sets("SET")
    }

    /// The SETs for the rest of the current transaction.
    pub fn for_transaction(self) -> String {
        self.sets("SET LOCAL")
    }

    fn sets(self, set: &str) -> String {
        self.settings()
            .iter()
            .map(|(name, value)| format!("{set} {name} = {value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How long a connection's statements wait, as SETs for the rest of the session: `lock` for
/// a lock another transaction holds (an application's `SELECT ... FOR UPDATE` in an open
/// transaction, a `LOCK TABLE`), `statement` (when given) for the statement as a whole.
/// Either ends the statement with lock_not_available or query_canceled, which esmed treats
/// as transient: the work is kept and tried again, so an application's lock delays it but
/// cannot stall the thread that waits for it.
pub(crate) fn wait_limits(
    lock: std::time::Duration,
    statement: Option<std::time::Duration>,
) -> String {
    let ms = |d: std::time::Duration| d.as_millis().max(1);
    let statement = statement.map_or(0, ms);
    format!(
        "SET lock_timeout = {}; SET statement_timeout = {statement}",
        ms(lock)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_sets_for_the_session_or_the_transaction() {
        assert_eq!(
            Planning::Results.for_session(),
            "SET enable_seqscan = off; SET enable_nestloop = off; SET jit = off"
        );
        assert!(Planning::Lookups
            .for_transaction()
            .starts_with("SET LOCAL enable_seqscan = off; SET LOCAL enable_nestloop = on"));
        assert!(Planning::Claims
            .for_session()
            .ends_with("SET enable_bitmapscan = off; SET jit = off"));
        // No kind of statement is ever JIT-compiled.
        for planning in [Planning::Results, Planning::Lookups, Planning::Claims] {
            assert!(planning.for_transaction().ends_with("SET LOCAL jit = off"));
        }
    }

    #[test]
    fn wait_limits_are_in_milliseconds_and_zero_is_no_limit() {
        use std::time::Duration;
        assert_eq!(
            wait_limits(Duration::from_secs(2), None),
            "SET lock_timeout = 2000; SET statement_timeout = 0"
        );
        assert_eq!(
            wait_limits(Duration::ZERO, Some(Duration::from_millis(1500))),
            "SET lock_timeout = 1; SET statement_timeout = 1500"
        );
    }
}
