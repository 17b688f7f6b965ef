//! The SMPP 3.4 protocol layer: pure types and functions, no I/O and no logging, so every part
//! can be tested byte for byte and fuzzed. The SMPP 3.4 specification is the source of truth
//! for every constant here.

pub mod codec;
pub mod command_id;
pub mod concat;
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

#[cfg(test)]
mod golden_tests;

pub use codec::{
    decode, encode, encode_submit_sm, encode_to_vec, hex, push_hex, DecodeError, EncodeError,
};
pub use command_id::CommandId;
pub use frame::{frame, FrameBuffer, FrameStatus};
pub use pdu::{Address, Body, COctet, Pdu};
pub use sequence::SequenceNumbers;
pub use status::CommandStatus;
pub use tlv::Tlv;
