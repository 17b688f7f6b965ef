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

use std::error::Error as _;
use std::sync::{Arc, Mutex};

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

impl Server {
    fn connect(&self, plain_first: bool) -> Result<Client, DbError> {
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
