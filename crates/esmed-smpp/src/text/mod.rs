//! Text codings for short_message (data_coding, SMPP 3.4 §5.2.19): choosing a coding for outgoing text
//! under the configured policy, encoding it, and decoding incoming user data by data_coding.
//!
//! Decoding never fails: bytes a coding cannot read become U+FFFD and are counted in
//! [`Decoded::invalid`], so the daemon can store the text and log how much was lost. So does
//! a NUL, which PostgreSQL cannot store in text (see [`storable`]).

pub mod gsm7;
pub mod storable;

use std::fmt;

use super::codec::hex;
use super::word::UnknownWord;
use std::str::FromStr;

/// A coding esmed writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// GSM 03.38 default alphabet, unpacked (data_coding 0).
    Gsm7,
    /// ISO-8859-1 (data_coding 3).
    Latin1,
    /// UCS2 in practice UTF-16BE, surrogate pairs for non-BMP chars (data_coding 8).
    Ucs2,
    /// IA5 / ASCII (data_coding 1). [`choose`] never picks it; it exists for decoding.
    Ascii,
}

impl Coding {
    /// The data_coding value to send with this coding.
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => 0x00,
            Coding::Ascii => 0x01,
            Coding::Latin1 => 0x03,
            Coding::Ucs2 => 0x08,
        }
    }

    /// The coding of a text data_coding; `None` for binary and unsupported values.
    pub fn from_data_coding(data_coding: u8) -> Option<Coding> {
        match data_coding {
            0x00 | 0xF0..=0xF3 => Some(Coding::Gsm7),
            0x01 => Some(Coding::Ascii),
            0x03 => Some(Coding::Latin1),
            0x08 => Some(Coding::Ucs2),
            _ => None,
        }
    }
}

/// The `coding` setting: which coding outgoing text may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodingPolicy {
    /// GSM 7-bit when every char is in the GSM tables, else UCS2.
    Gsm7,
    /// The old daemon's rule: printable ASCII (and CR, LF) as GSM 7-bit, else UCS2.
    AsciiOnly,
    /// Latin-1 when every char is below U+0100, else UCS2.
    Latin1,
    /// Always UCS2.
    Ucs2,
}

impl FromStr for CodingPolicy {
    type Err = UnknownWord;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        match word.trim().to_ascii_lowercase().as_str() {
            "gsm7" => Ok(CodingPolicy::Gsm7),
            "ascii_only" => Ok(CodingPolicy::AsciiOnly),
            "latin1" => Ok(CodingPolicy::Latin1),
            "ucs2" => Ok(CodingPolicy::Ucs2),
            _ => Err(UnknownWord::new(
                "coding",
                "gsm7, ascii_only, latin1 or ucs2",
                word,
            )),
        }
    }
}

/// The coding `text` is sent in under `policy`.
///
/// `ascii_only` accepts printable ASCII plus CR and LF (the GSM basic table has both; TAB and
/// other controls it has not). Those chars are sent through the GSM table, where
/// `@ $ _ [ ] { } \ ^ ~ |` have other codes than in ASCII; the backtick has no GSM code at
/// all, so a text containing one goes as UCS2.
pub fn choose(text: &str, policy: CodingPolicy) -> Coding {
    let fits = match policy {
        CodingPolicy::Gsm7 => gsm7::can_encode(text),
        CodingPolicy::AsciiOnly => text.chars().all(is_plain_ascii),
        CodingPolicy::Latin1 => text.chars().all(|c| u32::from(c) <= 0xFF),
        CodingPolicy::Ucs2 => false,
    };
    match (fits, policy) {
        (true, CodingPolicy::Latin1) => Coding::Latin1,
        (true, _) => Coding::Gsm7,
        (false, _) => Coding::Ucs2,
    }
}

fn is_plain_ascii(c: char) -> bool {
    matches!(c, ' '..='~' | '\r' | '\n') && c != '`'
}

/// A char the chosen coding cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError {
    pub ch: char,
    pub coding: Coding,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "character U+{:04X} cannot be written in {:?}",
            u32::from(self.ch),
            self.coding
        )
    }
}

impl std::error::Error for EncodeError {}

/// Appends one char's octets in `coding`; the unit the splitter never cuts.
pub fn encode_char(c: char, coding: Coding, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let error = EncodeError { ch: c, coding };
    match coding {
        Coding::Gsm7 => gsm7::encode_char(c).ok_or(error)?.push_to(out),
        Coding::Latin1 => out.push(u8::try_from(u32::from(c)).map_err(|_| error)?),
        Coding::Ascii if c.is_ascii() => out.push(c as u8),
        Coding::Ascii => return Err(error),
        Coding::Ucs2 => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(&unit.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// The whole text in `coding` (GSM unpacked).
pub fn encode(text: &str, coding: Coding) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        encode_char(c, coding, &mut out)?;
    }
    Ok(out)
}

/// Incoming user data as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The text; for binary data, the octets in upper-case hex.
    pub text: String,
    /// How many octets (or UTF-16 units) were unreadable, or NUL, and became U+FFFD.
    pub invalid: usize,
    /// True when the data_coding says binary or is not a text coding esmed reads.
    pub binary: bool,
}

/// Decodes user data (UDH already removed) by its data_coding: 0 and 0xF0–0xF3 GSM 7-bit
/// unpacked, 1 ASCII, 3 Latin-1, 6 ISO-8859-5, 7 ISO-8859-8, 8 UTF-16BE; anything else is
/// kept as hex with `binary` set. A NUL (a 0x00 pad octet, U+0000 in UTF-16) becomes U+FFFD
/// and counts as invalid.
pub fn decode(data_coding: u8, bytes: &[u8]) -> Decoded {
    let (mut text, invalid) = match data_coding {
        0x00 | 0xF0..=0xF3 => gsm7::decode(bytes),
        0x01 => decode_ascii(bytes),
        0x03 => (bytes.iter().map(|&b| char::from(b)).collect(), 0),
        0x06 => decode_single_byte(encoding_rs::ISO_8859_5, bytes),
        0x07 => decode_single_byte(encoding_rs::ISO_8859_8, bytes),
        0x08 => decode_utf16be(bytes),
        _ => {
            return Decoded {
                text: hex(bytes),
                invalid: 0,
                binary: true,
            }
        }
    };
    let nuls = storable::make_storable(&mut text);
    Decoded {
        text,
        invalid: invalid + nuls,
        binary: false,
    }
}

fn decode_ascii(bytes: &[u8]) -> (String, usize) {
    let invalid = bytes.iter().filter(|b| !b.is_ascii()).count();
    let text = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect();
    (text, invalid)
}

/// Single-byte codings map each bad octet to exactly one U+FFFD, and the input cannot hold a
/// genuine U+FFFD, so counting them counts the bad octets.
fn decode_single_byte(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> (String, usize) {
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    let invalid = text
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER)
        .count();
    (text.into_owned(), invalid)
}

/// UTF-16BE without BOM handling; lone surrogates and an odd final octet count as invalid.
fn decode_utf16be(bytes: &[u8]) -> (String, usize) {
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text = String::with_capacity(bytes.len());
    let mut invalid = 0;
    for unit in char::decode_utf16(units) {
        text.push(unit.unwrap_or_else(|_| {
            invalid += 1;
            char::REPLACEMENT_CHARACTER
        }));
    }
    if bytes.len() % 2 == 1 {
        text.push(char::REPLACEMENT_CHARACTER);
        invalid += 1;
    }
    (text, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_from_config_words() {
        assert_eq!("gsm7".parse(), Ok(CodingPolicy::Gsm7));
        assert_eq!("ascii_only".parse(), Ok(CodingPolicy::AsciiOnly));
        assert_eq!(" Latin1 ".parse(), Ok(CodingPolicy::Latin1));
        assert_eq!("ucs2".parse(), Ok(CodingPolicy::Ucs2));
        let err = "utf8".parse::<CodingPolicy>().unwrap_err();
        assert!(err.to_string().contains("utf8"));
    }

    #[test]
    fn choose_follows_each_policy() {
        use CodingPolicy as P;
        assert_eq!(choose("Hello [world] €", P::Gsm7), Coding::Gsm7);
        assert_eq!(choose("Привет", P::Gsm7), Coding::Ucs2);
        assert_eq!(choose("a{b}|~^\\ @$_\r\n", P::AsciiOnly), Coding::Gsm7);
        assert_eq!(choose("back`tick", P::AsciiOnly), Coding::Ucs2);
        assert_eq!(choose("tab\there", P::AsciiOnly), Coding::Ucs2);
        assert_eq!(choose("café", P::AsciiOnly), Coding::Ucs2);
        assert_eq!(choose("café ÿ", P::Latin1), Coding::Latin1);
        assert_eq!(choose("€", P::Latin1), Coding::Ucs2);
        assert_eq!(choose("plain", P::Ucs2), Coding::Ucs2);
        assert_eq!(choose("", P::Gsm7), Coding::Gsm7);
    }

    #[test]
    fn data_coding_values() {
        assert_eq!(Coding::Gsm7.data_coding(), 0);
        assert_eq!(Coding::Ascii.data_coding(), 1);
        assert_eq!(Coding::Latin1.data_coding(), 3);
        assert_eq!(Coding::Ucs2.data_coding(), 8);
        assert_eq!(Coding::from_data_coding(0xF1), Some(Coding::Gsm7));
        assert_eq!(Coding::from_data_coding(0x04), None);
    }

    #[test]
    fn ascii_through_gsm_table_uses_gsm_codes() {
        assert_eq!(
            encode("@$_[", Coding::Gsm7).unwrap(),
            [0x00, 0x02, 0x11, 0x1B, 0x3C]
        );
    }

    #[test]
    fn latin1_is_not_windows_1252() {
        let bytes = [0x80, 0x9F, 0xE9];
        assert_eq!(decode(3, &bytes).text, "\u{80}\u{9F}é");
        assert_eq!(encode("\u{80}é", Coding::Latin1).unwrap(), [0x80, 0xE9]);
        assert!(encode("€", Coding::Latin1).is_err());
    }

    #[test]
    fn ucs2_uses_surrogate_pairs() {
        assert_eq!(
            encode("😀", Coding::Ucs2).unwrap(),
            [0xD8, 0x3D, 0xDE, 0x00]
        );
        assert_eq!(decode(8, &[0xD8, 0x3D, 0xDE, 0x00, 0x00, 0x41]).text, "😀A");
    }

    #[test]
    fn bad_input_is_replaced_and_counted() {
        let odd = decode(8, &[0x00, 0x41, 0x00]);
        assert_eq!((odd.text.as_str(), odd.invalid), ("A\u{FFFD}", 1));
        let lone = decode(8, &[0xD8, 0x3D, 0x00, 0x41]);
        assert_eq!((lone.text.as_str(), lone.invalid), ("\u{FFFD}A", 1));
        let ascii = decode(1, b"ok\xC3");
        assert_eq!((ascii.text.as_str(), ascii.invalid), ("ok\u{FFFD}", 1));
        let gsm = decode(0, &[0x48, 0xE9]);
        assert_eq!((gsm.text.as_str(), gsm.invalid), ("H\u{FFFD}", 1));
    }

    #[test]
    fn nul_in_any_text_coding_is_replaced_and_counted() {
        let latin1 = decode(3, b"pad\0");
        assert_eq!((latin1.text.as_str(), latin1.invalid), ("pad\u{FFFD}", 1));
        let ascii = decode(1, b"a\0b");
        assert_eq!((ascii.text.as_str(), ascii.invalid), ("a\u{FFFD}b", 1));
        let ucs2 = decode(8, &[0, b'a', 0, 0, 0, b'b']);
        assert_eq!((ucs2.text.as_str(), ucs2.invalid), ("a\u{FFFD}b", 1));
        // GSM 0x00 is '@', not NUL.
        assert_eq!(decode(0, &[0x00]).invalid, 0);
    }

    #[test]
    fn binary_and_unknown_codings_become_hex() {
        for dc in [0x02, 0x04, 0xF4, 0xF6, 0x05, 0xE0] {
            let d = decode(dc, &[0x00, 0xAB]);
            assert_eq!(d.text, "00ab");
            assert!(d.binary);
        }
    }

    #[test]
    fn cyrillic_latin_uses_encoding_rs() {
        assert_eq!(decode(6, &[0xBF]).text, "П");
        assert_eq!(decode(7, &[0xE0]).text, "א");
        assert_eq!(decode(7, &[0xBF]).invalid, 1);
    }

    #[test]
    fn gsm_flash_class_decodes_as_gsm() {
        assert_eq!(decode(0xF0, &[0x00, 0x41]).text, "@A");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_never_panics(dc in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let d = decode(dc, &bytes);
                prop_assert!(d.invalid <= bytes.len());
                prop_assert!(!d.text.contains('\0'));
            }

            #[test]
            fn chosen_coding_round_trips(text in "\\PC{0,80}", policy in 0usize..4) {
                let policy = [CodingPolicy::Gsm7, CodingPolicy::AsciiOnly, CodingPolicy::Latin1, CodingPolicy::Ucs2][policy];
                let coding = choose(&text, policy);
                let bytes = encode(&text, coding).unwrap();
                let back = decode(coding.data_coding(), &bytes);
                prop_assert_eq!(back.invalid, 0);
                // ç is written as Ç in GSM (a lossy fallback); every other case is exact.
                let expected = if coding == Coding::Gsm7 { text.replace('ç', "Ç") } else { text };
                prop_assert_eq!(back.text, expected);
            }
        }
    }
}
