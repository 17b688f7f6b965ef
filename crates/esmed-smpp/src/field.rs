//! Bounded field values, checked once when built so that encoding a PDU has no field left to
//! check: [`COctet`] (a C-octet string with its maximum size as a type parameter, one alias per
//! SMPP 3.4 field), [`SmppTime`] (empty or exactly 16 characters) and [`OctetString`]
//! (short_message: [`ShortMessage`]; a TLV's value: [`TlvValue`](crate::tlv::TlvValue)).
//! Values read from a peer are kept as received (see [`COctet`]).

use std::fmt;

use crate::codec::max;

/// A C-octet string's content, without its terminating NUL, of at most `MAX - 1` octets:
/// `MAX` is the size SMPP 3.4 §4 gives the field, the NUL included (system_id: 16).
///
/// [`COctet::new`] (and `TryFrom<&str>` and friends) refuse a NUL inside and a value too long
/// for the field, so a PDU built from these values always encodes. The decoder is lenient:
/// SMSCs send over-long strings, and a value read from the wire keeps whatever octets came
/// before its NUL, however many; such a value encodes again exactly as it was received.
///
/// ```
/// use esmed_smpp::field::{FieldError, SystemId};
///
/// let id = SystemId::try_from("esme1").unwrap();
/// assert_eq!(id.as_bytes(), b"esme1");
/// assert_eq!(
///     SystemId::try_from("sixteen-octets!!"),
///     Err(FieldError::TooLong { len: 16, max: 15 })
/// );
/// assert_eq!(SystemId::new(&b"es\0me"[..]), Err(FieldError::ContainsNul { at: 2 }));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct COctet<const MAX: usize>(Vec<u8>);

/// system_id of bind_*, bind_*_resp and outbind.
pub type SystemId = COctet<{ max::SYSTEM_ID }>;
/// password of bind_* and outbind.
pub type Password = COctet<{ max::PASSWORD }>;
/// system_type of bind_*.
pub type SystemType = COctet<{ max::SYSTEM_TYPE }>;
/// address_range of bind_*.
pub type AddressRange = COctet<{ max::ADDRESS_RANGE }>;
/// service_type of submit_sm, deliver_sm, data_sm and cancel_sm.
pub type ServiceType = COctet<{ max::SERVICE_TYPE }>;
/// source_addr / destination_addr of submit_sm, deliver_sm, query_sm and cancel_sm.
pub type Addr = COctet<{ max::ADDR }>;
/// source_addr / destination_addr of data_sm, source_addr / esme_addr of alert_notification.
pub type LongAddr = COctet<{ max::LONG_ADDR }>;
/// message_id of the *_sm_resp, query_sm and cancel_sm.
pub type MessageId = COctet<{ max::MESSAGE_ID }>;

impl<const MAX: usize> COctet<MAX> {
    /// The empty string.
    pub const EMPTY: Self = COctet(Vec::new());

    /// `bytes` if they fit the field: no NUL, at most `MAX - 1` octets.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        let bytes = bytes.into();
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return Err(FieldError::ContainsNul { at });
        }
        let most = MAX.saturating_sub(1);
        if bytes.len() > most {
            return Err(FieldError::TooLong {
                len: bytes.len(),
                max: most,
            });
        }
        Ok(COctet(bytes))
    }

    /// A string read from a peer, whatever its length. The decoder alone calls it, with the
    /// octets before a NUL (or before the end of the PDU), so it never holds a NUL.
    pub(crate) fn from_peer(bytes: &[u8]) -> Self {
        debug_assert!(!bytes.contains(&0));
        COctet(bytes.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The content as text; bytes that are not UTF-8 become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl<const MAX: usize> TryFrom<&str> for COctet<MAX> {
    type Error = FieldError;

    fn try_from(s: &str) -> Result<Self, FieldError> {
        COctet::new(s)
    }
}

impl<const MAX: usize> TryFrom<String> for COctet<MAX> {
    type Error = FieldError;

    fn try_from(s: String) -> Result<Self, FieldError> {
        COctet::new(s)
    }
}

impl<const MAX: usize> TryFrom<&[u8]> for COctet<MAX> {
    type Error = FieldError;

    fn try_from(bytes: &[u8]) -> Result<Self, FieldError> {
        COctet::new(bytes)
    }
}

impl<const MAX: usize> TryFrom<Vec<u8>> for COctet<MAX> {
    type Error = FieldError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, FieldError> {
        COctet::new(bytes)
    }
}

impl<const MAX: usize> AsRef<[u8]> for COctet<MAX> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for COctet<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// schedule_delivery_time, validity_period and final_date (SMPP 3.4 §7.1): empty, or exactly
/// 16 characters. As for [`COctet`], a value read from a peer is kept as it came.
///
/// ```
/// use esmed_smpp::field::{FieldError, SmppTime};
///
/// assert!(SmppTime::try_from("250131120000000+").is_ok());
/// assert!(SmppTime::try_from("").is_ok());
/// assert_eq!(SmppTime::try_from("2501"), Err(FieldError::BadTimeLength { len: 4 }));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SmppTime(COctet<{ max::TIME_CHARS + 1 }>);

impl SmppTime {
    /// No time: the SMSC's default.
    pub const EMPTY: Self = SmppTime(COctet::EMPTY);

    /// `bytes` if they are empty or 16 octets without a NUL.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        let bytes = bytes.into();
        if !bytes.is_empty() && bytes.len() != max::TIME_CHARS {
            return Err(FieldError::BadTimeLength { len: bytes.len() });
        }
        COctet::new(bytes).map(SmppTime)
    }

    /// See [`COctet::from_peer`].
    pub(crate) fn from_peer(bytes: &[u8]) -> Self {
        SmppTime(COctet::from_peer(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The content as text; bytes that are not UTF-8 become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        self.0.to_string_lossy()
    }
}

impl TryFrom<&str> for SmppTime {
    type Error = FieldError;

    fn try_from(s: &str) -> Result<Self, FieldError> {
        SmppTime::new(s)
    }
}

impl AsRef<[u8]> for SmppTime {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for SmppTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Octets of any value, at most `MAX` of them (an octet string has no NUL to count):
/// short_message is a [`ShortMessage`]. Built with [`OctetString::new`] (or `TryFrom`), which
/// refuses a longer value; read as a `[u8]` through `Deref`. As for [`COctet`], the decoder
/// keeps what a peer sends (an sm_length of 255) and it encodes back as received.
///
/// ```
/// use esmed_smpp::field::{FieldError, ShortMessage};
///
/// let text = ShortMessage::try_from(&b"hello"[..]).unwrap();
/// assert_eq!(text.len(), 5);
/// assert_eq!(
///     ShortMessage::new(vec![b'x'; 255]),
///     Err(FieldError::TooLong { len: 255, max: 254 })
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OctetString<const MAX: usize>(Vec<u8>);

/// short_message of submit_sm and deliver_sm: sm_length is one octet and 255 is reserved.
pub type ShortMessage = OctetString<{ max::SHORT_MESSAGE }>;

impl<const MAX: usize> OctetString<MAX> {
    /// No octets.
    pub const EMPTY: Self = OctetString(Vec::new());

    /// `bytes` if there are at most `MAX` of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        let bytes = bytes.into();
        if bytes.len() > MAX {
            return Err(FieldError::TooLong {
                len: bytes.len(),
                max: MAX,
            });
        }
        Ok(OctetString(bytes))
    }

    /// Octets read from a peer, however many (see [`COctet::from_peer`]).
    pub(crate) fn from_peer(bytes: &[u8]) -> Self {
        OctetString(bytes.to_vec())
    }

    /// For this crate's own values whose size is known to fit (a one- or two-octet TLV).
    pub(crate) fn within_bound(bytes: Vec<u8>) -> Self {
        debug_assert!(bytes.len() <= MAX);
        OctetString(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl<const MAX: usize> std::ops::Deref for OctetString<MAX> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> AsRef<[u8]> for OctetString<MAX> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<&[u8]> for OctetString<MAX> {
    type Error = FieldError;

    fn try_from(bytes: &[u8]) -> Result<Self, FieldError> {
        OctetString::new(bytes)
    }
}

impl<const MAX: usize> TryFrom<Vec<u8>> for OctetString<MAX> {
    type Error = FieldError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, FieldError> {
        OctetString::new(bytes)
    }
}

impl<const MAX: usize> PartialEq<[u8]> for OctetString<MAX> {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl<const MAX: usize, const N: usize> PartialEq<[u8; N]> for OctetString<MAX> {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.0 == other
    }
}

impl<const MAX: usize, const N: usize> PartialEq<&[u8; N]> for OctetString<MAX> {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.0 == *other
    }
}

impl<const MAX: usize> PartialEq<Vec<u8>> for OctetString<MAX> {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.0 == *other
    }
}

/// Why a value does not fit its field. The caller knows which field it was building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// `len` octets where the field holds at most `max` (for a C-octet string, `max` does not
    /// count the NUL).
    TooLong { len: usize, max: usize },
    /// A NUL at offset `at`, which would end the C-octet string early on the wire.
    ContainsNul { at: usize },
    /// A time field must be empty or exactly 16 characters.
    BadTimeLength { len: usize },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::TooLong { len, max } => write!(f, "{len} octets, at most {max} allowed"),
            FieldError::ContainsNul { at } => write!(f, "NUL octet at offset {at}"),
            FieldError::BadTimeLength { len } => {
                write!(f, "{len} characters, must be 0 or 16")
            }
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_up_to_the_field_size_less_its_nul_is_accepted() {
        assert_eq!(SystemId::new("a".repeat(15)).unwrap().len(), 15);
        assert_eq!(
            SystemId::new("a".repeat(16)),
            Err(FieldError::TooLong { len: 16, max: 15 })
        );
        assert_eq!(Password::new("p".repeat(8)).unwrap().len(), 8);
        assert_eq!(
            Password::new("p".repeat(9)),
            Err(FieldError::TooLong { len: 9, max: 8 })
        );
        assert_eq!(
            MessageId::new("7".repeat(65)),
            Err(FieldError::TooLong { len: 65, max: 64 })
        );
        assert!(LongAddr::new("7".repeat(64)).is_ok());
        assert!(Addr::new("7".repeat(21)).is_err());
    }

    #[test]
    fn empty_is_accepted_and_equals_the_constant() {
        assert_eq!(Addr::new(""), Ok(Addr::EMPTY));
        assert_eq!(Addr::EMPTY, Addr::default());
        assert!(Addr::EMPTY.is_empty());
        assert_eq!(SmppTime::new(""), Ok(SmppTime::EMPTY));
    }

    #[test]
    fn a_nul_anywhere_is_refused_with_its_offset() {
        assert_eq!(
            Addr::new(&b"\0ESMED"[..]),
            Err(FieldError::ContainsNul { at: 0 })
        );
        assert_eq!(
            Addr::new(&b"ES\0ED"[..]),
            Err(FieldError::ContainsNul { at: 2 })
        );
        // At the very end too: the encoder adds the NUL itself.
        assert_eq!(
            Addr::new(&b"ESMED\0"[..]),
            Err(FieldError::ContainsNul { at: 5 })
        );
    }

    #[test]
    fn times_are_empty_or_16_characters_without_nul() {
        assert!(SmppTime::new("000001000000000R").is_ok());
        for len in [1, 15, 17] {
            assert_eq!(
                SmppTime::new("7".repeat(len)),
                Err(FieldError::BadTimeLength { len })
            );
        }
        assert_eq!(
            SmppTime::new(&b"00000100000000\0R"[..]),
            Err(FieldError::ContainsNul { at: 14 })
        );
    }

    #[test]
    fn a_short_message_holds_any_octets_up_to_254() {
        assert_eq!(ShortMessage::new(vec![0; 254]).unwrap().len(), 254);
        assert_eq!(
            ShortMessage::new(vec![0; 255]),
            Err(FieldError::TooLong { len: 255, max: 254 })
        );
        assert_eq!(ShortMessage::new(Vec::new()), Ok(ShortMessage::EMPTY));
        assert_eq!(ShortMessage::new(&b"a\0b"[..]).unwrap(), b"a\0b");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = FieldError::TooLong { len: 16, max: 15 };
        assert_eq!(e.to_string(), "16 octets, at most 15 allowed");
        assert_eq!(
            FieldError::ContainsNul { at: 2 }.to_string(),
            "NUL octet at offset 2"
        );
    }
}
