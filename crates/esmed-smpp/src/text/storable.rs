//! Strings from the SMSC made fit for PostgreSQL: text without NUL, and index keys of bounded
//! length. Every string esmed writes into a text column passes [`storable`]; every one it
//! writes into an indexed column passes [`index_key`]. The exact bytes stay in `pdu_raw`.
//!
//! PostgreSQL refuses U+0000 in text (and `\u0000` in jsonb), so a NUL becomes U+FFFD, which
//! a phone's text cannot tell apart from an unreadable octet: decoded texts count it as
//! invalid. A btree index refuses an entry of more than about a third of a page (2,704
//! octets with 8 kB pages), so a key is cut short, with a hash of the whole value that keeps
//! two long values apart and gives the same long value the same key wherever it comes from
//! (a submit_sm_resp's id and a receipt's).

use std::borrow::Cow;
use std::fmt::Write;

/// What stands in for a NUL.
const NUL_STANDS_IN: &str = "\u{FFFD}";

/// `s` without NUL: each becomes U+FFFD. Borrowed (no copy) when there is none, the usual case.
pub fn storable(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', NUL_STANDS_IN))
    } else {
        Cow::Borrowed(s)
    }
}

/// Replaces the NULs in `s` in place (see [`storable`]); returns how many there were.
pub fn make_storable(s: &mut String) -> usize {
    let count = s.bytes().filter(|&b| b == 0).count();
    if count > 0 {
        *s = s.replace('\0', NUL_STANDS_IN);
    }
    count
}

/// The longest index key esmed writes, in octets: far above any real message id (65) or
/// address (65), far below the btree's limit even with two keys in one index entry.
pub const INDEX_KEY_MAX: usize = 256;

/// Octets of the hash appended to a key that was cut: `#` and 16 hex digits.
const HASH_SUFFIX: usize = 17;

/// `value` as an index key: as it is up to [`INDEX_KEY_MAX`] octets; a longer one keeps its
/// first octets (cut at a char boundary) followed by `#` and a 64-bit hash of the whole
/// value, [`INDEX_KEY_MAX`] octets at most.
pub fn index_key(value: String) -> String {
    if value.len() <= INDEX_KEY_MAX {
        return value;
    }
    let mut cut = INDEX_KEY_MAX - HASH_SUFFIX;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut key = String::with_capacity(INDEX_KEY_MAX);
    key.push_str(&value[..cut]);
    // Writing to a String cannot fail.
    let _ = write!(key, "#{:016x}", fnv1a(value.as_bytes()));
    key
}

/// FNV-1a, 64 bits: fixed by its definition, so a key computed by any esmed version or
/// process is the same (std's hashers promise no such thing).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_char_and_other_text_is_not_copied() {
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
        let mut s = String::from("\0x");
        assert_eq!(make_storable(&mut s), 1);
        assert_eq!(s, "\u{FFFD}x");
        let mut clean = String::from("ok");
        assert_eq!(make_storable(&mut clean), 0);
    }

    #[test]
    fn short_keys_are_kept_and_long_ones_cut_with_a_hash() {
        let short = "a".repeat(INDEX_KEY_MAX);
        assert_eq!(index_key(short.clone()), short);
        let long = "7".repeat(5000);
        let key = index_key(long.clone());
        assert_eq!(key.len(), INDEX_KEY_MAX);
        assert!(key.starts_with(&"7".repeat(INDEX_KEY_MAX - HASH_SUFFIX)));
        assert_eq!(key, index_key(long.clone()), "the same value, the same key");
        let other = format!("{}8", &long[..4999]);
        assert_ne!(index_key(other), key, "values differing at the end differ");
    }

    #[test]
    fn a_key_is_cut_at_a_char_boundary() {
        // Three-octet chars: the cut falls inside one unless moved back.
        let long = "€".repeat(300);
        let key = index_key(long);
        assert!(key.len() <= INDEX_KEY_MAX);
        let (text, hash) = key.split_once('#').unwrap();
        assert!(text.chars().all(|c| c == '€'));
        assert_eq!(hash.len(), 16);
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
