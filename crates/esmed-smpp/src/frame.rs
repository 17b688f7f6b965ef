//! Framing: cutting a TCP byte stream into whole PDUs. [`frame`] looks at
//! the start of a buffer and says whether a complete PDU is there; [`FrameBuffer`] owns the
//! socket reader's buffer and hands out frames for `codec::decode`. No decoding happens here.
//!
//! A frame is invalid when its command_length is below 16 (the header alone) or above the
//! cap. The stream cannot be resynchronised after that: the session answers generic_nack
//! ESME_RINVCMDLEN (sequence number from the header if readable, else 0) and closes.
//! Nothing is ever allocated from a peer-supplied length beyond the cap.

use std::fmt;
use std::io::{self, Read};

use byteorder::{BigEndian, ByteOrder};

use crate::codec::HEADER_LEN;
use crate::CommandStatus;

/// The default cap on command_length: 64 KiB for a maximal message_payload TLV value
/// (65 535 octets + 4 of tag and length) plus 1 KiB for the header, the largest mandatory
/// body (data_sm: 143 octets) and the other TLVs. Wireshark's heuristic stops at 65 536.
pub const DEFAULT_MAX_PDU_LEN: u32 = 65_536 + 1_024;

/// What the start of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Not yet a whole PDU: read more.
    Incomplete,
    /// A whole PDU of this many octets starts the buffer.
    Complete(usize),
    /// command_length is below 16 or above the cap. `sequence_number` is given when the
    /// length is at least 16 (so the header is meaningful) and all 16 header octets arrived.
    Invalid {
        command_length: u32,
        sequence_number: Option<u32>,
    },
}

/// Looks for one PDU at the start of `buf`. A too-large length is reported only once the
/// whole 16-octet header is there, so that its sequence number can be answered.
pub fn frame(buf: &[u8], max_len: u32) -> FrameStatus {
    let Some(length_field) = buf.get(..4) else {
        return FrameStatus::Incomplete;
    };
    let command_length = BigEndian::read_u32(length_field);
    if command_length < HEADER_LEN as u32 {
        return FrameStatus::Invalid {
            command_length,
            sequence_number: None,
        };
    }
    let Some(header) = buf.get(..HEADER_LEN) else {
        return FrameStatus::Incomplete;
    };
    if command_length > max_len {
        return FrameStatus::Invalid {
            command_length,
            sequence_number: Some(BigEndian::read_u32(&header[12..16])),
        };
    }
    let len = command_length as usize;
    if buf.len() < len {
        FrameStatus::Incomplete
    } else {
        FrameStatus::Complete(len)
    }
}

/// An invalid command_length met by [`FrameBuffer::next_frame`]; the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    pub command_length: u32,
    pub sequence_number: Option<u32>,
}

impl FrameError {
    /// The generic_nack status to answer with.
    pub fn command_status(&self) -> CommandStatus {
        CommandStatus::ESME_RINVCMDLEN
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid command_length {}", self.command_length)?;
        match self.sequence_number {
            Some(seq) => write!(f, " (seq {seq})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for FrameError {}

/// The first allocation; grown up to the cap only for a frame whose valid header asks for it.
const INITIAL_CAPACITY: usize = 4_096;

/// The reader thread's buffer. Use: `read_from(&mut socket)` (Ok(0) means EOF), then call
/// `next_frame()` until it gives `Ok(None)`, decoding each frame; stop at `Err`.
///
/// Frames are slices into the buffer, valid until the next `read_from`/`push`.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Storage; bytes `start..end` are received but not yet handed out as frames.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_len: u32,
}

impl FrameBuffer {
    /// A buffer for PDUs of at most `max_len` octets (at least 16).
    pub fn new(max_len: u32) -> Self {
        let max_len = max_len.max(HEADER_LEN as u32);
        FrameBuffer {
            buf: vec![0; INITIAL_CAPACITY.min(max_len as usize)],
            start: 0,
            end: 0,
            max_len,
        }
    }

    /// Octets received and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// One `read` call into the free space. Ok(0) means end of stream. Fails (kind `Other`)
    /// when there is no space because complete or invalid frames were not taken first.
    pub fn read_from(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        if self.end == self.buf.len() {
            return Err(io::Error::other(
                "frame buffer full: take frames with next_frame before reading",
            ));
        }
        let n = reader.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Copies as much of `bytes` as fits and returns how many octets were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.make_room();
        let n = bytes.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// The next whole PDU (header included), `Ok(None)` if more bytes are needed, or the
    /// framing error that ends the connection (it is reported again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        match frame(&self.buf[self.start..self.end], self.max_len) {
            FrameStatus::Incomplete => Ok(None),
            FrameStatus::Complete(len) => {
                let frame_start = self.start;
                self.start += len;
                Ok(Some(&self.buf[frame_start..frame_start + len]))
            }
            FrameStatus::Invalid {
                command_length,
                sequence_number,
            } => Err(FrameError {
                command_length,
                sequence_number,
            }),
        }
    }

    /// Moves pending bytes to the front and grows the storage if the pending frame's (valid,
    /// capped) length needs it.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let pending = &self.buf[..self.end];
        if pending.len() >= 4 {
            let command_length = BigEndian::read_u32(&pending[..4]);
            let wanted = command_length.min(self.max_len) as usize;
            if wanted > self.buf.len() {
                self.buf.resize(wanted, 0);
            }
        }
    }
}

impl Default for FrameBuffer {
    fn default() -> Self {
        FrameBuffer::new(DEFAULT_MAX_PDU_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// submit_sm "Hello", seq 2 (55 octets).
    const SUBMIT_SM: &[u8] = &[
        0x00, 0x00, 0x00, 0x37, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x05, 0x00, 0x45, 0x53, 0x4D, 0x45, 0x44, 0x00, 0x01, 0x01, 0x34, 0x34, 0x37,
        0x37, 0x30, 0x30, 0x39, 0x30, 0x30, 0x31, 0x32, 0x33, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F,
    ];
    /// enquire_link, seq 3.
    const ENQUIRE_LINK: &[u8] = &[0, 0, 0, 0x10, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 3];

    fn header(command_length: u32, sequence_number: u32) -> Vec<u8> {
        let mut bytes = command_length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0x15, 0, 0, 0, 0]);
        bytes.extend_from_slice(&sequence_number.to_be_bytes());
        bytes
    }

    /// Hands out its data `chunk` octets per read, like a slow socket.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn every_prefix_of_a_valid_pdu_is_incomplete() {
        for len in 0..SUBMIT_SM.len() {
            assert_eq!(
                frame(&SUBMIT_SM[..len], DEFAULT_MAX_PDU_LEN),
                FrameStatus::Incomplete,
                "prefix of {len} octets"
            );
        }
        assert_eq!(
            frame(SUBMIT_SM, DEFAULT_MAX_PDU_LEN),
            FrameStatus::Complete(55)
        );
    }

    #[test]
    fn a_header_only_pdu_is_one_whole_frame() {
        assert_eq!(
            frame(ENQUIRE_LINK, DEFAULT_MAX_PDU_LEN),
            FrameStatus::Complete(16)
        );
    }

    #[test]
    fn two_pdus_back_to_back_give_two_frames() {
        let mut stream = SUBMIT_SM.to_vec();
        stream.extend_from_slice(ENQUIRE_LINK);
        assert_eq!(
            frame(&stream, DEFAULT_MAX_PDU_LEN),
            FrameStatus::Complete(55)
        );
        assert_eq!(
            frame(&stream[55..], DEFAULT_MAX_PDU_LEN),
            FrameStatus::Complete(16)
        );
    }

    #[test]
    fn lengths_below_the_header_are_invalid_at_once() {
        for command_length in [0, 1, 15] {
            let bytes = header(command_length, 9);
            let expected = FrameStatus::Invalid {
                command_length,
                sequence_number: None,
            };
            assert_eq!(frame(&bytes[..4], DEFAULT_MAX_PDU_LEN), expected);
            assert_eq!(frame(&bytes, DEFAULT_MAX_PDU_LEN), expected);
        }
    }

    #[test]
    fn lengths_over_the_cap_are_invalid_once_the_header_is_in() {
        for command_length in [DEFAULT_MAX_PDU_LEN + 1, 0x8000_0000, u32::MAX] {
            let bytes = header(command_length, 9);
            assert_eq!(
                frame(&bytes[..15], DEFAULT_MAX_PDU_LEN),
                FrameStatus::Incomplete
            );
            assert_eq!(
                frame(&bytes, DEFAULT_MAX_PDU_LEN),
                FrameStatus::Invalid {
                    command_length,
                    sequence_number: Some(9)
                }
            );
        }
        let at_cap = header(DEFAULT_MAX_PDU_LEN, 9);
        assert_eq!(frame(&at_cap, DEFAULT_MAX_PDU_LEN), FrameStatus::Incomplete);
    }

    #[test]
    fn buffer_reassembles_frames_from_one_octet_reads() {
        let mut stream = SUBMIT_SM.to_vec();
        stream.extend_from_slice(ENQUIRE_LINK);
        stream.extend_from_slice(SUBMIT_SM);
        let mut socket = Trickle {
            data: &stream,
            chunk: 1,
        };
        let mut buffer = FrameBuffer::default();
        let mut frames = Vec::new();
        while buffer.read_from(&mut socket).unwrap() > 0 {
            while let Some(frame) = buffer.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(frames, [SUBMIT_SM, ENQUIRE_LINK, SUBMIT_SM]);
        assert_eq!(buffer.buffered(), 0);
    }

    #[test]
    fn buffer_grows_for_a_large_frame_up_to_the_cap_only() {
        let mut big = header(20_000, 4);
        big.resize(20_000, 0xAB);
        let mut buffer = FrameBuffer::new(30_000);
        let mut socket = Trickle {
            data: &big,
            chunk: 7_000,
        };
        while buffer.next_frame().unwrap().is_none() {
            assert!(buffer.read_from(&mut socket).unwrap() > 0);
        }
        assert!(buffer.buf.len() <= 30_000);

        let mut liar = FrameBuffer::new(30_000);
        liar.push(&header(0x7FFF_FFFF, 5));
        liar.push(&[0; 100]);
        assert!(liar.buf.len() <= 30_000);
        let error = liar.next_frame().unwrap_err();
        assert_eq!(error.sequence_number, Some(5));
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
        assert_eq!(
            error.to_string(),
            "invalid command_length 2147483647 (seq 5)"
        );
    }

    #[test]
    fn a_full_buffer_refuses_to_read_instead_of_reporting_eof() {
        let mut buffer = FrameBuffer::new(16);
        assert_eq!(buffer.push(&[ENQUIRE_LINK, ENQUIRE_LINK].concat()), 16);
        let mut socket = Trickle {
            data: ENQUIRE_LINK,
            chunk: 16,
        };
        assert!(buffer.read_from(&mut socket).is_err());
        assert_eq!(buffer.next_frame().unwrap(), Some(ENQUIRE_LINK));
        assert_eq!(buffer.read_from(&mut socket).unwrap(), 16);
    }
}
