//! The bind handshake's rules: the bind request a session opens with and what each PDU that
//! arrives before the session is bound means. Pure; `bind` does the connecting, the writing
//! and the reading with the session's deadline.

use crate::handoff::BindKind;
use crate::session::Credentials;
use crate::smpp::pdu::{Bind, Body};
use crate::smpp::{CommandStatus, Pdu};

/// The sequence number every bind uses; the writer numbers its requests from 2 on.
pub(crate) const BIND_SEQUENCE: u32 = 1;

/// The bind request of `kind`, SMPP 3.4, without address range.
pub(crate) fn bind_request(kind: BindKind, account: &Credentials) -> Pdu {
    let bind = Bind {
        system_id: account.system_id.clone(),
        password: account.password.clone(),
        system_type: account.system_type.clone(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let body = match kind {
        BindKind::Transmitter => Body::BindTransmitter(bind),
        BindKind::Receiver => Body::BindReceiver(bind),
        BindKind::Transceiver => Body::BindTransceiver(bind),
    };
    Pdu::new(BIND_SEQUENCE, body)
}

/// What a PDU received while binding means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BindAnswer {
    /// Our bind succeeded; the SMSC's system_id.
    Bound(String),
    /// The SMSC refused our bind with this status.
    Refused(CommandStatus),
    /// Not an answer to our bind (an SMSC may send other PDUs first): wait on.
    NotYet,
}

/// The meaning of `pdu` for a session binding as `kind`.
pub(crate) fn bind_answer(pdu: &Pdu, kind: BindKind) -> BindAnswer {
    let resp = match (&pdu.body, kind) {
        (Body::BindTransmitterResp(r), BindKind::Transmitter)
        | (Body::BindReceiverResp(r), BindKind::Receiver)
        | (Body::BindTransceiverResp(r), BindKind::Transceiver) => r,
        (Body::GenericNack, _) if pdu.sequence_number == BIND_SEQUENCE => {
            return BindAnswer::Refused(pdu.command_status)
        }
        _ => return BindAnswer::NotYet,
    };
    if pdu.command_status != CommandStatus::ESME_ROK {
        return BindAnswer::Refused(pdu.command_status);
    }
    BindAnswer::Bound(resp.system_id.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::BindResp;

    fn account() -> Credentials {
        Credentials {
            system_id: "esme".try_into().unwrap(),
            password: "secret".try_into().unwrap(),
            system_type: "VMA".try_into().unwrap(),
        }
    }

    fn resp(body: fn(BindResp) -> Body, status: CommandStatus) -> Pdu {
        let body = body(BindResp {
            system_id: "SMSC".try_into().unwrap(),
            ..BindResp::default()
        });
        Pdu {
            command_status: status,
            sequence_number: BIND_SEQUENCE,
            body,
        }
    }

    #[test]
    fn the_request_is_the_bind_of_the_session_kind_with_the_account() {
        let request = bind_request(BindKind::Receiver, &account());
        assert_eq!(request.sequence_number, BIND_SEQUENCE);
        let Body::BindReceiver(bind) = &request.body else {
            panic!("not a bind_receiver: {request:?}");
        };
        assert_eq!(bind.system_id.as_bytes(), b"esme");
        assert_eq!(bind.password.as_bytes(), b"secret");
        assert_eq!(bind.system_type.as_bytes(), b"VMA");
        assert_eq!(bind.interface_version, 0x34);
        assert!(matches!(
            bind_request(BindKind::Transmitter, &account()).body,
            Body::BindTransmitter(_)
        ));
        assert!(matches!(
            bind_request(BindKind::Transceiver, &account()).body,
            Body::BindTransceiver(_)
        ));
    }

    #[test]
    fn the_matching_response_binds_and_names_the_smsc() {
        let answer = bind_answer(
            &resp(Body::BindTransceiverResp, CommandStatus::ESME_ROK),
            BindKind::Transceiver,
        );
        assert_eq!(answer, BindAnswer::Bound("SMSC".into()));
    }

    #[test]
    fn an_error_status_or_a_generic_nack_to_the_bind_is_a_refusal() {
        let refused = resp(Body::BindTransmitterResp, CommandStatus::ESME_RINVPASWD);
        assert_eq!(
            bind_answer(&refused, BindKind::Transmitter),
            BindAnswer::Refused(CommandStatus::ESME_RINVPASWD)
        );
        let nack = Pdu {
            command_status: CommandStatus::ESME_RINVCMDID,
            sequence_number: BIND_SEQUENCE,
            body: Body::GenericNack,
        };
        assert_eq!(
            bind_answer(&nack, BindKind::Transmitter),
            BindAnswer::Refused(CommandStatus::ESME_RINVCMDID)
        );
    }

    #[test]
    fn other_pdus_are_not_the_answer() {
        let other_kind = resp(Body::BindReceiverResp, CommandStatus::ESME_ROK);
        assert_eq!(
            bind_answer(&other_kind, BindKind::Transmitter),
            BindAnswer::NotYet
        );
        let stray_nack = Pdu {
            command_status: CommandStatus::ESME_RINVCMDID,
            sequence_number: 7,
            body: Body::GenericNack,
        };
        assert_eq!(
            bind_answer(&stray_nack, BindKind::Transmitter),
            BindAnswer::NotYet
        );
        let enquire = Pdu::new(3, Body::EnquireLink);
        assert_eq!(
            bind_answer(&enquire, BindKind::Transceiver),
            BindAnswer::NotYet
        );
    }
}
