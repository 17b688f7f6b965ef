//! The byte stream under a session: plain TCP, or TLS (rustls) over TCP. Both split into a
//! read half for the reader thread and a write half for the writer thread.
//!
//! Plain TCP halves are two handles of one socket (`try_clone`), exactly as before TLS existed.
//! TLS halves also keep a socket handle each, and share one `rustls::Connection` behind a
//! mutex: the reader reads raw bytes from its socket without the lock, then locks to decrypt;
//! the writer locks to encrypt, then writes outside the lock. Neither thread ever blocks on the
//! socket while holding the connection, so a writer stuck on a full send buffer never stops
//! the reader from draining what the peer sends (which is what unblocks the peer).
//!
//! TLS records carry implicit sequence numbers, so records must reach the socket in the order
//! rustls produced them. Whoever sends records (the writer, or rarely the reader: alerts, key
//! update answers) takes a second lock, `send`, first and holds it from `write_tls` until the
//! bytes are on the socket. Lock order is always `send` then `conn`. The reader needs `send`
//! only for those rare records; if the writer is then blocked on a full socket, the reader
//! waits with it, as a plain TCP writer blocked on a peer that reads nothing would.
//!
//! A peer that stops reading must not hold the writer for ever: with a send timeout set
//! ([`WriteHalf::set_send_timeout`]), a write that the peer has not taken in full within it
//! fails with `TimedOut`, for both kinds of stream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::tls::{tls_error_in, TlsError};

/// A connected stream, ready for SMPP: plain, or TLS with the handshake done.
pub struct Transport {
    read: ReadHalf,
    write: WriteHalf,
}

impl Transport {
    /// Plain TCP.
    pub fn plain(stream: TcpStream) -> io::Result<Transport> {
        let read = stream.try_clone()?;
        Ok(Transport {
            read: ReadHalf::Plain(read),
            write: WriteHalf::Plain(Outgoing::new(stream)),
        })
    }

    /// TLS client: handshakes (verifying the server as `config` says) before `deadline`.
    pub(crate) fn client(
        stream: TcpStream,
        config: Arc<ClientConfig>,
        server_name: &str,
        deadline: Instant,
    ) -> Result<Transport, TlsError> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            TlsError::Setup(format!(
                "'{server_name}' is not a valid server name (smpp_tls_server_name)"
            ))
        })?;
        let conn =
            ClientConnection::new(config, name).map_err(|e| TlsError::Setup(e.to_string()))?;
        Transport::tls(stream, conn.into(), server_name, deadline)
    }

    /// TLS server: handshakes with the client connected on `stream` before `deadline`.
    pub fn server(
        stream: TcpStream,
        config: Arc<ServerConfig>,
        deadline: Instant,
    ) -> Result<Transport, TlsError> {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "the client".into(), |a| a.to_string());
        let conn = ServerConnection::new(config).map_err(|e| TlsError::Setup(e.to_string()))?;
        Transport::tls(stream, conn.into(), &peer, deadline)
    }

    fn tls(
        mut stream: TcpStream,
        mut conn: Connection,
        peer: &str,
        deadline: Instant,
    ) -> Result<Transport, TlsError> {
        handshake(&mut conn, &mut stream, deadline).map_err(|e| match e {
            HandshakeFailure::Tls(error) => TlsError::Handshake {
                error,
                peer: peer.to_string(),
            },
            HandshakeFailure::Timeout => TlsError::Timeout,
            HandshakeFailure::Io(e) => TlsError::Io(e),
        })?;
        let read_socket = stream.try_clone().map_err(TlsError::Io)?;
        let shared = Arc::new(TlsShared {
            conn: Mutex::new(conn),
            send: Mutex::new(()),
        });
        Ok(Transport {
            read: ReadHalf::Tls(TlsReadHalf {
                socket: read_socket,
                shared: Arc::clone(&shared),
                raw: vec![0; RAW_READ_SIZE].into_boxed_slice(),
                start: 0,
                end: 0,
            }),
            write: WriteHalf::Tls(TlsWriteHalf {
                socket: Outgoing::new(stream),
                shared,
                records: Vec::new(),
            }),
        })
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.write, WriteHalf::Tls(_))
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read.set_read_timeout(timeout)
    }

    /// The reader thread's half and the writer thread's half.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        (self.read, self.write)
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write.flush()
    }
}

enum HandshakeFailure {
    Tls(rustls::Error),
    Timeout,
    Io(io::Error),
}

fn handshake(
    conn: &mut Connection,
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(), HandshakeFailure> {
    let failure = |e: io::Error| match tls_error_in(&e) {
        Some(error) => HandshakeFailure::Tls(error.clone()),
        None if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) =>
        {
            HandshakeFailure::Timeout
        }
        None => HandshakeFailure::Io(e),
    };
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HandshakeFailure::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(failure)?;
        stream.set_write_timeout(Some(left)).map_err(failure)?;
        if conn.complete_io(stream).map_err(failure)? == (0, 0) {
            return Err(HandshakeFailure::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    while conn.wants_write() {
        conn.write_tls(stream).map_err(failure)?;
    }
    stream.set_read_timeout(None).map_err(failure)?;
    stream.set_write_timeout(None).map_err(failure)?;
    Ok(())
}

/// Raw bytes read from the socket at once: a little more than one full TLS record.
const RAW_READ_SIZE: usize = 18 * 1024;

/// What both TLS halves share.
struct TlsShared {
    conn: Mutex<Connection>,
    /// Held from producing TLS records until they are written, to keep them in order.
    send: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> io::Result<MutexGuard<'_, T>> {
    // A panic while holding the connection may have left it half-updated: treat it as broken.
    mutex
        .lock()
        .map_err(|_| io::Error::other("TLS state poisoned by a panicked thread"))
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The reader thread's end.
pub enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsReadHalf),
}

impl ReadHalf {
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            ReadHalf::Plain(stream) => stream.set_read_timeout(timeout),
            ReadHalf::Tls(tls) => tls.socket.set_read_timeout(timeout),
        }
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(stream) => stream.read(buf),
            ReadHalf::Tls(tls) => tls.read(buf),
        }
    }
}

pub struct TlsReadHalf {
    socket: TcpStream,
    shared: Arc<TlsShared>,
    /// Raw bytes read from the socket; `start..end` not yet given to rustls.
    raw: Box<[u8]>,
    start: usize,
    end: usize,
}

impl TlsReadHalf {
    /// Gives rustls the raw bytes it takes (the plaintext buffer is empty here, so it always
    /// takes some) and decrypts them. Returns whether rustls wants to send something.
    fn feed(&mut self) -> io::Result<bool> {
        let mut conn = lock(&self.shared.conn)?;
        let mut pending = &self.raw[self.start..self.end];
        let taken = conn.read_tls(&mut pending)?;
        // Ok(0) with bytes left: a close_notify came before them; nothing after it counts.
        self.start = if taken == 0 {
            self.end
        } else {
            self.start + taken
        };
        let processed = conn.process_new_packets();
        let wants_write = conn.wants_write();
        drop(conn);
        if let Err(error) = processed {
            // Tell the peer why (the alert rustls queued), then fail.
            let _ = self.send_records();
            return Err(tls_error(error));
        }
        Ok(wants_write)
    }

    /// Sends the records rustls queued (alerts, key update answers), in order with the writer's.
    fn send_records(&mut self) -> io::Result<()> {
        let _order = lock(&self.shared.send)?;
        let mut records = Vec::new();
        {
            let mut conn = lock(&self.shared.conn)?;
            while conn.wants_write() {
                conn.write_tls(&mut records)?;
            }
        }
        self.socket.write_all(&records)
    }
}

impl Read for TlsReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match lock(&self.shared.conn)?.reader().read(buf) {
                // Ok(0): the peer sent close_notify
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.start < self.end {
                if self.feed()? {
                    self.send_records()?;
                }
                continue;
            }
            // The lock is not held here: the writer keeps going while we wait for bytes.
            let n = self.socket.read(&mut self.raw)?;
            self.start = 0;
            self.end = n;
            if n == 0 {
                // Tell rustls about the EOF; its reader then says clean close or truncation.
                lock(&self.shared.conn)?.read_tls(&mut &[][..])?;
            }
        }
    }
}

/// The socket a write half writes to, with the bound on how long a write may take.
pub struct Outgoing {
    stream: TcpStream,
    /// The longest one write may take; None: no bound.
    limit: Option<Duration>,
    /// SO_SNDTIMEO was lowered to what was left of the last write's time.
    shortened: bool,
}

impl Outgoing {
    fn new(stream: TcpStream) -> Outgoing {
        Outgoing {
            stream,
            limit: None,
            shortened: false,
        }
    }

    fn set_limit(&mut self, limit: Option<Duration>) -> io::Result<()> {
        let limit = limit.filter(|limit| !limit.is_zero());
        self.stream.set_write_timeout(limit)?;
        self.limit = limit;
        self.shortened = false;
        Ok(())
    }

    /// When a write that starts now must be done.
    fn deadline(&mut self) -> io::Result<Option<Instant>> {
        if self.shortened {
            self.stream.set_write_timeout(self.limit)?;
            self.shortened = false;
        }
        Ok(self.limit.map(|limit| Instant::now() + limit))
    }

    /// Writes all of `buf` by `deadline`, or fails with `TimedOut`. SO_SNDTIMEO bounds each
    /// blocked send; a peer that takes a little at a time gets what is left of the time, not
    /// a fresh timeout for each piece.
    fn write_all_by(&mut self, mut buf: &[u8], deadline: Option<Instant>) -> io::Result<()> {
        while !buf.is_empty() {
            match self.stream.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(not_taken());
                }
                Err(e) => return Err(e),
            }
            if let (Some(deadline), false) = (deadline, buf.is_empty()) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(not_taken());
                }
                self.stream.set_write_timeout(Some(left))?;
                self.shortened = true;
            }
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let deadline = self.deadline()?;
        self.write_all_by(buf, deadline)
    }
}

/// The error of a write the peer did not take within the send timeout.
fn not_taken() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the peer did not take what was written within the send timeout",
    )
}

/// The writer thread's end.
pub enum WriteHalf {
    Plain(Outgoing),
    Tls(TlsWriteHalf),
}

impl WriteHalf {
    /// From now on a write the peer has not taken in full within `limit` fails with
    /// `TimedOut` (None: writes may block for ever).
    pub(crate) fn set_send_timeout(&mut self, limit: Option<Duration>) -> io::Result<()> {
        match self {
            WriteHalf::Plain(socket) => socket.set_limit(limit),
            WriteHalf::Tls(tls) => tls.socket.set_limit(limit),
        }
    }

    /// Ends the connection: for TLS a close_notify first (best effort, bounded in time). Also
    /// wakes the reader thread blocked on the other handle.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            WriteHalf::Plain(socket) => socket.stream.shutdown(how),
            WriteHalf::Tls(tls) => {
                let _ = tls.close_notify();
                tls.socket.stream.shutdown(how)
            }
        }
    }
}

impl Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Plain(socket) => socket.stream.write(buf),
            WriteHalf::Tls(tls) => tls.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            WriteHalf::Plain(socket) => socket.write_all(buf),
            WriteHalf::Tls(tls) => tls.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(socket) => socket.stream.flush(),
            WriteHalf::Tls(_) => Ok(()),
        }
    }
}

pub struct TlsWriteHalf {
    socket: Outgoing,
    shared: Arc<TlsShared>,
    /// Encrypted records waiting for the socket; kept to reuse its allocation.
    records: Vec<u8>,
}

impl TlsWriteHalf {
    fn close_notify(&mut self) -> io::Result<()> {
        self.socket.set_limit(Some(Duration::from_secs(1)))?;
        let _order = lock(&self.shared.send)?;
        self.records.clear();
        {
            let mut conn = lock(&self.shared.conn)?;
            conn.send_close_notify();
            while conn.wants_write() {
                conn.write_tls(&mut self.records)?;
            }
        }
        self.socket.write_all(&self.records)
    }
}

impl Write for TlsWriteHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let deadline = self.socket.deadline()?;
        let _order = lock(&self.shared.send)?;
        while !buf.is_empty() {
            self.records.clear();
            {
                let mut conn = lock(&self.shared.conn)?;
                // rustls takes what fits its send buffer; the rest goes in the next turn
                let taken = conn.writer().write(buf)?;
                buf = &buf[taken..];
                while conn.wants_write() {
                    conn.write_tls(&mut self.records)?;
                }
                if taken == 0 && self.records.is_empty() {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
            // The lock is released: the reader keeps decrypting while this write blocks.
            self.socket.write_all_by(&self.records, deadline)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{client_config, exposed_key_advice, server_config, TlsParams, Verify};
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::thread;

    /// A throwaway CA and a server certificate it signed for localhost and 127.0.0.1.
    struct TestPki {
        ca_pem: String,
        chain_pem: String,
        key_pem: String,
        ca: (rcgen::Certificate, rcgen::KeyPair),
    }

    impl TestPki {
        /// A client certificate this CA signed: (chain PEM, key PEM).
        fn client(&self) -> (String, String) {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["esme.example.net".into()]).unwrap();
            let cert = params.signed_by(&key, &self.ca.0, &self.ca.1).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    /// `ca_name` tells CAs apart: a CA of the same name would be taken for the issuer, and
    /// the check would fail on the signature instead.
    fn pki_named(ca_name: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca: (ca_cert, ca_key),
        }
    }

    fn pki() -> TestPki {
        pki_named("esmed test CA")
    }

    fn write_temp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "esmed-transport-{}-{name}-{:?}.pem",
            std::process::id(),
            thread::current().id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn params(ca_file: Option<PathBuf>, verify: Verify, server_name: &str) -> TlsParams {
        TlsParams {
            ca_file,
            verify,
            server_name: server_name.into(),
            client_cert_file: None,
            client_key_file: None,
        }
    }

    /// A TLS server on 127.0.0.1 that echoes everything back, one connection; returns its port
    /// and a join handle giving the server side's handshake result.
    fn echo_server(pki: &TestPki) -> (u16, thread::JoinHandle<Result<(), TlsError>>) {
        echo_server_asking(pki, None)
    }

    /// [`echo_server`] requiring a client certificate signed by `client_ca` (PEM).
    fn echo_server_asking(
        pki: &TestPki,
        client_ca: Option<&str>,
    ) -> (u16, thread::JoinHandle<Result<(), TlsError>>) {
        let config = server_config(
            pki.chain_pem.as_bytes(),
            pki.key_pem.as_bytes(),
            client_ca.map(str::as_bytes),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let (mut read, mut write) = Transport::server(stream, config, deadline)?.split();
            let mut buf = [0u8; 5000];
            loop {
                match read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = write.shutdown(Shutdown::Both);
            Ok(())
        });
        (port, handle)
    }

    fn connect(port: u16, params: &TlsParams) -> Result<Transport, TlsError> {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let config = client_config(params)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        Transport::client(stream, config, &params.server_name, deadline)
    }

    #[test]
    fn tls_echo_through_split_halves_on_two_threads() {
        let pki = pki();
        let ca = write_temp("ca-echo", &pki.ca_pem);
        let (port, server) = echo_server(&pki);
        let transport =
            connect(port, &params(Some(ca.clone()), Verify::Full, "localhost")).unwrap();
        assert!(transport.is_tls());
        let (mut read, mut write) = transport.split();
        // More than rustls buffers and than a socket holds, in odd-sized writes, while the
        // other thread reads: the halves must not block each other.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = thread::spawn(move || {
            for chunk in sent.chunks(7919) {
                write.write_all(chunk).unwrap();
            }
            write
        });
        let mut echoed = vec![0u8; data.len()];
        read.read_exact(&mut echoed).unwrap();
        assert!(echoed == data, "echo differs");
        let mut write = writer.join().unwrap();
        write.shutdown(Shutdown::Both).unwrap();
        server.join().unwrap().unwrap();
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_clean_close_reads_as_end_of_stream() {
        let pki = pki();
        let ca = write_temp("ca-close", &pki.ca_pem);
        let (port, server) = echo_server(&pki);
        let (mut read, mut write) =
            connect(port, &params(Some(ca.clone()), Verify::Full, "127.0.0.1"))
                .unwrap()
                .split();
        write.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        read.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        // Our close_notify ends the echo loop; the server answers with its own.
        write.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read.read(&mut buf).unwrap(), 0);
        server.join().unwrap().unwrap();
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn an_untrusted_certificate_fails_the_handshake_and_says_why() {
        let pki = pki();
        let other = write_temp("ca-other", &pki_named("another CA").ca_pem);
        let (port, server) = echo_server(&pki);
        let error = connect(
            port,
            &params(Some(other.clone()), Verify::Full, "localhost"),
        )
        .err()
        .expect("handshake must fail");
        assert_eq!(
            error.to_string(),
            "TLS: invalid peer certificate: UnknownIssuer for localhost"
        );
        // The server learns it from our alert.
        assert!(matches!(
            server.join().unwrap(),
            Err(TlsError::Handshake { .. })
        ));
        let _ = std::fs::remove_file(other);
    }

    #[test]
    fn a_certificate_for_another_name_fails_the_handshake() {
        let pki = pki();
        let ca = write_temp("ca-name", &pki.ca_pem);
        let (port, server) = echo_server(&pki);
        let error = connect(
            port,
            &params(Some(ca.clone()), Verify::Full, "smsc.example.net"),
        )
        .err()
        .expect("handshake must fail");
        let text = error.to_string();
        assert!(text.starts_with("TLS: invalid peer certificate"), "{text}");
        assert!(text.ends_with("for smsc.example.net"), "{text}");
        let _ = server.join();
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn chain_only_takes_another_name_but_not_another_ca() {
        let pki = pki();
        let ca = write_temp("ca-chain", &pki.ca_pem);
        let (port, server) = echo_server(&pki);
        let chain_only = params(Some(ca.clone()), Verify::ChainOnly, "db.example.net");
        assert!(connect(port, &chain_only).is_ok());
        assert!(server.join().unwrap().is_ok());
        let other = write_temp("ca-chain-other", &pki_named("another CA").ca_pem);
        let (port, server) = echo_server(&pki);
        let stranger = params(Some(other.clone()), Verify::ChainOnly, "localhost");
        let error = connect(port, &stranger).err().expect("handshake must fail");
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
        let _ = server.join();
        let _ = std::fs::remove_file(ca);
        let _ = std::fs::remove_file(other);
    }

    #[test]
    fn verification_off_accepts_any_certificate() {
        let pki = pki();
        let (port, server) = echo_server(&pki);
        let (mut read, mut write) = connect(port, &params(None, Verify::Off, "smsc.example.net"))
            .unwrap()
            .split();
        write.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        read.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        write.shutdown(Shutdown::Both).unwrap();
        server.join().unwrap().unwrap();
    }

    /// `params` with our certificate and key from `identity` (chain PEM, key PEM) in files.
    fn with_identity(mut params: TlsParams, name: &str, identity: &(String, String)) -> TlsParams {
        params.client_cert_file = Some(write_temp(&format!("{name}-cert"), &identity.0));
        params.client_key_file = Some(write_temp(&format!("{name}-key"), &identity.1));
        params
    }

    fn remove_files(params: &TlsParams) {
        for path in [
            &params.ca_file,
            &params.client_cert_file,
            &params.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_server_asking_for_a_client_certificate_gets_ours() {
        let pki = pki();
        let client_ca = pki_named("the clients' CA");
        let ca = write_temp("ca-mutual", &pki.ca_pem);
        let (port, server) = echo_server_asking(&pki, Some(&client_ca.ca_pem));
        let params = with_identity(
            params(Some(ca), Verify::Full, "localhost"),
            "mutual",
            &client_ca.client(),
        );
        let (mut read, mut write) = connect(port, &params).unwrap().split();
        write.write_all(b"bind").unwrap();
        let mut buf = [0u8; 4];
        read.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"bind");
        write.shutdown(Shutdown::Both).unwrap();
        server.join().unwrap().unwrap();
        remove_files(&params);
    }

    #[test]
    fn a_server_asking_for_a_client_certificate_refuses_none_or_a_stranger() {
        let pki = pki();
        let client_ca = pki_named("the clients' CA");
        let ca = write_temp("ca-refused", &pki.ca_pem);
        for identity in [None, Some(pki_named("a stranger's CA").client())] {
            let (port, server) = echo_server_asking(&pki, Some(&client_ca.ca_pem));
            let mut params = params(Some(ca.clone()), Verify::Full, "localhost");
            if let Some(identity) = &identity {
                params = with_identity(params, "stranger", identity);
            }
            // TLS 1.3: the client finishes first; the server's verdict comes as an alert,
            // read as an error where the first SMPP response would be.
            let refused = connect(port, &params).and_then(|transport| {
                let (mut read, mut write) = transport.split();
                let _ = write.write_all(b"bind");
                let mut buf = [0u8; 4];
                read.read_exact(&mut buf).map_err(TlsError::Io)
            });
            assert!(refused.is_err(), "identity {:?}", identity.is_some());
            let error = server.join().unwrap().expect_err("the server refuses");
            let text = error.to_string();
            let why = if identity.is_some() {
                "invalid peer certificate: UnknownIssuer"
            } else {
                "peer sent no certificates"
            };
            assert!(text.contains(why), "{text}");
            if identity.is_some() {
                remove_files(&TlsParams {
                    ca_file: None,
                    ..params
                });
            }
        }
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_key_file_others_can_read_gets_advice() {
        let key = Path::new("/etc/esmed/client-key.pem");
        assert_eq!(exposed_key_advice(key, 0o100600), None);
        assert_eq!(exposed_key_advice(key, 0o100400), None);
        let advice = exposed_key_advice(key, 0o100644).expect("world-readable");
        assert!(advice.contains("/etc/esmed/client-key.pem"), "{advice}");
        assert!(
            advice.contains("mode 644") && advice.contains("chmod 600"),
            "{advice}"
        );
        assert!(exposed_key_advice(key, 0o100640).is_some());
    }

    #[test]
    fn client_certificate_setup_errors_say_which_file_or_why() {
        let pki = pki();
        let mut half = params(None, Verify::Off, "localhost");
        half.client_cert_file = Some(PathBuf::from("/nonexistent/esmed-cert.pem"));
        let error = client_config(&half).expect_err("a certificate without a key");
        assert!(error.to_string().contains("go together"), "{error}");

        let missing = TlsParams {
            client_key_file: Some(PathBuf::from("/nonexistent/esmed-key.pem")),
            ..half
        };
        let error = client_config(&missing).expect_err("missing files");
        assert!(
            error.to_string().contains("/nonexistent/esmed-cert.pem"),
            "{error}"
        );

        // A certificate with another certificate's key.
        let (cert, _) = pki.client();
        let (_, other_key) = pki.client();
        let mismatched = with_identity(
            params(None, Verify::Off, "localhost"),
            "mismatch",
            &(cert, other_key),
        );
        let error = client_config(&mismatched).expect_err("key of another certificate");
        assert!(error.to_string().contains("do not go together"), "{error}");
        remove_files(&mismatched);

        let bad_key = with_identity(
            params(None, Verify::Off, "localhost"),
            "badkey",
            &(pki.client().0, "no key here\n".into()),
        );
        let error = client_config(&bad_key).expect_err("no key in the key file");
        let text = error.to_string();
        assert!(text.contains("the client key file"), "{text}");
        assert!(text.contains("badkey-key"), "{text}");
        remove_files(&bad_key);
    }

    #[test]
    fn setup_errors_name_the_file_or_the_name() {
        let missing = PathBuf::from("/nonexistent/esmed-ca.pem");
        let error = client_config(&params(Some(missing), Verify::Full, "localhost"))
            .expect_err("missing CA file");
        assert!(
            error.to_string().contains("/nonexistent/esmed-ca.pem"),
            "{error}"
        );
        let empty = write_temp("empty", "no PEM here\n");
        let error = client_config(&params(Some(empty.clone()), Verify::Full, "localhost"))
            .expect_err("empty CA file");
        assert!(error.to_string().contains("no certificate"), "{error}");
        let _ = std::fs::remove_file(empty);

        let config = client_config(&params(None, Verify::Off, "x")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let error = Transport::client(stream, config, "bad name!", Instant::now())
            .err()
            .expect("bad server name");
        assert!(error.to_string().contains("'bad name!'"), "{error}");

        assert!(server_config(b"", b"", None).is_err());
    }

    #[test]
    fn a_silent_server_times_the_handshake_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let config = client_config(&params(None, Verify::Off, "localhost")).unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let error = Transport::client(stream, config, "localhost", deadline)
            .err()
            .expect("no server hello");
        assert!(matches!(error, TlsError::Timeout), "{error}");
    }

    /// Writes 1 MiB at a time until a write fails; the peer reads nothing, so one must.
    fn write_until_refused(write: &mut WriteHalf) -> io::Error {
        let chunk = vec![0x5Au8; 1 << 20];
        (0..256)
            .find_map(|_| write.write_all(&chunk).err())
            .expect("a peer that reads nothing cannot take 256 MiB")
    }

    #[test]
    fn a_peer_that_stops_reading_times_a_plain_write_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_silent, _) = listener.accept().unwrap();
        let (_read, mut write) = Transport::plain(client).unwrap().split();
        write
            .set_send_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let error = write_until_refused(&mut write);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    }

    #[test]
    fn a_peer_that_stops_reading_times_a_tls_write_out() {
        let pki = pki();
        let config = server_config(pki.chain_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (release, released) = crossbeam_channel::bounded::<()>(0);
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let transport = Transport::server(stream, config, deadline).unwrap();
            // Handshaken, then silent: reads nothing until released.
            let _ = released.recv();
            drop(transport);
        });
        let (_read, mut write) = connect(port, &params(None, Verify::Off, "localhost"))
            .unwrap()
            .split();
        write
            .set_send_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let error = write_until_refused(&mut write);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        drop(release);
        server.join().unwrap();
    }

    #[test]
    fn plain_halves_are_two_handles_of_one_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let transport = Transport::plain(client).unwrap();
        assert!(!transport.is_tls());
        let (mut read, mut write) = transport.split();
        write.write_all(b"abc").unwrap();
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).unwrap();
        server.write_all(b"xyz").unwrap();
        read.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
        // Shutting down the write half wakes a reader blocked on the other handle.
        let blocked = thread::spawn(move || read.read(&mut [0u8; 1]).unwrap());
        thread::sleep(Duration::from_millis(50));
        write.shutdown(Shutdown::Both).unwrap();
        assert_eq!(blocked.join().unwrap(), 0);
    }
}
