//! GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1): our own basic and extension tables, and
//! the unpacked form SMPP uses for data_coding 0 (one septet per octet, escapes as `1B xx`).
//! Packing septets for the air interface is the SMSC's job, not this module's.

/// The escape septet that reaches the extension table.
pub const ESC: u8 = 0x1B;

/// Basic table, septet value → char. Index 0x1B is the escape and never decodes to this
/// entry (a space stands in for it, as 23.038 says for an unsupported escape).
pub const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// Extension table: code after `1B` → char. Each costs two septets.
pub const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How one char is written in unpacked GSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsmCode {
    Basic(u8),
    Extended(u8),
}

impl GsmCode {
    /// Septets (= octets, unpacked) this char costs.
    pub fn septets(self) -> usize {
        match self {
            GsmCode::Basic(_) => 1,
            GsmCode::Extended(_) => 2,
        }
    }

    pub fn push_to(self, out: &mut Vec<u8>) {
        match self {
            GsmCode::Basic(b) => out.push(b),
            GsmCode::Extended(b) => out.extend_from_slice(&[ESC, b]),
        }
    }
}

/// The GSM code of a char; `None` when the default alphabet cannot write it.
/// `ç` is written as `Ç` (0x09): the lossy fallback GSM 03.38 itself suggests.
pub fn encode_char(c: char) -> Option<GsmCode> {
    // Most text is ASCII: a table lookup instead of searching the tables (the search was
    // 15 % of esmed's CPU in the burst benchmark).
    match ASCII_CODES.get(c as usize) {
        Some(code) => *code,
        None => search_tables(c),
    }
}

/// [`encode_char`] for every ASCII char, made from the tables at compile time.
const ASCII_CODES: [Option<GsmCode>; 128] = ascii_codes();

const fn ascii_codes() -> [Option<GsmCode>; 128] {
    let mut table = [None; 128];
    let mut septet = 0;
    while septet < 128 {
        let c = BASIC[septet] as usize;
        // The first septet of a char wins, as in the search; the ESC slot is not a space.
        if septet != ESC as usize && c < 128 && table[c].is_none() {
            table[c] = Some(GsmCode::Basic(septet as u8));
        }
        septet += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        let (code, c) = EXTENSION[i];
        if (c as usize) < 128 && table[c as usize].is_none() {
            table[c as usize] = Some(GsmCode::Extended(code));
        }
        i += 1;
    }
    table
}

/// [`encode_char`] by searching the basic then the extension table.
fn search_tables(c: char) -> Option<GsmCode> {
    if c == 'ç' {
        return Some(GsmCode::Basic(0x09));
    }
    // Skip the ESC slot: its stand-in space must not shadow the real space at 0x20.
    let basic = (0u8..128).find(|&i| i != ESC && BASIC[usize::from(i)] == c);
    if let Some(septet) = basic {
        return Some(GsmCode::Basic(septet));
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(code, _)| GsmCode::Extended(*code))
}

/// True when every char is in the basic or extension table.
pub fn can_encode(text: &str) -> bool {
    text.chars().all(|c| encode_char(c).is_some())
}

/// Unpacked septets for `text`; `None` if a char is not in the tables.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        encode_char(c)?.push_to(&mut out);
    }
    Some(out)
}

/// Septet count of `text` (extension chars count 2); `None` if not encodable.
pub fn septet_len(text: &str) -> Option<usize> {
    text.chars()
        .map(|c| encode_char(c).map(GsmCode::septets))
        .sum()
}

/// Decodes unpacked septets. Returns the text and how many octets were invalid (above 0x7F)
/// and replaced by U+FFFD. Escape rules of 23.038: `1B` + unknown code shows the basic char,
/// `1B 1B` shows a space, `1B 0D` (CR2) and a trailing lone `1B` show nothing.
pub fn decode(bytes: &[u8]) -> (String, usize) {
    let mut text = String::with_capacity(bytes.len());
    let mut invalid = 0;
    let mut iter = bytes.iter().copied().peekable();
    while let Some(b) = iter.next() {
        if b > 0x7F {
            text.push(char::REPLACEMENT_CHARACTER);
            invalid += 1;
        } else if b != ESC {
            text.push(BASIC[usize::from(b)]);
        } else if let Some(next) = iter.next_if(|n| *n <= 0x7F) {
            if let Some(c) = decode_escaped(next) {
                text.push(c);
            }
        }
    }
    (text, invalid)
}

fn decode_escaped(code: u8) -> Option<char> {
    if let Some((_, c)) = EXTENSION.iter().find(|(e, _)| *e == code) {
        return Some(*c);
    }
    match code {
        0x0D => None,
        ESC => Some(' '),
        other => Some(BASIC[usize::from(other)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_spot_checks_from_the_reference() {
        assert_eq!(BASIC[0x00], '@');
        assert_eq!(BASIC[0x02], '$');
        assert_eq!(BASIC[0x11], '_');
        assert_eq!(BASIC[0x24], '¤');
        assert_eq!(BASIC[0x40], '¡');
        assert_eq!(BASIC[0x5F], '§');
        assert_eq!(BASIC[0x60], '¿');
        assert_eq!(BASIC[0x7F], 'à');
        assert_eq!(BASIC[0x1E], 'ß');
    }

    #[test]
    fn every_basic_entry_round_trips() {
        for (i, &c) in BASIC.iter().enumerate() {
            if i as u8 == ESC {
                continue;
            }
            assert_eq!(encode_char(c), Some(GsmCode::Basic(i as u8)), "{c:?}");
            assert_eq!(decode(&[i as u8]).0, c.to_string());
        }
    }

    #[test]
    fn extension_chars_cost_two() {
        for (code, c) in EXTENSION {
            assert_eq!(encode_char(c), Some(GsmCode::Extended(code)));
            assert_eq!(decode(&[ESC, code]).0, c.to_string());
        }
        assert_eq!(septet_len("a€[b"), Some(6));
        assert_eq!(septet_len("`"), None);
    }

    #[test]
    fn the_ascii_table_agrees_with_the_search() {
        for c in (0u8..128).map(char::from) {
            assert_eq!(encode_char(c), search_tables(c), "{c:?}");
        }
        assert_eq!(encode_char(' '), Some(GsmCode::Basic(0x20)));
        assert_eq!(encode_char('`'), None);
        assert_eq!(encode_char('€'), Some(GsmCode::Extended(0x65)));
    }

    #[test]
    fn both_cedillas_encode_to_0x09() {
        assert_eq!(encode("Çç"), Some(vec![0x09, 0x09]));
    }

    #[test]
    fn reference_example_price() {
        assert_eq!(
            encode("Price: 10€").unwrap(),
            [0x50, 0x72, 0x69, 0x63, 0x65, 0x3A, 0x20, 0x31, 0x30, 0x1B, 0x65]
        );
    }

    #[test]
    fn odd_escapes_and_invalid_octets() {
        assert_eq!(decode(&[ESC, 0x41]), ("A".to_string(), 0));
        assert_eq!(decode(&[ESC, ESC]), (" ".to_string(), 0));
        assert_eq!(decode(&[0x41, ESC, 0x0D, 0x42]), ("AB".to_string(), 0));
        assert_eq!(decode(&[0x41, ESC]), ("A".to_string(), 0));
        assert_eq!(
            decode(&[0x80, ESC, 0xFF]),
            ("\u{FFFD}\u{FFFD}".to_string(), 2)
        );
    }
}
