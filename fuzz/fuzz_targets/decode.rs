//! Feeds arbitrary bytes through the reader thread's path: the frame buffer (in chunks whose
//! size the first input byte picks), `frame`, and `decode` on every frame it yields; also
//! `decode` on the raw input. Every decoded PDU also goes through what esmed stores for a
//! received one (`rx_row`: its JSON, text decoding, receipt parsing, MO part detection) and
//! is re-encoded. Nothing here may panic.
#![no_main]

use esmed::session::inbound::rx_row;
use esmed::smpp::frame::{frame, FrameBuffer, DEFAULT_MAX_PDU_LEN};
use esmed::smpp::{decode, encode_to_vec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let _ = frame(data, DEFAULT_MAX_PDU_LEN);

    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let mut buffer = FrameBuffer::new(DEFAULT_MAX_PDU_LEN);
    for mut piece in stream.chunks(chunk) {
        while !piece.is_empty() {
            let taken = buffer.push(piece);
            piece = &piece[taken..];
            loop {
                match buffer.next_frame() {
                    Ok(Some(frame)) => {
                        if let Ok(pdu) = decode(frame) {
                            let _ = rx_row(&pdu, frame);
                            let _ = encode_to_vec(&pdu);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
});
