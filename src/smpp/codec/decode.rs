//! Decoding: a bounded [`Reader`] over exactly one PDU body and one small function per body
//! layout. Nothing is read past the frame, and nothing larger than the frame is allocated.

use byteorder::{BigEndian, ByteOrder};

use super::{DecodeError, DecodeErrorKind, HEADER_LEN};
use crate::smpp::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, MessageIdResp, Outbind, QuerySm,
    QuerySmResp, Sm,
};
use crate::smpp::{tlv, Address, Body, COctet, CommandId, CommandStatus, Pdu, Tlv};

/// Decodes one whole PDU (header included) whose command_length must equal `frame.len()`.
///
/// Unknown command ids, replace_sm, submit_multi and their responses decode to
/// [`Body::Other`], not to an error, so that the session can answer ESME_RINVCMDID.
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
        // Responses are read leniently: absent or short bodies give empty fields (§3.1).
        lenient: command_id.is_response(),
        command_id,
        sequence_number,
    };
    if usize::try_from(command_length).map_or(true, |len| len != frame.len()) {
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
        schedule_delivery_time: r.cstr("schedule_delivery_time")?,
        validity_period: r.cstr("validity_period")?,
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
        final_date: r.cstr("final_date")?,
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
    /// malformed TLV tail is dropped (§3.1, §6.2 rule 1), because failing a response would
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

    /// A C-octet string that more mandatory fields follow: its NUL is required.
    fn cstr(&mut self, field: &'static str) -> Result<COctet, DecodeError> {
        self.read_cstr(field, self.lenient)
    }

    /// The last mandatory field: a missing NUL at the very end of the body is accepted.
    fn last_cstr(&mut self, field: &'static str) -> Result<COctet, DecodeError> {
        self.read_cstr(field, true)
    }

    fn read_cstr(
        &mut self,
        field: &'static str,
        nul_optional: bool,
    ) -> Result<COctet, DecodeError> {
        let rest = self.remaining();
        if let Some(nul) = rest.iter().position(|&b| b == 0) {
            self.pos += nul + 1;
            return Ok(COctet(rest[..nul].to_vec()));
        }
        if rest.is_empty() && !self.lenient {
            return Err(self.error(DecodeErrorKind::Truncated, field));
        }
        if !nul_optional {
            return Err(self.error(DecodeErrorKind::MissingNul, field));
        }
        self.pos = self.body.len();
        Ok(COctet(rest.to_vec()))
    }

    fn address(&mut self, fields: AddressFields) -> Result<Address, DecodeError> {
        Ok(Address {
            ton: self.u8(fields.ton)?,
            npi: self.u8(fields.npi)?,
            addr: self.cstr(fields.addr)?,
        })
    }

    /// sm_length, then that many octets of short_message.
    fn short_message(&mut self) -> Result<Vec<u8>, DecodeError> {
        let sm_length = self.u8("sm_length")?;
        let rest = self.remaining();
        match rest.get(..usize::from(sm_length)) {
            Some(short_message) => {
                self.pos += short_message.len();
                Ok(short_message.to_vec())
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

    /// TLVs on a PDU whose type has no place for them are checked, then ignored (§6.2 rule 2).
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
                Ok(Tlv {
                    tag,
                    value: value.to_vec(),
                })
            }
            None => {
                let field = tlv::tag_name(tag).unwrap_or("tlv");
                Err(self.error(DecodeErrorKind::TlvOverrun, field))
            }
        }
    }
}
