//! Opening a session: TCP connect, the TLS handshake when smpp_tls is on, and the bind
//! handshake (its rules in `handshake`), all within smpp_session_init_timer.
//! Uses the same frame reader as the reader thread, so a bind_resp split across reads (or
//! arriving with another PDU behind it) is handled like any other PDU.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use crate::session::handshake::{bind_answer, bind_request, BindAnswer};
use crate::session::transport::Transport;
use crate::session::SessionParams;
use crate::smpp::codec::{decode, encode_to_vec};
use crate::smpp::frame::FrameBuffer;
use crate::smpp::CommandStatus;
use crate::tls::{client_config, tls_error_in, TlsError};

/// Why a session could not be opened.
#[derive(Debug)]
pub(crate) enum BindError {
    /// The host name does not resolve or the TCP connect failed.
    Connect(io::Error),
    /// The SMSC refused the bind with this status.
    Refused(CommandStatus),
    /// No bind_resp within smpp_session_init_timer.
    Timeout,
    /// The connection broke or the SMSC answered nonsense during the handshake.
    Protocol(String),
    /// TLS could not be set up: our CA file, or the SMSC's certificate, or the handshake.
    Tls(TlsError),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Connect(e) => write!(f, "cannot connect: {e}"),
            BindError::Refused(status) => write!(f, "bind refused: {status}"),
            BindError::Timeout => f.write_str("no bind response within smpp_session_init_timer"),
            BindError::Protocol(why) => write!(f, "bind failed: {why}"),
            BindError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BindError {}

/// A bound session's connection, with any bytes that arrived after the bind_resp.
pub(crate) struct Bound {
    pub(crate) transport: Transport,
    pub(crate) buffer: FrameBuffer,
    /// The SMSC's system_id from the bind_resp.
    pub(crate) smsc_system_id: String,
}

pub(crate) fn connect_and_bind(params: &SessionParams) -> Result<Bound, BindError> {
    let deadline = Instant::now() + params.timers.session_init;
    let stream = connect(params, deadline)?;
    stream.set_nodelay(true).map_err(BindError::Connect)?;
    let mut stream = open_transport(stream, params, deadline)?;
    let request = bind_request(params.bind, &params.credentials);
    let bytes = encode_to_vec(&request).map_err(|e| BindError::Protocol(e.to_string()))?;
    stream
        .write_all(&bytes)
        .map_err(|e| BindError::Protocol(format!("write: {e}")))?;
    let mut buffer = FrameBuffer::new(params.max_pdu_len);
    loop {
        match buffer.next_frame() {
            Err(e) => return Err(BindError::Protocol(format!("framing error: {e}"))),
            Ok(Some(frame)) => {
                let pdu = decode(frame).map_err(|e| BindError::Protocol(e.to_string()))?;
                match bind_answer(&pdu, params.bind) {
                    BindAnswer::Bound(smsc_system_id) => {
                        stream.set_read_timeout(None).map_err(BindError::Connect)?;
                        return Ok(Bound {
                            transport: stream,
                            buffer,
                            smsc_system_id,
                        });
                    }
                    BindAnswer::Refused(status) => return Err(BindError::Refused(status)),
                    BindAnswer::NotYet => continue,
                }
            }
            Ok(None) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BindError::Timeout);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(BindError::Connect)?;
        match buffer.read_from(&mut stream) {
            Ok(0) => return Err(BindError::Protocol("the SMSC closed the connection".into())),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(BindError::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failure(e, params)),
        }
    }
}

/// A TLS error while waiting for the bind_resp is the SMSC refusing our side of TLS: a TLS
/// 1.3 client finishes its handshake before the server has checked the client's certificate,
/// so the verdict arrives as an alert where the bind_resp was expected.
fn read_failure(e: io::Error, params: &SessionParams) -> BindError {
    match (tls_error_in(&e), &params.tls) {
        (Some(error), Some(tls)) => BindError::Tls(TlsError::Handshake {
            error: error.clone(),
            peer: tls.server_name.clone(),
        }),
        _ => BindError::Protocol(format!("read: {e}")),
    }
}

fn connect(params: &SessionParams, deadline: Instant) -> Result<TcpStream, BindError> {
    let addrs = (params.host.as_str(), params.port)
        .to_socket_addrs()
        .map_err(BindError::Connect)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolves to nothing");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BindError::Timeout);
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(BindError::Connect(last))
}

/// Plain TCP, or TLS over it with the handshake done.
fn open_transport(
    stream: TcpStream,
    params: &SessionParams,
    deadline: Instant,
) -> Result<Transport, BindError> {
    let Some(tls) = &params.tls else {
        return Transport::plain(stream).map_err(BindError::Connect);
    };
    // Built per connection: a replaced CA file is picked up at the next reconnect.
    let config = client_config(tls).map_err(BindError::Tls)?;
    Transport::client(stream, config, &tls.server_name, deadline).map_err(|e| match e {
        TlsError::Timeout => BindError::Timeout,
        e => BindError::Tls(e),
    })
}
