//! TLS client and server configuration (rustls, ring): whom to trust, whether and how to verify
//! the peer's certificate, and which certificate to show. SMPP sessions and the test SMSC use
//! it for their connections (`session::transport` runs the streams), and `db::connect` for
//! PostgreSQL's.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// How a client's TLS is set up: an SMPP session's from the smpp_tls* columns, PostgreSQL's
/// from `[database] sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// PEM bundle of the CAs to trust; None = the system's trust store.
    pub(crate) ca_file: Option<PathBuf>,
    /// How much of the server's certificate is checked.
    pub(crate) verify: Verify,
    /// The name sent as SNI and checked against the certificate: a DNS name or an IP address.
    pub(crate) server_name: String,
    /// Our certificate chain (PEM, ours first) and its private key (PEM), sent to an SMSC
    /// that asks for a client certificate; both or neither.
    pub(crate) client_cert_file: Option<PathBuf>,
    pub(crate) client_key_file: Option<PathBuf>,
}

/// The TLS error inside an I/O error from a TLS stream, if that is what it is.
pub(crate) fn tls_error_in(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// How much of the server's certificate a client checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// The chain up to a trusted CA and the name: smpp_tls_verify, sslmode=verify-full.
    Full,
    /// The chain only, any name: sslmode=verify-ca (and require with a root certificate).
    ChainOnly,
    /// Nothing but the handshake's signatures: encryption against eavesdropping, no proof of
    /// whom we talk to (smpp_tls_verify = false; sslmode prefer or require, as in libpq).
    Off,
}

/// Why a TLS connection could not be set up.
#[derive(Debug)]
pub enum TlsError {
    /// Our own setup is wrong: CA file, key, certificate or server name.
    Setup(String),
    /// The handshake failed; `peer` is the name we verified against (or the client's address).
    Handshake { error: rustls::Error, peer: String },
    /// The handshake did not finish in time.
    Timeout,
    /// The connection broke during the handshake.
    Io(io::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Setup(why) => write!(f, "TLS: {why}"),
            TlsError::Handshake { error, peer } => {
                write!(
                    f,
                    "TLS: {error} for {peer}{}",
                    client_certificate_hint(error)
                )
            }
            TlsError::Timeout => f.write_str("TLS: the handshake did not finish in time"),
            TlsError::Io(e) => write!(f, "TLS: connection failed during the handshake: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// What an alert from the SMSC says about our client certificate, if anything: a server
/// sends these only about the certificate a client sent, or did not send.
fn client_certificate_hint(error: &rustls::Error) -> &'static str {
    use rustls::AlertDescription as A;
    match error {
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            " (the SMSC wants a client certificate: set smpp_tls_cert_file and smpp_tls_key_file)"
        }
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate,
        ) => " (the SMSC did not accept our client certificate, smpp_tls_cert_file)",
        _ => "",
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `params`: trust anchors from the CA file or the system, and
/// our certificate when one is set. The files are read on each call (each connection), so a
/// renewed certificate is used from the next reconnect on.
pub(crate) fn client_config(params: &TlsParams) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let roots = || match &params.ca_file {
        Some(path) => roots_from_file(path),
        None => system_roots(),
    };
    let builder = match params.verify {
        Verify::Full => builder.with_root_certificates(roots()?),
        Verify::ChainOnly => {
            let verifier = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots()?),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsError::Setup(format!("trust store: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
        }
        Verify::Off => {
            let verifier = NoVerification(provider.signature_verification_algorithms);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let config = match client_identity(params)? {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            TlsError::Setup(format!(
                "the client certificate and key do not go together: {e}"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Our certificate chain and key from smpp_tls_cert_file and smpp_tls_key_file.
fn client_identity(
    params: &TlsParams,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    match (&params.client_cert_file, &params.client_key_file) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let certs = certs_from_file(cert, "client certificate file")?;
            warn_if_exposed(key);
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                TlsError::Setup(format!("the client key file {}: {e}", key.display()))
            })?;
            Ok(Some((certs, key)))
        }
        _ => Err(TlsError::Setup(
            "a client certificate file and its key file go together (smpp_tls_cert_file and \
             smpp_tls_key_file; sslcert and sslkey): set both or neither"
                .into(),
        )),
    }
}

/// A private key others on the host can read lets them pose as us to the SMSC or the database: say so (the
/// connection goes ahead; the operator decides).
fn warn_if_exposed(key: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(advice) = std::fs::metadata(key)
        .ok()
        .and_then(|m| exposed_key_advice(key, m.permissions().mode()))
    {
        log::warn!("{advice}");
    }
}

/// What to say about a key file with these permission bits, if anything.
pub(crate) fn exposed_key_advice(key: &Path, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "the client key file {} can be read by other users (mode {:03o}): anyone who can \
             read it can pose as this esmed; make it readable by esmed only (chmod 600)",
            key.display(),
            mode & 0o777
        )
    })
}

/// The certificates in a PEM file; `what` names the file in errors.
fn certs_from_file(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Setup(format!("cannot read the {what} {shown}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Setup(format!("bad PEM in the {what} {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Setup(format!(
            "no certificate in the {what} {shown}"
        )));
    }
    Ok(certs)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    root_store(
        certs_from_file(path, "CA file")?,
        &path.display().to_string(),
    )
}

/// A trust store of `certs`; `source` names where they came from in errors.
fn root_store(
    certs: Vec<CertificateDer<'static>>,
    source: &str,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| TlsError::Setup(format!("bad certificate in {source}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Setup(format!("no certificate in {source}")));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::debug!("system trust store: {error}");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::Setup(
            "no trusted certificate in the system store (install ca-certificates, or name a \
             CA file: smpp_tls_ca_file, or sslrootcert for PostgreSQL)"
                .into(),
        ));
    }
    Ok(roots)
}

/// Accepts any certificate but still checks the handshake signatures: smpp_tls_verify = false,
/// and sslmode prefer or require without sslrootcert (as libpq).
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Checks the chain as usual but takes a certificate issued for another name: libpq's
/// verify-ca, for servers reached by an address their certificate does not name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key;
/// with `client_ca_pem`, clients must present a certificate signed by one of those CAs.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Setup(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Setup("no certificate in the chain PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Setup(format!("bad private key PEM: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Setup(format!("bad client CA PEM: {e}")))?;
            let roots = root_store(certs, "the client CA PEM")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Setup(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(format!("certificate and key: {e}")))?;
    Ok(Arc::new(config))
}
