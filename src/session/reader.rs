//! The socket reader thread: reads bytes, cuts them into PDUs with the frame reader, decodes
//! them and hands them to the writer thread. It never writes to the socket and never decides
//! anything: the writer owns the session.
//!
//! A PDU that starts arriving must be complete within smpp_pdu_read_timer; the thread ends
//! when the socket closes (the writer shuts it down to stop it) or the writer goes away.

use std::io;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::session::transport::ReadHalf;
use crate::smpp::codec::{decode, DecodeError};
use crate::smpp::frame::{FrameBuffer, FrameError};
use crate::smpp::{Body, Pdu};

/// What the reader tells the writer.
#[derive(Debug)]
pub enum ReaderEvent {
    /// A PDU, with its raw bytes when they are stored (pdu_raw of a deliver_sm or data_sm;
    /// empty for the rest, which saves a copy per submit_sm_resp).
    Pdu(Pdu, Vec<u8>),
    /// A whole frame that did not decode: the writer answers it (generic_nack or the
    /// operation's _resp with the error's status).
    Undecodable(DecodeError, Vec<u8>),
    /// The stream is corrupt (bad command_length): answer ESME_RINVCMDLEN and close.
    Framing(FrameError),
    /// The connection ended; no more events follow.
    Closed(String),
}

/// Whether the writer stores this PDU's bytes (in smpp_rx_queue.pdu_raw).
fn stored_raw(pdu: &Pdu) -> bool {
    matches!(pdu.body, Body::DeliverSm(_) | Body::DataSm(_))
}

/// Starts the reader on `stream`; `buffer` holds whatever arrived behind the bind_resp.
pub fn spawn(
    mut stream: ReadHalf,
    buffer: FrameBuffer,
    pdu_read_timeout: Duration,
    events: Sender<ReaderEvent>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("esmed-reader".into())
        .spawn(move || {
            let reason = read_loop(&mut stream, buffer, pdu_read_timeout, &events);
            let _ = events.send(ReaderEvent::Closed(reason));
        })
}

/// Reads until the connection ends; returns why it ended.
fn read_loop(
    stream: &mut ReadHalf,
    mut buffer: FrameBuffer,
    pdu_read_timeout: Duration,
    events: &Sender<ReaderEvent>,
) -> String {
    let mut timeout_set = false;
    loop {
        loop {
            let event = match buffer.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => match decode(frame) {
                    Ok(pdu) => {
                        let raw = if stored_raw(&pdu) {
                            frame.to_vec()
                        } else {
                            Vec::new()
                        };
                        ReaderEvent::Pdu(pdu, raw)
                    }
                    Err(error) => ReaderEvent::Undecodable(error, frame.to_vec()),
                },
                Err(error) => {
                    let why = format!("framing error: {error}");
                    let _ = events.send(ReaderEvent::Framing(error));
                    return why;
                }
            };
            if events.send(event).is_err() {
                return "session ended".into();
            }
        }
        // Wait without limit between PDUs; once a PDU has started, it must finish in time.
        let want_timeout = buffer.buffered() > 0;
        if want_timeout != timeout_set {
            let timeout = want_timeout.then_some(pdu_read_timeout);
            if let Err(e) = stream.set_read_timeout(timeout) {
                return format!("cannot set the read timeout: {e}");
            }
            timeout_set = want_timeout;
        }
        match buffer.read_from(stream) {
            Ok(0) => return "the SMSC closed the connection".into(),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return format!(
                    "a PDU stayed incomplete for more than {} s (smpp_pdu_read_timer)",
                    pdu_read_timeout.as_secs()
                );
            }
            Err(e) => return format!("read error: {e}"),
        }
    }
}
