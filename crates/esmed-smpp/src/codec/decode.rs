//! Decoding: a bounded [`Reader`] over exactly one PDU body and one small function per body
//! layout. Nothing is read past the frame, and nothing larger than the frame is allocated.

use byteorder::{BigEndian, ByteOrder};

use super::{DecodeError, DecodeErrorKind, HEADER_LEN};
use crate::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, MessageIdResp, Outbind, QuerySm,
    QuerySmResp, ShortMessage, Sm,
};
use crate::tlv::{self, TlvValue};
use crate::{Address, Body, COctet, CommandId, CommandStatus, Pdu, SmppTime, Tlv};

/// Decodes one whole PDU (header included) whose command_length must equal `frame.len()`.
///
/// Unknown command ids, replace_sm, submit_multi and their responses decode to
/// [`Body::Other`], not to an error, so that the session can answer ESME_RINVCMDID.
///
/// ```
/// use esmed_smpp::{decode, Body, CommandStatus, Pdu};
///
/// let enquire_link = [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7];
/// assert_eq!(decode(&enquire_link).unwrap(), Pdu::new(7, Body::EnquireLink));
///
/// // A submit_sm_resp with a status and no body: the message id decodes empty.
/// let refused = [0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 8];
/// let pdu = decode(&refused).unwrap();
/// assert_eq!(pdu.command_status, CommandStatus::ESME_RTHROTTLED);
/// assert!(matches!(pdu.body, Body::SubmitSmResp(resp) if resp.message_id.is_empty()));
///
/// // An enquire_link with a body: the error says which status to answer with.
/// let mut bad = enquire_link.to_vec();
/// bad[3] = 17;
/// bad.push(0);
/// let error = decode(&bad).unwrap_err();
/// assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
/// assert_eq!(error.sequence_number, 7);
/// ```
pub fn decode(frame: &[u8]) -> Result<Pdu, DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError {
            kind: DecodeErrorKind::ShortFrame { len: frame.len() },
            field: "command_length",
            command_id: CommandId::Other(0),
            sequence_number: 0,
        });
    }
    let command_length = BigEndian::read_u32(&frame[0..4]);
    let command_id = CommandId::from(BigEndian::read_u32(&frame[4..8]));
    let command_status = CommandStatus(BigEndian::read_u32(&frame[8..12]));
    let sequence_number = BigEndian::read_u32(&frame[12..16]);
    let mut reader = Reader {
        body: &frame[HEADER_LEN..],
        pos: 0,
        // Responses are read leniently: absent or short bodies give empty fields: peers send error responses header-only.
        lenient: command_id.is_response(),
        command_id,
        sequence_number,
    };
    if usize::try_from(command_length) != Ok(frame.len()) {
        let kind = DecodeErrorKind::LengthMismatch {
            command_length,
            frame_len: frame.len(),
        };
        return Err(reader.error(kind, "command_length"));
    }
    Ok(Pdu {
        command_status,
        sequence_number,
        body: decode_body(&mut reader)?,
    })
}

fn decode_body(r: &mut Reader<'_>) -> Result<Body, DecodeError> {
    Ok(match r.command_id {
        CommandId::GenericNack => Body::GenericNack,
        CommandId::UnbindResp => Body::UnbindResp,
        CommandId::EnquireLinkResp => Body::EnquireLinkResp,
        CommandId::CancelSmResp => Body::CancelSmResp,
        CommandId::Unbind => r.header_only(Body::Unbind)?,
        CommandId::EnquireLink => r.header_only(Body::EnquireLink)?,
        CommandId::BindReceiver => Body::BindReceiver(bind(r)?),
        CommandId::BindTransmitter => Body::BindTransmitter(bind(r)?),
        CommandId::BindTransceiver => Body::BindTransceiver(bind(r)?),
        CommandId::BindReceiverResp => Body::BindReceiverResp(bind_resp(r)?),
        CommandId::BindTransmitterResp => Body::BindTransmitterResp(bind_resp(r)?),
        CommandId::BindTransceiverResp => Body::BindTransceiverResp(bind_resp(r)?),
        CommandId::Outbind => Body::Outbind(outbind(r)?),
        CommandId::SubmitSm => Body::SubmitSm(Box::new(sm(r)?)),
        CommandId::DeliverSm => Body::DeliverSm(Box::new(sm(r)?)),
        CommandId::SubmitSmResp => Body::SubmitSmResp(message_id_resp(r)?),
        CommandId::DeliverSmResp => Body::DeliverSmResp(message_id_resp(r)?),
        CommandId::DataSmResp => Body::DataSmResp(message_id_resp(r)?),
        CommandId::DataSm => Body::DataSm(Box::new(data_sm(r)?)),
        CommandId::QuerySm => Body::QuerySm(query_sm(r)?),
        CommandId::QuerySmResp => Body::QuerySmResp(query_sm_resp(r)?),
        CommandId::CancelSm => Body::CancelSm(cancel_sm(r)?),
        CommandId::AlertNotification => Body::AlertNotification(alert_notification(r)?),
        CommandId::ReplaceSm
        | CommandId::ReplaceSmResp
        | CommandId::SubmitMulti
        | CommandId::SubmitMultiResp
        | CommandId::Other(_) => Body::Other {
            command_id: r.command_id.value(),
            body: r.body.to_vec(),
        },
    })
}

fn bind(r: &mut Reader<'_>) -> Result<Bind, DecodeError> {
    let bind = Bind {
        system_id: r.cstr("system_id")?,
        password: r.cstr("password")?,
        system_type: r.cstr("system_type")?,
        interface_version: r.u8("interface_version")?,
        addr_ton: r.u8("addr_ton")?,
        addr_npi: r.u8("addr_npi")?,
        address_range: r.last_cstr("address_range")?,
    };
    r.skip_tlvs()?;
    Ok(bind)
}

fn bind_resp(r: &mut Reader<'_>) -> Result<BindResp, DecodeError> {
    Ok(BindResp {
        system_id: r.last_cstr("system_id")?,
        tlvs: r.tlvs()?,
    })
}

fn outbind(r: &mut Reader<'_>) -> Result<Outbind, DecodeError> {
    let outbind = Outbind {
        system_id: r.cstr("system_id")?,
        password: r.last_cstr("password")?,
    };
    r.skip_tlvs()?;
    Ok(outbind)
}

fn sm(r: &mut Reader<'_>) -> Result<Sm, DecodeError> {
    Ok(Sm {
        service_type: r.cstr("service_type")?,
        source: r.address(SOURCE)?,
        destination: r.address(DESTINATION)?,
        esm_class: r.u8("esm_class")?,
        protocol_id: r.u8("protocol_id")?,
        priority_flag: r.u8("priority_flag")?,
        schedule_delivery_time: r.time("schedule_delivery_time")?,
        validity_period: r.time("validity_period")?,
        registered_delivery: r.u8("registered_delivery")?,
        replace_if_present_flag: r.u8("replace_if_present_flag")?,
        data_coding: r.u8("data_coding")?,
        sm_default_msg_id: r.u8("sm_default_msg_id")?,
        short_message: r.short_message()?,
        tlvs: r.tlvs()?,
    })
}

fn message_id_resp(r: &mut Reader<'_>) -> Result<MessageIdResp, DecodeError> {
    Ok(MessageIdResp {
        message_id: r.last_cstr("message_id")?,
        tlvs: r.tlvs()?,
    })
}

fn data_sm(r: &mut Reader<'_>) -> Result<DataSm, DecodeError> {
    Ok(DataSm {
        service_type: r.cstr("service_type")?,
        source: r.address(SOURCE)?,
        destination: r.address(DESTINATION)?,
        esm_class: r.u8("esm_class")?,
        registered_delivery: r.u8("registered_delivery")?,
        data_coding: r.u8("data_coding")?,
        tlvs: r.tlvs()?,
    })
}

fn query_sm(r: &mut Reader<'_>) -> Result<QuerySm, DecodeError> {
    let message_id = r.cstr("message_id")?;
    let source = Address {
        ton: r.u8(SOURCE.ton)?,
        npi: r.u8(SOURCE.npi)?,
        addr: r.last_cstr(SOURCE.addr)?,
    };
    r.skip_tlvs()?;
    Ok(QuerySm { message_id, source })
}

fn query_sm_resp(r: &mut Reader<'_>) -> Result<QuerySmResp, DecodeError> {
    let resp = QuerySmResp {
        message_id: r.cstr("message_id")?,
        final_date: r.time("final_date")?,
        message_state: r.u8("message_state")?,
        error_code: r.u8("error_code")?,
    };
    r.skip_tlvs()?;
    Ok(resp)
}

fn cancel_sm(r: &mut Reader<'_>) -> Result<CancelSm, DecodeError> {
    let service_type = r.cstr("service_type")?;
    let message_id = r.cstr("message_id")?;
    let source = r.address(SOURCE)?;
    let destination = Address {
        ton: r.u8(DESTINATION.ton)?,
        npi: r.u8(DESTINATION.npi)?,
        addr: r.last_cstr(DESTINATION.addr)?,
    };
    r.skip_tlvs()?;
    Ok(CancelSm {
        service_type,
        message_id,
        source,
        destination,
    })
}

fn alert_notification(r: &mut Reader<'_>) -> Result<AlertNotification, DecodeError> {
    Ok(AlertNotification {
        source: r.address(SOURCE)?,
        esme: r.address(ESME)?,
        tlvs: r.tlvs()?,
    })
}

/// The wire names of an address triple, for error messages.
struct AddressFields {
    ton: &'static str,
    npi: &'static str,
    addr: &'static str,
}

const SOURCE: AddressFields = AddressFields {
    ton: "source_addr_ton",
    npi: "source_addr_npi",
    addr: "source_addr",
};
const DESTINATION: AddressFields = AddressFields {
    ton: "dest_addr_ton",
    npi: "dest_addr_npi",
    addr: "destination_addr",
};
const ESME: AddressFields = AddressFields {
    ton: "esme_addr_ton",
    npi: "esme_addr_npi",
    addr: "esme_addr",
};

/// A cursor over exactly one PDU body that cannot read past it.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    /// Read a response: a body that ends early leaves the remaining fields empty, and a
    /// malformed TLV tail is dropped, because failing a response would
    /// lose the outcome of a request.
    lenient: bool,
    command_id: CommandId,
    sequence_number: u32,
}

impl<'a> Reader<'a> {
    fn error(&self, kind: DecodeErrorKind, field: &'static str) -> DecodeError {
        DecodeError {
            kind,
            field,
            command_id: self.command_id,
            sequence_number: self.sequence_number,
        }
    }

    fn remaining(&self) -> &'a [u8] {
        &self.body[self.pos..]
    }

    fn header_only(&self, body: Body) -> Result<Body, DecodeError> {
        if self.body.is_empty() {
            return Ok(body);
        }
        let kind = DecodeErrorKind::UnexpectedBody {
            len: self.body.len(),
        };
        Err(self.error(kind, "command_length"))
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        match self.remaining().first() {
            Some(&value) => {
                self.pos += 1;
                Ok(value)
            }
            None if self.lenient => Ok(0),
            None => Err(self.error(DecodeErrorKind::Truncated, field)),
        }
    }

    /// A C-octet string that more mandatory fields follow: its NUL is required. Its length is
    /// not checked: what a peer sends is kept (see [`COctet`]).
    fn cstr<const MAX: usize>(&mut self, field: &'static str) -> Result<COctet<MAX>, DecodeError> {
        self.read_cstr(field, self.lenient).map(COctet::from_peer)
    }

    /// A time field, kept whatever its length (see [`SmppTime`]).
    fn time(&mut self, field: &'static str) -> Result<SmppTime, DecodeError> {
        self.read_cstr(field, self.lenient).map(SmppTime::from_peer)
    }

    /// The last mandatory field: a missing NUL at the very end of the body is accepted.
    fn last_cstr<const MAX: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<COctet<MAX>, DecodeError> {
        self.read_cstr(field, true).map(COctet::from_peer)
    }

    /// The octets up to the next NUL (which is consumed), without it.
    fn read_cstr(
        &mut self,
        field: &'static str,
        nul_optional: bool,
    ) -> Result<&'a [u8], DecodeError> {
        let rest = self.remaining();
        if let Some(nul) = rest.iter().position(|&b| b == 0) {
            self.pos += nul + 1;
            return Ok(&rest[..nul]);
        }
        if rest.is_empty() && !self.lenient {
            return Err(self.error(DecodeErrorKind::Truncated, field));
        }
        if !nul_optional {
            return Err(self.error(DecodeErrorKind::MissingNul, field));
        }
        self.pos = self.body.len();
        Ok(rest)
    }

    fn address<const MAX: usize>(
        &mut self,
        fields: AddressFields,
    ) -> Result<Address<MAX>, DecodeError> {
        Ok(Address {
            ton: self.u8(fields.ton)?,
            npi: self.u8(fields.npi)?,
            addr: self.cstr(fields.addr)?,
        })
    }

    /// sm_length, then that many octets of short_message.
    /// An sm_length of 255, which the specification reserves, is read as given.
    fn short_message(&mut self) -> Result<ShortMessage, DecodeError> {
        let sm_length = self.u8("sm_length")?;
        let rest = self.remaining();
        match rest.get(..usize::from(sm_length)) {
            Some(short_message) => {
                self.pos += short_message.len();
                Ok(ShortMessage::from_peer(short_message))
            }
            None => {
                let kind = DecodeErrorKind::SmLengthOverrun { sm_length };
                Err(self.error(kind, "short_message"))
            }
        }
    }

    /// Everything after the mandatory fields, as TLVs in wire order (unknown tags included).
    fn tlvs(&mut self) -> Result<Vec<Tlv>, DecodeError> {
        let mut tlvs = Vec::new();
        while !self.remaining().is_empty() {
            match self.next_tlv() {
                Ok(tlv) => tlvs.push(tlv),
                Err(_) if self.lenient => {
                    self.pos = self.body.len();
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(tlvs)
    }

    /// TLVs on a PDU whose type has no place for them are checked, then ignored, as the specification asks of a receiver.
    fn skip_tlvs(&mut self) -> Result<(), DecodeError> {
        while !self.remaining().is_empty() {
            if let Err(error) = self.next_tlv() {
                return if self.lenient { Ok(()) } else { Err(error) };
            }
        }
        Ok(())
    }

    fn next_tlv(&mut self) -> Result<Tlv, DecodeError> {
        let rest = self.remaining();
        if rest.len() < 4 {
            return Err(self.error(DecodeErrorKind::TlvOverrun, "tlv"));
        }
        let tag = BigEndian::read_u16(&rest[0..2]);
        let len = usize::from(BigEndian::read_u16(&rest[2..4]));
        match rest.get(4..4 + len) {
            Some(value) => {
                self.pos += 4 + len;
                // Read through a 2-octet length: it fits a TlvValue.
                Ok(Tlv {
                    tag,
                    value: TlvValue::from_peer(value),
                })
            }
            None => {
                let field = tlv::tag_name(tag).unwrap_or("tlv");
                Err(self.error(DecodeErrorKind::TlvOverrun, field))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlv::tag;

    /// A frame with a correct command_length around `body`.
    fn wire(command_id: u32, status: u32, sequence_number: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = ((HEADER_LEN + body.len()) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&command_id.to_be_bytes());
        bytes.extend_from_slice(&status.to_be_bytes());
        bytes.extend_from_slice(&sequence_number.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// A deliver_sm body up to and including sm_length + short_message, then `tail`.
    fn deliver_sm_body(source: &[u8], short_message: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 1, 1];
        body.extend_from_slice(source);
        // dest 5/0 "E", esm_class 4, then eight zero octets up to sm_default_msg_id.
        body.extend_from_slice(&[5, 0, b'E', 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.push(short_message.len() as u8);
        body.extend_from_slice(short_message);
        body.extend_from_slice(tail);
        body
    }

    fn decode_error(bytes: &[u8]) -> DecodeError {
        decode(bytes).unwrap_err()
    }

    #[test]
    fn header_only_responses_decode_to_empty_bodies() {
        let pdu = decode(&wire(0x8000_0005, 0, 16, &[])).unwrap();
        assert_eq!(pdu.body, Body::DeliverSmResp(MessageIdResp::default()));
        let pdu = decode(&wire(0x8000_0004, 0, 2, &[])).unwrap();
        assert_eq!(pdu.body, Body::SubmitSmResp(MessageIdResp::default()));
        let pdu = decode(&wire(0x8000_0003, 0x67, 2, &[])).unwrap();
        assert_eq!(pdu.body, Body::QuerySmResp(QuerySmResp::default()));
        let pdu = decode(&wire(0x8000_0001, 0x0D, 1, &[])).unwrap();
        assert_eq!(pdu.body, Body::BindReceiverResp(BindResp::default()));
    }

    #[test]
    fn short_response_bodies_leave_the_rest_empty() {
        let pdu = decode(&wire(0x8000_0003, 0, 2, b"0A1B\0")).unwrap();
        let expected = QuerySmResp {
            message_id: "0A1B".try_into().unwrap(),
            ..QuerySmResp::default()
        };
        assert_eq!(pdu.body, Body::QuerySmResp(expected));
    }

    #[test]
    fn an_error_response_with_a_body_keeps_it() {
        let pdu = decode(&wire(0x8000_0004, 0x58, 2, b"0A1B\0")).unwrap();
        assert_eq!(pdu.command_status, CommandStatus::ESME_RTHROTTLED);
        let Body::SubmitSmResp(resp) = pdu.body else {
            panic!("not a submit_sm_resp");
        };
        assert_eq!(resp.message_id.as_bytes(), b"0A1B");
    }

    #[test]
    fn a_missing_nul_at_the_end_of_the_body_is_accepted() {
        let pdu = decode(&wire(0x8000_0004, 0, 2, b"0A1B")).unwrap();
        let Body::SubmitSmResp(resp) = pdu.body else {
            panic!("not a submit_sm_resp");
        };
        assert_eq!(resp.message_id.as_bytes(), b"0A1B");

        let bind = decode(&wire(0x09, 0, 1, b"esme1\0pw\0\0\x34\0\0^44")).unwrap();
        let Body::BindTransceiver(bind) = bind.body else {
            panic!("not a bind_transceiver");
        };
        assert_eq!(bind.address_range.as_bytes(), b"^44");
    }

    #[test]
    fn a_missing_nul_before_more_fields_is_an_error() {
        let error = decode_error(&wire(0x05, 0, 7, b"\0\x01\x01447700900123"));
        assert_eq!(error.kind, DecodeErrorKind::MissingNul);
        assert_eq!(error.field, "source_addr");
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
        assert_eq!(
            error.to_string(),
            "deliver_sm seq 7: source_addr: missing NUL before the end of the PDU"
        );
    }

    #[test]
    fn over_long_strings_from_the_peer_are_accepted() {
        let source = [b'4'; 40];
        let mut field = source.to_vec();
        field.push(0);
        let bytes = wire(0x05, 0, 1, &deliver_sm_body(&field, b"hi", &[]));
        let pdu = decode(&bytes).unwrap();
        // Sent back (say, logged and replayed), it is the same bytes.
        assert_eq!(crate::encode_to_vec(&pdu).unwrap(), bytes);
        let Body::DeliverSm(sm) = pdu.body else {
            panic!("not a deliver_sm");
        };
        assert_eq!(sm.source.addr.as_bytes(), source);
        assert_eq!(sm.short_message, b"hi");
    }

    #[test]
    fn sm_length_past_the_end_is_rinvmsglen() {
        let mut body = deliver_sm_body(b"1\0", b"hello", &[]);
        body.truncate(body.len() - 1);
        let error = decode_error(&wire(0x05, 0, 3, &body));
        assert_eq!(
            error.kind,
            DecodeErrorKind::SmLengthOverrun { sm_length: 5 }
        );
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVMSGLEN);
    }

    #[test]
    fn a_tlv_running_past_the_end_is_rinvoptparstream() {
        let tail = [0x00, 0x1E, 0x00, 0x09, b'0', b'A'];
        let error = decode_error(&wire(0x05, 0, 3, &deliver_sm_body(b"1\0", b"", &tail)));
        assert_eq!(error.kind, DecodeErrorKind::TlvOverrun);
        assert_eq!(error.field, "receipted_message_id");
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVOPTPARSTREAM);

        let stub = [0x04, 0x27, 0x00];
        let error = decode_error(&wire(0x05, 0, 3, &deliver_sm_body(b"1\0", b"", &stub)));
        assert_eq!(
            (error.kind, error.field),
            (DecodeErrorKind::TlvOverrun, "tlv")
        );
    }

    #[test]
    fn a_bad_tlv_tail_on_a_response_keeps_the_mandatory_fields() {
        let body = b"0A1B\0\x04\x25\x00\x01\x03\x00\x1D\x00\x09ab";
        let pdu = decode(&wire(0x8000_0103, 0xFE, 8, body)).unwrap();
        let expected = MessageIdResp {
            message_id: "0A1B".try_into().unwrap(),
            tlvs: vec![Tlv::u8(tag::DELIVERY_FAILURE_REASON, 3)],
        };
        assert_eq!(pdu.body, Body::DataSmResp(expected));
    }

    #[test]
    fn unknown_and_empty_tlvs_are_kept_in_order() {
        let tail = [0x14, 0x00, 0x00, 0x02, 0xAB, 0xCD, 0x13, 0x0C, 0x00, 0x00];
        let pdu = decode(&wire(0x05, 0, 3, &deliver_sm_body(b"1\0", b"", &tail))).unwrap();
        let Body::DeliverSm(sm) = pdu.body else {
            panic!("not a deliver_sm");
        };
        let expected = [
            Tlv::new(0x1400, vec![0xAB, 0xCD]).unwrap(),
            Tlv::new(tag::ALERT_ON_MESSAGE_DELIVERY, vec![]).unwrap(),
        ];
        assert_eq!(sm.tlvs, expected);
    }

    #[test]
    fn header_only_requests_must_have_no_body_responses_may() {
        let error = decode_error(&wire(0x15, 0, 3, &[0]));
        assert_eq!(error.kind, DecodeErrorKind::UnexpectedBody { len: 1 });
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
        let pdu = decode(&wire(0x8000_0015, 0, 3, &[0])).unwrap();
        assert_eq!(pdu.body, Body::EnquireLinkResp);
        let pdu = decode(&wire(0x8000_0000, 3, 0, &[1, 2])).unwrap();
        assert_eq!(pdu.body, Body::GenericNack);
    }

    #[test]
    fn unknown_command_ids_are_kept_with_their_body() {
        let pdu = decode(&wire(0x0000_0111, 0, 5, &[1, 2, 3])).unwrap();
        let expected = Body::Other {
            command_id: 0x0000_0111,
            body: vec![1, 2, 3],
        };
        assert_eq!(pdu.body, expected);
        assert_eq!(pdu.sequence_number, 5);
        let pdu = decode(&wire(0x0000_0021, 0, 6, &[0])).unwrap();
        assert!(matches!(
            pdu.body,
            Body::Other {
                command_id: 0x21,
                ..
            }
        ));
    }

    #[test]
    fn a_truncated_request_names_the_first_missing_field() {
        let error = decode_error(&wire(0x05, 0, 3, &[]));
        assert_eq!(
            (error.kind, error.field),
            (DecodeErrorKind::Truncated, "service_type")
        );
        let error = decode_error(&wire(0x05, 0, 3, &[0, 1]));
        assert_eq!(error.field, "source_addr_npi");
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
    }

    #[test]
    fn the_frame_must_be_exactly_one_pdu() {
        let error = decode_error(&[0, 0, 0, 16, 0, 0]);
        assert_eq!(error.kind, DecodeErrorKind::ShortFrame { len: 6 });
        let mut bytes = wire(0x15, 0, 3, &[]);
        bytes.push(0);
        let error = decode_error(&bytes);
        let expected = DecodeErrorKind::LengthMismatch {
            command_length: 16,
            frame_len: 17,
        };
        assert_eq!(error.kind, expected);
        assert_eq!(error.sequence_number, 3);
        assert_eq!(error.command_status(), CommandStatus::ESME_RINVCMDLEN);
    }
}
