//! How esmed's threads reach PostgreSQL: the connection settings of `[database]`, with TLS as
//! `sslmode` asks, the way libpq (and so the older daemon) does it. `disable`: never; `allow`:
//! only when the server refuses a plain connection; `prefer`: when the server offers it;
//! `require`: always, without checking whose certificate it is (unless `sslrootcert` is set,
//! then as `verify-ca`); `verify-ca`: a certificate from a trusted CA; `verify-full`: one for
//! the host name as well. TLS does not apply to a Unix socket.

use std::error::Error as _;
use std::sync::Arc;

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DatabaseConfig, SslMode};
use crate::db::{pg, DbError};
use crate::tls::{client_config, tls_error_in, TlsParams};

/// Opens connections as `[database]` says; cheap to clone, one per thread.
#[derive(Clone)]
pub struct PgConnector {
    config: postgres::Config,
    /// None: plain connections only.
    tls: Option<TlsParams>,
    /// `sslmode = allow`: a plain connection first, TLS only if the server refuses it.
    plain_first: bool,
}

impl PgConnector {
    /// The files `[database]` names are read at each connection (config loading has checked
    /// them once already), so a renewed certificate is used from the next reconnect on.
    pub fn new(database: &DatabaseConfig) -> PgConnector {
        PgConnector {
            config: database.pg_config(),
            tls: database.tls_params(),
            plain_first: database.sslmode == SslMode::Allow,
        }
    }

    /// Plain connections with these settings: tests and tools on a local cluster.
    #[cfg(test)]
    pub(crate) fn plain(config: postgres::Config) -> PgConnector {
        PgConnector {
            config,
            tls: None,
            plain_first: false,
        }
    }

    pub fn connect(&self) -> Result<Client, DbError> {
        let Some(params) = &self.tls else {
            return self.config.connect(NoTls).map_err(pg("connect"));
        };
        if self.plain_first {
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
