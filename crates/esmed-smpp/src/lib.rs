//! The SMPP 3.4 protocol layer: pure types and functions, no I/O and no logging, so every part
//! can be tested byte for byte and fuzzed. The SMPP 3.4 specification is the source of truth
//! for every constant here.
//!
//! The entry points: [`encode`] a [`Pdu`] into wire bytes; cut a byte stream into whole PDUs
//! with [`frame()`] (or [`FrameBuffer`] over a reader) and [`decode`] each one. A PDU's fields
//! are typed with their sizes ([`field`]: [`COctet`], [`SmppTime`], `ShortMessage`; TLV
//! values), checked when a value is built, so the encoder has no field to check. Around them:
//! [`text`] (data_coding), [`concat`](mod@concat) (long messages), [`udh`], [`receipt`] (delivery
//! receipts), [`json`] (a PDU for logs) and [`status`] (command_status names and classes).
//!
//! ```
//! use esmed_smpp::{decode, encode, frame, Body, FrameStatus, Pdu};
//!
//! // Two PDUs back to back, as a socket may deliver them.
//! let mut stream = Vec::new();
//! encode(&Pdu::new(1, Body::EnquireLink), &mut stream).unwrap();
//! encode(&Pdu::new(2, Body::Unbind), &mut stream).unwrap();
//!
//! let mut seen = Vec::new();
//! let mut rest = &stream[..];
//! while let FrameStatus::Complete(len) = frame(rest, esmed_smpp::frame::DEFAULT_MAX_PDU_LEN) {
//!     seen.push(decode(&rest[..len]).unwrap());
//!     rest = &rest[len..];
//! }
//! assert_eq!(seen, [Pdu::new(1, Body::EnquireLink), Pdu::new(2, Body::Unbind)]);
//! ```

pub mod codec;
pub mod command_id;
pub mod concat;
pub mod field;
pub mod frame;
pub mod json;
pub mod pdu;
pub mod receipt;
pub mod reference;
pub mod sequence;
pub mod status;
pub mod text;
pub mod tlv;
pub mod udh;
pub mod word;

#[cfg(test)]
mod golden_tests;

/// The README's example runs with the doc tests, so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

pub use codec::{
    decode, encode, encode_checked_submit_sm, encode_fixed, encode_submit_sm, encode_to_vec, hex,
    push_hex, CheckedSm, DecodeError, EncodeError, Fixed,
};
pub use command_id::CommandId;
pub use field::{COctet, FieldError, SmppTime};
pub use frame::{frame, FrameBuffer, FrameStatus};
pub use pdu::{Address, Body, Pdu};
pub use sequence::SequenceNumbers;
pub use status::CommandStatus;
pub use tlv::Tlv;
