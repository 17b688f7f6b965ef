//! PDU types: one struct per body layout of SMPP 3.4 §4. No encoding here (see `codec`), and
//! no derived fields: `command_length`, `command_id` and `sm_length` are computed when encoding.
//!
//! Strings are kept as bytes ([`COctet`]) because SMSCs send whatever they like; each field's
//! type carries its maximum length, checked when a value is built (see [`crate::field`]), not
//! when a value is decoded.

use super::{CommandId, CommandStatus, Tlv};
pub use crate::field::{
    Addr, AddressRange, COctet, FieldError, LongAddr, MessageId, OctetString, Password,
    ServiceType, ShortMessage, SmppTime, SystemId, SystemType,
};

/// A TON/NPI/address triple as it appears in most PDUs; `MAX` is the address's size, NUL
/// included: 21 by default, [`LongAddress`] for data_sm and alert_notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Address<const MAX: usize = { crate::codec::max::ADDR }> {
    pub ton: u8,
    pub npi: u8,
    pub addr: COctet<MAX>,
}

/// The address of data_sm and alert_notification: up to 64 characters.
pub type LongAddress = Address<{ crate::codec::max::LONG_ADDR }>;

impl<const MAX: usize> Address<MAX> {
    /// Unknown TON/NPI and no address.
    pub const EMPTY: Self = Address {
        ton: 0,
        npi: 0,
        addr: COctet::EMPTY,
    };

    /// The address if `addr` fits it (see [`COctet::new`]).
    pub fn new(ton: u8, npi: u8, addr: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        Ok(Address {
            ton,
            npi,
            addr: COctet::new(addr)?,
        })
    }
}

/// A whole PDU: the header fields that are not derived, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub command_status: CommandStatus,
    pub sequence_number: u32,
    pub body: Body,
}

impl Pdu {
    /// A request or response with status ESME_ROK.
    pub fn new(sequence_number: u32, body: Body) -> Self {
        Pdu {
            command_status: CommandStatus::ESME_ROK,
            sequence_number,
            body,
        }
    }

    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }
}

/// The body of every PDU an ESME meets, keyed by command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    GenericNack,
    BindReceiver(Bind),
    BindReceiverResp(BindResp),
    BindTransmitter(Bind),
    BindTransmitterResp(BindResp),
    BindTransceiver(Bind),
    BindTransceiverResp(BindResp),
    Outbind(Outbind),
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm(Box<Sm>),
    SubmitSmResp(MessageIdResp),
    DeliverSm(Box<Sm>),
    DeliverSmResp(MessageIdResp),
    DataSm(Box<DataSm>),
    DataSmResp(MessageIdResp),
    QuerySm(QuerySm),
    QuerySmResp(QuerySmResp),
    CancelSm(CancelSm),
    CancelSmResp,
    AlertNotification(AlertNotification),
    /// A command esmed does not decode (unknown ids, and replace_sm / submit_multi which an
    /// ESME never receives): the raw body is kept so nothing is lost.
    Other {
        command_id: u32,
        body: Vec<u8>,
    },
}

impl Body {
    pub fn command_id(&self) -> CommandId {
        match self {
            Body::GenericNack => CommandId::GenericNack,
            Body::BindReceiver(_) => CommandId::BindReceiver,
            Body::BindReceiverResp(_) => CommandId::BindReceiverResp,
            Body::BindTransmitter(_) => CommandId::BindTransmitter,
            Body::BindTransmitterResp(_) => CommandId::BindTransmitterResp,
            Body::BindTransceiver(_) => CommandId::BindTransceiver,
            Body::BindTransceiverResp(_) => CommandId::BindTransceiverResp,
            Body::Outbind(_) => CommandId::Outbind,
            Body::Unbind => CommandId::Unbind,
            Body::UnbindResp => CommandId::UnbindResp,
            Body::EnquireLink => CommandId::EnquireLink,
            Body::EnquireLinkResp => CommandId::EnquireLinkResp,
            Body::SubmitSm(_) => CommandId::SubmitSm,
            Body::SubmitSmResp(_) => CommandId::SubmitSmResp,
            Body::DeliverSm(_) => CommandId::DeliverSm,
            Body::DeliverSmResp(_) => CommandId::DeliverSmResp,
            Body::DataSm(_) => CommandId::DataSm,
            Body::DataSmResp(_) => CommandId::DataSmResp,
            Body::QuerySm(_) => CommandId::QuerySm,
            Body::QuerySmResp(_) => CommandId::QuerySmResp,
            Body::CancelSm(_) => CommandId::CancelSm,
            Body::CancelSmResp => CommandId::CancelSmResp,
            Body::AlertNotification(_) => CommandId::AlertNotification,
            Body::Other { command_id, .. } => CommandId::from(*command_id),
        }
    }
}

/// bind_transmitter / bind_receiver / bind_transceiver (§4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bind {
    pub system_id: SystemId,
    pub password: Password,
    pub system_type: SystemType,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: AddressRange,
}

/// bind_*_resp (§4.1); header-only on error decodes to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindResp {
    pub system_id: SystemId,
    pub tlvs: Vec<Tlv>,
}

/// outbind (§4.1.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbind {
    pub system_id: SystemId,
    pub password: Password,
}

/// submit_sm and deliver_sm share one layout (§4.4.1, §4.6.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sm {
    pub service_type: ServiceType,
    pub source: Address,
    pub destination: Address,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: SmppTime,
    pub validity_period: SmppTime,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// User data, UDH first when esm_class has UDHI; `sm_length` is its length.
    pub short_message: ShortMessage,
    pub tlvs: Vec<Tlv>,
}

/// submit_sm_resp, deliver_sm_resp and data_sm_resp (§4.4.2, §4.6.2, §4.7.2): a message id and,
/// for data_sm_resp, TLVs. A header-only body (on error) decodes to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageIdResp {
    pub message_id: MessageId,
    pub tlvs: Vec<Tlv>,
}

/// data_sm (§4.7.1): user data travels in the message_payload TLV.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSm {
    pub service_type: ServiceType,
    pub source: LongAddress,
    pub destination: LongAddress,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    pub tlvs: Vec<Tlv>,
}

/// query_sm (§4.8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySm {
    pub message_id: MessageId,
    pub source: Address,
}

/// query_sm_resp (§4.8.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySmResp {
    pub message_id: MessageId,
    pub final_date: SmppTime,
    pub message_state: u8,
    pub error_code: u8,
}

/// cancel_sm (§4.9.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelSm {
    pub service_type: ServiceType,
    pub message_id: MessageId,
    pub source: Address,
    pub destination: Address,
}

/// alert_notification (§4.12.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertNotification {
    pub source: LongAddress,
    pub esme: LongAddress,
    pub tlvs: Vec<Tlv>,
}
