//! TLS serving for the test SMSC: a TLS-terminating pump per connection. After the handshake
//! the connection's plain SMPP session runs unchanged on one end of a loopback TCP pair, and two
//! pump threads copy bytes between the other end and the TLS client. A test tool can afford
//! the extra hop; the session, outbox and fault code stay the same for TCP and TLS.
//!
//! Closing either side closes the other: `disconnect_all` shuts the session's socket, the pump
//! sees the end and sends close_notify to the client; a client that goes away ends the pair.
//!
//! The TLS code is the SMSC's own (this crate does not depend on the daemon's library): one
//! `rustls::ServerConnection` shared by the two pumps behind a mutex. Neither pump holds it
//! while it waits on a socket, so a pump blocked on a slow client never stops the other from
//! draining what the client sends. TLS records must reach the client in the order rustls
//! produced them: whoever sends records takes `send` first (then `conn`) and holds it until
//! they are written.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::{start_connection, Shared};

/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Raw bytes read from the client at once: a little more than one full TLS record.
const RAW_READ_SIZE: usize = 18 * 1024;

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key;
/// with `client_ca_pem`, clients must present a certificate signed by one of those CAs.
pub(crate) fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS: bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("TLS: no certificate in the chain PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("TLS: bad private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| format!("TLS: bad certificate in the client CA PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("TLS: bad certificate in the client CA PEM: {e}"))?;
            }
            if roots.is_empty() {
                return Err("TLS: no certificate in the client CA PEM".into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS: client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// Serves one accepted client over TLS, on a thread of its own (the handshake may be slow).
pub(super) fn start_tls_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    config: Arc<ServerConfig>,
) -> io::Result<()> {
    let for_pump = Arc::clone(shared);
    shared.spawn("smsc-tls", move || {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        if let Err(e) = serve(&for_pump, stream, config, &peer) {
            log::warn!("TLS connection from {peer}: {e}");
        }
    })
}

fn serve(
    shared: &Arc<Shared>,
    mut stream: TcpStream,
    config: Arc<ServerConfig>,
    peer: &str,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
    handshake(&mut conn, &mut stream, Instant::now() + HANDSHAKE_TIMEOUT)?;
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (session_end, pump_end) = loopback_pair().map_err(|e| e.to_string())?;
    start_connection(shared, session_end, &format!("{peer} (TLS)")).map_err(|e| e.to_string())?;
    let tls = Arc::new(Tls {
        conn: Mutex::new(conn),
        send: Mutex::new(()),
    });
    let (inbound_tls, client_in) = (Arc::clone(&tls), stream.try_clone());
    let client_in = client_in.map_err(|e| e.to_string())?;
    let inbound_end = pump_end.try_clone().map_err(|e| e.to_string())?;
    shared
        .spawn("smsc-tls-in", move || {
            pump_in(&inbound_tls, client_in, inbound_end)
        })
        .map_err(|e| e.to_string())?;
    pump_out(&tls, pump_end, stream);
    Ok(())
}

/// Runs the handshake to its end before `deadline`.
fn handshake(
    conn: &mut ServerConnection,
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(), String> {
    let failed = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "TLS: the handshake did not finish in time".to_string()
        }
        _ => format!("TLS: handshake: {e}"),
    };
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("TLS: the handshake did not finish in time".into());
        }
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        stream.set_write_timeout(Some(left)).map_err(failed)?;
        if conn.complete_io(stream).map_err(failed)? == (0, 0) {
            return Err("TLS: the client closed the connection during the handshake".into());
        }
    }
    while conn.wants_write() {
        conn.write_tls(stream).map_err(failed)?;
    }
    stream.set_read_timeout(None).map_err(failed)?;
    stream.set_write_timeout(None).map_err(failed)
}

/// What both pumps share.
struct Tls {
    conn: Mutex<ServerConnection>,
    /// Held from producing TLS records until they are written, to keep them in order.
    send: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The other pump panicked: the connection is lost either way; finish with what is there.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tls {
    /// Writes the records rustls queued (handshake answers, alerts, close_notify).
    fn send_records(&self, client: &mut TcpStream) -> io::Result<()> {
        let _order = lock(&self.send);
        let mut records = Vec::new();
        {
            let mut conn = lock(&self.conn);
            while conn.wants_write() {
                conn.write_tls(&mut records)?;
            }
        }
        client.write_all(&records)
    }

    /// Decrypts `raw` into `plain`. Returns false once the client has ended the session
    /// (close_notify) or broken TLS.
    fn decrypt(&self, mut raw: &[u8], plain: &mut Vec<u8>) -> bool {
        let mut conn = lock(&self.conn);
        while !raw.is_empty() {
            match conn.read_tls(&mut raw) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
            if conn.process_new_packets().is_err() {
                return false;
            }
            if !drain(&mut conn, plain) {
                return false;
            }
        }
        true
    }
}

/// Moves the decrypted bytes out of rustls; false once the client sent close_notify.
fn drain(conn: &mut ServerConnection, plain: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => plain.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Client to session: decrypted bytes into the session's socket.
fn pump_in(tls: &Tls, mut client: TcpStream, mut session: TcpStream) {
    let mut raw = vec![0u8; RAW_READ_SIZE];
    // What came with the end of the handshake (a bind right after Finished) is decrypted
    // already: it goes first, or the session would wait for bytes the client sent.
    let mut plain = Vec::new();
    let open = drain(&mut lock(&tls.conn), &mut plain);
    if session.write_all(&plain).is_err() || !open {
        let _ = session.shutdown(Shutdown::Both);
        return;
    }
    loop {
        // The connection is not locked here: the other pump keeps sending while we wait.
        let n = match client.read(&mut raw) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        plain.clear();
        let open = tls.decrypt(&raw[..n], &mut plain);
        // Answers rustls queued (key updates, or the alert that tells the client why).
        let answered = tls.send_records(&mut client).is_ok();
        if session.write_all(&plain).is_err() || !open || !answered {
            break;
        }
    }
    let _ = session.shutdown(Shutdown::Both);
}

/// Session to client: what the session writes, encrypted. Ends with close_notify.
fn pump_out(tls: &Tls, mut session: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; RAW_READ_SIZE];
    while let Ok(n @ 1..) = session.read(&mut buf) {
        if encrypt_and_send(tls, &buf[..n], &mut client).is_err() {
            break;
        }
    }
    lock(&tls.conn).send_close_notify();
    let _ = client.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = tls.send_records(&mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = session.shutdown(Shutdown::Both);
}

fn encrypt_and_send(tls: &Tls, mut plain: &[u8], client: &mut TcpStream) -> io::Result<()> {
    let _order = lock(&tls.send);
    let mut records = Vec::new();
    while !plain.is_empty() {
        records.clear();
        {
            let mut conn = lock(&tls.conn);
            // rustls takes what fits its send buffer; the rest goes in the next turn
            let taken = conn.writer().write(plain)?;
            plain = &plain[taken..];
            while conn.wants_write() {
                conn.write_tls(&mut records)?;
            }
        }
        client.write_all(&records)?;
    }
    Ok(())
}

/// Two connected loopback sockets (std has no TCP socketpair).
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let near = TcpStream::connect(listener.local_addr()?)?;
    let (far, far_peer) = listener.accept()?;
    if far_peer != near.local_addr()? {
        return Err(io::Error::other("another process took the loopback pair"));
    }
    near.set_nodelay(true)?;
    far.set_nodelay(true)?;
    Ok((near, far))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_pair_is_connected_both_ways() {
        let (mut a, mut b) = loopback_pair().unwrap();
        a.write_all(b"to b").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to b");
        b.write_all(b"to a").unwrap();
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to a");
    }

    #[test]
    fn a_configuration_needs_a_certificate_and_a_key() {
        assert!(server_config(b"", b"", None).is_err());
    }
}
