//! How esmed's threads reach PostgreSQL: the connection settings of `[database]`, with TLS as
//! `sslmode` asks, the way libpq (and so the older daemon) does it. `disable`: never; `allow`
//! and `prefer`: when the server offers it; `require`: always, without checking whose
//! certificate it is (unless `sslrootcert` is set, then as `verify-ca`); `verify-ca`: a
//! certificate from a trusted CA; `verify-full`: one for the host name as well. TLS does not
//! apply to a Unix socket.

use std::error::Error as _;
use std::sync::Arc;

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseConfig;
use crate::db::{pg, DbError};
use crate::tls::{client_config, tls_error_in, TlsParams};

/// Opens connections as `[database]` says; cheap to clone, one per thread.
#[derive(Clone)]
pub struct PgConnector {
    config: postgres::Config,
    /// None: plain connections only.
    tls: Option<TlsParams>,
}

impl PgConnector {
    /// The files `[database]` names are read at each connection (config loading has checked
    /// them once already), so a renewed certificate is used from the next reconnect on.
    pub fn new(database: &DatabaseConfig) -> PgConnector {
        PgConnector {
            config: database.pg_config(),
            tls: database.tls_params(),
        }
    }

    /// Plain connections with these settings: tests and tools on a local cluster.
    pub fn plain(config: postgres::Config) -> PgConnector {
        PgConnector { config, tls: None }
    }

    pub fn connect(&self) -> Result<Client, DbError> {
        match &self.tls {
            Some(params) => {
                let tls = client_config(params).map_err(DbError::Tls)?;
                let tls = MakeRustlsConnect::new(Arc::unwrap_or_clone(tls));
                self.config.connect(tls).map_err(pg("connect"))
            }
            None => self.config.connect(NoTls).map_err(pg("connect")),
        }
    }
}

/// Whether a connection failed on the TLS `sslmode` asks for: the server's certificate was
/// refused (or ours), the handshake could not agree, or a server without TLS under require.
/// Retrying does not fix those, so a start stops on them with the reason; a connection that
/// merely broke during the handshake is not one.
pub fn is_tls_refusal(error: &postgres::Error) -> bool {
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
