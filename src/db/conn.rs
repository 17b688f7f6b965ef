//! One thread's connection to PostgreSQL, as every connection owner keeps it (the poller, the
//! sweeper, the DB writers and their housekeeping, the heartbeat, the supervisor): made when there is none or
//! the last one closed, set up the owner's way on each new connection, its prepared
//! statements forgotten with the connection they were prepared on, and after a failed
//! attempt either a wait (the owner's backoff) or, when PostgreSQL refuses it for good, the
//! error the owner's thread ends with.

use postgres::Client;

use super::sql::Statements;
use super::{wait_to_reconnect, DbError, PgConnector};
use crate::backoff::Backoff;
use crate::observe::counters::Stats;

/// What an owner runs on each new connection before using it (session settings, LISTEN,
/// prepared statements); nothing for most.
pub(crate) type SetUp = Box<dyn Fn(&mut Client) -> Result<(), DbError> + Send + Sync>;

pub(crate) struct Conn {
    /// The owner, as its log lines name it.
    who: &'static str,
    pg: PgConnector,
    set_up: SetUp,
    client: Option<Client>,
    /// The statements prepared on `client`.
    statements: Statements,
}

impl Conn {
    pub(crate) fn new(who: &'static str, pg: PgConnector, set_up: SetUp) -> Conn {
        Conn {
            who,
            pg,
            set_up,
            client: None,
            statements: Statements::default(),
        }
    }

    /// Uses `client`, made elsewhere, once it is set up.
    pub(crate) fn adopt(&mut self, mut client: Client) -> Result<(), DbError> {
        self.lose();
        (self.set_up)(&mut client)?;
        self.client = Some(client);
        Ok(())
    }

    /// Whether there is a connection that has not been seen to close.
    pub(crate) fn is_open(&self) -> bool {
        self.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Whether there is a connection at all, closed or not: after a failed [`Conn::open`]
    /// there is none.
    pub(crate) fn has_client(&self) -> bool {
        self.client.is_some()
    }

    /// The open connection, or a new one, set up; the statements prepared on the old one
    /// are forgotten.
    pub(crate) fn open(&mut self) -> Result<&mut Client, DbError> {
        if !self.is_open() {
            self.lose();
            let client = self.pg.connect()?;
            self.adopt(client)?;
        }
        self.client.as_mut().ok_or(DbError::ConnectionClosed {
            what: "open a connection",
        })
    }

    /// [`Conn::open`]; after a failure says so and waits `backoff`'s next delay (false: try
    /// again), unless PostgreSQL refused the connection for good: that error is returned.
    pub(crate) fn open_or_wait(
        &mut self,
        backoff: &mut Backoff,
        stats: &Stats,
    ) -> Result<bool, DbError> {
        match self.open() {
            Ok(_) => Ok(true),
            Err(e) => {
                wait_to_reconnect(self.who, e, backoff, stats)?;
                Ok(false)
            }
        }
    }

    /// The connection as it is, open or not (a statement on a closed one fails as lost).
    pub(crate) fn client(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// The connection with the statements prepared on it.
    pub(crate) fn with_statements(&mut self) -> Option<(&mut Client, &mut Statements)> {
        let statements = &mut self.statements;
        self.client.as_mut().map(|client| (client, statements))
    }

    /// Drops the connection (after a failure, for a new one on the next use).
    pub(crate) fn lose(&mut self) {
        self.client = None;
        self.statements.clear();
    }

    /// Takes the connection away from the owner (the poller hands its locked one back).
    pub(crate) fn take(&mut self) -> Option<Client> {
        self.statements.clear();
        self.client.take()
    }
}
