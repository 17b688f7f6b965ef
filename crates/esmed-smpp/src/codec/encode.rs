//! Encoding: append each field, then back-patch command_length. Every field's type was
//! checked when built ([`crate::field`], [`crate::tlv::TlvValue`]), so no field can be out of
//! bounds here; what is left is the whole PDU's size, which must fit command_length's four
//! octets. Nothing is allocated besides the growth of the caller's buffer.

use byteorder::{BigEndian, ByteOrder};

use super::{EncodeError, HEADER_LEN};
use crate::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, MessageId, MessageIdResp, Outbind,
    QuerySm, QuerySmResp, Sm,
};
use crate::{Address, Body, COctet, CommandId, CommandStatus, Pdu, SmppTime, Tlv};

/// Appends one PDU to `out`. The one error is a PDU longer than command_length can say (4 GiB:
/// only a TLV list or a raw body has no bound of its own); `out` is then left as it was.
///
/// ```
/// use esmed_smpp::pdu::{ShortMessage, Sm};
/// use esmed_smpp::{encode, Address, Body, Pdu};
///
/// let mut out = Vec::new();
/// encode(&Pdu::new(1, Body::EnquireLink), &mut out).unwrap();
/// assert_eq!(out, [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]);
///
/// let sm = Sm {
///     destination: Address::new(1, 1, "4915112345678").unwrap(),
///     short_message: ShortMessage::new(b"hello").unwrap(),
///     ..Sm::default()
/// };
/// out.clear();
/// encode(&Pdu::new(2, Body::SubmitSm(Box::new(sm))), &mut out).unwrap();
/// assert_eq!(out[..4], (out.len() as u32).to_be_bytes()); // command_length
/// assert!(out.ends_with(b"\x05hello")); // sm_length, short_message
/// ```
pub fn encode(pdu: &Pdu, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let header = (pdu.command_id(), pdu.command_status, pdu.sequence_number);
    append_framed(header, out, |out| {
        write_body(&pdu.body, pdu.command_status, out)
    })
}

/// Appends a submit_sm whose body is borrowed: what [`encode`] writes for
/// `Pdu::new(sequence_number, Body::SubmitSm(Box::new(sm.clone())))`, without that copy of
/// every field on each submit. On error `out` is left as it was.
pub fn encode_submit_sm(
    sequence_number: u32,
    sm: &Sm,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let header = (
        CommandId::SubmitSm,
        CommandStatus::ESME_ROK,
        sequence_number,
    );
    append_framed(header, out, |out| write_sm(sm, out))
}

/// A submit_sm body whose length was checked once against command_length's four octets (the
/// one thing its fields' types do not bound: the number of TLVs), so that
/// [`encode_checked_submit_sm`] cannot fail. Read it through `Deref`; it cannot be changed.
///
/// ```
/// use esmed_smpp::pdu::{ShortMessage, Sm};
/// use esmed_smpp::{encode_checked_submit_sm, Address, CheckedSm};
///
/// let sm = Sm {
///     destination: Address::new(1, 1, "4915112345678").unwrap(),
///     short_message: ShortMessage::new(b"hello").unwrap(),
///     ..Sm::default()
/// };
/// let checked = CheckedSm::new(sm).unwrap();
/// let mut out = Vec::new();
/// encode_checked_submit_sm(2, &checked, &mut out);
/// assert!(out.ends_with(b"\x05hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSm(Sm);

impl CheckedSm {
    /// `sm` if [`encode_submit_sm`] would accept it; otherwise the error it would give.
    pub fn new(sm: Sm) -> Result<Self, EncodeError> {
        let len = HEADER_LEN + sm_len(&sm);
        if u32::try_from(len).is_err() {
            return Err(EncodeError::PduTooLong { len });
        }
        Ok(CheckedSm(sm))
    }

    pub fn into_inner(self) -> Sm {
        self.0
    }
}

impl std::ops::Deref for CheckedSm {
    type Target = Sm;

    fn deref(&self) -> &Sm {
        &self.0
    }
}

/// Appends a submit_sm whose body was checked when it was built: the same bytes as
/// [`encode_submit_sm`], with nothing left that can fail.
pub fn encode_checked_submit_sm(sequence_number: u32, sm: &CheckedSm, out: &mut Vec<u8>) {
    let header = (
        CommandId::SubmitSm,
        CommandStatus::ESME_ROK,
        sequence_number,
    );
    // CheckedSm::new made sure the length fits command_length's four octets.
    write_framed(header, out, |out| write_sm(sm, out));
}

/// A PDU with no field that could be out of bounds: a bodiless request or answer, or an
/// answer to a deliver_sm / data_sm with an empty message_id. [`encode_fixed`] writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    GenericNack,
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    DeliverSmResp,
    DataSmResp,
}

impl Fixed {
    /// The body [`encode`] would need for the same bytes.
    pub fn body(self) -> Body {
        match self {
            Fixed::GenericNack => Body::GenericNack,
            Fixed::EnquireLink => Body::EnquireLink,
            Fixed::EnquireLinkResp => Body::EnquireLinkResp,
            Fixed::Unbind => Body::Unbind,
            Fixed::UnbindResp => Body::UnbindResp,
            Fixed::DeliverSmResp => Body::DeliverSmResp(MessageIdResp::default()),
            Fixed::DataSmResp => Body::DataSmResp(MessageIdResp::default()),
        }
    }
}

/// Appends a [`Fixed`] PDU: the same bytes as [`encode`] of its [`Fixed::body`], and no error
/// to handle.
///
/// ```
/// use esmed_smpp::{encode_fixed, CommandStatus, Fixed};
///
/// let mut out = Vec::new();
/// encode_fixed(Fixed::DeliverSmResp, CommandStatus::ESME_ROK, 7, &mut out);
/// assert_eq!(out, [0, 0, 0, 17, 0x80, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 0]);
/// ```
pub fn encode_fixed(pdu: Fixed, status: CommandStatus, sequence_number: u32, out: &mut Vec<u8>) {
    let body = pdu.body();
    let header = (body.command_id(), status, sequence_number);
    let empty = MessageId::EMPTY;
    let message_id = match pdu {
        Fixed::DeliverSmResp => Some(&empty),
        Fixed::DataSmResp if !omitted_on_error(status, &empty, &[]) => Some(&empty),
        _ => None,
    };
    write_framed(header, out, |out| {
        if let Some(message_id) = message_id {
            write_cstr(out, message_id);
        }
    });
}

/// Appends the header and the body `write_body` writes, then back-patches command_length; for
/// bodies already known to fit.
fn write_framed(
    (command_id, status, sequence_number): (CommandId, CommandStatus, u32),
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    write_header((command_id, status, sequence_number), out);
    write_body(out);
    let command_length = (out.len() - start) as u32;
    BigEndian::write_u32(&mut out[start..start + 4], command_length);
}

/// One PDU in a fresh buffer.
pub fn encode_to_vec(pdu: &Pdu) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode(pdu, &mut out)?;
    Ok(out)
}

/// Appends the header, then the body `write_body` writes, then back-patches command_length;
/// truncates `out` back to where it was when the PDU is too long for it.
fn append_framed(
    header: (CommandId, CommandStatus, u32),
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    append_within(u32::MAX, header, out, write_body)
}

/// [`append_framed`] with the longest PDU as a parameter, so that a test can reach it.
fn append_within(
    longest: u32,
    header: (CommandId, CommandStatus, u32),
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = out.len();
    write_header(header, out);
    write_body(out);
    let len = out.len() - start;
    match u32::try_from(len) {
        Ok(command_length) if command_length <= longest => {
            BigEndian::write_u32(&mut out[start..start + 4], command_length);
            debug_assert!(len >= HEADER_LEN);
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(EncodeError::PduTooLong { len })
        }
    }
}

/// The header with command_length 0, to be patched once the body is written.
fn write_header(
    (command_id, status, sequence_number): (CommandId, CommandStatus, u32),
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&[0; 4]);
    put_u32(out, command_id.value());
    put_u32(out, status.0);
    put_u32(out, sequence_number);
}

fn write_body(body: &Body, status: CommandStatus, out: &mut Vec<u8>) {
    match body {
        Body::GenericNack
        | Body::Unbind
        | Body::UnbindResp
        | Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::CancelSmResp => {}
        Body::BindReceiver(bind) | Body::BindTransmitter(bind) | Body::BindTransceiver(bind) => {
            write_bind(bind, out);
        }
        Body::BindReceiverResp(resp)
        | Body::BindTransmitterResp(resp)
        | Body::BindTransceiverResp(resp) => {
            if !omitted_on_error(status, &resp.system_id, &resp.tlvs) {
                write_bind_resp(resp, out);
            }
        }
        Body::Outbind(outbind) => write_outbind(outbind, out),
        Body::SubmitSm(sm) | Body::DeliverSm(sm) => write_sm(sm, out),
        Body::SubmitSmResp(resp) | Body::DataSmResp(resp) => {
            if !omitted_on_error(status, &resp.message_id, &resp.tlvs) {
                write_message_id_resp(resp, out);
            }
        }
        Body::DeliverSmResp(resp) => write_message_id_resp(resp, out),
        Body::DataSm(data_sm) => write_data_sm(data_sm, out),
        Body::QuerySm(query) => write_query_sm(query, out),
        Body::QuerySmResp(resp) => write_query_sm_resp(resp, out),
        Body::CancelSm(cancel) => write_cancel_sm(cancel, out),
        Body::AlertNotification(alert) => write_alert_notification(alert, out),
        Body::Other { body, .. } => out.extend_from_slice(body),
    }
}

/// Error responses with nothing in them go out header-only, as SMSCs send them.
fn omitted_on_error<const MAX: usize>(
    status: CommandStatus,
    text: &COctet<MAX>,
    tlvs: &[Tlv],
) -> bool {
    status != CommandStatus::ESME_ROK && text.is_empty() && tlvs.is_empty()
}

fn write_bind(bind: &Bind, out: &mut Vec<u8>) {
    write_cstr(out, &bind.system_id);
    write_cstr(out, &bind.password);
    write_cstr(out, &bind.system_type);
    out.extend_from_slice(&[bind.interface_version, bind.addr_ton, bind.addr_npi]);
    write_cstr(out, &bind.address_range);
}

fn write_bind_resp(resp: &BindResp, out: &mut Vec<u8>) {
    write_cstr(out, &resp.system_id);
    write_tlvs(out, &resp.tlvs);
}

fn write_outbind(outbind: &Outbind, out: &mut Vec<u8>) {
    write_cstr(out, &outbind.system_id);
    write_cstr(out, &outbind.password);
}

/// The length of the submit_sm / deliver_sm body [`write_sm`] writes, in octets.
fn sm_len(sm: &Sm) -> usize {
    // Each C-string brings its NUL; 2 × (TON, NPI) + 3 + 5 fixed octets.
    let cstr_len = sm.service_type.len()
        + sm.source.addr.len()
        + sm.destination.addr.len()
        + sm.schedule_delivery_time.as_bytes().len()
        + sm.validity_period.as_bytes().len()
        + 5;
    let tlv_len: usize = sm.tlvs.iter().map(|t| 4 + t.value.len()).sum();
    cstr_len + 4 + 3 + 5 + sm.short_message.len() + tlv_len
}

fn write_sm(sm: &Sm, out: &mut Vec<u8>) {
    write_cstr(out, &sm.service_type);
    write_address(out, &sm.source);
    write_address(out, &sm.destination);
    out.extend_from_slice(&[sm.esm_class, sm.protocol_id, sm.priority_flag]);
    write_time(out, &sm.schedule_delivery_time);
    write_time(out, &sm.validity_period);
    // ShortMessage holds at most 254 octets, or the 255 a peer's one-octet sm_length gave.
    let sm_length = sm.short_message.len() as u8;
    out.extend_from_slice(&[
        sm.registered_delivery,
        sm.replace_if_present_flag,
        sm.data_coding,
        sm.sm_default_msg_id,
        sm_length,
    ]);
    out.extend_from_slice(&sm.short_message);
    write_tlvs(out, &sm.tlvs);
}

fn write_message_id_resp(resp: &MessageIdResp, out: &mut Vec<u8>) {
    write_cstr(out, &resp.message_id);
    write_tlvs(out, &resp.tlvs);
}

fn write_data_sm(data_sm: &DataSm, out: &mut Vec<u8>) {
    write_cstr(out, &data_sm.service_type);
    write_address(out, &data_sm.source);
    write_address(out, &data_sm.destination);
    out.extend_from_slice(&[
        data_sm.esm_class,
        data_sm.registered_delivery,
        data_sm.data_coding,
    ]);
    write_tlvs(out, &data_sm.tlvs);
}

fn write_query_sm(query: &QuerySm, out: &mut Vec<u8>) {
    write_cstr(out, &query.message_id);
    write_address(out, &query.source);
}

fn write_query_sm_resp(resp: &QuerySmResp, out: &mut Vec<u8>) {
    write_cstr(out, &resp.message_id);
    write_time(out, &resp.final_date);
    out.extend_from_slice(&[resp.message_state, resp.error_code]);
}

fn write_cancel_sm(cancel: &CancelSm, out: &mut Vec<u8>) {
    write_cstr(out, &cancel.service_type);
    write_cstr(out, &cancel.message_id);
    write_address(out, &cancel.source);
    write_address(out, &cancel.destination);
}

fn write_alert_notification(alert: &AlertNotification, out: &mut Vec<u8>) {
    write_address(out, &alert.source);
    write_address(out, &alert.esme);
    write_tlvs(out, &alert.tlvs);
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// A C-octet string and its NUL: the type made sure that no NUL is inside, and a value
/// too long for the field could only come from a peer, to be sent back as it came.
fn write_cstr<const MAX: usize>(out: &mut Vec<u8>, value: &COctet<MAX>) {
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

fn write_time(out: &mut Vec<u8>, value: &SmppTime) {
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

fn write_address<const MAX: usize>(out: &mut Vec<u8>, address: &Address<MAX>) {
    out.extend_from_slice(&[address.ton, address.npi]);
    write_cstr(out, &address.addr);
}

fn write_tlvs(out: &mut Vec<u8>, tlvs: &[Tlv]) {
    for tlv in tlvs {
        out.extend_from_slice(&tlv.tag.to_be_bytes());
        // TlvValue holds at most 65,535 octets.
        out.extend_from_slice(&(tlv.value.len() as u16).to_be_bytes());
        out.extend_from_slice(&tlv.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::ShortMessage;
    use crate::tlv::tag;

    fn submit(sm: Sm) -> Pdu {
        Pdu::new(1, Body::SubmitSm(Box::new(sm)))
    }

    fn chars<const MAX: usize>(n: usize) -> COctet<MAX> {
        COctet::new(vec![b'7'; n]).unwrap()
    }

    #[test]
    fn strings_at_their_field_maximum_encode() {
        let bind = Bind {
            system_id: chars(15),
            password: chars(8),
            system_type: chars(12),
            address_range: chars(40),
            ..Bind::default()
        };
        let wire = encode_to_vec(&Pdu::new(1, Body::BindTransceiver(bind))).unwrap();
        assert_eq!(wire.len(), 16 + 16 + 9 + 13 + 3 + 41);
        let data_sm = DataSm {
            source: Address::new(1, 1, vec![b'7'; 64]).unwrap(),
            destination: Address::new(1, 1, vec![b'7'; 64]).unwrap(),
            ..DataSm::default()
        };
        assert!(encode_to_vec(&Pdu::new(1, Body::DataSm(Box::new(data_sm)))).is_ok());
        let resp = MessageIdResp {
            message_id: chars(64),
            tlvs: vec![],
        };
        assert!(encode_to_vec(&Pdu::new(1, Body::SubmitSmResp(resp))).is_ok());
    }

    #[test]
    fn sm_length_is_the_short_message_length() {
        let sm = |n| {
            submit(Sm {
                short_message: ShortMessage::new(vec![0x41; n]).unwrap(),
                ..Sm::default()
            })
        };
        // Empty strings: 16 header + 16 fixed octets put sm_length at offset 32.
        assert_eq!(encode_to_vec(&sm(254)).unwrap()[32], 254);
        assert_eq!(encode_to_vec(&sm(0)).unwrap()[32], 0);
    }

    #[test]
    fn a_tlv_of_65535_octets_says_so_in_its_length() {
        let pdu = submit(Sm {
            tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, vec![0; 65_535]).unwrap()],
            ..Sm::default()
        });
        let wire = encode_to_vec(&pdu).unwrap();
        // Empty fields: the TLV starts after sm_length at offset 32.
        assert_eq!(wire[33..37], [0x04, 0x24, 0xFF, 0xFF]);
        assert_eq!(wire.len(), 37 + 65_535);
    }

    #[test]
    fn a_pdu_too_long_for_command_length_leaves_the_buffer_as_it_was() {
        let header = (CommandId::SubmitSm, CommandStatus::ESME_ROK, 7);
        let mut out = b"earlier".to_vec();
        let result = append_within(20, header, &mut out, |out| out.extend([0; 5]));
        assert_eq!(result, Err(EncodeError::PduTooLong { len: 21 }));
        assert_eq!(out, b"earlier");
        append_within(21, header, &mut out, |out| out.extend([0; 5])).unwrap();
        assert_eq!(out[7..11], [0, 0, 0, 21]);
    }

    #[test]
    fn a_checked_submit_sm_knows_its_length_before_it_is_written() {
        let sm = Sm {
            service_type: chars(5),
            source: Address::new(1, 1, vec![b'7'; 20]).unwrap(),
            validity_period: "000001000000000R".try_into().unwrap(),
            short_message: ShortMessage::new(vec![b'x'; 254]).unwrap(),
            tlvs: vec![
                Tlv::u8(tag::SAR_TOTAL_SEGMENTS, 2),
                Tlv::u16(tag::SAR_MSG_REF_NUM, 9),
            ],
            ..Sm::default()
        };
        let wire = encode_to_vec(&submit(sm.clone())).unwrap();
        assert_eq!(HEADER_LEN + sm_len(&sm), wire.len());
    }

    #[test]
    fn a_checked_submit_sm_at_every_limit_encodes_as_the_fallible_encoder_does() {
        let sm = Sm {
            service_type: chars(5),
            source: Address::new(1, 1, vec![b'7'; 20]).unwrap(),
            destination: Address::new(1, 1, vec![b'7'; 20]).unwrap(),
            schedule_delivery_time: "250131120000000+".try_into().unwrap(),
            validity_period: "000001000000000R".try_into().unwrap(),
            short_message: ShortMessage::new(vec![b'x'; 254]).unwrap(),
            tlvs: vec![Tlv::new(tag::MESSAGE_PAYLOAD, vec![7; 65_535]).unwrap()],
            ..Sm::default()
        };
        let mut expected = b"before".to_vec();
        encode_submit_sm(9, &sm, &mut expected).unwrap();
        let checked = CheckedSm::new(sm.clone()).unwrap();
        assert_eq!(*checked, sm);
        let mut out = b"before".to_vec();
        encode_checked_submit_sm(9, &checked, &mut out);
        assert_eq!(out, expected);
        assert_eq!(checked.into_inner(), sm);
    }

    #[test]
    fn a_fixed_pdu_encodes_as_its_body_does() {
        let all = [
            Fixed::GenericNack,
            Fixed::EnquireLink,
            Fixed::EnquireLinkResp,
            Fixed::Unbind,
            Fixed::UnbindResp,
            Fixed::DeliverSmResp,
            Fixed::DataSmResp,
        ];
        let statuses = [
            CommandStatus::ESME_ROK,
            CommandStatus::ESME_RINVCMDLEN,
            CommandStatus(0x64),
        ];
        for pdu in all {
            for status in statuses {
                let expected = encode_to_vec(&Pdu {
                    command_status: status,
                    sequence_number: 42,
                    body: pdu.body(),
                })
                .unwrap();
                let mut out = b"before".to_vec();
                encode_fixed(pdu, status, 42, &mut out);
                assert_eq!(&out[..6], b"before");
                assert_eq!(out[6..], expected, "{pdu:?} {status}");
            }
        }
    }

    #[test]
    fn encode_appends_after_what_is_there() {
        let mut out = Vec::new();
        encode(&Pdu::new(3, Body::EnquireLink), &mut out).unwrap();
        encode(&Pdu::new(4, Body::EnquireLink), &mut out).unwrap();
        assert_eq!(out.len(), 32);
        assert_eq!(&out[16..20], &[0, 0, 0, 16]);
        assert_eq!(&out[28..32], &[0, 0, 0, 4]);
    }

    #[test]
    fn deliver_sm_resp_keeps_its_body_even_on_error() {
        let pdu = Pdu {
            command_status: CommandStatus(0x64),
            sequence_number: 5,
            body: Body::DeliverSmResp(MessageIdResp::default()),
        };
        assert_eq!(encode_to_vec(&pdu).unwrap().len(), 17);
    }
}
