//! The PDU codec: [`encode`] turns a [`Pdu`](crate::Pdu) into wire bytes, [`decode`] turns one whole frame
//! (as cut by `frame`) back into a [`Pdu`](crate::Pdu). Pure functions: no I/O, no logging; a
//! decode error says which field went wrong and which command_status to answer with.
//!
//! Encoding is strict, and checked before it starts: the fields' types ([`crate::field`],
//! [`crate::tlv::TlvValue`]) refused, when built, a value too long, a NUL inside a C-string, a
//! time field other than 0 or 16 characters. The one thing left to the encoder is the whole
//! PDU's size against command_length ([`EncodeError`]), which only a TLV list or a raw body
//! could exceed, having no bound of their own. A submit_sm body checked for it once
//! ([`CheckedSm`]) and the PDUs with no field ([`Fixed`]) are encoded without a `Result`:
//! [`encode_checked_submit_sm`], [`encode_fixed`].
//! Decoding is lenient where real peers need it: over-long strings are
//! accepted, a missing NUL at the very end of the body is accepted, response bodies that are
//! absent or short decode to empty fields, and a malformed TLV tail of a response is dropped
//! while its mandatory fields are kept. Requests are checked: an overrun is a [`DecodeError`].
//!
//! Wire facts the encoder applies so callers never have to:
//! - `command_length` is back-patched, `command_id` comes from the body, `sm_length` from
//!   `short_message`;
//! - submit_sm_resp, data_sm_resp and bind_*_resp with a non-zero status, empty fields and no
//!   TLVs are sent header-only, which decodes back to the same value;
//! - deliver_sm_resp always carries its body (the single octet `00` when `message_id` is empty).

mod decode;
mod encode;
mod error;
#[cfg(test)]
mod roundtrip_tests;

pub use decode::decode;
pub use encode::{
    encode, encode_checked_submit_sm, encode_fixed, encode_submit_sm, encode_to_vec, CheckedSm,
    Fixed,
};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};

/// Size of the PDU header (command_length, command_id, command_status, sequence_number).
pub const HEADER_LEN: usize = 16;

/// Maximum sizes of the fields (SMPP 3.4 §4, §5.3): the `MAX` of their types
/// ([`crate::field`]); C-octet strings count their NUL.
pub mod max {
    pub const SYSTEM_ID: usize = 16;
    pub const PASSWORD: usize = 9;
    pub const SYSTEM_TYPE: usize = 13;
    pub const ADDRESS_RANGE: usize = 41;
    pub const SERVICE_TYPE: usize = 6;
    /// source_addr / destination_addr of submit_sm, deliver_sm, query_sm, cancel_sm.
    pub const ADDR: usize = 21;
    /// source_addr / destination_addr of data_sm, source_addr / esme_addr of alert_notification.
    pub const LONG_ADDR: usize = 65;
    pub const MESSAGE_ID: usize = 65;
    /// schedule_delivery_time, validity_period, final_date: empty or exactly 16 characters.
    pub const TIME_CHARS: usize = 16;
    /// short_message octets (sm_length 255 is not allowed).
    pub const SHORT_MESSAGE: usize = 254;
    /// A TLV value's length is a 2-octet field.
    pub const TLV_VALUE: usize = 65_535;
}

/// Lower-case hex of `bytes` without separators, as stored in `pdu_raw`.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    push_hex(&mut text, bytes);
    text
}

/// Appends [`hex`] of `bytes` to `text`.
pub fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.reserve(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_without_separators() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0A, 0xBC, 0xFF]), "000abcff");
    }
}
