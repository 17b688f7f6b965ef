//! The SMPP 3.4 protocol layer: pure types and functions, no I/O and no logging, so every part
//! can be tested byte for byte and fuzzed. `../shared/docs/smpp34-reference.md` is the source
//! of truth for every constant here.

pub mod command_id;
pub mod concat;
pub mod json;
pub mod pdu;
pub mod receipt;
pub mod status;
pub mod text;
pub mod tlv;
pub mod udh;

pub use command_id::CommandId;
pub use pdu::{Address, Body, COctet, Pdu};
pub use status::CommandStatus;
pub use tlv::Tlv;
