//! How esmed's threads reach PostgreSQL: the connection settings of `[database]`, with TLS as
//! `sslmode` asks, the way libpq (and so the older daemon) does it. `disable`: never; `allow`:
//! only when the server refuses a plain connection; `prefer`: when the server offers it;
//! `require`: always, without checking whose certificate it is (unless `sslrootcert` is set,
//! then as `verify-ca`); `verify-ca`: a certificate from a trusted CA; `verify-full`: one for
//! the host name as well. TLS does not apply to a Unix socket.
//!
//! Several servers (`host = a,b`) are tried in order, as libpq tries them: the first that
//! takes the connection is used, and with `target_session_attrs = read-write` (the default)
//! only one that allows writes, so a standby is passed over and after a failover each new
//! connection finds the promoted server. Each connection says which server it reached, for
//! the logs; when none would do, the error names each server and why.
//!
//! `connect_timeout` bounds a whole attempt, as libpq's does. The driver applies it to the
//! TCP connect alone, so a server that takes the connection and then never answers (a
//! stopped postmaster, a PostgreSQL hung on its disk on a machine whose kernel still
//! answers) would hold the attempt for ever, and with several servers keep esmed from the
//! next one: a failover that never happens. So each attempt runs on a thread of its own and
//! is abandoned at its deadline; its connection is closed whenever it ends. At most
//! [`MOST_HUNG_ATTEMPTS`] abandoned attempts may be outstanding at once, so that a server hung
//! for days costs a few threads, not one per reconnect.

use std::error::Error as _;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use log::{debug, info};

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseConfig, DbHost, SslMode};
use crate::db::{pg, DbError};
use crate::tls::{client_config, tls_error_in, TlsParams};

/// Opens connections as `[database]` says; cheap to clone, one per thread.
#[derive(Clone)]
pub struct PgConnector {
    /// The servers in the order they are tried, each with its settings.
    servers: Vec<Server>,
    /// `sslmode = allow`: a plain connection first, TLS only if the server refuses it.
    plain_first: bool,
    /// The server the last connection reached, shared by the clones: a change (a failover)
    /// is logged once for the process, not once per thread.
    in_use: Arc<Mutex<Option<DbHost>>>,
}

/// One server of `[database] host`, with its connection settings.
#[derive(Clone)]
struct Server {
    host: DbHost,
    config: postgres::Config,
    /// None: plain connections only.
    tls: Option<TlsParams>,
}

impl PgConnector {
    /// The files `[database]` names are read at each connection (config loading has checked
    /// them once already), so a renewed certificate is used from the next reconnect on.
    pub fn new(database: &DatabaseConfig) -> PgConnector {
        let servers = database
            .hosts
            .iter()
            .map(|host| Server {
                host: host.clone(),
                config: database.pg_config(host),
                tls: database.tls_params(host),
            })
            .collect();
        PgConnector {
            servers,
            plain_first: database.sslmode == SslMode::Allow,
            in_use: Arc::default(),
        }
    }

    /// Plain connections with these settings: tests and tools on a local cluster.
    #[cfg(test)]
    pub(crate) fn plain(config: postgres::Config) -> PgConnector {
        PgConnector {
            servers: vec![Server {
                host: DbHost::new("localhost", 5432),
                config,
                tls: None,
            }],
            plain_first: false,
            in_use: Arc::default(),
        }
    }

    pub fn connect(&self) -> Result<Client, DbError> {
        self.connect_to().map(|(client, _)| client)
    }

    /// A connection to the first server that takes it, and which server that is. With one
    /// server its error is returned as it is; with several, one naming each and its error.
    pub(crate) fn connect_to(&self) -> Result<(Client, &DbHost), DbError> {
        let mut refusals = Vec::new();
        for server in &self.servers {
            match server.connect(self.plain_first) {
                Ok(client) => {
                    for (host, error) in &refusals {
                        debug!("passed over {host}: {error}");
                    }
                    self.note_in_use(&server.host);
                    return Ok((client, &server.host));
                }
                Err(e) => refusals.push((server.host.clone(), e)),
            }
        }
        if refusals.len() == 1 {
            if let Some((_, error)) = refusals.pop() {
                return Err(error);
            }
        }
        Err(DbError::NoServer(refusals))
    }

    /// Says which server esmed uses: at the first connection, and when a connection reaches
    /// another one than the last (a failover or a switchover to another server of the list).
    fn note_in_use(&self, host: &DbHost) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        match in_use.as_ref() {
            Some(last) if last == host => debug!("connected to PostgreSQL at {host}"),
            Some(last) => info!(
                "connected to PostgreSQL at {host}, no longer {last} (a failover or \
                 switchover?); every connection moves there as it reconnects"
            ),
            None => info!("connected to PostgreSQL at {host}"),
        }
        *in_use = Some(host.clone());
    }
}

/// Abandoned attempts (see the module's comment) whose threads have not ended yet.
static HUNG_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

/// The most abandoned attempts outstanding before esmed stops starting new ones (each new one
/// then fails at once, and is tried again at the caller's next reconnect).
pub(crate) const MOST_HUNG_ATTEMPTS: usize = 8;

/// An attempt's thread is running, has ended, or was abandoned by its caller.
const RUNNING: u8 = 0;
const ENDED: u8 = 1;
const ABANDONED: u8 = 2;

impl Server {
    /// [`Server::attempt`] within `connect_timeout` (twice that when a plain connection is
    /// tried first), whatever the server does.
    fn connect(&self, plain_first: bool) -> Result<Client, DbError> {
        let Some(limit) = self.config.get_connect_timeout().copied() else {
            return self.attempt(plain_first);
        };
        let limit = if plain_first { limit * 2 } else { limit };
        let hung = HUNG_ATTEMPTS.load(Ordering::SeqCst);
        if hung >= MOST_HUNG_ATTEMPTS {
            return Err(DbError::ConnectHung(format!(
                "{hung} earlier connection attempts to PostgreSQL still wait for an answer; \
                 not starting another until one ends"
            )));
        }
        let (answer, answered) = crossbeam_channel::bounded(1);
        let state = Arc::new(AtomicU8::new(RUNNING));
        let server = self.clone();
        let thread_state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("pg-connect".into())
            .spawn(move || {
                let _ = answer.send(server.attempt(plain_first));
                if thread_state.swap(ENDED, Ordering::SeqCst) == ABANDONED {
                    HUNG_ATTEMPTS.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            return Err(DbError::ConnectHung(format!(
                "cannot start a thread to connect: {e}"
            )));
        }
        match answered.recv_timeout(limit) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                self.abandon(&state, &answered, limit)
            }
        }
    }

    /// The attempt's deadline passed: gives it up, unless it ended meanwhile.
    fn abandon(
        &self,
        state: &AtomicU8,
        answered: &crossbeam_channel::Receiver<Result<Client, DbError>>,
        limit: Duration,
    ) -> Result<Client, DbError> {
        HUNG_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        if state.swap(ABANDONED, Ordering::SeqCst) == ENDED {
            HUNG_ATTEMPTS.fetch_sub(1, Ordering::SeqCst);
            if let Ok(result) = answered.try_recv() {
                return result;
            }
        }
        Err(DbError::ConnectHung(format!(
            "{} took the connection but did not complete its start within {} s \
             (connect_timeout): a stopped or hung PostgreSQL?",
            self.host,
            limit.as_secs()
        )))
    }

    /// One attempt, as long as the driver takes.
    fn attempt(&self, plain_first: bool) -> Result<Client, DbError> {
        let Some(params) = &self.tls else {
            return self.config.connect(NoTls).map_err(pg("connect"));
        };
        if plain_first {
            let mut plain = self.config.clone();
            plain.ssl_mode(postgres::config::SslMode::Disable);
            match plain.connect(NoTls) {
                // As libpq: TLS is tried when the server answered the plain connection with
                // an error (pg_hba.conf's hostssl), not when it could not be reached at all.
                Err(e) if e.as_db_error().is_some() => {}
                result => return result.map_err(pg("connect")),
            }
        }
        let tls = client_config(params).map_err(DbError::Tls)?;
        let tls = MakeRustlsConnect::new(Arc::unwrap_or_clone(tls));
        self.config.connect(tls).map_err(pg("connect"))
    }
}

/// Whether a connection failed on the TLS `sslmode` asks for: the server's certificate was
/// refused (or ours), the handshake could not agree, or a server without TLS under require.
/// Retrying does not fix those, so a start stops on them with the reason; a connection that
/// merely broke during the handshake is not one.
pub(crate) fn is_tls_refusal(error: &postgres::Error) -> bool {
    let mut source = error.source();
    while let Some(e) = source {
        let rustls_error = e
            .downcast_ref::<rustls::Error>()
            .or_else(|| e.downcast_ref::<std::io::Error>().and_then(tls_error_in));
        // tokio-postgres says the last in words only.
        if rustls_error.is_some() || e.to_string() == "server does not support TLS" {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// A listener that takes connections and never answers; `close` ends them.
    struct HungServer {
        port: u16,
        held: Arc<Mutex<Vec<TcpStream>>>,
    }

    impl HungServer {
        fn start() -> HungServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let held = Arc::new(Mutex::new(Vec::new()));
            let keep = Arc::clone(&held);
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    keep.lock().unwrap().push(stream);
                }
            });
            HungServer { port, held }
        }

        fn close(&self) {
            for stream in self.held.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn hung_count() -> usize {
        HUNG_ATTEMPTS.load(Ordering::SeqCst)
    }

    /// Attempts a hung server holds are given up at their deadline and counted until they
    /// end; past the cap no thread is started; once the server lets go they all end.
    #[test]
    fn hung_attempts_are_given_up_counted_and_capped() {
        let server = HungServer::start();
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(server.port)
            .user("esmed")
            .dbname("esmed")
            .connect_timeout(Duration::from_millis(50));
        let connector = PgConnector::plain(config);
        for n in 1..=MOST_HUNG_ATTEMPTS {
            let error = connector.connect().err().expect("no answer");
            assert!(
                error
                    .to_string()
                    .contains("did not complete its start within"),
                "{error}"
            );
            assert!(error.is_connection_lost(), "retried: {error}");
            assert_eq!(hung_count(), n);
        }
        let error = connector.connect().err().expect("capped");
        assert!(
            error.to_string().contains("earlier connection attempts"),
            "{error}"
        );
        assert_eq!(hung_count(), MOST_HUNG_ATTEMPTS, "no thread started");

        server.close();
        let deadline = Instant::now() + Duration::from_secs(10);
        while hung_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(hung_count(), 0, "every abandoned attempt ended");
    }
}
