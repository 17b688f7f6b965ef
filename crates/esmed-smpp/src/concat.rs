//! Long messages: cutting an encoded text into parts that each fit one
//! SMS, with a concatenation UDH, SAR TLVs, or the whole text in message_payload.
//!
//! A char is never cut: GSM escape pairs and UTF-16 surrogate pairs stay in one part, so a
//! part may carry a little less than its capacity. Texts that fit one SMS give one plain part
//! in every mode.

use std::fmt;
use std::str::FromStr;

use super::text::{self, Coding, EncodeError};
use super::tlv::{tag, Tlv};
use super::udh::Concat;
use super::word::UnknownWord;

/// The limit on parts when the configuration does not set one.
pub const DEFAULT_MAX_SEGMENTS: usize = 10;

/// The largest message_payload value (its length field is 16 bits).
pub const MAX_PAYLOAD: usize = crate::codec::max::TLV_VALUE;

/// How a text longer than one SMS is sent (config words `udh`, `udh16`, `sar`, `payload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongMode {
    /// UDH with IEI 0x00 and an 8-bit reference (the low octet of the given reference).
    Udh8,
    /// UDH with IEI 0x08 and a 16-bit reference.
    Udh16,
    /// sar_* TLVs; the SMSC builds the UDH, so parts leave room for a 7-octet one.
    Sar,
    /// One PDU with the whole text in message_payload.
    Payload,
}

impl FromStr for LongMode {
    type Err = UnknownWord;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        match word.trim().to_ascii_lowercase().as_str() {
            "udh" | "udh8" => Ok(LongMode::Udh8),
            "udh16" => Ok(LongMode::Udh16),
            "sar" => Ok(LongMode::Sar),
            "payload" => Ok(LongMode::Payload),
            _ => Err(UnknownWord::new(
                "long-message mode",
                "udh, udh16, sar or payload",
                word,
            )),
        }
    }
}

/// One submit_sm's worth of user data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Segment {
    /// The short_message field: UDH first in the Udh modes, then the encoded text.
    pub short_message: Vec<u8>,
    /// Set esm_class bit 0x40 for this part.
    pub esm_class_udhi: bool,
    /// sar_* TLVs (Sar mode) or message_payload (Payload mode).
    pub tlvs: Vec<Tlv>,
}

/// Why a text cannot be sent as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    Unrepresentable(EncodeError),
    TooManySegments { needed: usize, limit: usize },
    PayloadTooLong { octets: usize },
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::Unrepresentable(e) => e.fmt(f),
            SplitError::TooManySegments { needed, limit } => {
                write!(f, "text needs {needed} segments, limit is {limit}")
            }
            SplitError::PayloadTooLong { octets } => write!(
                f,
                "text is {octets} octets, message_payload holds at most {MAX_PAYLOAD}"
            ),
        }
    }
}

impl std::error::Error for SplitError {}

impl From<EncodeError> for SplitError {
    fn from(e: EncodeError) -> Self {
        SplitError::Unrepresentable(e)
    }
}

/// What surrounds the text in one SMS, which decides how much text fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    None,
    /// 6-octet concatenation UDH.
    Udh6,
    /// 7-octet concatenation UDH (ours, or the one the SMSC adds for SAR).
    Udh7,
}

/// Octets of encoded text (unpacked GSM: septets) one part can carry.
pub fn capacity(coding: Coding, header: Header) -> usize {
    match (coding, header) {
        (Coding::Gsm7, Header::None) => 160,
        (Coding::Gsm7, Header::Udh6) => 153,
        (Coding::Gsm7, Header::Udh7) => 152,
        (_, Header::None) => 140,
        (_, Header::Udh6) => 134,
        // UCS2: 66 whole units; 8-bit codings: 133 octets.
        (Coding::Ucs2, Header::Udh7) => 132,
        (_, Header::Udh7) => 133,
    }
}

/// Cuts `text`, encoded in `coding`, into the parts `mode` sends.
pub fn segment(
    text: &str,
    coding: Coding,
    mode: LongMode,
    reference: u16,
    max_segments: usize,
) -> Result<Vec<Segment>, SplitError> {
    let (bytes, char_ends) = encode_with_boundaries(text, coding)?;
    if bytes.len() <= capacity(coding, Header::None) {
        return Ok(vec![plain(bytes)]);
    }
    if mode == LongMode::Payload {
        return payload(bytes).map(|s| vec![s]);
    }
    let header = match mode {
        LongMode::Udh8 => Header::Udh6,
        _ => Header::Udh7,
    };
    let parts = cut(&bytes, &char_ends, capacity(coding, header));
    let limit = max_segments.min(usize::from(u8::MAX));
    if parts.len() > limit {
        return Err(SplitError::TooManySegments {
            needed: parts.len(),
            limit,
        });
    }
    let total = parts.len() as u8; // <= 255, checked above
    Ok(parts
        .iter()
        .zip(1..=total)
        .map(|(part, seq)| numbered(part, mode, reference, total, seq))
        .collect())
}

/// The encoded text and the offset where each char's octets end.
fn encode_with_boundaries(
    text: &str,
    coding: Coding,
) -> Result<(Vec<u8>, Vec<usize>), EncodeError> {
    let mut bytes = Vec::with_capacity(text.len() * 2);
    let mut ends = Vec::with_capacity(text.len());
    for c in text.chars() {
        text::encode_char(c, coding, &mut bytes)?;
        ends.push(bytes.len());
    }
    Ok((bytes, ends))
}

/// Greedy cut at char boundaries, each part at most `cap` octets.
fn cut<'a>(bytes: &'a [u8], char_ends: &[usize], cap: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut last_fit = 0;
    for &end in char_ends {
        if end - start > cap {
            parts.push(&bytes[start..last_fit]);
            start = last_fit;
        }
        last_fit = end;
    }
    if start < bytes.len() {
        parts.push(&bytes[start..]);
    }
    parts
}

fn plain(bytes: Vec<u8>) -> Segment {
    Segment {
        short_message: bytes,
        esm_class_udhi: false,
        tlvs: Vec::new(),
    }
}

fn payload(bytes: Vec<u8>) -> Result<Segment, SplitError> {
    let octets = bytes.len();
    let payload =
        Tlv::new(tag::MESSAGE_PAYLOAD, bytes).map_err(|_| SplitError::PayloadTooLong { octets })?;
    Ok(Segment {
        short_message: Vec::new(),
        esm_class_udhi: false,
        tlvs: vec![payload],
    })
}

fn numbered(part: &[u8], mode: LongMode, reference: u16, total: u8, seq: u8) -> Segment {
    if mode == LongMode::Sar {
        return Segment {
            short_message: part.to_vec(),
            esm_class_udhi: false,
            tlvs: vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, reference),
                Tlv::u8(tag::SAR_TOTAL_SEGMENTS, total),
                Tlv::u8(tag::SAR_SEGMENT_SEQNUM, seq),
            ],
        };
    }
    let concat = Concat {
        reference,
        total,
        seq,
        ref16: mode == LongMode::Udh16,
    };
    let mut short_message = concat.to_udh();
    short_message.extend_from_slice(part);
    Segment {
        short_message,
        esm_class_udhi: true,
        tlvs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::UCS2_TEXT as RUSSIAN;

    /// short_message of the two parts of the long-message example in `smpp::reference` (offset 0x32 of each dump on).
    const PART1: &str = "0500032A0201041204300448002004370430043A0430043700202116003400380032\
        003100330020043F04350440043504340430043D0020043A04430440044C043504400443002E0020\
        0414043E0441044204300432043A0430002004370430043204420440043000200441002000310030\
        003A0030003000200434043E002000310034003A00300030";
    const PART2: &str = "0500032A0202D83DDE0000200421043F0430044104380431043E0021";

    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn reference_9_4_udh8_golden() {
        let parts = segment(RUSSIAN, Coding::Ucs2, LongMode::Udh8, 0x2A, 10).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message, unhex(PART1));
        assert_eq!(parts[1].short_message, unhex(PART2));
        assert!(parts.iter().all(|p| p.esm_class_udhi && p.tlvs.is_empty()));
    }

    #[test]
    fn reference_9_4_sar_golden() {
        let parts = segment(RUSSIAN, Coding::Ucs2, LongMode::Sar, 0x2A, 10).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message, unhex(&PART1[12..]));
        assert_eq!(parts[1].short_message, unhex(&PART2[12..]));
        let wire = |tlvs: &[Tlv]| -> Vec<u8> {
            tlvs.iter()
                .flat_map(|t| {
                    let mut v = t.tag.to_be_bytes().to_vec();
                    v.extend((t.value.len() as u16).to_be_bytes());
                    v.extend_from_slice(&t.value);
                    v
                })
                .collect()
        };
        assert_eq!(
            wire(&parts[0].tlvs),
            unhex("020C0002002A 020E000102 020F000101")
        );
        assert_eq!(
            wire(&parts[1].tlvs),
            unhex("020C0002002A 020E000102 020F000102")
        );
        assert!(parts.iter().all(|p| !p.esm_class_udhi));
    }

    #[test]
    fn reference_9_4_udh16_variant() {
        let parts = segment(RUSSIAN, Coding::Ucs2, LongMode::Udh16, 0x2A, 10).unwrap();
        assert_eq!(
            parts[0].short_message[..7],
            [0x06, 0x08, 0x04, 0x00, 0x2A, 0x02, 0x01]
        );
        assert_eq!(
            parts[1].short_message[..7],
            [0x06, 0x08, 0x04, 0x00, 0x2A, 0x02, 0x02]
        );
        assert_eq!(parts[0].short_message[7..], unhex(&PART1[12..]));
        assert_eq!(parts[1].short_message[7..], unhex(&PART2[12..]));
    }

    #[test]
    fn reference_9_4_payload() {
        let parts = segment(RUSSIAN, Coding::Ucs2, LongMode::Payload, 0x2A, 1).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(parts[0].short_message.is_empty());
        assert_eq!(parts[0].tlvs[0].tag, tag::MESSAGE_PAYLOAD);
        assert_eq!(parts[0].tlvs[0].value.len(), 154);
    }

    #[test]
    fn single_part_texts_carry_no_udh() {
        for mode in [
            LongMode::Udh8,
            LongMode::Udh16,
            LongMode::Sar,
            LongMode::Payload,
        ] {
            let parts = segment(&"x".repeat(160), Coding::Gsm7, mode, 1, 10).unwrap();
            assert_eq!(parts, vec![plain(vec![b'x'; 160])]);
        }
        assert_eq!(
            segment("", Coding::Ucs2, LongMode::Udh8, 1, 10).unwrap(),
            vec![Segment::default()]
        );
    }

    #[test]
    fn gsm_capacities_and_escape_pairs() {
        let parts = segment(&"a".repeat(161), Coding::Gsm7, LongMode::Udh8, 7, 10).unwrap();
        assert_eq!(parts[0].short_message.len(), 6 + 153);
        let sar = segment(&"a".repeat(161), Coding::Gsm7, LongMode::Sar, 7, 10).unwrap();
        assert_eq!(sar[0].short_message.len(), 152);
        // 152 'a' then '€' (2 septets): one septet of room left, so the pair moves on.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let parts = segment(&text, Coding::Gsm7, LongMode::Udh8, 7, 10).unwrap();
        assert_eq!(parts[0].short_message.len(), 6 + 152);
        assert_eq!(parts[1].short_message[6..8], [0x1B, 0x65]);
    }

    #[test]
    fn eight_bit_capacities() {
        let parts = segment(&"é".repeat(141), Coding::Latin1, LongMode::Udh8, 1, 10).unwrap();
        assert_eq!(parts[0].short_message.len(), 6 + 134);
        let parts = segment(&"é".repeat(141), Coding::Latin1, LongMode::Udh16, 1, 10).unwrap();
        assert_eq!(parts[0].short_message.len(), 7 + 133);
    }

    #[test]
    fn too_many_segments_is_a_clear_error() {
        let text = "x".repeat(153 * 11 + 1);
        let err = segment(&text, Coding::Gsm7, LongMode::Udh8, 1, 10).unwrap_err();
        assert_eq!(err.to_string(), "text needs 12 segments, limit is 10");
        let err = segment(
            &"x".repeat(70_000),
            Coding::Latin1,
            LongMode::Payload,
            1,
            10,
        );
        assert!(matches!(
            err,
            Err(SplitError::PayloadTooLong { octets: 70_000 })
        ));
        let err = segment("`", Coding::Gsm7, LongMode::Udh8, 1, 10);
        assert!(matches!(err, Err(SplitError::Unrepresentable(_))));
    }

    #[test]
    fn modes_parse_from_config_words() {
        assert_eq!("udh".parse(), Ok(LongMode::Udh8));
        assert_eq!("UDH16".parse(), Ok(LongMode::Udh16));
        assert_eq!("sar".parse(), Ok(LongMode::Sar));
        assert_eq!("payload".parse(), Ok(LongMode::Payload));
        assert!("split".parse::<LongMode>().is_err());
    }

    mod props {
        use super::super::*;
        use crate::text::{choose, decode, CodingPolicy};
        use crate::udh::split_udh;
        use proptest::prelude::*;

        const MODES: [LongMode; 4] = [
            LongMode::Udh8,
            LongMode::Udh16,
            LongMode::Sar,
            LongMode::Payload,
        ];
        const POLICIES: [CodingPolicy; 3] =
            [CodingPolicy::Gsm7, CodingPolicy::Latin1, CodingPolicy::Ucs2];

        /// Air-interface octets of one part: GSM septets are packed after the UDH and its
        /// fill bits; SAR parts must leave room for the 7-octet UDH the SMSC adds.
        fn air_octets(seg: &Segment, coding: Coding, mode: LongMode) -> usize {
            let (udh_len, text_len) = match (seg.esm_class_udhi, mode) {
                (true, _) => {
                    let udh_len = usize::from(seg.short_message[0]) + 1;
                    (udh_len, seg.short_message.len() - udh_len)
                }
                (false, LongMode::Sar) if !seg.tlvs.is_empty() => (7, seg.short_message.len()),
                _ => (0, seg.short_message.len()),
            };
            match coding {
                Coding::Gsm7 => {
                    (udh_len * 8 + (7 - (udh_len * 8) % 7) % 7 + text_len * 7).div_ceil(8)
                }
                _ => udh_len + text_len,
            }
        }

        fn text_of(seg: &Segment, coding: Coding) -> String {
            let user_data = match (seg.esm_class_udhi, seg.tlvs.first()) {
                (true, _) => split_udh(&seg.short_message).unwrap().1.to_vec(),
                (false, Some(t)) if t.tag == tag::MESSAGE_PAYLOAD => t.value.to_vec(),
                _ => seg.short_message.clone(),
            };
            let decoded = decode(coding.data_coding(), &user_data);
            assert_eq!(decoded.invalid, 0);
            decoded.text
        }

        fn texts() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,400}",
                "[a-z€\\[\\]{}|^~\\\\ ]{0,500}",
                "[a-zé😀Ж ]{0,300}",
            ]
        }

        proptest! {
            #[test]
            fn parts_join_back_to_the_text(text in texts(), mode in 0usize..4, policy in 0usize..3) {
                let (mode, coding) = (MODES[mode], choose(&text, POLICIES[policy]));
                let parts = match segment(&text, coding, mode, 0x1234, 255) {
                    Ok(parts) => parts,
                    Err(SplitError::TooManySegments { .. }) => return Ok(()),
                    Err(e) => panic!("{e}"),
                };
                let joined: String = parts.iter().map(|p| text_of(p, coding)).collect();
                let expected = if coding == Coding::Gsm7 { text.replace('ç', "Ç") } else { text };
                prop_assert_eq!(joined, expected);
                if mode != LongMode::Payload {
                    for p in &parts {
                        prop_assert!(air_octets(p, coding, mode) <= 140);
                    }
                }
            }
        }
    }
}
