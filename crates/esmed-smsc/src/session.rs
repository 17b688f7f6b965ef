//! The read side of one SMSC connection: cuts frames, decodes them, answers like an SMSC
//! (bind checks, submit_sm with faults and message ids, enquire_link, unbind, query_sm,
//! generic_nack for what it cannot read) and journals everything. Responses for one read's
//! worth of frames are encoded into one buffer and handed to the outbox at once.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::config::ReceiptMode;
use super::deliverer::JobKind;
use super::faults::Verdict;
use super::journal::Received;
use super::outbox::Outbox;
use super::receipt_text::{smpp_absolute_time, text_start, SubmittedMessage};
use super::{BindKind, Shared};
use esmed_smpp::frame::DEFAULT_MAX_PDU_LEN;
use esmed_smpp::pdu::{
    Bind, BindResp, DataSm, LongAddress, MessageId, MessageIdResp, QuerySm, QuerySmResp, Sm,
};
use esmed_smpp::receipt::MessageState;
use esmed_smpp::tlv::{self, tag};
use esmed_smpp::FieldError;
use esmed_smpp::{decode, encode, Address, Body, CommandStatus, FrameBuffer, Pdu, Tlv};

/// What the reader does after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Stop reading; the outbox flushes what is queued and closes.
    Finish,
    /// Cut the connection now.
    Cut,
}

/// One connection's reader state.
pub struct Session {
    shared: Arc<Shared>,
    connection: u64,
    stream: TcpStream,
    outbox: Arc<Outbox>,
    bind: Option<BindKind>,
    /// Responses encoded while handling the current read.
    out: Vec<u8>,
    journal_batch: Vec<Received>,
    /// Receipts to schedule after the current read.
    jobs: Vec<(Instant, JobKind)>,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        connection: u64,
        stream: TcpStream,
        outbox: Arc<Outbox>,
    ) -> Self {
        Session {
            shared,
            connection,
            stream,
            outbox,
            bind: None,
            out: Vec::with_capacity(64 * 1024),
            journal_batch: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// Reads until the peer goes away, unbinds, or sends something unframeable.
    pub fn run(mut self) {
        let mut frames = FrameBuffer::new(DEFAULT_MAX_PDU_LEN);
        let mut reader = match self.stream.try_clone() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("connection {}: {e}", self.connection);
                return self.finish(Flow::Cut);
            }
        };
        let flow = loop {
            match frames.read_from(&mut reader) {
                Ok(0) => break Flow::Finish,
                Ok(_) => {}
                Err(e) => {
                    log::debug!("connection {}: read: {e}", self.connection);
                    break Flow::Finish;
                }
            }
            let flow = self.handle_frames(&mut frames);
            self.flush_batch();
            if flow != Flow::Continue {
                break flow;
            }
        };
        self.finish(flow);
    }

    fn handle_frames(&mut self, frames: &mut FrameBuffer) -> Flow {
        loop {
            match frames.next_frame() {
                Ok(None) => return Flow::Continue,
                Ok(Some(frame)) => {
                    let flow = self.handle_frame(frame);
                    if flow != Flow::Continue {
                        return flow;
                    }
                }
                Err(e) => {
                    log::info!("connection {}: {e}, closing", self.connection);
                    let seq = e.sequence_number.unwrap_or(0);
                    self.respond(seq, e.command_status(), Body::GenericNack);
                    return Flow::Finish;
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: &[u8]) -> Flow {
        let at = SystemTime::now();
        let pdu = match decode(frame) {
            Ok(pdu) => pdu,
            Err(e) => {
                log::info!("connection {}: undecodable PDU: {e}", self.connection);
                self.respond(e.sequence_number, e.command_status(), Body::GenericNack);
                return Flow::Continue;
            }
        };
        let flow = self.handle_pdu(&pdu);
        if self.shared.journal_wanted() {
            let raw = if self.shared.journal.in_memory() {
                frame.to_vec()
            } else {
                Vec::new()
            };
            self.journal_batch.push(Received {
                at,
                pdu,
                raw,
                connection: self.connection,
            });
        }
        flow
    }

    fn handle_pdu(&mut self, pdu: &Pdu) -> Flow {
        let seq = pdu.sequence_number;
        match &pdu.body {
            Body::BindTransmitter(b) => self.bind(seq, b, BindKind::Transmitter),
            Body::BindReceiver(b) => self.bind(seq, b, BindKind::Receiver),
            Body::BindTransceiver(b) => self.bind(seq, b, BindKind::Transceiver),
            Body::EnquireLink => self.respond(seq, CommandStatus::ESME_ROK, Body::EnquireLinkResp),
            Body::Unbind => {
                self.respond(seq, CommandStatus::ESME_ROK, Body::UnbindResp);
                return Flow::Finish;
            }
            Body::SubmitSm(sm) => return self.submit(seq, sm),
            Body::DataSm(data) => self.data_sm(seq, data),
            Body::QuerySm(query) => self.query(seq, query),
            Body::CancelSm(_) => self.if_can_submit(seq, Body::CancelSmResp),
            Body::DeliverSmResp(_) | Body::DataSmResp(_) => {
                self.shared.deliverer.acked(self.connection, seq);
            }
            Body::GenericNack => {
                log::info!("connection {}: generic_nack for {seq}", self.connection);
                self.shared.deliverer.acked(self.connection, seq);
            }
            Body::EnquireLinkResp | Body::UnbindResp => {}
            body if body.command_id().is_response() => {}
            _ => self.respond(seq, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
        }
        Flow::Continue
    }

    fn respond(&mut self, seq: u32, status: CommandStatus, body: Body) {
        let pdu = Pdu {
            command_status: status,
            sequence_number: seq,
            body,
        };
        if let Err(e) = encode(&pdu, &mut self.out) {
            log::warn!("cannot encode response: {e}");
        }
    }

    fn bind(&mut self, seq: u32, bind: &Bind, kind: BindKind) {
        let status = self.check_bind(bind, kind);
        let body = BindResp {
            system_id: self.shared.config.smsc_system_id.clone(),
            tlvs: vec![Tlv::u8(tag::SC_INTERFACE_VERSION, 0x34)],
        };
        let body = if status.is_ok() {
            body
        } else {
            BindResp::default()
        };
        let body = match kind {
            BindKind::Transmitter => Body::BindTransmitterResp(body),
            BindKind::Receiver => Body::BindReceiverResp(body),
            BindKind::Transceiver => Body::BindTransceiverResp(body),
        };
        self.respond(seq, status, body);
    }

    /// Checks credentials and limits, and registers the bind when all is well.
    fn check_bind(&mut self, bind: &Bind, kind: BindKind) -> CommandStatus {
        let config = &self.shared.config;
        if self.bind.is_some() {
            return CommandStatus::ESME_RALYBND;
        }
        if bind.system_id.as_bytes() != config.system_id.as_bytes() {
            return CommandStatus::ESME_RINVSYSID;
        }
        if bind.password.as_bytes() != config.password.as_bytes() {
            return CommandStatus::ESME_RINVPASWD;
        }
        let mut state = self.shared.lock_state();
        let bound = state.sessions.values().filter(|s| s.bind.is_some()).count();
        if bound >= config.max_binds {
            return CommandStatus::ESME_RBINDFAIL;
        }
        state.bind_order += 1;
        let order = state.bind_order;
        if let Some(entry) = state.sessions.get_mut(&self.connection) {
            entry.bind = Some(kind);
            entry.bind_order = order;
        }
        drop(state);
        self.bind = Some(kind);
        log::info!("connection {}: bound as {kind:?}", self.connection);
        if kind.receives() {
            self.shared.deliverer.receiver_bound();
        }
        CommandStatus::ESME_ROK
    }

    fn can_submit(&self) -> bool {
        self.bind.is_some_and(|b| b.submits())
    }

    fn if_can_submit(&mut self, seq: u32, body: Body) {
        let status = if self.can_submit() {
            CommandStatus::ESME_ROK
        } else {
            CommandStatus::ESME_RINVBNDSTS
        };
        self.respond(seq, status, body);
    }

    fn submit(&mut self, seq: u32, sm: &Sm) -> Flow {
        let resp = |id: String| {
            Body::SubmitSmResp(MessageIdResp {
                message_id: message_id(id),
                tlvs: Vec::new(),
            })
        };
        if !self.can_submit() {
            self.respond(seq, CommandStatus::ESME_RINVBNDSTS, resp(String::new()));
            return Flow::Continue;
        }
        let now = Instant::now();
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock_state();
        state.submits += 1;
        let verdict = state.faults.decide(sm.destination.addr.as_bytes(), now);
        let delay = state.faults.faults.response_delay;
        let status = match verdict {
            Verdict::Drop => {
                drop(state);
                log::info!("connection {}: dropping (fault)", self.connection);
                return Flow::Cut;
            }
            Verdict::Swallow => return Flow::Continue,
            Verdict::Answer(status) => status,
        };
        let id = if status.is_ok() {
            let text = text_start(sm.data_coding, sm.esm_class, &sm.short_message);
            let message = self.accept(&mut state, &sm.source, &sm.destination, text);
            drop(state);
            let id = message.message_id.clone();
            self.plan_receipts(message, sm.registered_delivery, now);
            id
        } else {
            drop(state);
            String::new()
        };
        self.respond_maybe_later(seq, status, resp(id), delay.map(|d| now + d));
        Flow::Continue
    }

    fn data_sm(&mut self, seq: u32, data: &DataSm) {
        let resp = |id: String| {
            Body::DataSmResp(MessageIdResp {
                message_id: message_id(id),
                tlvs: Vec::new(),
            })
        };
        if !self.can_submit() {
            return self.respond(seq, CommandStatus::ESME_RINVBNDSTS, resp(String::new()));
        }
        let now = Instant::now();
        let payload = tlv::find(&data.tlvs, tag::MESSAGE_PAYLOAD).map_or(&[][..], |t| &t.value);
        let text = text_start(data.data_coding, data.esm_class, payload);
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock_state();
        let delay = state.faults.faults.response_delay;
        // Its receipt is a deliver_sm, whose addresses hold 20 characters, not 64.
        let addresses = (
            receipt_address(&data.source),
            receipt_address(&data.destination),
        );
        let (Ok(source), Ok(destination)) = addresses else {
            drop(state);
            let status = match addresses.0 {
                Ok(_) => CommandStatus::ESME_RINVDSTADR,
                Err(_) => CommandStatus::ESME_RINVSRCADR,
            };
            return self.respond(seq, status, resp(String::new()));
        };
        let message = self.accept(&mut state, &source, &destination, text);
        drop(state);
        let id = message.message_id.clone();
        self.plan_receipts(message, data.registered_delivery, now);
        self.respond_maybe_later(
            seq,
            CommandStatus::ESME_ROK,
            resp(id),
            delay.map(|d| now + d),
        );
    }

    /// Gives an accepted message its id and remembers it for query_sm.
    fn accept(
        &self,
        state: &mut super::State,
        source: &Address,
        destination: &Address,
        text_start: String,
    ) -> Arc<SubmittedMessage> {
        let config = &self.shared.config;
        let n = state.next_id;
        state.next_id += 1;
        let message_id = config.id_format.render(n);
        let text_id = match &config.receipts {
            ReceiptMode::After(r) => r.text_id_format.render(n, config.id_format),
            ReceiptMode::Off => message_id.clone(),
        };
        let message = Arc::new(SubmittedMessage {
            message_id,
            text_id,
            source: source.clone(),
            destination: destination.clone(),
            submitted_at: SystemTime::now(),
            text_start,
        });
        let (final_state, delay) = match &config.receipts {
            ReceiptMode::After(r) => (r.final_state, r.delay),
            ReceiptMode::Off => (MessageState::Delivered, std::time::Duration::ZERO),
        };
        let final_at = message.submitted_at + delay;
        state
            .messages
            .remember(n, Arc::clone(&message), final_state, final_at);
        message
    }

    fn plan_receipts(
        &mut self,
        message: Arc<SubmittedMessage>,
        registered_delivery: u8,
        now: Instant,
    ) {
        let ReceiptMode::After(config) = &self.shared.config.receipts else {
            return;
        };
        let asked = match registered_delivery & 0x03 {
            0x01 => true,
            0x02 => config.final_state != MessageState::Delivered,
            _ => false,
        };
        if config.only_when_requested && !asked {
            return;
        }
        if config.intermediate_enroute {
            self.jobs.push((
                now + config.delay / 2,
                JobKind::Receipt {
                    message: Arc::clone(&message),
                    state: MessageState::Enroute,
                },
            ));
        }
        self.jobs.push((
            now + config.delay,
            JobKind::Receipt {
                message,
                state: config.final_state,
            },
        ));
    }

    fn query(&mut self, seq: u32, query: &QuerySm) {
        if !self.can_submit() {
            let body = Body::QuerySmResp(QuerySmResp::default());
            return self.respond(seq, CommandStatus::ESME_RINVBNDSTS, body);
        }
        let id = query.message_id.to_string_lossy();
        let found = self
            .shared
            .lock_state()
            .messages
            .state_of(&id, SystemTime::now());
        let (status, body) = match found {
            Some((state, final_at)) => (
                CommandStatus::ESME_ROK,
                QuerySmResp {
                    message_id: query.message_id.clone(),
                    final_date: final_at.map(smpp_absolute_time).unwrap_or_default(),
                    message_state: state.value(),
                    error_code: 0,
                },
            ),
            None => (CommandStatus::ESME_RQUERYFAIL, QuerySmResp::default()),
        };
        self.respond(seq, status, Body::QuerySmResp(body));
    }

    fn respond_maybe_later(
        &mut self,
        seq: u32,
        status: CommandStatus,
        body: Body,
        due: Option<Instant>,
    ) {
        match due {
            None => self.respond(seq, status, body),
            Some(due) => {
                let mut bytes = Vec::new();
                let pdu = Pdu {
                    command_status: status,
                    sequence_number: seq,
                    body,
                };
                match encode(&pdu, &mut bytes) {
                    Ok(()) => self.outbox.push_at(due, bytes),
                    Err(e) => log::warn!("cannot encode response: {e}"),
                }
            }
        }
    }

    /// Hands this read's responses, journal entries and receipts on.
    fn flush_batch(&mut self) {
        self.outbox.push(&self.out);
        self.out.clear();
        if !self.jobs.is_empty() {
            self.shared
                .deliverer
                .schedule(std::mem::take(&mut self.jobs));
        }
        let batch = std::mem::take(&mut self.journal_batch);
        self.shared.journal.record_received(batch);
    }

    fn finish(mut self, flow: Flow) {
        self.flush_batch();
        match flow {
            Flow::Cut => {
                self.outbox.close();
                let _ = self.stream.shutdown(Shutdown::Both);
            }
            _ => self.outbox.close_after_flush(),
        }
        self.shared.lock_state().sessions.remove(&self.connection);
        self.shared.deliverer.connection_closed(self.connection);
        log::info!("connection {} closed", self.connection);
    }
}

/// A submit_sm_resp / data_sm_resp message id: [`IdFormat::render`] writes at most 36 ASCII
/// characters, which always fit.
///
/// [`IdFormat::render`]: super::config::IdFormat::render
fn message_id(id: String) -> MessageId {
    MessageId::new(id).unwrap_or_default()
}

/// A data_sm's address as its receipt (a deliver_sm) carries it.
fn receipt_address(address: &LongAddress) -> Result<Address, FieldError> {
    Address::new(address.ton, address.npi, address.addr.as_bytes())
}
