//! SMPP command identifiers (SMPP 3.4 §5.1.2.1). Unknown values are kept in `Other`, never rejected,
//! so that the session can answer them with generic_nack ESME_RINVCMDID.

/// The `command_id` header field. Bit 31 set means a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandId {
    GenericNack,
    BindReceiver,
    BindReceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    DeliverSm,
    DeliverSmResp,
    Unbind,
    UnbindResp,
    ReplaceSm,
    ReplaceSmResp,
    CancelSm,
    CancelSmResp,
    BindTransceiver,
    BindTransceiverResp,
    Outbind,
    EnquireLink,
    EnquireLinkResp,
    SubmitMulti,
    SubmitMultiResp,
    AlertNotification,
    DataSm,
    DataSmResp,
    /// Any value not in the table above (reserved, v5.0 or vendor ids).
    Other(u32),
}

/// Every named id with its wire value; one table drives both conversions.
const TABLE: [(CommandId, u32, &str); 27] = [
    (CommandId::GenericNack, 0x8000_0000, "generic_nack"),
    (CommandId::BindReceiver, 0x0000_0001, "bind_receiver"),
    (
        CommandId::BindReceiverResp,
        0x8000_0001,
        "bind_receiver_resp",
    ),
    (CommandId::BindTransmitter, 0x0000_0002, "bind_transmitter"),
    (
        CommandId::BindTransmitterResp,
        0x8000_0002,
        "bind_transmitter_resp",
    ),
    (CommandId::QuerySm, 0x0000_0003, "query_sm"),
    (CommandId::QuerySmResp, 0x8000_0003, "query_sm_resp"),
    (CommandId::SubmitSm, 0x0000_0004, "submit_sm"),
    (CommandId::SubmitSmResp, 0x8000_0004, "submit_sm_resp"),
    (CommandId::DeliverSm, 0x0000_0005, "deliver_sm"),
    (CommandId::DeliverSmResp, 0x8000_0005, "deliver_sm_resp"),
    (CommandId::Unbind, 0x0000_0006, "unbind"),
    (CommandId::UnbindResp, 0x8000_0006, "unbind_resp"),
    (CommandId::ReplaceSm, 0x0000_0007, "replace_sm"),
    (CommandId::ReplaceSmResp, 0x8000_0007, "replace_sm_resp"),
    (CommandId::CancelSm, 0x0000_0008, "cancel_sm"),
    (CommandId::CancelSmResp, 0x8000_0008, "cancel_sm_resp"),
    (CommandId::BindTransceiver, 0x0000_0009, "bind_transceiver"),
    (
        CommandId::BindTransceiverResp,
        0x8000_0009,
        "bind_transceiver_resp",
    ),
    (CommandId::Outbind, 0x0000_000B, "outbind"),
    (CommandId::EnquireLink, 0x0000_0015, "enquire_link"),
    (CommandId::EnquireLinkResp, 0x8000_0015, "enquire_link_resp"),
    (CommandId::SubmitMulti, 0x0000_0021, "submit_multi"),
    (CommandId::SubmitMultiResp, 0x8000_0021, "submit_multi_resp"),
    (
        CommandId::AlertNotification,
        0x0000_0102,
        "alert_notification",
    ),
    (CommandId::DataSm, 0x0000_0103, "data_sm"),
    (CommandId::DataSmResp, 0x8000_0103, "data_sm_resp"),
];

impl CommandId {
    /// The wire value.
    pub fn value(self) -> u32 {
        match self {
            CommandId::Other(v) => v,
            named => TABLE
                .iter()
                .find(|(id, _, _)| *id == named)
                .map_or(0, |e| e.1),
        }
    }

    /// The spec's lower-case name, e.g. `submit_sm`; `None` for unknown ids.
    pub fn name(self) -> Option<&'static str> {
        TABLE.iter().find(|(id, _, _)| *id == self).map(|e| e.2)
    }

    /// Responses have bit 31 set.
    pub fn is_response(self) -> bool {
        self.value() & 0x8000_0000 != 0
    }

    /// The id of the response to this request (request id | 0x8000_0000).
    pub fn response_id(self) -> CommandId {
        CommandId::from(self.value() | 0x8000_0000)
    }
}

impl From<u32> for CommandId {
    fn from(value: u32) -> Self {
        TABLE
            .iter()
            .find(|(_, v, _)| *v == value)
            .map_or(CommandId::Other(value), |e| e.0)
    }
}

impl From<CommandId> for u32 {
    fn from(id: CommandId) -> u32 {
        id.value()
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "command_id 0x{:08X}", self.value()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_id_round_trips_through_its_value() {
        for (id, value, _) in TABLE {
            assert_eq!(CommandId::from(value), id);
            assert_eq!(id.value(), value);
        }
    }

    #[test]
    fn unknown_ids_are_kept() {
        assert_eq!(CommandId::from(0x0001_0200), CommandId::Other(0x0001_0200));
        assert_eq!(CommandId::Other(0x111).value(), 0x111);
        assert_eq!(CommandId::Other(0x111).to_string(), "command_id 0x00000111");
    }

    #[test]
    fn response_ids_set_bit_31() {
        assert_eq!(CommandId::SubmitSm.response_id(), CommandId::SubmitSmResp);
        assert_eq!(
            CommandId::EnquireLink.response_id(),
            CommandId::EnquireLinkResp
        );
        assert!(CommandId::GenericNack.is_response());
        assert!(!CommandId::DeliverSm.is_response());
    }
}
