//! TLS serving for the test SMSC: a TLS-terminating pump per connection. After the handshake
//! the connection's plain SMPP session runs unchanged on one end of a loopback TCP pair, and two
//! pump threads copy bytes between the other end and the TLS halves. A test tool can afford
//! the extra hop; the session, outbox and fault code stay the same for TCP and TLS.
//!
//! Closing either side closes the other: `disconnect_all` shuts the session's socket, the pump
//! sees the end and sends close_notify to the client; a client that goes away ends the pair.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use super::{start_connection, Shared};
use crate::session::transport::{ReadHalf, Transport, WriteHalf};

/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
    stream: TcpStream,
    config: Arc<ServerConfig>,
    peer: &str,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let transport = Transport::server(stream, config, deadline).map_err(|e| e.to_string())?;
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (session_end, pump_end) = loopback_pair().map_err(|e| e.to_string())?;
    start_connection(shared, session_end, &format!("{peer} (TLS)")).map_err(|e| e.to_string())?;
    let (tls_read, tls_write) = transport.split();
    let inbound_end = pump_end.try_clone().map_err(|e| e.to_string())?;
    shared
        .spawn("smsc-tls-in", move || pump_in(tls_read, inbound_end))
        .map_err(|e| e.to_string())?;
    pump_out(pump_end, tls_write);
    Ok(())
}

/// Client to session: decrypted bytes into the session's socket.
fn pump_in(mut tls_read: ReadHalf, mut session: TcpStream) {
    let _ = io::copy(&mut tls_read, &mut session);
    let _ = session.shutdown(Shutdown::Both);
}

/// Session to client: what the session writes, encrypted. Ends with close_notify.
fn pump_out(mut session: TcpStream, mut tls_write: WriteHalf) {
    let _ = io::copy(&mut session, &mut tls_write);
    let _ = tls_write.flush();
    let _ = tls_write.shutdown(Shutdown::Both);
    let _ = session.shutdown(Shutdown::Both);
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
    use std::io::Read;

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
}
