//! From a queued row to submit_sm bodies: checks the row, picks the text coding, splits long
//! texts, and fills addresses, priority and registered_delivery as the original daemon did.

use crate::handoff::{RegisteredDelivery, TxRow};
use crate::smpp::codec::CheckedSm;
use crate::smpp::concat::{segment, LongMode};
use crate::smpp::pdu::{Address, ShortMessage, Sm};
use crate::smpp::text::{choose, CodingPolicy};
use crate::smpp::FieldError;

/// Everything about the server that shapes a submit_sm.
#[derive(Debug, Clone)]
pub(crate) struct SubmitSettings {
    /// esme_source_addr; a row's smpp_source_addr overrides it.
    pub(crate) source_addr: Option<String>,
    /// Explicit TON/NPI for the source; `None` chooses them from the address's shape.
    pub(crate) source_ton_npi: Option<(u8, u8)>,
    pub(crate) dest_ton: u8,
    pub(crate) dest_npi: u8,
    pub(crate) receipts: ReceiptPolicy,
    pub(crate) coding: CodingPolicy,
    pub(crate) long_mode: LongMode,
    pub(crate) max_segments: usize,
    pub(crate) max_attempts: i32,
    /// Vendor statuses (0x400–0x4FF) that this provider documents as permanent.
    pub(crate) permanent_statuses: Vec<u32>,
    /// Backoff between attempts after transient failures.
    pub(crate) retry_min: std::time::Duration,
    pub(crate) retry_max: std::time::Duration,
}

/// How registered_delivery is chosen (the original daemon's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiptPolicy {
    /// Transceiver (or receiver bind) with esme_registered_delivery: always ask.
    Always,
    /// Transceiver (or receiver bind) without it: as the row says.
    PerRow,
    /// Transmitter only: receipts could not reach us, never ask.
    Never,
}

/// Why a row cannot be submitted at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowError(pub(crate) String);

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The submit_sm bodies for a row, part 1 first, each checked once here so that sending it
/// cannot fail.
pub(crate) fn build_parts(
    row: &TxRow,
    settings: &SubmitSettings,
) -> Result<Vec<CheckedSm>, RowError> {
    let destination = destination_address(&row.destination, settings)?;
    let source = source_address(row.source_override.as_deref(), settings)?;
    check_text(&row.short_message)?;
    let coding = choose(&row.short_message, settings.coding);
    let reference = concat_reference(row.id);
    let segments = segment(
        &row.short_message,
        coding,
        settings.long_mode,
        reference,
        settings.max_segments,
    )
    .map_err(|e| RowError(format!("cannot split the text: {e}")))?;
    let registered_delivery = match settings.receipts {
        ReceiptPolicy::Always => 1,
        ReceiptPolicy::PerRow => registered_delivery_flag(row.registered_delivery),
        ReceiptPolicy::Never => 0,
    };
    // repeat_n clones for all but the last part: a one-part message copies no address.
    let addresses = std::iter::repeat_n((source, destination), segments.len());
    let parts = segments.len();
    segments
        .into_iter()
        .zip(addresses)
        .enumerate()
        .map(|(part, (seg, (source, destination)))| {
            let sm = Sm {
                source,
                destination,
                esm_class: if seg.esm_class_udhi { 0x40 } else { 0 },
                priority_flag: row.priority,
                registered_delivery,
                data_coding: coding.data_coding(),
                short_message: ShortMessage::new(seg.short_message).map_err(|e| {
                    RowError(format!(
                        "part {} of {parts} cannot be encoded: short_message: {e}",
                        part + 1
                    ))
                })?,
                tlvs: seg.tlvs,
                ..Sm::default()
            };
            CheckedSm::new(sm).map_err(|e| {
                RowError(format!(
                    "part {} of {parts} cannot be encoded: {e}",
                    part + 1
                ))
            })
        })
        .collect()
}

/// The registered_delivery octet for the row's smpp_registered_delivery (SMPP 3.4 §5.2.17).
fn registered_delivery_flag(requested: RegisteredDelivery) -> u8 {
    match requested {
        RegisteredDelivery::NotRequested => 0x00,
        RegisteredDelivery::Requested => 0x01,
        RegisteredDelivery::RequestedForFailure => 0x02,
    }
}

/// The concatenation reference of a row's parts: derived from the row id so that a retry
/// of the missing parts of a long message reuses the reference of the parts already sent.
pub(crate) fn concat_reference(row_id: i64) -> u16 {
    (row_id & 0xFFFF) as u16
}

fn destination_address(raw: &str, settings: &SubmitSettings) -> Result<Address, RowError> {
    let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
    if digits.is_empty() {
        return Err(RowError("empty destination address".into()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RowError(format!(
            "invalid destination address '{raw}': only digits (and a leading +) are allowed"
        )));
    }
    // Digits only, so the one way not to fit is length.
    Address::new(settings.dest_ton, settings.dest_npi, digits).map_err(|e| match e {
        FieldError::TooLong { len, max } => RowError(format!(
            "invalid destination address '{raw}': {len} digits, at most {max}"
        )),
        e => RowError(format!("invalid destination address '{raw}': {e}")),
    })
}

fn source_address(
    row_override: Option<&str>,
    settings: &SubmitSettings,
) -> Result<Address, RowError> {
    let raw = row_override
        .or(settings.source_addr.as_deref())
        .unwrap_or("")
        .trim();
    if raw.is_empty() {
        // The SMSC substitutes the account's default sender.
        return Ok(Address::default());
    }
    let (ton, npi) = settings
        .source_ton_npi
        .unwrap_or_else(|| ton_npi_from_shape(raw));
    let addr = if ton == 1 {
        raw.strip_prefix('+').unwrap_or(raw)
    } else {
        raw
    };
    let printable = addr.is_ascii() && !addr.bytes().any(|b| b.is_ascii_control());
    let address = Address::new(ton, npi, addr).ok().filter(|_| printable);
    let Some(address) = address else {
        return Err(RowError(format!(
            "invalid source address '{raw}': at most 20 printable ASCII characters"
        )));
    };
    if ton == 5 && addr.len() > 11 {
        return Err(RowError(format!(
            "invalid source address '{raw}': alphanumeric senders are limited to 11 characters"
        )));
    }
    Ok(address)
}

/// Alphanumeric → 5/0; a short code (up to 6 digits) → 3/0; other numbers → international 1/1.
pub(crate) fn ton_npi_from_shape(addr: &str) -> (u8, u8) {
    let digits = addr.strip_prefix('+').unwrap_or(addr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        (5, 0)
    } else if digits.len() <= 6 && !addr.starts_with('+') {
        (3, 0)
    } else {
        (1, 1)
    }
}

fn check_text(text: &str) -> Result<(), RowError> {
    if text.is_empty() {
        return Err(RowError("empty message text".into()));
    }
    let control = text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && *c != '\n' && *c != '\r');
    if let Some((position, c)) = control {
        return Err(RowError(format!(
            "message text has control character U+{:04X} at position {}",
            u32::from(c),
            position + 1
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings() -> SubmitSettings {
        SubmitSettings {
            source_addr: Some("ESMED".into()),
            source_ton_npi: None,
            dest_ton: 1,
            dest_npi: 1,
            receipts: ReceiptPolicy::PerRow,
            coding: CodingPolicy::Gsm7,
            long_mode: LongMode::Udh8,
            max_segments: 10,
            max_attempts: 3,
            permanent_statuses: Vec::new(),
            retry_min: std::time::Duration::from_secs(5),
            retry_max: std::time::Duration::from_secs(600),
        }
    }

    pub(crate) fn row(id: i64, destination: &str, text: &str) -> TxRow {
        TxRow {
            id,
            destination: destination.into(),
            source_override: None,
            priority: 0,
            registered_delivery: RegisteredDelivery::Requested,
            short_message: text.into(),
            attempts: 0,
            accepted_parts: Vec::new(),
            insert_timestamp: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_gsm_row_becomes_the_reference_submit_sm() {
        // the golden submit_sm "Hello": ESMED (5/0) to 447700900123 (1/1), registered_delivery 1, "Hello"
        let parts = build_parts(&row(1, "447700900123", "Hello"), &settings()).unwrap();
        assert_eq!(parts.len(), 1);
        let sm = &parts[0];
        assert_eq!(sm.source, Address::new(5, 0, "ESMED").unwrap());
        assert_eq!(sm.destination, Address::new(1, 1, "447700900123").unwrap());
        assert_eq!(
            (sm.esm_class, sm.registered_delivery, sm.data_coding),
            (0, 1, 0)
        );
        assert_eq!(sm.short_message, b"Hello");
    }

    #[test]
    fn long_texts_split_with_the_row_ids_reference() {
        let text = "x".repeat(200);
        let parts = build_parts(&row(0x1234, "447700900123", &text), &settings()).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.esm_class == 0x40));
        assert_eq!(parts[0].short_message[..6], [5, 0, 3, 0x34, 2, 1]);
        assert_eq!(parts[1].short_message[..6], [5, 0, 3, 0x34, 2, 2]);
    }

    #[test]
    fn receipt_policy_follows_the_original_daemon() {
        let mut s = settings();
        let mut r = row(1, "447700900123", "Hi");
        r.registered_delivery = RegisteredDelivery::RequestedForFailure;
        assert_eq!(build_parts(&r, &s).unwrap()[0].registered_delivery, 2);
        s.receipts = ReceiptPolicy::Always;
        r.registered_delivery = RegisteredDelivery::NotRequested;
        assert_eq!(build_parts(&r, &s).unwrap()[0].registered_delivery, 1);
        s.receipts = ReceiptPolicy::Never;
        r.registered_delivery = RegisteredDelivery::Requested;
        assert_eq!(build_parts(&r, &s).unwrap()[0].registered_delivery, 0);
    }

    #[test]
    fn sources_get_ton_npi_from_their_shape_and_rows_override() {
        assert_eq!(ton_npi_from_shape("ESMED"), (5, 0));
        assert_eq!(ton_npi_from_shape("12345"), (3, 0));
        assert_eq!(ton_npi_from_shape("447700900123"), (1, 1));
        assert_eq!(ton_npi_from_shape("+4477"), (1, 1));
        let mut r = row(1, "+447700900123", "Hi");
        r.source_override = Some("+447700900999".into());
        let sm = &build_parts(&r, &settings()).unwrap()[0];
        assert_eq!(sm.source, Address::new(1, 1, "447700900999").unwrap());
        assert_eq!(sm.destination.addr.as_bytes(), b"447700900123");
    }

    #[test]
    fn bad_rows_fail_with_a_clear_reason() {
        let s = settings();
        let cases = [
            (row(1, "", "Hi"), "empty destination address"),
            (row(1, "4477abc", "Hi"), "only digits"),
            (row(1, &"1".repeat(21), "Hi"), "21 digits, at most 20"),
            (row(1, "447700900123", ""), "empty message text"),
            (
                row(1, "447700900123", "a\u{7}b"),
                "control character U+0007 at position 2",
            ),
            (
                row(1, "447700900123", &"x".repeat(2000)),
                "cannot split the text",
            ),
        ];
        for (r, expected) in cases {
            let error = build_parts(&r, &s).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{error:?} should contain {expected:?}"
            );
        }
        let mut r = row(1, "447700900123", "Hi");
        r.source_override = Some("A-very-long-sender".into());
        let error = build_parts(&r, &s).unwrap_err().to_string();
        assert!(error.contains("limited to 11 characters"), "{error}");
    }
}
