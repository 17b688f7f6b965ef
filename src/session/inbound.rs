//! What esmed stores for a PDU the SMSC sends (deliver_sm, data_sm): the raw bytes as hex, the
//! decoded PDU as JSON, the addresses, the decoded text and, for a delivery receipt, what it
//! says about which message; for one part of a concatenated MO, which set it belongs to
//! (UDH 8/16-bit reference or SAR TLVs), so the DB writer can hold it until the set is whole.

use crate::handoff::{MoPart, RxRow};
use crate::smpp::codec::hex;
use crate::smpp::json::pdu_to_json;
use crate::smpp::pdu::Body;
use crate::smpp::receipt::{is_receipt, parse_receipt};
use crate::smpp::text::decode;
use crate::smpp::tlv::{self, tag, Tlv};
use crate::smpp::udh::{split_udh, Concat};
use crate::smpp::Pdu;

/// The smpp_rx_queue row for a deliver_sm or data_sm (other PDUs give an empty row).
pub(crate) fn rx_row(pdu: &Pdu, raw: &[u8]) -> RxRow {
    let empty = Vec::new();
    let (source, destination, esm_class, data_coding, short_message, tlvs) = match &pdu.body {
        Body::DeliverSm(sm) => (
            sm.source.addr.as_bytes(),
            sm.destination.addr.as_bytes(),
            sm.esm_class,
            sm.data_coding,
            sm.short_message.as_bytes(),
            &sm.tlvs,
        ),
        Body::DataSm(data) => (
            data.source.addr.as_bytes(),
            data.destination.addr.as_bytes(),
            data.esm_class,
            data.data_coding,
            &[][..],
            &data.tlvs,
        ),
        _ => (&[][..], &[][..], 0, 0, &[][..], &empty),
    };
    let user_data = user_data(short_message, tlvs);
    let (concat, text_bytes) = split_user_data(user_data, esm_class);
    let decoded = decode(data_coding, text_bytes);
    let receipt = if is_receipt(esm_class) {
        parse_receipt(&decoded.text, tlvs)
    } else {
        None
    };
    let mo_part = if is_receipt(esm_class) {
        None
    } else {
        mo_part(concat, tlvs, text_bytes)
    };
    let receipt_id_from_tlv = receipt.as_ref().is_some_and(|r| r.id_from_tlv);
    let message_state = receipt
        .as_ref()
        .and_then(|r| r.state)
        .map(|s| s.as_str().to_string());
    let (receipted_message_id, error_code) = match receipt {
        Some(r) => (Some(r.message_id), r.error),
        None => (None, None),
    };
    RxRow {
        pdu_raw: hex(raw),
        pdu_parsed: pdu_to_json(pdu),
        source_addr: String::from_utf8_lossy(source).into_owned(),
        destination_addr: String::from_utf8_lossy(destination).into_owned(),
        short_message: decoded.text,
        esm_class: i32::from(esm_class),
        data_coding: i32::from(data_coding),
        is_receipt: is_receipt(esm_class),
        receipted_message_id,
        message_state,
        error_code,
        text_invalid: decoded.invalid > 0,
        receipt_id_from_tlv,
        mo_part,
        mo_parts: None,
        mo_incomplete: false,
    }
    .storable()
}

/// The set a part belongs to: the UDH's concatenation IE, else the SAR TLVs. `None` for a
/// message that is whole (no concatenation, a set of one, or numbers that make no sense, in
/// which case it is stored on its own rather than waiting for parts that cannot come).
fn mo_part(udh: Option<Concat>, tlvs: &[Tlv], text_bytes: &[u8]) -> Option<MoPart> {
    let (ref_kind, reference, total, seq) = match udh {
        Some(c) => (
            if c.ref16 { "udh16" } else { "udh8" },
            c.reference,
            u16::from(c.total),
            u16::from(c.seq),
        ),
        None => (
            "sar",
            tlv::find_u16(tlvs, tag::SAR_MSG_REF_NUM)?,
            u16::from(tlv::find_u8(tlvs, tag::SAR_TOTAL_SEGMENTS)?),
            u16::from(tlv::find_u8(tlvs, tag::SAR_SEGMENT_SEQNUM)?),
        ),
    };
    if total < 2 || seq == 0 || seq > total {
        return None;
    }
    Some(MoPart {
        ref_kind,
        reference: i32::from(reference),
        total: i16::try_from(total).ok()?,
        seq: i16::try_from(seq).ok()?,
        text_bytes: text_bytes.to_vec(),
    })
}

/// short_message, or message_payload when short_message is empty (SMPP 3.4 allows one or the other, not both).
fn user_data<'a>(short_message: &'a [u8], tlvs: &'a [Tlv]) -> &'a [u8] {
    if short_message.is_empty() {
        tlv::find(tlvs, tag::MESSAGE_PAYLOAD).map_or(short_message, |t| t.value.as_bytes())
    } else {
        short_message
    }
}

/// The UDH's concatenation IE and the text after the UDH when esm_class says there is one;
/// a malformed UDH is kept as text.
fn split_user_data(user_data: &[u8], esm_class: u8) -> (Option<Concat>, &[u8]) {
    if esm_class & 0x40 == 0 {
        return (None, user_data);
    }
    split_udh(user_data).map_or((None, user_data), |(udh, text)| (udh.concat, text))
}
