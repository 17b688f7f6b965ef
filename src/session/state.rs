//! The rules of one bound session, without I/O: what to submit and when, what a response
//! settles, what the SMSC's requests are answered with, when the link is dead, how a stop
//! drains, and what a commit releases. The writer thread (`writer`) owns the socket and the
//! channels; it feeds this core events and carries out what the core asks for.
//!
//! - Events in: PDUs from the reader (`on_reader_events`), a claimed row (`on_row`), commits
//!   reported by the DB writer (`on_stored`, `on_results_committed`), the clock reaching
//!   `next_deadline` (`on_timeout`), a stop (`on_stop`), the end of the connection
//!   (`on_connection_lost`).
//! - Actions out: the bytes to write (`output`, already encoded, so a window of submits leaves
//!   in one write), rows and received PDUs for the DB writer (`poll_action`), the moment to
//!   wake up for the timers (`next_deadline`), and the end of the session (an `Err(Ending)`).
//! - Time comes in as an argument: the core never reads the clock, so tests move it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use crate::handoff::{ReaderEvent, RxRow, TxOutcome, TxResult, TxRow};
use crate::logging::repeats::{self, Counted, Repeats, Verdict};
use crate::observe::counters::Stats;
use crate::session::flow::{Congestion, TokenBucket};
use crate::session::id_hash::IdMap;
use crate::session::inbound::rx_row;
use crate::session::outbox::{window_share, AtRisk, Outbox, ResponseEffect};
use crate::session::requests::{answer, Answer, Request};
use crate::session::timers::{Timer, TimerWheel};
use crate::session::SessionParams;
use crate::smpp::codec::{encode_checked_submit_sm, encode_fixed, Fixed};
use crate::smpp::pdu::Body;
use crate::smpp::SequenceNumbers;
use crate::smpp::{CommandId, CommandStatus, Pdu};

/// Received PDUs allowed to wait for their commit before the session stops reading.
const MAX_AWAITING_COMMIT: usize = 1000;

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Stop was asked and the session unbound cleanly (or as cleanly as it could).
    Stopped,
    /// The link failed; reconnect.
    Lost(String),
}

/// What the core asks of the DB writer; the writer thread sends it on (see `poll_action`).
#[derive(Debug)]
pub(crate) enum Action {
    /// A row's result to commit. Until the commit is reported (`on_results_committed`), it
    /// stands for `segments` against the bound on uncommitted results (the window with
    /// strict_resend_bound).
    Commit { result: TxResult, segments: usize },
    /// A received deliver_sm / data_sm to store; it is answered once its commit is reported
    /// (`on_stored`).
    Store {
        row: Box<RxRow>,
        sequence_number: u32,
        command: CommandId,
    },
}

/// The warnings one PDU from the SMSC can cause, each logged a few times a minute and then
/// counted (see [`crate::logging::repeats`]): a flood of them must not flood the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Odd {
    Undecodable,
    UnknownCommand,
    StrayResponse,
    WrongBindState,
}

impl Odd {
    fn describe(self) -> &'static str {
        match self {
            Odd::Undecodable => "undecodable PDUs answered with an error",
            Odd::UnknownCommand => "unsupported commands answered with generic_nack",
            Odd::StrayResponse => "responses that answer nothing outstanding ignored",
            Odd::WrongBindState => "requests not allowed in this bind state refused",
        }
    }
}

/// One bound session's state.
pub(crate) struct Session<'a> {
    params: &'a SessionParams,
    stats: &'a Stats,
    /// Encoded PDUs waiting to be written.
    out: Vec<u8>,
    /// What waits to be handed to the DB writer, in order.
    actions: VecDeque<Action>,
    timers: TimerWheel,
    fired: Vec<Timer>,
    sequence: SequenceNumbers,
    outbox: Outbox,
    /// Requests of ours other than submit_sm that wait for a response (submit_sm wait in
    /// the outbox).
    pending: IdMap<u32, Request>,
    bucket: Option<TokenBucket>,
    /// The effective window and the pause after throttling.
    congestion: Congestion,
    paused_until: Option<Instant>,
    /// deliver_sm / data_sm received whose rows are not committed yet.
    awaiting_commit: usize,
    /// Segments of the results handed to the DB writer and not yet committed (see `at_risk`).
    uncommitted_segments: usize,
    stopping: bool,
    unbind_sent: bool,
    odd: Repeats<Odd>,
}

impl<'a> Session<'a> {
    /// A session just bound at `now` (the bind used sequence number 1).
    pub(crate) fn new(params: &'a SessionParams, stats: &'a Stats, now: Instant) -> Self {
        let mut sequence = SequenceNumbers::new();
        let _ = sequence.next();
        let mut timers = TimerWheel::new(now);
        timers.arm(Timer::EnquireLink, now + params.timers.enquire_link);
        timers.arm(Timer::Inactivity, now + params.timers.inactivity);
        Session {
            params,
            stats,
            out: Vec::with_capacity(64 * 1024),
            actions: VecDeque::new(),
            timers,
            fired: Vec::new(),
            sequence,
            outbox: Outbox::new(params.submit.clone()),
            pending: IdMap::default(),
            bucket: TokenBucket::new(params.rate_limit, now),
            congestion: Congestion::new(
                params.window,
                Duration::from_millis(100),
                Duration::from_secs(10),
            ),
            paused_until: None,
            awaiting_commit: 0,
            uncommitted_segments: 0,
            stopping: false,
            unbind_sent: false,
            odd: Repeats::default(),
        }
    }

    /// The encoded PDUs to write, in order; `clear_output` once written.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }

    pub(crate) fn clear_output(&mut self) {
        self.out.clear();
    }

    /// The next thing to hand to the DB writer, oldest first.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `on_timeout` is next due; `None` when no timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Whether to read the SMSC's PDUs: while this many received PDUs wait for their commit,
    /// the reader is left to block, TCP pushes back, and an SMSC that ignores windowing
    /// cannot fill memory.
    pub(crate) fn reads_wanted(&self) -> bool {
        self.awaiting_commit < MAX_AWAITING_COMMIT
    }

    /// Whether to take another claimed row now.
    pub(crate) fn wants_rows(&self) -> bool {
        self.params.bind.can_submit()
            && !self.stopping
            && !self.outbox.has_queued_parts()
            && self
                .at_risk()
                .room_for_rows(self.congestion.window(), self.answered_window())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// submit_sm waiting for their response.
    pub(crate) fn in_flight(&self) -> usize {
        self.outbox.in_flight()
    }

    /// The effective window (the configured one, or less after throttling).
    #[cfg(test)]
    fn window(&self) -> usize {
        self.congestion.window()
    }

    /// Room for another submit: see `AtRisk`.
    fn has_room(&self) -> bool {
        self.at_risk()
            .room_for_a_part(self.congestion.window(), self.answered_window())
    }

    /// What a killed esmed would send again, in segments: the submits in flight, the parts
    /// accepted whose rows are not finished, and the results not yet committed.
    fn at_risk(&self) -> AtRisk {
        AtRisk {
            in_flight: self.outbox.in_flight(),
            accepted: self.outbox.accepted_open(),
            uncommitted: self.uncommitted_segments,
        }
    }

    /// The answered segments' own bound (`max_uncommitted_results`): submits go on while
    /// earlier results commit, and a kill resends at most the window plus this. With
    /// strict_resend_bound they share the submits' window instead (one window at risk, but
    /// each window then waits for a commit).
    fn answered_window(&self) -> Option<usize> {
        (!self.params.strict_resend_bound).then_some(self.params.max_uncommitted)
    }

    /// A claimed row: its parts are queued and submitted as far as the window allows.
    pub(crate) fn on_row(&mut self, row: TxRow, now: Instant) {
        let id = row.id;
        if let Some(result) = self.outbox.add_row(row) {
            if let TxOutcome::Failed { info, .. } = &result.outcome {
                warn!(
                    "{}: row {id} cannot be sent: {info}; marking it failed",
                    self.params.label
                );
            }
            self.commit(result);
        }
        self.pump(now);
    }

    /// A claimed row this SMPP session will not take (it is ending): back to the queue, so that
    /// its lease does not run out while we reconnect (another esmed could then send it too).
    pub(crate) fn hand_back(&mut self, row: &TxRow) {
        self.commit(TxResult {
            id: row.id,
            insert_timestamp: row.insert_timestamp,
            outcome: TxOutcome::Release,
            attempts: 0,
            resends: 0,
        });
    }

    /// Submits queued parts while the window, the rate cap and any throttle pause allow.
    pub(crate) fn pump(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|until| now < until) {
            return;
        }
        self.paused_until = None;
        while self.has_room() {
            let Some((_, _, sm)) = self.outbox.next_part() else {
                break;
            };
            if let Some(bucket) = self.bucket.as_mut() {
                if let Err(next) = bucket.take(now) {
                    self.paused_until = Some(next);
                    self.timers.arm(Timer::Resume, next);
                    break;
                }
            }
            let sequence_number = self.sequence.next();
            encode_checked_submit_sm(sequence_number, sm, &mut self.out);
            self.outbox.mark_sent(sequence_number);
            self.timers.arm(
                Timer::Response(sequence_number),
                now + self.params.timers.response,
            );
            self.stats
                .submitted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The clock has reached `next_deadline` (or later): fires what is due.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Result<(), Ending> {
        for counted in self.odd.over(now) {
            self.log_counted(&counted);
        }
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.expire(now, &mut fired);
        let mut result = Ok(());
        for timer in fired.drain(..) {
            result = result.and(self.on_timer(timer, now));
        }
        self.fired = fired;
        result
    }

    fn on_timer(&mut self, timer: Timer, now: Instant) -> Result<(), Ending> {
        match timer {
            Timer::EnquireLink => {
                let sequence_number = self.sequence.next();
                self.pending.insert(sequence_number, Request::EnquireLink);
                self.timers.arm(
                    Timer::Response(sequence_number),
                    now + self.params.timers.response,
                );
                self.queue_fixed(Fixed::EnquireLink, CommandStatus::ESME_ROK, sequence_number);
                self.timers
                    .arm(Timer::EnquireLink, now + self.params.timers.enquire_link);
                Ok(())
            }
            Timer::Inactivity => Err(Ending::Lost(format!(
                "nothing received from the SMSC for {} s (smpp_inactivity_timer)",
                self.params.timers.inactivity.as_secs()
            ))),
            Timer::Response(sequence_number) => self.on_response_timeout(sequence_number),
            Timer::Resume => Ok(()),
            Timer::ShutdownDeadline => Err(Ending::Stopped),
        }
    }

    fn on_response_timeout(&mut self, sequence_number: u32) -> Result<(), Ending> {
        match self.pending.remove(&sequence_number) {
            Some(Request::EnquireLink) => Err(Ending::Lost(format!(
                "no enquire_link_resp within {} s (smpp_response_timer)",
                self.params.timers.response.as_secs()
            ))),
            Some(Request::Unbind) => Err(Ending::Stopped),
            Some(Request::SubmitSm) | None => {
                if let Some((id, part)) = self.outbox.part_of(sequence_number) {
                    warn!(
                        "{}: row {id} part {}: no submit_sm_resp for seq {sequence_number} within {} s; \
                         outcome unknown, the row will be submitted again (possible duplicate)",
                        self.params.label,
                        part + 1,
                        self.params.timers.response.as_secs()
                    );
                }
                if let Some(result) = self.outbox.on_timeout(sequence_number) {
                    self.commit(result);
                }
                Ok(())
            }
        }
    }

    /// What one read of the reader brought in, in order; the inactivity timer restarts once.
    pub(crate) fn on_reader_events(
        &mut self,
        batch: Vec<ReaderEvent>,
        now: Instant,
    ) -> Result<(), Ending> {
        self.timers
            .arm(Timer::Inactivity, now + self.params.timers.inactivity);
        batch
            .into_iter()
            .try_for_each(|event| self.on_reader_event(event, now))
    }

    fn on_reader_event(&mut self, event: ReaderEvent, now: Instant) -> Result<(), Ending> {
        match event {
            ReaderEvent::Pdu(pdu, raw) => self.on_pdu(pdu, &raw, now),
            ReaderEvent::Undecodable(error, _raw) => {
                self.warn_odd(
                    Odd::Undecodable,
                    now,
                    format_args!(
                        "undecodable PDU from the SMSC: {error}; answering with {}",
                        error.command_status()
                    ),
                );
                self.answer_error(
                    error.command_id,
                    error.sequence_number,
                    error.command_status(),
                );
                Ok(())
            }
            ReaderEvent::Framing(error) => {
                let sequence_number = error.sequence_number.unwrap_or(0);
                let status = CommandStatus::ESME_RINVCMDLEN;
                self.queue_fixed(Fixed::GenericNack, status, sequence_number);
                Err(Ending::Lost(format!(
                    "framing error: {error}; closing the connection"
                )))
            }
            ReaderEvent::Closed(why) => Err(if self.unbind_sent {
                Ending::Stopped
            } else {
                Ending::Lost(why)
            }),
        }
    }

    fn on_pdu(&mut self, pdu: Pdu, raw: &[u8], now: Instant) -> Result<(), Ending> {
        let sequence_number = pdu.sequence_number;
        if pdu.command_id().is_response() {
            return self.on_response(&pdu, now);
        }
        match pdu.body {
            Body::EnquireLink => self.queue_fixed(
                Fixed::EnquireLinkResp,
                CommandStatus::ESME_ROK,
                sequence_number,
            ),
            Body::Unbind => {
                self.queue_fixed(Fixed::UnbindResp, CommandStatus::ESME_ROK, sequence_number);
                return Err(Ending::Lost("the SMSC unbound the session".into()));
            }
            Body::DeliverSm(_) | Body::DataSm(_) => self.on_message(&pdu, raw, now),
            Body::AlertNotification(alert) => {
                info!(
                    "{}: alert_notification: {} is reachable again",
                    self.params.label, alert.source.addr
                );
            }
            Body::Other { command_id, .. } => {
                self.warn_odd(
                    Odd::UnknownCommand,
                    now,
                    format_args!(
                        "unsupported command_id 0x{command_id:08X} (seq {sequence_number}); \
                         answering generic_nack ESME_RINVCMDID"
                    ),
                );
                self.answer_error(
                    CommandId::from(command_id),
                    sequence_number,
                    CommandStatus::ESME_RINVCMDID,
                );
            }
            other => {
                let id = other.command_id();
                self.warn_odd(
                    Odd::WrongBindState,
                    now,
                    format_args!(
                        "{id} is not allowed in this bind state (seq {sequence_number}); \
                         answering ESME_RINVBNDSTS"
                    ),
                );
                self.answer_error(id, sequence_number, CommandStatus::ESME_RINVBNDSTS);
            }
        }
        Ok(())
    }

    /// What waits for a response under this sequence number.
    fn request_of(&self, sequence_number: u32) -> Option<Request> {
        match self.pending.get(&sequence_number) {
            Some(request) => Some(*request),
            None => self
                .outbox
                .part_of(sequence_number)
                .map(|_| Request::SubmitSm),
        }
    }

    /// A response settles only the request it answers; see `requests`.
    fn on_response(&mut self, pdu: &Pdu, now: Instant) -> Result<(), Ending> {
        let sequence_number = pdu.sequence_number;
        let status = pdu.command_status;
        let sent = self.request_of(sequence_number);
        let answered = answer(sent, pdu.command_id());
        if let Answer::Response(_) | Answer::Nack(_) = answered {
            self.timers.cancel(Timer::Response(sequence_number));
        }
        match answered {
            Answer::Response(Request::SubmitSm) => {
                let message_id = match &pdu.body {
                    Body::SubmitSmResp(resp) => resp.message_id.to_string_lossy(),
                    _ => String::new(),
                };
                let part = self.outbox.part_of(sequence_number);
                let effect = self
                    .outbox
                    .on_response(sequence_number, status, &message_id);
                let submit = Submit {
                    sequence_number,
                    status,
                    message_id: &message_id,
                    part,
                };
                self.on_submit_effect(&submit, effect, now);
            }
            Answer::Nack(Request::SubmitSm) => {
                let part = self.outbox.part_of(sequence_number);
                if let Some((id, part)) = part {
                    let what = if status == CommandStatus::ESME_ROK {
                        "with status 0: not an acceptance; outcome unknown, the row will be \
                         submitted again (possible duplicate)"
                            .to_string()
                    } else {
                        format!("{status}: refused")
                    };
                    warn!(
                        "{}: row {id} part {}: generic_nack for its submit_sm (seq \
                         {sequence_number}) {what}",
                        self.params.label,
                        part + 1
                    );
                }
                let effect = self.outbox.on_nack(sequence_number, status);
                let submit = Submit {
                    sequence_number,
                    status,
                    message_id: "",
                    part,
                };
                self.on_submit_effect(&submit, effect, now);
            }
            Answer::Response(request) | Answer::Nack(request) => {
                self.pending.remove(&sequence_number);
                if let Answer::Nack(_) = answered {
                    warn!(
                        "{}: generic_nack {status} for our {} seq {sequence_number}",
                        self.params.label,
                        request.command()
                    );
                }
                // Answered or refused, the unbind is over: close.
                if request == Request::Unbind {
                    return Err(Ending::Stopped);
                }
            }
            Answer::Stray { sent } => self.log_stray(pdu, sent, now),
        }
        Ok(())
    }

    fn log_stray(&mut self, pdu: &Pdu, sent: Option<Request>, now: Instant) {
        let (seq, status) = (pdu.sequence_number, pdu.command_status);
        let command = pdu.command_id();
        let message_id = match &pdu.body {
            Body::SubmitSmResp(resp) => {
                format!(", message_id '{}'", resp.message_id.to_string_lossy())
            }
            _ => String::new(),
        };
        match sent {
            None => self.warn_odd(
                Odd::StrayResponse,
                now,
                format_args!("{command} for unknown seq {seq} ({status}{message_id}) ignored"),
            ),
            Some(request) => {
                let part = match self.outbox.part_of(seq) {
                    Some((id, part)) => format!(" (row {id} part {})", part + 1),
                    None => String::new(),
                };
                self.warn_odd(
                    Odd::StrayResponse,
                    now,
                    format_args!(
                        "{command} for seq {seq} ({status}{message_id}), which is our {}{part}: \
                         not its response; ignored, the {} still waits for its own",
                        request.command(),
                        request.command()
                    ),
                );
            }
        }
    }

    fn on_submit_effect(&mut self, submit: &Submit<'_>, effect: ResponseEffect, now: Instant) {
        let Submit {
            sequence_number,
            status,
            message_id,
            part,
        } = *submit;
        match effect {
            ResponseEffect::UnknownSequence => self.warn_odd(
                Odd::StrayResponse,
                now,
                format_args!(
                    "submit_sm_resp for unknown seq {sequence_number} ({status}, message_id \
                     '{message_id}') ignored"
                ),
            ),
            ResponseEffect::Throttled => {
                self.stats
                    .throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(until) = self.congestion.on_throttled(now) {
                    let until = until.max(self.paused_until.unwrap_or(until));
                    self.paused_until = Some(until);
                    self.timers.arm(Timer::Resume, until);
                    debug!(
                        "{}: {status}; pausing submits for {} ms, window now {}",
                        self.params.label,
                        until.saturating_duration_since(now).as_millis(),
                        self.congestion.window()
                    );
                }
            }
            ResponseEffect::Settled(result) => {
                if status == CommandStatus::ESME_ROK {
                    self.congestion.on_accepted();
                }
                if let Some((id, part)) = part {
                    debug!(
                        "{}: row {id} part {}: {status} message_id '{message_id}'",
                        self.params.label,
                        part + 1
                    );
                }
                if let Some(result) = result {
                    self.commit(result);
                }
            }
        }
    }

    /// deliver_sm / data_sm: store, and answer once the row is committed.
    fn on_message(&mut self, pdu: &Pdu, raw: &[u8], now: Instant) {
        let command = pdu.command_id();
        if !self.params.bind.can_receive() {
            self.warn_odd(
                Odd::WrongBindState,
                now,
                format_args!("{command} on a transmitter bind; answering ESME_RINVBNDSTS"),
            );
            self.answer_error(command, pdu.sequence_number, CommandStatus::ESME_RINVBNDSTS);
            return;
        }
        self.awaiting_commit += 1;
        self.stats
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.actions.push_back(Action::Store {
            row: Box::new(rx_row(pdu, raw)),
            sequence_number: pdu.sequence_number,
            command,
        });
    }

    /// The DB writer committed results standing for `segments`, or gave up on them (their
    /// rows are failed, or keep their lease and are tried again later): either way they no
    /// longer count against their bound.
    pub(crate) fn on_results_committed(&mut self, segments: usize) {
        self.uncommitted_segments = self.uncommitted_segments.saturating_sub(segments);
    }

    /// The DB writer committed a received PDU's row (`status` ESME_ROK), or could not and
    /// asks the SMSC to try again later (ESME_RX_T_APPN): the PDU is answered with `status`.
    pub(crate) fn on_stored(
        &mut self,
        sequence_number: u32,
        command: CommandId,
        status: CommandStatus,
    ) {
        self.awaiting_commit = self.awaiting_commit.saturating_sub(1);
        let resp = match command {
            CommandId::DataSm => Fixed::DataSmResp,
            _ => Fixed::DeliverSmResp,
        };
        self.queue_fixed(resp, status, sequence_number);
    }

    /// A `Commit` the DB writer could not take (it is gone): it no longer counts.
    pub(crate) fn commit_lost(&mut self, row_id: i64, segments: usize) {
        self.uncommitted_segments = self.uncommitted_segments.saturating_sub(segments);
        error!(
            "{}: the DB writer is gone; the result of row {row_id} is lost to this run (its \
             lease will expire and it will be retried)",
            self.params.label
        );
    }

    /// A `Store` the DB writer could not take (it is gone): the PDU stays unanswered.
    pub(crate) fn store_lost(&mut self, sequence_number: u32, command: CommandId) {
        self.awaiting_commit = self.awaiting_commit.saturating_sub(1);
        error!(
            "{}: the DB writer is gone; {command} seq {sequence_number} left unanswered (the \
             SMSC will redeliver)",
            self.params.label
        );
    }

    /// Stop was asked: no new rows, rows not in flight go back, and once nothing is in
    /// flight or awaiting its commit the session unbinds (`check_drained`); the grace ends
    /// it regardless.
    pub(crate) fn on_stop(&mut self, now: Instant) {
        info!(
            "{}: stopping: no new rows; waiting for {} outstanding submit_sm",
            self.params.label,
            self.outbox.in_flight()
        );
        self.stopping = true;
        for result in self.outbox.release_idle() {
            self.commit(result);
        }
        let grace = (self.params.timers.response + Duration::from_secs(1))
            .min(self.params.shutdown_timeout);
        self.timers.arm(Timer::ShutdownDeadline, now + grace);
    }

    /// While stopping: once nothing is in flight or awaiting its commit, queues the unbind.
    /// True when it did so just now (the caller writes it at once).
    pub(crate) fn check_drained(&mut self, now: Instant) -> bool {
        if !self.stopping || self.unbind_sent {
            return false;
        }
        if self.outbox.in_flight() > 0 || self.awaiting_commit > 0 {
            return false;
        }
        let sequence_number = self.sequence.next();
        self.pending.insert(sequence_number, Request::Unbind);
        self.timers.arm(
            Timer::Response(sequence_number),
            now + self.params.timers.response.min(crate::session::UNBIND_WAIT),
        );
        self.queue_fixed(Fixed::Unbind, CommandStatus::ESME_ROK, sequence_number);
        self.unbind_sent = true;
        true
    }

    /// The connection is over: every row held is handed back, submits in flight with an
    /// unknown outcome.
    pub(crate) fn on_connection_lost(&mut self) {
        for result in self.outbox.on_connection_lost() {
            if result.resends > 0 {
                // The guarantee: every possible duplicate is logged with its row id.
                warn!(
                    "{}: row {}: the connection ended before its submit_sm_resp; outcome unknown, \
                     the row will be submitted again (possible duplicate)",
                    self.params.label, result.id
                );
            }
            self.commit(result);
        }
    }

    /// Logs what the rate-limited warnings still hold back.
    pub(crate) fn finish(&mut self, now: Instant) {
        for counted in self.odd.finish(now) {
            self.log_counted(&counted);
        }
    }

    /// Logs a warning that one PDU from the SMSC caused, or counts it when many like it came
    /// in the last minute.
    fn warn_odd(&mut self, kind: Odd, now: Instant, message: std::fmt::Arguments<'_>) {
        let (ended, verdict) = self.odd.note(kind, now);
        if let Some(counted) = ended {
            self.log_counted(&counted);
        }
        let label = &self.params.label;
        match verdict {
            Verdict::Log => warn!("{label}: {message}"),
            Verdict::LogLast => warn!("{label}: {message}{}", repeats::last_note()),
            Verdict::Count => {}
        }
    }

    fn log_counted(&self, counted: &Counted<Odd>) {
        warn!(
            "{}: {}: {counted}",
            self.params.label,
            counted.kind.describe()
        );
    }

    /// Answers a request we cannot serve: its own _resp when it has one, else generic_nack.
    fn answer_error(&mut self, request: CommandId, sequence_number: u32, status: CommandStatus) {
        if request.is_response()
            || matches!(request, CommandId::AlertNotification | CommandId::Outbind)
        {
            return;
        }
        let answer = match request {
            CommandId::DeliverSm => Fixed::DeliverSmResp,
            CommandId::DataSm => Fixed::DataSmResp,
            CommandId::EnquireLink => Fixed::EnquireLinkResp,
            CommandId::Unbind => Fixed::UnbindResp,
            _ => Fixed::GenericNack,
        };
        self.queue_fixed(answer, status, sequence_number);
    }

    /// Everything the session sends besides submits has no field to check: it cannot fail.
    fn queue_fixed(&mut self, pdu: Fixed, status: CommandStatus, sequence_number: u32) {
        encode_fixed(pdu, status, sequence_number, &mut self.out);
    }

    /// A row's result for the DB writer; it counts against its bound until committed.
    fn commit(&mut self, result: TxResult) {
        let segments = window_share(&result);
        self.uncommitted_segments += segments;
        self.actions.push_back(Action::Commit { result, segments });
    }
}

/// The submit_sm a response or generic_nack answered, for `on_submit_effect`.
struct Submit<'m> {
    sequence_number: u32,
    status: CommandStatus,
    message_id: &'m str,
    part: Option<(i64, usize)>,
}

#[cfg(test)]
mod tests {
    //! The core driven directly: PDUs in as the reader would hand them, rows as the poller
    //! claims them, commits as the DB writer reports them, and a clock moved by hand.

    use super::*;
    use crate::handoff::BindKind;
    use crate::session::submit;
    use crate::session::{Credentials, SessionTimers};
    use crate::smpp::codec::{decode, encode_to_vec};
    use crate::smpp::pdu::{Address, MessageIdResp, ShortMessage, Sm, SystemType};
    use std::sync::atomic::Ordering;

    const SECOND: Duration = Duration::from_secs(1);

    fn params(window: usize) -> SessionParams {
        SessionParams {
            label: "test".into(),
            host: "127.0.0.1".into(),
            port: 2775,
            credentials: Credentials {
                system_id: "esmed".try_into().unwrap(),
                password: "secret".try_into().unwrap(),
                system_type: SystemType::EMPTY,
            },
            bind: BindKind::Transceiver,
            timers: SessionTimers {
                session_init: 10 * SECOND,
                enquire_link: 30 * SECOND,
                inactivity: 120 * SECOND,
                response: 10 * SECOND,
                pdu_read: 5 * SECOND,
            },
            window,
            rate_limit: 0,
            max_pdu_len: 64 * 1024,
            submit: submit::tests::settings(),
            reconnect_min: SECOND,
            reconnect_max: 60 * SECOND,
            shutdown_timeout: 30 * SECOND,
            max_uncommitted: window,
            strict_resend_bound: false,
            tls: None,
        }
    }

    fn row(id: i64) -> TxRow {
        submit::tests::row(id, "447700900123", &format!("message {id}"))
    }

    /// The PDUs the core queued for writing, decoded; the output is then written.
    fn written(session: &mut Session<'_>) -> Vec<Pdu> {
        let mut pdus = Vec::new();
        let mut rest = session.output();
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            pdus.push(decode(&rest[..len]).expect("the core writes valid PDUs"));
            rest = &rest[len..];
        }
        assert!(rest.is_empty(), "a partial PDU in the output");
        session.clear_output();
        pdus
    }

    /// The sequence numbers of the submit_sm written.
    fn submits(session: &mut Session<'_>) -> Vec<u32> {
        written(session)
            .iter()
            .map(|pdu| {
                assert!(matches!(pdu.body, Body::SubmitSm(_)), "{pdu:?}");
                pdu.sequence_number
            })
            .collect()
    }

    fn actions(session: &mut Session<'_>) -> Vec<Action> {
        std::iter::from_fn(|| session.poll_action()).collect()
    }

    /// The results handed to the DB writer, each with the segments it holds.
    fn results(session: &mut Session<'_>) -> Vec<(TxResult, usize)> {
        actions(session)
            .into_iter()
            .map(|action| match action {
                Action::Commit { result, segments } => (result, segments),
                other => panic!("expected a result, got {other:?}"),
            })
            .collect()
    }

    /// `pdu` as the reader hands it over.
    fn read(session: &mut Session<'_>, pdu: Pdu, now: Instant) -> Result<(), Ending> {
        let raw = encode_to_vec(&pdu).unwrap();
        session.on_reader_events(vec![ReaderEvent::Pdu(pdu, raw)], now)
    }

    fn submit_resp(sequence_number: u32, status: CommandStatus) -> Pdu {
        let body = Body::SubmitSmResp(MessageIdResp {
            message_id: format!("smsc-{sequence_number}").try_into().unwrap(),
            ..MessageIdResp::default()
        });
        let mut pdu = Pdu::new(sequence_number, body);
        pdu.command_status = status;
        pdu
    }

    /// Feeds claimed rows while the core wants them, as the writer does.
    fn take_rows(session: &mut Session<'_>, ids: &mut impl Iterator<Item = i64>, now: Instant) {
        while session.wants_rows() {
            let Some(id) = ids.next() else { return };
            session.on_row(row(id), now);
        }
    }

    #[test]
    fn the_window_fills_and_a_commit_makes_room() {
        let mut params = params(2);
        params.strict_resend_bound = true;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mut ids = 1..;
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![2, 3], "the bind was seq 1");
        assert!(!session.wants_rows(), "the window is full");
        assert_eq!(stats.submitted.load(Ordering::Relaxed), 2);

        read(&mut session, submit_resp(2, CommandStatus::ESME_ROK), t0).unwrap();
        let done = results(&mut session);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0.id, 1);
        assert!(
            matches!(&done[0].0.outcome, TxOutcome::Done { parts } if parts[0].message_id == "smsc-2"),
            "{done:?}"
        );
        assert_eq!(done[0].1, 1, "one segment at risk until committed");
        assert!(
            !session.wants_rows(),
            "strict: the uncommitted result still holds its place in the window"
        );
        session.on_results_committed(1);
        assert!(session.wants_rows(), "the commit released its segment");
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![4]);
        assert!(!session.wants_rows());
    }

    #[test]
    fn the_window_stays_full_while_results_wait_for_their_commit() {
        let mut params = params(3);
        params.max_uncommitted = 100;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mut ids = 1..;
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![2, 3, 4]);
        // Nothing is ever committed: each answer still frees its place in the window at once.
        for seq in 2..40 {
            read(&mut session, submit_resp(seq, CommandStatus::ESME_ROK), t0).unwrap();
            take_rows(&mut session, &mut ids, t0);
            assert_eq!(submits(&mut session), vec![seq + 3], "answer to {seq}");
            assert_eq!(session.in_flight(), 3, "the window is full again");
        }
        assert_eq!(
            results(&mut session).len(),
            38,
            "all waiting for their commit"
        );
    }

    #[test]
    fn the_uncommitted_bound_stops_submits_and_a_commit_resumes_them() {
        let mut params = params(2);
        params.max_uncommitted = 5;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mut ids = 1..;
        let mut answered = 0;
        let mut at_risk_max = 0;
        // The SMSC answers everything at once; the DB writer commits nothing.
        loop {
            take_rows(&mut session, &mut ids, t0);
            let sent = submits(&mut session);
            if sent.is_empty() {
                break;
            }
            for seq in sent {
                read(&mut session, submit_resp(seq, CommandStatus::ESME_ROK), t0).unwrap();
                answered += 1;
            }
            at_risk_max = at_risk_max.max(session.in_flight() + answered);
        }
        // Submits stop once the results waiting reach the bound: at most the window plus
        // the bound are at risk, and here the last submits took one window past it.
        assert_eq!(
            answered, 6,
            "2 + 2 + 2: the third pair went out with 4 waiting"
        );
        assert!(at_risk_max <= 2 + 5, "{at_risk_max}");
        assert!(!session.wants_rows(), "the bound is reached");
        assert_eq!(results(&mut session).len(), 6);
        session.on_results_committed(1);
        assert!(!session.wants_rows(), "5 still wait: the bound is reached");
        session.on_results_committed(1);
        assert!(session.wants_rows(), "4 wait: room for one more");
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session).len(), 2, "one window's worth");
    }

    #[test]
    fn with_the_strict_bound_a_window_waits_for_its_commit() {
        let mut params = params(2);
        params.max_uncommitted = 100;
        params.strict_resend_bound = true;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mut ids = 1..;
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![2, 3]);
        read(&mut session, submit_resp(2, CommandStatus::ESME_ROK), t0).unwrap();
        read(&mut session, submit_resp(3, CommandStatus::ESME_ROK), t0).unwrap();
        assert_eq!(session.in_flight(), 0);
        take_rows(&mut session, &mut ids, t0);
        assert!(
            submits(&mut session).is_empty(),
            "the bound of 100 is not used: the answered fill the window"
        );
        session.on_results_committed(2);
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![4, 5]);
    }

    #[test]
    fn throttling_halves_the_window_and_pauses_submits() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mut ids = 1..;
        take_rows(&mut session, &mut ids, t0);
        assert_eq!(submits(&mut session), vec![2, 3, 4, 5]);

        read(
            &mut session,
            submit_resp(2, CommandStatus::ESME_RTHROTTLED),
            t0,
        )
        .unwrap();
        assert_eq!(session.window(), 2, "halved");
        assert_eq!(stats.throttled.load(Ordering::Relaxed), 1);
        assert!(
            actions(&mut session).is_empty(),
            "a throttled row is not done"
        );
        for seq in 3..=5 {
            read(&mut session, submit_resp(seq, CommandStatus::ESME_ROK), t0).unwrap();
        }
        assert_eq!(results(&mut session).len(), 3);
        assert_eq!(session.in_flight(), 0);

        let t = t0 + Duration::from_millis(50);
        session.pump(t);
        assert!(written(&mut session).is_empty(), "paused");
        let resume = session.next_deadline().unwrap();
        assert!(
            resume <= t0 + Duration::from_millis(110),
            "{:?}",
            resume - t0
        );
        let t = t0 + Duration::from_millis(110);
        session.on_timeout(t).unwrap();
        session.pump(t);
        assert_eq!(
            submits(&mut session),
            vec![6],
            "row 1 again, after the pause"
        );
        read(&mut session, submit_resp(6, CommandStatus::ESME_ROK), t).unwrap();
        let done = results(&mut session);
        assert_eq!(done[0].0.id, 1);
        assert!(matches!(done[0].0.outcome, TxOutcome::Done { .. }));
        assert_eq!(done[0].0.resends, 0, "a throttled part was not taken");
    }

    #[test]
    fn a_response_timeout_retries_the_row_and_counts_a_resend() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(7), t0);
        assert_eq!(submits(&mut session), vec![2]);
        session.on_timeout(t0 + 9 * SECOND).unwrap();
        assert!(actions(&mut session).is_empty(), "not due yet");
        session.on_timeout(t0 + 10 * SECOND).unwrap();
        let retried = results(&mut session);
        assert_eq!(retried.len(), 1);
        let result = &retried[0].0;
        assert_eq!((result.id, result.attempts, result.resends), (7, 1, 1));
        assert!(
            matches!(&result.outcome, TxOutcome::Retry { info, .. } if info.contains("outcome unknown")),
            "{result:?}"
        );
        assert_eq!(session.in_flight(), 0);
        // a late answer settles nothing
        read(
            &mut session,
            submit_resp(2, CommandStatus::ESME_ROK),
            t0 + 11 * SECOND,
        )
        .unwrap();
        assert!(actions(&mut session).is_empty());
    }

    #[test]
    fn an_idle_link_is_probed_and_an_unanswered_probe_ends_the_session() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_timeout(t0 + 29 * SECOND).unwrap();
        assert!(written(&mut session).is_empty());
        let t = t0 + 30 * SECOND;
        session.on_timeout(t).unwrap();
        let probe = written(&mut session);
        assert!(
            matches!(&probe[..], [p] if p.body == Body::EnquireLink && p.sequence_number == 2),
            "{probe:?}"
        );
        // answered: the link lives on, and the next probe follows
        read(&mut session, Pdu::new(2, Body::EnquireLinkResp), t).unwrap();
        session.on_timeout(t + 10 * SECOND).unwrap();
        let t = t + 30 * SECOND;
        session.on_timeout(t).unwrap();
        let probe = written(&mut session);
        assert!(
            matches!(&probe[..], [p] if p.sequence_number == 3),
            "{probe:?}"
        );
        // unanswered within the response timer: the link is dead
        match session.on_timeout(t + 10 * SECOND) {
            Err(Ending::Lost(why)) => assert!(why.contains("enquire_link_resp"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_from_the_smsc_ends_the_session() {
        let mut params = params(4);
        // no probe of ours in the way: only what is read keeps the link alive
        params.timers.enquire_link = 600 * SECOND;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        read(
            &mut session,
            Pdu::new(9, Body::EnquireLink),
            t0 + 100 * SECOND,
        )
        .unwrap();
        assert!(
            session.on_timeout(t0 + 120 * SECOND).is_ok(),
            "restarted by the read"
        );
        assert!(session.on_timeout(t0 + 219 * SECOND).is_ok());
        match session.on_timeout(t0 + 220 * SECOND) {
            Err(Ending::Lost(why)) => assert!(why.contains("inactivity"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unbind_from_the_smsc_is_answered_and_ends_the_session() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(1), t0);
        assert_eq!(submits(&mut session), vec![2]);
        let ending = read(&mut session, Pdu::new(40, Body::Unbind), t0);
        assert!(matches!(ending, Err(Ending::Lost(ref why)) if why.contains("unbound")));
        let answer = written(&mut session);
        assert!(
            matches!(&answer[..], [p] if p.body == Body::UnbindResp && p.sequence_number == 40),
            "{answer:?}"
        );
        // the writer then ends the connection: the submit in flight is a possible duplicate
        session.on_connection_lost();
        let lost = results(&mut session);
        assert!(
            matches!(&lost[..], [(r, _)] if r.id == 1 && r.resends == 1
                && matches!(r.outcome, TxOutcome::Retry { .. })),
            "{lost:?}"
        );
    }

    #[test]
    fn a_stop_drains_what_is_in_flight_then_unbinds() {
        let mut params = params(4);
        // one submit per second: the second row stays queued, not in flight
        params.rate_limit = 1;
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(1), t0);
        session.on_row(row(2), t0);
        assert_eq!(submits(&mut session), vec![2]);

        session.on_stop(t0);
        assert!(!session.wants_rows(), "no rows while stopping");
        let released = results(&mut session);
        assert!(
            matches!(&released[..], [(r, _)] if r.id == 2 && r.outcome == TxOutcome::Release),
            "the queued row goes back: {released:?}"
        );
        assert!(!session.check_drained(t0), "row 1 is still in flight");
        assert!(written(&mut session).is_empty(), "no unbind yet");

        read(&mut session, submit_resp(2, CommandStatus::ESME_ROK), t0).unwrap();
        assert!(matches!(
            &results(&mut session)[..],
            [(r, _)] if r.id == 1 && matches!(r.outcome, TxOutcome::Done { .. })
        ));
        session.pump(t0 + 5 * SECOND);
        assert!(written(&mut session).is_empty(), "nothing new is submitted");
        assert!(session.check_drained(t0));
        let unbind = written(&mut session);
        assert!(
            matches!(&unbind[..], [p] if p.body == Body::Unbind && p.sequence_number == 3),
            "{unbind:?}"
        );
        assert!(!session.check_drained(t0), "one unbind");
        assert_eq!(
            read(&mut session, Pdu::new(3, Body::UnbindResp), t0),
            Err(Ending::Stopped)
        );
    }

    #[test]
    fn a_stop_ends_after_its_grace_when_the_smsc_never_answers() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(1), t0);
        let _ = written(&mut session);
        session.on_stop(t0);
        // the submit's own timer fires first (the row is retried), then the grace ends it
        assert!(session.on_timeout(t0 + 10 * SECOND).is_ok());
        assert_eq!(results(&mut session)[0].0.resends, 1);
        assert!(session.check_drained(t0 + 10 * SECOND));
        assert_eq!(session.on_timeout(t0 + 11 * SECOND), Err(Ending::Stopped));
    }

    #[test]
    fn an_unknown_command_is_answered_with_generic_nack() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let unknown = Body::Other {
            command_id: 0x0000_0777,
            body: Vec::new(),
        };
        read(&mut session, Pdu::new(55, unknown), t0).unwrap();
        let nack = written(&mut session);
        assert!(
            matches!(&nack[..], [p] if p.body == Body::GenericNack
                && p.sequence_number == 55
                && p.command_status == CommandStatus::ESME_RINVCMDID),
            "{nack:?}"
        );
    }

    #[test]
    fn a_generic_nack_of_a_submit_is_a_refusal_never_an_acceptance() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(1), t0);
        session.on_row(row(2), t0);
        assert_eq!(submits(&mut session), vec![2, 3]);
        let mut nack = Pdu::new(2, Body::GenericNack);
        nack.command_status = CommandStatus::ESME_RSYSERR;
        read(&mut session, nack, t0).unwrap();
        let refused = results(&mut session);
        assert!(
            matches!(&refused[..], [(r, _)] if r.id == 1 && r.resends == 0
                && matches!(&r.outcome, TxOutcome::Retry { info, .. } if info.contains("ESME_RSYSERR"))),
            "{refused:?}"
        );
        // status 0 in a generic_nack contradicts itself: outcome unknown, a possible duplicate
        read(&mut session, Pdu::new(3, Body::GenericNack), t0).unwrap();
        let unknown = results(&mut session);
        assert!(
            matches!(&unknown[..], [(r, _)] if r.id == 2 && r.resends == 1
                && matches!(r.outcome, TxOutcome::Retry { .. })),
            "{unknown:?}"
        );
        assert_eq!(session.in_flight(), 0);
        assert!(written(&mut session).is_empty(), "a nack is not answered");
    }

    #[test]
    fn an_early_receipt_is_stored_and_answered_after_its_commit() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        session.on_row(row(1), t0);
        assert_eq!(submits(&mut session), vec![2]);
        // the receipt for the message arrives before its submit_sm_resp
        let receipt = Body::DeliverSm(Box::new(Sm {
            source: Address::new(1, 1, "447700900123").unwrap(),
            destination: Address::new(5, 0, "ESMED").unwrap(),
            esm_class: 0x04,
            short_message: ShortMessage::new(
                b"id:smsc-2 sub:001 dlvrd:001 submit date:2612072300 done \
                date:2612072300 stat:DELIVRD err:000 text:",
            )
            .unwrap(),
            ..Sm::default()
        }));
        read(&mut session, Pdu::new(90, receipt), t0).unwrap();
        let stored = actions(&mut session);
        match &stored[..] {
            [Action::Store {
                row,
                sequence_number: 90,
                command: CommandId::DeliverSm,
            }] => {
                assert!(row.is_receipt);
                assert_eq!(row.receipted_message_id.as_deref(), Some("smsc-2"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            written(&mut session).is_empty(),
            "not acknowledged before its row is committed"
        );
        assert_eq!(stats.received.load(Ordering::Relaxed), 1);
        session.on_stored(90, CommandId::DeliverSm, CommandStatus::ESME_ROK);
        let ack = written(&mut session);
        assert!(
            matches!(&ack[..], [p] if matches!(p.body, Body::DeliverSmResp(_))
                && p.sequence_number == 90
                && p.command_status == CommandStatus::ESME_ROK),
            "{ack:?}"
        );
        assert_eq!(
            session.in_flight(),
            1,
            "the submit still waits for its own answer"
        );
        read(&mut session, submit_resp(2, CommandStatus::ESME_ROK), t0).unwrap();
        assert!(matches!(
            &results(&mut session)[..],
            [(r, _)] if r.id == 1 && matches!(r.outcome, TxOutcome::Done { .. })
        ));
    }

    #[test]
    fn a_stop_waits_for_received_pdus_to_be_committed_and_answered() {
        let params = params(4);
        let stats = Stats::default();
        let t0 = Instant::now();
        let mut session = Session::new(&params, &stats, t0);
        let mo = Body::DeliverSm(Box::new(Sm {
            source: Address::new(1, 1, "447700900123").unwrap(),
            destination: Address::new(5, 0, "ESMED").unwrap(),
            short_message: ShortMessage::new(b"hello").unwrap(),
            ..Sm::default()
        }));
        read(&mut session, Pdu::new(12, mo), t0).unwrap();
        assert_eq!(actions(&mut session).len(), 1);
        session.on_stop(t0);
        assert!(
            !session.check_drained(t0),
            "the deliver_sm is not answered yet"
        );
        session.on_stored(12, CommandId::DeliverSm, CommandStatus::ESME_ROK);
        assert!(session.check_drained(t0));
        let out = written(&mut session);
        assert!(
            matches!(&out[..], [resp, unbind] if resp.sequence_number == 12
                && matches!(resp.body, Body::DeliverSmResp(_))
                && unbind.body == Body::Unbind),
            "answered, then unbound: {out:?}"
        );
    }
}
