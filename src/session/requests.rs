//! What a response from the SMSC answers. Each request of ours waits under its sequence
//! number for the response of its own kind; only that response, or a generic_nack, settles it
//! and stops its response timer. Anything else carrying the number (an enquire_link_resp for a
//! submit_sm, a submit_sm_resp for an enquire_link, a response to a number nothing waits
//! under) is stray: logged and ignored, and the request keeps waiting. Pure, no I/O.

use crate::smpp::CommandId;

/// A request of ours that waits for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    SubmitSm,
    EnquireLink,
    Unbind,
}

impl Request {
    /// The response that answers it.
    fn response(self) -> CommandId {
        match self {
            Request::SubmitSm => CommandId::SubmitSmResp,
            Request::EnquireLink => CommandId::EnquireLinkResp,
            Request::Unbind => CommandId::UnbindResp,
        }
    }

    pub(crate) fn command(self) -> CommandId {
        match self {
            Request::SubmitSm => CommandId::SubmitSm,
            Request::EnquireLink => CommandId::EnquireLink,
            Request::Unbind => CommandId::Unbind,
        }
    }
}

/// What a response is to the request sent under its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Its own response.
    Response(Request),
    /// A generic_nack of it: a refusal whatever its status, never an acceptance.
    Nack(Request),
    /// Not an answer to what waits under that number (`sent`), or nothing waits there.
    Stray { sent: Option<Request> },
}

/// `response` (a response's command_id) arrived for the sequence number under which `sent`
/// waits.
pub(crate) fn answer(sent: Option<Request>, response: CommandId) -> Answer {
    match sent {
        Some(request) if response == request.response() => Answer::Response(request),
        Some(request) if response == CommandId::GenericNack => Answer::Nack(request),
        sent => Answer::Stray { sent },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_matching_response_answers_a_request() {
        for request in [Request::SubmitSm, Request::EnquireLink, Request::Unbind] {
            assert_eq!(
                answer(Some(request), request.response()),
                Answer::Response(request)
            );
            assert_eq!(
                answer(Some(request), CommandId::GenericNack),
                Answer::Nack(request)
            );
        }
    }

    #[test]
    fn a_response_of_another_kind_is_stray_and_settles_nothing() {
        let sent = Some(Request::SubmitSm);
        for response in [
            CommandId::EnquireLinkResp,
            CommandId::UnbindResp,
            CommandId::DeliverSmResp,
            CommandId::QuerySmResp,
            CommandId::BindTransmitterResp,
            CommandId::Other(0x8000_0077),
        ] {
            assert_eq!(answer(sent, response), Answer::Stray { sent }, "{response}");
        }
        let sent = Some(Request::EnquireLink);
        assert_eq!(
            answer(sent, CommandId::SubmitSmResp),
            Answer::Stray { sent }
        );
        let sent = Some(Request::Unbind);
        assert_eq!(
            answer(sent, CommandId::EnquireLinkResp),
            Answer::Stray { sent }
        );
    }

    #[test]
    fn a_response_to_a_number_nothing_waits_under_is_stray() {
        for response in [CommandId::SubmitSmResp, CommandId::GenericNack] {
            assert_eq!(answer(None, response), Answer::Stray { sent: None });
        }
    }
}
