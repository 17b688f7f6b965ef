//! The socket reader thread: reads bytes, cuts them into PDUs with the frame reader, decodes
//! them and hands them to the writer thread. It never writes to the socket and never decides
//! anything: the writer owns the session.
//!
//! A PDU that starts arriving must be complete within smpp_pdu_read_timer; the thread ends
//! when the socket closes (the writer shuts it down to stop it) or the writer goes away.
//!
//! What one read brings in goes to the writer as one batch: a window of submit_sm_resp then
//! costs the writer one wake-up and the channel one hand-over, not one per PDU.

use std::io;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::handoff::ReaderEvent;
use crate::session::transport::ReadHalf;
use crate::smpp::codec::decode;
use crate::smpp::frame::FrameBuffer;
use crate::smpp::{Body, Pdu};

/// At most this many events go in one batch, so that the channel's bound (in batches) still
/// bounds the PDUs read ahead of the writer.
pub(crate) const MAX_BATCH: usize = 64;

/// How many batches may wait for the writer: with [`MAX_BATCH`], at most 1024 PDUs.
pub(crate) const QUEUED_BATCHES: usize = 16;

/// Whether the writer stores this PDU's bytes (in smpp_rx_queue.pdu_raw).
fn stored_raw(pdu: &Pdu) -> bool {
    matches!(pdu.body, Body::DeliverSm(_) | Body::DataSm(_))
}

/// Starts the reader on `stream`; `buffer` holds whatever arrived behind the bind_resp.
pub(crate) fn spawn(
    mut stream: ReadHalf,
    buffer: FrameBuffer,
    pdu_read_timeout: Duration,
    events: Sender<Vec<ReaderEvent>>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("esmed-reader".into())
        .spawn(move || {
            let reason = read_loop(&mut stream, buffer, pdu_read_timeout, &events);
            let _ = events.send(vec![ReaderEvent::Closed(reason)]);
        })
}

/// Reads until the connection ends; returns why it ended.
fn read_loop(
    stream: &mut ReadHalf,
    mut buffer: FrameBuffer,
    pdu_read_timeout: Duration,
    events: &Sender<Vec<ReaderEvent>>,
) -> String {
    let mut timeout_set = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
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
                    batch.push(ReaderEvent::Framing(error));
                    let _ = events.send(batch);
                    return why;
                }
            };
            batch.push(event);
            if batch.len() == MAX_BATCH && !hand_over(events, &mut batch) {
                return "session ended".into();
            }
        }
        if !batch.is_empty() && !hand_over(events, &mut batch) {
            return "session ended".into();
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

/// Sends the batch to the writer and starts a new one; false when the writer is gone.
fn hand_over(events: &Sender<Vec<ReaderEvent>>, batch: &mut Vec<ReaderEvent>) -> bool {
    let full = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    events.send(full).is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::session::transport::Transport;
    use crate::smpp::codec::encode_to_vec;
    use crate::smpp::pdu::MessageIdResp;

    fn resp(sequence_number: u32) -> Vec<u8> {
        let body = Body::SubmitSmResp(MessageIdResp {
            message_id: format!("m{sequence_number}").try_into().unwrap(),
            ..MessageIdResp::default()
        });
        encode_to_vec(&Pdu::new(sequence_number, body)).unwrap()
    }

    /// A reader on one end of a loopback connection; the other end is returned to write to.
    fn reader_on_loopback() -> (TcpStream, crossbeam_channel::Receiver<Vec<ReaderEvent>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        let (read_half, _write_half) = Transport::plain(ours).unwrap().split();
        let (tx, rx) = crossbeam_channel::bounded(QUEUED_BATCHES);
        let buffer = FrameBuffer::new(64 * 1024);
        spawn(read_half, buffer, Duration::from_secs(5), tx).unwrap();
        (peer, rx)
    }

    fn sequence_numbers(batch: &[ReaderEvent]) -> Vec<u32> {
        batch
            .iter()
            .map(|event| match event {
                ReaderEvent::Pdu(pdu, raw) => {
                    assert!(raw.is_empty(), "a submit_sm_resp's bytes are not kept");
                    pdu.sequence_number
                }
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    #[test]
    fn what_one_read_brings_in_arrives_as_one_batch_in_order() {
        let (mut peer, events) = reader_on_loopback();
        let bytes: Vec<u8> = (1..=10).flat_map(resp).collect();
        peer.write_all(&bytes).unwrap();
        let mut seen = Vec::new();
        let mut batches = 0;
        while seen.len() < 10 {
            let batch = events.recv_timeout(Duration::from_secs(5)).unwrap();
            seen.extend(sequence_numbers(&batch));
            batches += 1;
        }
        assert_eq!(seen, (1..=10).collect::<Vec<u32>>());
        // One write of 10 small PDUs is normally one read; loopback may split it, never more
        // than in two.
        assert!(batches <= 2, "{batches} batches for one write");
    }

    #[test]
    fn a_long_read_is_cut_into_batches_of_at_most_max_batch() {
        let (mut peer, events) = reader_on_loopback();
        let count = 3 * MAX_BATCH as u32 + 5;
        let bytes: Vec<u8> = (1..=count).flat_map(resp).collect();
        peer.write_all(&bytes).unwrap();
        let mut seen = Vec::new();
        while seen.len() < count as usize {
            let batch = events.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(
                !batch.is_empty() && batch.len() <= MAX_BATCH,
                "{}",
                batch.len()
            );
            seen.extend(sequence_numbers(&batch));
        }
        assert_eq!(seen, (1..=count).collect::<Vec<u32>>());
    }

    #[test]
    fn the_end_of_the_connection_comes_after_the_pdus_before_it() {
        let (mut peer, events) = reader_on_loopback();
        peer.write_all(&resp(7)).unwrap();
        drop(peer);
        let mut events_seen = Vec::new();
        while let Ok(batch) = events.recv_timeout(Duration::from_secs(5)) {
            events_seen.extend(batch);
        }
        assert!(matches!(&events_seen[0], ReaderEvent::Pdu(pdu, _) if pdu.sequence_number == 7));
        assert!(
            matches!(&events_seen[1..], [ReaderEvent::Closed(why)] if why.contains("closed")),
            "{events_seen:?}"
        );
    }
}
