//! Delivery receipts (SMPP 3.4 Appendix B and the receipt TLVs): recognising a receipt by esm_class, reading
//! its id, state and error from the TLVs or, failing those, from the vendor-specific text, and
//! giving the daemon match keys for ids that SMSCs write in different bases.
//!
//! Parsing is lenient by design, as SMSCs vary: labels in any case and order, unknown fields ignored,
//! missing fields left `None`. It never fails on bad input; at worst it finds no id.

use super::text::storable::index_key;
use super::tlv::{self, tag, Tlv};

/// True for an SMSC delivery receipt (type bits 0x04) or an intermediate notification (0x20).
pub fn is_receipt(esm_class: u8) -> bool {
    matches!(esm_class & 0x3C, 0x04 | 0x20)
}

/// True for an intermediate delivery notification (type bits 0x20).
pub fn is_intermediate(esm_class: u8) -> bool {
    esm_class & 0x3C == 0x20
}

/// message_state (SMPP 3.4 §5.2.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
}

/// Every state with its TLV value, its name and the `stat:` words that mean it.
const STATES: [(MessageState, u8, &str, &[&str]); 8] = [
    (MessageState::Enroute, 1, "ENROUTE", &["ENROUTE"]),
    (
        MessageState::Delivered,
        2,
        "DELIVERED",
        &["DELIVRD", "DELIVERED"],
    ),
    (MessageState::Expired, 3, "EXPIRED", &["EXPIRED"]),
    (MessageState::Deleted, 4, "DELETED", &["DELETED"]),
    (
        MessageState::Undeliverable,
        5,
        "UNDELIVERABLE",
        &["UNDELIV", "UNDELIVERABLE"],
    ),
    (
        MessageState::Accepted,
        6,
        "ACCEPTED",
        &["ACCEPTD", "ACCEPTED"],
    ),
    (MessageState::Unknown, 7, "UNKNOWN", &["UNKNOWN"]),
    (
        MessageState::Rejected,
        8,
        "REJECTED",
        &["REJECTD", "REJECTED"],
    ),
];

impl MessageState {
    /// Every state, in TLV value order.
    pub const ALL: [MessageState; 8] = [
        MessageState::Enroute,
        MessageState::Delivered,
        MessageState::Expired,
        MessageState::Deleted,
        MessageState::Undeliverable,
        MessageState::Accepted,
        MessageState::Unknown,
        MessageState::Rejected,
    ];

    /// From the name [`MessageState::as_str`] gives (as stored in the database).
    pub fn from_name(name: &str) -> Option<MessageState> {
        STATES.iter().find(|r| r.2 == name).map(|r| r.0)
    }

    fn row(self) -> &'static (MessageState, u8, &'static str, &'static [&'static str]) {
        // Every variant has a row; the fallback is never reached.
        STATES.iter().find(|r| r.0 == self).unwrap_or(&STATES[6])
    }

    /// The upper-case spec name, e.g. `DELIVERED`.
    pub fn as_str(self) -> &'static str {
        self.row().2
    }

    /// The message_state TLV / query_sm_resp value.
    pub fn value(self) -> u8 {
        self.row().1
    }

    /// From a message_state value. Values 3.4 does not define (v5.0's 0 SCHEDULED and
    /// 9 SKIPPED included) map to `Unknown`.
    pub fn from_tlv(value: u8) -> MessageState {
        STATES
            .iter()
            .find(|r| r.1 == value)
            .map_or(MessageState::Unknown, |r| r.0)
    }

    /// From a `stat:` word, short (`DELIVRD`) or full (`DELIVERED`), any case.
    pub fn from_stat_word(word: &str) -> Option<MessageState> {
        let word = word.trim();
        STATES
            .iter()
            .find(|r| r.3.iter().any(|w| w.eq_ignore_ascii_case(word)))
            .map(|r| r.0)
    }

    /// Whether more receipts may follow. ENROUTE and ACCEPTED are not final (ACCEPTD is used
    /// as "accepted by the next hop"). UNKNOWN is final: it is the SMSC's last word on
    /// the message, and waiting for a better one rarely helps.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageState::Enroute | MessageState::Accepted)
    }

    /// Rank for aggregating the parts of one message: the aggregate is the part state with
    /// the highest severity. So it is DELIVERED only when every part is; any failure beats
    /// pending states; definite failures beat UNKNOWN.
    pub fn severity(self) -> u8 {
        match self {
            MessageState::Delivered => 0,
            MessageState::Accepted => 1,
            MessageState::Enroute => 2,
            MessageState::Unknown => 3,
            MessageState::Expired => 4,
            MessageState::Deleted => 5,
            MessageState::Undeliverable => 6,
            MessageState::Rejected => 7,
        }
    }

    /// The state of a multipart message from its parts' states; `None` for no parts.
    pub fn aggregate(parts: impl IntoIterator<Item = MessageState>) -> Option<MessageState> {
        parts.into_iter().max_by_key(|s| s.severity())
    }
}

impl std::fmt::Display for MessageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a receipt says about one submitted message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's id of the original submission, as written (match with [`id_keys`]).
    pub message_id: String,
    /// True when `message_id` came from the receipted_message_id TLV, not the text.
    pub id_from_tlv: bool,
    pub state: Option<MessageState>,
    /// The raw `err:` text.
    pub error: Option<String>,
    /// network_error_code TLV: (network type, code).
    pub network_error: Option<(u8, u16)>,
    /// `submit date:` digits (10, 12 or 14), SMSC-local time.
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
    pub submitted: Option<u32>,
    pub delivered: Option<u32>,
    /// Everything after `text:`.
    pub text: Option<String>,
}

/// Reads a receipt from its decoded text and its TLVs; TLVs win: the text's format is vendor-specific. When
/// `text` is empty the message_payload TLV is read instead. `None` when no id is found.
pub fn parse_receipt(text: &str, tlvs: &[Tlv]) -> Option<Receipt> {
    let payload;
    let text = match tlv::find(tlvs, tag::MESSAGE_PAYLOAD) {
        Some(t) if text.trim().is_empty() => {
            payload = String::from_utf8_lossy(&t.value).into_owned();
            payload.as_str()
        }
        _ => text,
    };
    let fields = TextFields::parse(text);
    let from_tlv = tlv_id(tlvs);
    let id_from_tlv = from_tlv.is_some();
    let message_id = from_tlv.or_else(|| fields.get("id").map(str::to_string))?;
    let state = tlv::find_u8(tlvs, tag::MESSAGE_STATE)
        .map(MessageState::from_tlv)
        .or_else(|| fields.get("stat").and_then(MessageState::from_stat_word));
    Some(Receipt {
        message_id,
        id_from_tlv,
        state,
        error: fields.get("err").map(str::to_string),
        network_error: network_error(tlvs),
        submit_date: fields.get("submit date").and_then(date),
        done_date: fields.get("done date").and_then(date),
        submitted: fields.get("sub").and_then(|v| v.parse().ok()),
        delivered: fields.get("dlvrd").and_then(|v| v.parse().ok()),
        text: fields.text.map(str::to_string),
    })
}

fn tlv_id(tlvs: &[Tlv]) -> Option<String> {
    let raw = tlv::find_cstring(tlvs, tag::RECEIPTED_MESSAGE_ID)?;
    let id = String::from_utf8_lossy(raw);
    let id = id.trim_end_matches('\0').trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn network_error(tlvs: &[Tlv]) -> Option<(u8, u16)> {
    match tlv::find(tlvs, tag::NETWORK_ERROR_CODE)?.value.as_bytes() {
        [kind, hi, lo] => Some((*kind, u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

fn date(value: &str) -> Option<String> {
    let ok = matches!(value.len(), 10 | 12 | 14) && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.to_string())
}

/// The `label:value` pairs before `text:`, and the text after it. Borrowed from the receipt:
/// every receipt is parsed, so labels are compared in place, not lower-cased copies.
struct TextFields<'a> {
    pairs: Vec<Pair<'a>>,
    text: Option<&'a str>,
}

/// One `label:value`; a two-word label (`submit date:`) keeps its first word apart.
struct Pair<'a> {
    first_word: Option<&'a str>,
    label: &'a str,
    value: &'a str,
}

impl Pair<'_> {
    /// Whether the label is `wanted` (lower case, words separated by one space), any case.
    fn is(&self, wanted: &str) -> bool {
        match (self.first_word, wanted.split_once(' ')) {
            (None, None) => self.label.eq_ignore_ascii_case(wanted),
            (Some(first), Some((first_wanted, rest))) => {
                first.eq_ignore_ascii_case(first_wanted) && self.label.eq_ignore_ascii_case(rest)
            }
            _ => false,
        }
    }
}

impl<'a> TextFields<'a> {
    fn parse(receipt: &'a str) -> Self {
        let (head, text) = match find_label(receipt, "text:") {
            Some(at) => (&receipt[..at], Some(&receipt[at + "text:".len()..])),
            None => (receipt, None),
        };
        TextFields {
            pairs: pairs(head),
            text,
        }
    }

    /// The first value of a label (lower case); empty values count as absent.
    fn get(&self, label: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|p| p.is(label) && !p.value.is_empty())
            .map(|p| p.value)
    }
}

/// Byte offset of `label` (lower case) at the start or after whitespace, any case.
fn find_label(haystack: &str, label: &str) -> Option<usize> {
    let (bytes, wanted) = (haystack.as_bytes(), label.as_bytes());
    (0..=bytes.len().checked_sub(wanted.len())?).find(|&at| {
        bytes[at..at + wanted.len()].eq_ignore_ascii_case(wanted)
            && haystack.is_char_boundary(at)
            && haystack[..at]
                .chars()
                .next_back()
                .is_none_or(char::is_whitespace)
    })
}

/// Splits `id:1 sub:001 submit date:2501311200 …` into (label, value) pairs. A word without
/// a colon is the first half of a two-word label (`submit date:`) or a value after `label: `.
fn pairs(head: &str) -> Vec<Pair<'_>> {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    let mut pending: Option<&str> = None;
    for word in head.split_whitespace() {
        match word.split_once(':') {
            Some((label, value)) => pairs.push(Pair {
                first_word: pending.take(),
                label,
                value,
            }),
            None => match pairs.last_mut() {
                Some(pair) if pair.value.is_empty() => pair.value = word,
                _ => pending = Some(word),
            },
        }
    }
    pairs
}

/// Keys for matching a receipt's id with a submit_sm_resp's: two ids refer to the same
/// message when their key lists share a key. Keys are the case-folded id, the id without
/// leading zeros, and `#<value>` for its numeric value read as decimal and as hex, so that
/// `0A1B2C3D` and `0169552957` both yield `#169552957` (SMSCs write the same id in either base).
pub fn id_keys(id: &str) -> Vec<String> {
    let folded = id.trim().to_lowercase();
    let unpadded = folded.trim_start_matches('0');
    let unpadded = if unpadded.is_empty() && !folded.is_empty() {
        "0"
    } else {
        unpadded
    };
    let mut keys = vec![folded.clone(), unpadded.to_string()];
    for radix in [10, 16] {
        if let Some(value) = numeric_value(&folded, radix) {
            keys.push(format!("#{value}"));
        }
    }
    keys.dedup();
    keys.retain(|k| !k.is_empty());
    keys
}

/// The id's value in `radix` when every char is a digit of it (no sign, no prefix).
pub fn numeric_value(id: &str, radix: u32) -> Option<u128> {
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u128::from_str_radix(id, radix).ok()
}

/// True when the two ids share a match key.
pub fn ids_match(a: &str, b: &str) -> bool {
    let keys = id_keys(a);
    id_keys(b).iter().any(|k| keys.contains(k))
}

/// How receipt ids are compared with submit_sm_resp ids (`[daemon] receipt_id_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMatch {
    /// Same id up to case and leading zeros first; failing that, the same number written in
    /// the other base, but only where that reading is unambiguous (see [`match_keys`]).
    Auto,
    /// Same id up to case and leading zeros; no base conversion.
    Exact,
    /// The receipt text writes in hex the number submit_sm_resp gave in decimal.
    TextHex,
    /// The receipt text writes in decimal the number submit_sm_resp gave in hex.
    TextDecimal,
}

impl IdMatch {
    /// From the config word (any case).
    pub fn from_word(word: &str) -> Option<IdMatch> {
        match word.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(IdMatch::Auto),
            "exact" => Some(IdMatch::Exact),
            "text_hex" => Some(IdMatch::TextHex),
            "text_decimal" => Some(IdMatch::TextDecimal),
            _ => None,
        }
    }
}

/// The key stored for a submit_sm_resp id (`smpp_tx_parts.message_id_key`): lower case and,
/// for an id made only of hex digits (so also a decimal one), without leading zeros. A
/// decimal id's key is therefore its canonical decimal rendering and a hex id's key its
/// canonical lower-case hex rendering, which is what [`match_keys`] converts receipt ids to.
/// A key longer than an index takes is cut, with a hash of the whole ([`index_key`]), the
/// same way on both sides.
pub fn stored_key(id: &str) -> String {
    index_key(normalised(id))
}

/// [`stored_key`] before the cut.
fn normalised(id: &str) -> String {
    // Computed once per message sent: one allocation. Only ASCII letters lower-case to hex
    // digits, so testing before folding is the same as testing after.
    let trimmed = id.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return trimmed.to_lowercase();
    }
    let unpadded = trimmed.trim_start_matches('0');
    if unpadded.is_empty() {
        "0".to_string()
    } else {
        unpadded.to_ascii_lowercase()
    }
}

/// The `smpp_tx_parts.message_id_key` values a receipt id may match, each with a rank (lower
/// is better: a part matching a rank-0 key wins over one matching a rank-1 key).
///
/// `from_tlv`: the id came from receipted_message_id, which the spec defines as the
/// submit_sm_resp id, so `TextHex`/`TextDecimal` convert only ids read from the text.
/// `Auto` adds the other base's reading only when it is unambiguous: a receipt id with hex
/// letters read as hex (its decimal rendering), or a decimal id whose hex rendering has hex
/// letters (so no decimal id can share it). "10" stays "10": decimal 10 or hex 0x10 cannot be
/// told apart, so an SMSC mixing bases with such ids needs `text_hex` or `text_decimal`.
pub fn match_keys(id: &str, from_tlv: bool, mode: IdMatch) -> Vec<(String, i32)> {
    let same = normalised(id);
    if same.is_empty() {
        return Vec::new();
    }
    let as_decimal = || numeric_value(&same, 16).map(|v| v.to_string());
    let as_hex = || numeric_value(&same, 10).map(|v| format!("{v:x}"));
    let converted = match (mode, from_tlv) {
        (IdMatch::Exact, _) | (IdMatch::TextHex | IdMatch::TextDecimal, true) => None,
        (IdMatch::TextHex, false) => return as_decimal().map(|k| (k, 0)).into_iter().collect(),
        (IdMatch::TextDecimal, false) => return as_hex().map(|k| (k, 0)).into_iter().collect(),
        (IdMatch::Auto, _) => {
            let has_letters = |k: &String| k.chars().any(|c| c.is_ascii_alphabetic());
            if has_letters(&same) {
                as_decimal()
            } else {
                as_hex().filter(has_letters)
            }
        }
    };
    let mut keys = vec![(index_key(same), 0)];
    keys.extend(converted.map(|k| (index_key(k), 1)));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_10_5: &str = "id:0169552957 sub:001 dlvrd:001 submit date:2501311200 \
        done date:2501311201 stat:DELIVRD err:000 text:Hello";

    fn tlvs_10_5() -> Vec<Tlv> {
        vec![
            Tlv::new(tag::RECEIPTED_MESSAGE_ID, b"0A1B2C3D\0".to_vec()).unwrap(),
            Tlv::u8(tag::MESSAGE_STATE, 2),
            Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, 0]).unwrap(),
        ]
    }

    #[test]
    fn recognises_receipts_by_type_bits() {
        assert!(is_receipt(0x04));
        assert!(is_receipt(0x44)); // with UDHI
        assert!(is_receipt(0x05)); // mode bits ignored
        assert!(is_receipt(0x20) && is_intermediate(0x20));
        assert!(!is_receipt(0x00) && !is_receipt(0x08) && !is_receipt(0x40));
    }

    #[test]
    fn reference_10_5_tlvs_win() {
        let r = parse_receipt(TEXT_10_5, &tlvs_10_5()).unwrap();
        assert_eq!(r.message_id, "0A1B2C3D");
        assert_eq!(r.state, Some(MessageState::Delivered));
        assert_eq!(r.network_error, Some((3, 0)));
        assert_eq!(r.error.as_deref(), Some("000"));
        assert_eq!(r.submit_date.as_deref(), Some("2501311200"));
        assert_eq!(r.done_date.as_deref(), Some("2501311201"));
        assert_eq!((r.submitted, r.delivered), (Some(1), Some(1)));
        assert_eq!(r.text.as_deref(), Some("Hello"));
        assert!(ids_match(&r.message_id, "0169552957"));
    }

    #[test]
    fn reference_10_5_text_only() {
        let r = parse_receipt(TEXT_10_5, &[]).unwrap();
        assert_eq!(r.message_id, "0169552957");
        assert_eq!(r.state, Some(MessageState::Delivered));
        assert_eq!(r.network_error, None);
    }

    #[test]
    fn tolerates_the_10_3_variations() {
        let text = "Stat:undeliv ID:9f3c-AB mccmnc:23410 Submit Date:250131120000 \
            DONE DATE:20250131120000 err:0000000B TEXT:a b: c text:d";
        let r = parse_receipt(text, &[]).unwrap();
        assert_eq!(r.message_id, "9f3c-AB");
        assert_eq!(r.state, Some(MessageState::Undeliverable));
        assert_eq!(r.submit_date.as_deref(), Some("250131120000"));
        assert_eq!(r.done_date.as_deref(), Some("20250131120000"));
        assert_eq!(r.error.as_deref(), Some("0000000B"));
        assert_eq!(r.text.as_deref(), Some("a b: c text:d"));
        assert_eq!((r.submitted, r.delivered), (None, None));
    }

    #[test]
    fn minimal_and_broken_texts() {
        let r = parse_receipt("id:12345 stat:DELIVERED", &[]).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("12345", Some(MessageState::Delivered))
        );
        assert_eq!(r.text, None);
        let r = parse_receipt("id: 77 stat: REJECTD submit date:25013 done date:x", &[]).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("77", Some(MessageState::Rejected))
        );
        assert_eq!((r.submit_date, r.done_date), (None, None));
        assert_eq!(parse_receipt("stat:DELIVRD", &[]), None);
        assert_eq!(parse_receipt("", &[]), None);
        assert_eq!(parse_receipt("garbage ::: \u{0} text:", &[]), None);
        // A label must start a word: "context:" is not "text:".
        let r = parse_receipt("id:1 context:x stat:EXPIRED", &[]).unwrap();
        assert_eq!((r.state, r.text), (Some(MessageState::Expired), None));
    }

    #[test]
    fn tlv_only_and_payload_receipts() {
        let tlvs = vec![
            Tlv::new(tag::RECEIPTED_MESSAGE_ID, b"abc".to_vec()).unwrap(),
            Tlv::u8(tag::MESSAGE_STATE, 9),
        ];
        let r = parse_receipt("", &tlvs).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("abc", Some(MessageState::Unknown))
        );
        let payload = vec![Tlv::new(tag::MESSAGE_PAYLOAD, b"id:5 stat:ENROUTE".to_vec()).unwrap()];
        let r = parse_receipt("", &payload).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("5", Some(MessageState::Enroute))
        );
    }

    #[test]
    fn states_names_words_and_values() {
        let names = [
            "ENROUTE",
            "DELIVERED",
            "EXPIRED",
            "DELETED",
            "UNDELIVERABLE",
            "ACCEPTED",
            "UNKNOWN",
            "REJECTED",
        ];
        for (value, name) in (1u8..=8).zip(names) {
            let state = MessageState::from_tlv(value);
            assert_eq!(state.as_str(), name);
            assert_eq!(state.value(), value);
            assert_eq!(MessageState::from_name(name), Some(state));
            assert_eq!(MessageState::ALL[usize::from(value) - 1], state);
            assert_eq!(MessageState::from_stat_word(name), Some(state));
            assert_eq!(
                MessageState::from_stat_word(&name.to_lowercase()),
                Some(state)
            );
        }
        for (word, state) in [
            ("DELIVRD", 2),
            ("UNDELIV", 5),
            ("ACCEPTD", 6),
            ("REJECTD", 8),
        ] {
            assert_eq!(
                MessageState::from_stat_word(word),
                Some(MessageState::from_tlv(state))
            );
        }
        assert_eq!(MessageState::from_stat_word("FAILED"), None);
        assert_eq!(MessageState::from_tlv(0), MessageState::Unknown);
    }

    #[test]
    fn finality_and_aggregate() {
        use MessageState::*;
        assert!(!Enroute.is_final() && !Accepted.is_final());
        assert!(Delivered.is_final() && Unknown.is_final() && Rejected.is_final());
        assert_eq!(
            MessageState::aggregate([Delivered, Delivered]),
            Some(Delivered)
        );
        assert_eq!(MessageState::aggregate([Delivered, Enroute]), Some(Enroute));
        assert_eq!(
            MessageState::aggregate([Enroute, Expired, Delivered]),
            Some(Expired)
        );
        assert_eq!(
            MessageState::aggregate([Unknown, Undeliverable]),
            Some(Undeliverable)
        );
        assert_eq!(MessageState::aggregate([]), None);
    }

    #[test]
    fn id_keys_match_across_bases_and_case() {
        assert!(ids_match("0A1B2C3D", "0169552957"));
        assert!(ids_match("0a1b2c3d", "0A1B2C3D"));
        assert!(ids_match("000123", "123"));
        assert!(ids_match("9f3c-ab", "9F3C-AB"));
        assert!(!ids_match("0A1B2C3D", "0169552958"));
        assert!(!ids_match("abc-1", "abc-2"));
        assert_eq!(id_keys("0A1B2C3D"), ["0a1b2c3d", "a1b2c3d", "#169552957"]);
        assert_eq!(id_keys("000"), ["000", "0", "#0"]);
        assert_eq!(numeric_value("0169552957", 10), Some(169_552_957));
        assert_eq!(numeric_value("-1", 10), None);
    }

    #[test]
    fn stored_keys_fold_case_and_numeric_padding_only() {
        assert_eq!(stored_key("0000000026"), "26");
        assert_eq!(stored_key("00A1b"), "a1b");
        assert_eq!(stored_key("000"), "0");
        assert_eq!(stored_key("0ab-C"), "0ab-c");
        assert_eq!(stored_key(" "), "");
    }

    /// SMPP caps message_id at 65 octets, but peers send longer: the key is cut for the
    /// index, the same way for the submit_sm_resp's id and the receipt's, padded or not.
    #[test]
    fn a_long_id_gives_one_capped_key_on_both_sides() {
        let id = format!("{}f", "9".repeat(4999));
        let stored = stored_key(&id);
        assert!(stored.len() <= 256, "{}", stored.len());
        let padded = format!("000{}", id.to_uppercase());
        for mode in [IdMatch::Auto, IdMatch::Exact] {
            for from_tlv in [true, false] {
                let keys = match_keys(&padded, from_tlv, mode);
                assert_eq!(keys.first(), Some(&(stored.clone(), 0)), "{mode:?}");
            }
        }
        assert_ne!(stored_key(&format!("{}e", "9".repeat(4999))), stored);
    }

    #[test]
    fn match_keys_by_mode() {
        let keys = |id, tlv, mode| match_keys(id, tlv, mode);
        // Hex letters: unambiguous, so auto also tries the decimal reading.
        assert_eq!(
            keys("A0000000", false, IdMatch::Auto),
            [("a0000000".to_string(), 0), ("2684354560".to_string(), 1)]
        );
        // A decimal id whose hex form has letters: auto tries it.
        assert_eq!(
            keys("2684354560", false, IdMatch::Auto),
            [("2684354560".to_string(), 0), ("a0000000".to_string(), 1)]
        );
        // 16 is hex "10", a valid decimal id too: ambiguous, so auto stays exact.
        assert_eq!(keys("0016", true, IdMatch::Auto), [("16".to_string(), 0)]);
        assert_eq!(keys("10", false, IdMatch::TextHex), [("16".to_string(), 0)]);
        assert_eq!(
            keys("16", false, IdMatch::TextDecimal),
            [("10".to_string(), 0)]
        );
        assert_eq!(keys("10", true, IdMatch::TextHex), [("10".to_string(), 0)]);
        assert_eq!(keys("1A", false, IdMatch::Exact), [("1a".to_string(), 0)]);
        assert!(keys("xyz", false, IdMatch::TextHex).is_empty());
        assert!(keys("", false, IdMatch::Auto).is_empty());
        assert_eq!(IdMatch::from_word("Text_Hex"), Some(IdMatch::TextHex));
        assert_eq!(IdMatch::from_word("hex"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,120}", id in "[0-9A-Za-z]{0,20}") {
            let _ = parse_receipt(&text, &[]);
            let _ = parse_receipt(&format!("id:{id} {text}"), &[]);
            proptest::prop_assert!(ids_match(&id, &id.to_lowercase()) || id.is_empty());
        }
    }
}
