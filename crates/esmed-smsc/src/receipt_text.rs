//! Building the deliver_sm of a delivery receipt (SMPP 3.4 Appendix B): addresses swapped,
//! esm_class 0x04 (0x20 for an intermediate notification), the de-facto text
//! `id:… sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000
//! text:…` and, when enabled, the receipted_message_id / message_state / network_error_code
//! TLVs. Pure functions; dates are UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use esmed_smpp::pdu::{ShortMessage, Sm};
use esmed_smpp::receipt::MessageState;
use esmed_smpp::tlv::tag;
use esmed_smpp::{text, udh, Address, FieldError, SmppTime, Tlv};

/// What the SMSC remembers of a submit to write its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedMessage {
    /// The id given in submit_sm_resp.
    pub message_id: String,
    /// The id as written in the receipt text.
    pub text_id: String,
    pub source: Address,
    pub destination: Address,
    pub submitted_at: SystemTime,
    /// The first 20 characters of the text, as printable ASCII.
    pub text_start: String,
}

/// The first 20 characters of a submit's text (UDH skipped), non-ASCII shown as `?`.
pub fn text_start(data_coding: u8, esm_class: u8, short_message: &[u8]) -> String {
    let user_data = if esm_class & 0x40 != 0 {
        udh::split_udh(short_message).map_or(short_message, |(_, rest)| rest)
    } else {
        short_message
    };
    text::decode(data_coding, user_data)
        .text
        .chars()
        .take(20)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// The receipt body for `message` in `state`, done at `done_at`; an error when the text does
/// not fit a short_message (a text id of more than 150 characters).
pub fn receipt_sm(
    message: &SubmittedMessage,
    state: MessageState,
    done_at: SystemTime,
    with_tlvs: bool,
) -> Result<Sm, FieldError> {
    let delivered = state == MessageState::Delivered;
    let err = if delivered || !state.is_final() { 0 } else { 1 };
    let text = format!(
        "id:{} sub:001 dlvrd:{} submit date:{} done date:{} stat:{} err:{:03} text:{}",
        message.text_id,
        if delivered { "001" } else { "000" },
        yymmddhhmm(message.submitted_at),
        yymmddhhmm(done_at),
        stat_word(state),
        err,
        message.text_start
    );
    let mut tlvs = Vec::new();
    if with_tlvs {
        tlvs.push(Tlv::cstring(
            tag::RECEIPTED_MESSAGE_ID,
            message.message_id.as_bytes(),
        )?);
        tlvs.push(Tlv::u8(tag::MESSAGE_STATE, state.value()));
        tlvs.push(Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, 0, err])?);
    }
    Ok(Sm {
        source: message.destination.clone(),
        destination: message.source.clone(),
        esm_class: if state == MessageState::Enroute {
            0x20
        } else {
            0x04
        },
        short_message: ShortMessage::new(text)?,
        tlvs,
        ..Sm::default()
    })
}

/// The 7-letter `stat:` word of the receipt text.
pub fn stat_word(state: MessageState) -> &'static str {
    match state {
        MessageState::Enroute => "ENROUTE",
        MessageState::Delivered => "DELIVRD",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Accepted => "ACCEPTD",
        MessageState::Unknown => "UNKNOWN",
        MessageState::Rejected => "REJECTD",
    }
}

/// `YYMMDDhhmm` in UTC.
pub fn yymmddhhmm(at: SystemTime) -> String {
    let (y, mo, d, h, mi, _) = utc_fields(at);
    format!("{:02}{mo:02}{d:02}{h:02}{mi:02}", y % 100)
}

/// `YYMMDDhhmmss000+` (SMPP 3.4 §7.1.1 absolute time, UTC) for query_sm_resp's final_date.
pub fn smpp_absolute_time(at: SystemTime) -> SmppTime {
    let (y, mo, d, h, mi, s) = utc_fields(at);
    let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}000+", y % 100);
    // Six two-digit fields (the year modulo 100) and "000+": always 16 characters.
    SmppTime::new(text).unwrap_or_default()
}

/// (year, month, day, hour, minute, second) in UTC; times before 1970 count as 1970.
fn utc_fields(at: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use esmed_smpp::receipt::parse_receipt;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_are_utc_fields() {
        // 2025-01-31 12:00:05 UTC
        assert_eq!(yymmddhhmm(at(1_738_324_805)), "2501311200");
        let time = smpp_absolute_time(at(1_738_324_805));
        assert_eq!(time.as_bytes(), b"250131120005000+");
        assert_eq!(
            smpp_absolute_time(UNIX_EPOCH).as_bytes(),
            b"700101000000000+"
        );
        // 2024-02-29 23:59 UTC, a leap day
        assert_eq!(yymmddhhmm(at(1_709_251_140)), "2402292359");
    }

    #[test]
    fn receipt_reads_back_with_the_project_parser() {
        let message = SubmittedMessage {
            message_id: "1A".into(),
            text_id: "0000000026".into(),
            source: Address::new(5, 0, "ESMED").unwrap(),
            destination: Address::new(1, 1, "447700900123").unwrap(),
            submitted_at: at(1_738_324_800),
            text_start: text_start(0, 0, b"Hello there, this is longer than twenty"),
        };
        let sm = receipt_sm(&message, MessageState::Delivered, at(1_738_324_860), true).unwrap();
        assert_eq!(sm.esm_class, 0x04);
        assert_eq!(sm.source.addr.as_bytes(), b"447700900123");
        let text = String::from_utf8(sm.short_message.to_vec()).unwrap();
        assert_eq!(
            text,
            "id:0000000026 sub:001 dlvrd:001 submit date:2501311200 done date:2501311201 \
             stat:DELIVRD err:000 text:Hello there, this is"
        );
        let receipt = parse_receipt(&text, &sm.tlvs).unwrap();
        assert_eq!(receipt.message_id, "1A");
        assert_eq!(receipt.state, Some(MessageState::Delivered));
        let plain = receipt_sm(&message, MessageState::Undeliverable, at(0), false).unwrap();
        let text = String::from_utf8(plain.short_message.into_bytes()).unwrap();
        let receipt = parse_receipt(&text, &plain.tlvs).unwrap();
        assert_eq!(receipt.message_id, "0000000026");
        assert_eq!(receipt.state, Some(MessageState::Undeliverable));
        assert_eq!(receipt.error.as_deref(), Some("001"));
    }

    #[test]
    fn text_start_skips_udh_and_masks_non_ascii() {
        let mut sm = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01];
        sm.extend_from_slice(&[0x00, 0xE9, 0x00, 0x41]);
        assert_eq!(text_start(8, 0x40, &sm), "?A");
    }
}
