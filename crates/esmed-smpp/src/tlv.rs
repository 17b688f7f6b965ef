//! Optional parameters (TLVs, SMPP 3.4 §5.3). A TLV is kept as tag + raw value so that unknown
//! and vendor tags survive decode/encode unchanged; this module names the v3.4 tags and reads
//! typed values out of a TLV list.

use crate::codec::max;
use crate::field::{FieldError, OctetString};

/// A TLV's value: its length is a 2-octet field, so at most 65,535 octets.
pub type TlvValue = OctetString<{ max::TLV_VALUE }>;

/// One optional parameter: tag and raw value (the length is the value's length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    pub tag: u16,
    pub value: TlvValue,
}

impl Tlv {
    /// The TLV if `value` fits its 2-octet length.
    pub fn new(tag: u16, value: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        Ok(Tlv {
            tag,
            value: TlvValue::new(value)?,
        })
    }

    pub fn u8(tag: u16, value: u8) -> Self {
        Tlv {
            tag,
            value: TlvValue::within_bound(vec![value]),
        }
    }

    pub fn u16(tag: u16, value: u16) -> Self {
        Tlv {
            tag,
            value: TlvValue::within_bound(value.to_be_bytes().to_vec()),
        }
    }

    /// A C-octet-string TLV: the value carries the NUL.
    pub fn cstring(tag: u16, text: &[u8]) -> Result<Self, FieldError> {
        let mut value = Vec::with_capacity(text.len() + 1);
        value.extend_from_slice(text);
        value.push(0);
        Tlv::new(tag, value)
    }

    /// The spec's name of this tag, e.g. `receipted_message_id`.
    pub fn name(&self) -> Option<&'static str> {
        tag_name(self.tag)
    }
}

/// The v3.4 tag values (SMPP 3.4 §5.3.2), by the spec's names.
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const DEST_NETWORK_TYPE: u16 = 0x0006;
    pub const DEST_BEARER_TYPE: u16 = 0x0007;
    pub const DEST_TELEMATICS_ID: u16 = 0x0008;
    pub const SOURCE_ADDR_SUBUNIT: u16 = 0x000D;
    pub const SOURCE_NETWORK_TYPE: u16 = 0x000E;
    pub const SOURCE_BEARER_TYPE: u16 = 0x000F;
    pub const SOURCE_TELEMATICS_ID: u16 = 0x0010;
    pub const QOS_TIME_TO_LIVE: u16 = 0x0017;
    pub const PAYLOAD_TYPE: u16 = 0x0019;
    pub const ADDITIONAL_STATUS_INFO_TEXT: u16 = 0x001D;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MS_MSG_WAIT_FACILITIES: u16 = 0x0030;
    pub const PRIVACY_INDICATOR: u16 = 0x0201;
    pub const SOURCE_SUBADDRESS: u16 = 0x0202;
    pub const DEST_SUBADDRESS: u16 = 0x0203;
    pub const USER_MESSAGE_REFERENCE: u16 = 0x0204;
    pub const USER_RESPONSE_CODE: u16 = 0x0205;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const LANGUAGE_INDICATOR: u16 = 0x020D;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const CALLBACK_NUM_PRES_IND: u16 = 0x0302;
    pub const CALLBACK_NUM_ATAG: u16 = 0x0303;
    pub const NUMBER_OF_MESSAGES: u16 = 0x0304;
    pub const CALLBACK_NUM: u16 = 0x0381;
    pub const DPF_RESULT: u16 = 0x0420;
    pub const SET_DPF: u16 = 0x0421;
    pub const MS_AVAILABILITY_STATUS: u16 = 0x0422;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const DELIVERY_FAILURE_REASON: u16 = 0x0425;
    pub const MORE_MESSAGES_TO_SEND: u16 = 0x0426;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const USSD_SERVICE_OP: u16 = 0x0501;
    pub const DISPLAY_TIME: u16 = 0x1201;
    pub const SMS_SIGNAL: u16 = 0x1203;
    pub const MS_VALIDITY: u16 = 0x1204;
    pub const ALERT_ON_MESSAGE_DELIVERY: u16 = 0x130C;
    pub const ITS_REPLY_TYPE: u16 = 0x1380;
    pub const ITS_SESSION_INFO: u16 = 0x1383;
}

/// Every v3.4 tag with its name, in tag order.
pub const TAGS: [(u16, &str); 44] = [
    (tag::DEST_ADDR_SUBUNIT, "dest_addr_subunit"),
    (tag::DEST_NETWORK_TYPE, "dest_network_type"),
    (tag::DEST_BEARER_TYPE, "dest_bearer_type"),
    (tag::DEST_TELEMATICS_ID, "dest_telematics_id"),
    (tag::SOURCE_ADDR_SUBUNIT, "source_addr_subunit"),
    (tag::SOURCE_NETWORK_TYPE, "source_network_type"),
    (tag::SOURCE_BEARER_TYPE, "source_bearer_type"),
    (tag::SOURCE_TELEMATICS_ID, "source_telematics_id"),
    (tag::QOS_TIME_TO_LIVE, "qos_time_to_live"),
    (tag::PAYLOAD_TYPE, "payload_type"),
    (
        tag::ADDITIONAL_STATUS_INFO_TEXT,
        "additional_status_info_text",
    ),
    (tag::RECEIPTED_MESSAGE_ID, "receipted_message_id"),
    (tag::MS_MSG_WAIT_FACILITIES, "ms_msg_wait_facilities"),
    (tag::PRIVACY_INDICATOR, "privacy_indicator"),
    (tag::SOURCE_SUBADDRESS, "source_subaddress"),
    (tag::DEST_SUBADDRESS, "dest_subaddress"),
    (tag::USER_MESSAGE_REFERENCE, "user_message_reference"),
    (tag::USER_RESPONSE_CODE, "user_response_code"),
    (tag::SOURCE_PORT, "source_port"),
    (tag::DESTINATION_PORT, "destination_port"),
    (tag::SAR_MSG_REF_NUM, "sar_msg_ref_num"),
    (tag::LANGUAGE_INDICATOR, "language_indicator"),
    (tag::SAR_TOTAL_SEGMENTS, "sar_total_segments"),
    (tag::SAR_SEGMENT_SEQNUM, "sar_segment_seqnum"),
    (tag::SC_INTERFACE_VERSION, "sc_interface_version"),
    (tag::CALLBACK_NUM_PRES_IND, "callback_num_pres_ind"),
    (tag::CALLBACK_NUM_ATAG, "callback_num_atag"),
    (tag::NUMBER_OF_MESSAGES, "number_of_messages"),
    (tag::CALLBACK_NUM, "callback_num"),
    (tag::DPF_RESULT, "dpf_result"),
    (tag::SET_DPF, "set_dpf"),
    (tag::MS_AVAILABILITY_STATUS, "ms_availability_status"),
    (tag::NETWORK_ERROR_CODE, "network_error_code"),
    (tag::MESSAGE_PAYLOAD, "message_payload"),
    (tag::DELIVERY_FAILURE_REASON, "delivery_failure_reason"),
    (tag::MORE_MESSAGES_TO_SEND, "more_messages_to_send"),
    (tag::MESSAGE_STATE, "message_state"),
    (tag::USSD_SERVICE_OP, "ussd_service_op"),
    (tag::DISPLAY_TIME, "display_time"),
    (tag::SMS_SIGNAL, "sms_signal"),
    (tag::MS_VALIDITY, "ms_validity"),
    (tag::ALERT_ON_MESSAGE_DELIVERY, "alert_on_message_delivery"),
    (tag::ITS_REPLY_TYPE, "its_reply_type"),
    (tag::ITS_SESSION_INFO, "its_session_info"),
];

/// The spec's name of a tag; `None` for vendor and unknown tags.
pub fn tag_name(tag: u16) -> Option<&'static str> {
    TAGS.iter().find(|(t, _)| *t == tag).map(|(_, name)| *name)
}

/// The first TLV with this tag.
pub fn find(tlvs: &[Tlv], tag: u16) -> Option<&Tlv> {
    tlvs.iter().find(|t| t.tag == tag)
}

/// A one-octet integer TLV; `None` when absent or of another length.
pub fn find_u8(tlvs: &[Tlv], tag: u16) -> Option<u8> {
    match find(tlvs, tag)?.value.as_bytes() {
        [v] => Some(*v),
        _ => None,
    }
}

/// A two-octet integer TLV; `None` when absent or of another length.
pub fn find_u16(tlvs: &[Tlv], tag: u16) -> Option<u16> {
    match find(tlvs, tag)?.value.as_bytes() {
        [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// A C-octet-string TLV's text without its NUL (a missing NUL is tolerated: some peers omit it).
pub fn find_cstring(tlvs: &[Tlv], tag: u16) -> Option<&[u8]> {
    let value = find(tlvs, tag)?.value.as_bytes();
    Some(value.strip_suffix(&[0]).unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_and_unique() {
        assert!(TAGS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn names_known_and_unknown_tags() {
        assert_eq!(tag_name(0x001E), Some("receipted_message_id"));
        assert_eq!(tag_name(0x1400), None);
    }

    #[test]
    fn typed_reads_check_lengths() {
        let tlvs = vec![
            Tlv::u8(tag::MESSAGE_STATE, 2),
            Tlv::new(tag::SAR_MSG_REF_NUM, vec![1, 2, 3]).unwrap(),
            Tlv::new(tag::RECEIPTED_MESSAGE_ID, b"0A1B".to_vec()).unwrap(),
        ];
        assert_eq!(find_u8(&tlvs, tag::MESSAGE_STATE), Some(2));
        assert_eq!(find_u16(&tlvs, tag::SAR_MSG_REF_NUM), None);
        assert_eq!(
            find_cstring(&tlvs, tag::RECEIPTED_MESSAGE_ID),
            Some(&b"0A1B"[..])
        );
        let tlv = Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"x").unwrap();
        assert_eq!(tlv.value, b"x\0");
    }

    #[test]
    fn a_value_holds_up_to_65535_octets() {
        assert_eq!(
            Tlv::new(0x1400, vec![7; 65_535]).unwrap().value.len(),
            65_535
        );
        assert_eq!(
            Tlv::new(tag::MESSAGE_PAYLOAD, vec![7; 65_536]),
            Err(FieldError::TooLong {
                len: 65_536,
                max: 65_535
            })
        );
        assert!(Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, &[b'x'; 65_534]).is_ok());
        assert!(Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, &[b'x'; 65_535]).is_err());
    }
}
