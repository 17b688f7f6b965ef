//! The socket writer thread of one bound connection: it owns the session. It takes claimed
//! rows and submits their parts within the window and the rate cap, matches responses,
//! answers the SMSC's requests (deliver_sm only after the DB writer committed its row), keeps
//! the link alive, and on stop drains the window and unbinds.
//!
//! One loop turn = wait for one event (`select!` over the reader, the DB writer's commits,
//! the stop channel, claimed rows when there is room, and the next timer), handle it, then
//! write everything queued in one `write_all` (coalesced writes).

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, Receiver, Sender};
use log::{debug, error, info, warn};

use crate::handoff::{AckTo, Committed, DbOp, DbSender, ResultAck, TxRow};
use crate::logging::repeats::{self, Counted, Repeats, Verdict};
use crate::observe::counters::Stats;
use crate::session::flow::{Congestion, TokenBucket};
use crate::session::id_hash::IdMap;
use crate::session::inbound::rx_row;
use crate::session::outbox::{window_share, AtRisk, Outbox, ResponseEffect};
use crate::session::reader::ReaderEvent;
use crate::session::requests::{answer, Answer, Request};
use crate::session::timers::{Timer, TimerWheel};
use crate::session::transport::WriteHalf;
use crate::session::SessionParams;
use crate::smpp::codec::{encode, encode_submit_sm};
use crate::smpp::pdu::{Body, MessageIdResp};
use crate::smpp::SequenceNumbers;
use crate::smpp::{CommandId, CommandStatus, Pdu};

/// Received PDUs allowed to wait for their commit before the session stops reading.
const MAX_AWAITING_COMMIT: usize = 1000;

/// At most this many waiting events are handled before submitting, writing and looking at
/// the timers again.
const READY_BATCH: usize = 256;

/// The channels a session shares with the rest of the daemon.
#[derive(Clone)]
pub struct Links {
    /// Rows the poller claimed, shared by every session that submits.
    pub outbound: Receiver<TxRow>,
    pub db: DbSender,
    pub stats: std::sync::Arc<Stats>,
    /// The windows of the bound sessions that submit: the poller claims rows only while
    /// one is bound, and keeps ready as many as their windows can take (see `db::poller`).
    pub submit_windows: std::sync::Arc<crate::session::SubmitWindows>,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Stop was asked and the session unbound cleanly (or as cleanly as it could).
    Stopped,
    /// The link failed; reconnect.
    Lost(String),
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

pub struct Writer<'a> {
    params: &'a SessionParams,
    links: &'a Links,
    stream: WriteHalf,
    out: Vec<u8>,
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
    acks: (Sender<Committed>, Receiver<Committed>),
    /// deliver_sm / data_sm received whose rows are not committed yet.
    awaiting_commit: usize,
    /// Segments of the results sent to the DB writer and not yet committed (see `at_risk`).
    uncommitted_segments: usize,
    stopping: bool,
    unbind_sent: bool,
    odd: Repeats<Odd>,
}

impl<'a> Writer<'a> {
    pub fn new(params: &'a SessionParams, links: &'a Links, stream: WriteHalf) -> Self {
        let now = Instant::now();
        let mut sequence = SequenceNumbers::new();
        // sequence 1 was the bind
        let _ = sequence.next();
        Writer {
            params,
            links,
            stream,
            out: Vec::with_capacity(64 * 1024),
            timers: TimerWheel::new(now),
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
            // One message per result batch and per received PDU handed over, both counted
            // (uncommitted_segments, awaiting_commit); no capacity, so that the DB writer
            // never waits on the session, which may be waiting for it.
            acks: crossbeam_channel::unbounded(),
            awaiting_commit: 0,
            uncommitted_segments: 0,
            stopping: false,
            unbind_sent: false,
            odd: Repeats::default(),
        }
    }

    /// Runs the bound connection until it ends; every row it held is handed back to the DB
    /// writer before it returns.
    pub fn run(mut self, events: Receiver<Vec<ReaderEvent>>, stop: &Receiver<()>) -> Ending {
        let now = Instant::now();
        self.timers
            .arm(Timer::EnquireLink, now + self.params.timers.enquire_link);
        self.timers
            .arm(Timer::Inactivity, now + self.params.timers.inactivity);
        let submits = self.params.bind.can_submit();
        if submits {
            self.links.submit_windows.open(self.params.window);
        }
        let ending = self.event_loop(&events, stop);
        if submits {
            self.links.submit_windows.close(self.params.window);
        }
        let _ = self.flush();
        let _ = self.stream.shutdown(Shutdown::Both);
        for result in self.outbox.on_connection_lost() {
            if result.resends > 0 {
                // The guarantee: every possible duplicate is logged with its row id.
                warn!(
                    "{}: row {}: the connection ended before its submit_sm_resp; outcome unknown, \
                     the row will be submitted again (possible duplicate)",
                    self.params.label, result.id
                );
            }
            self.send_result(result);
        }
        if submits {
            self.release_claimed();
        }
        for counted in self.odd.finish(Instant::now()) {
            self.log_counted(&counted);
        }
        ending
    }

    /// Logs a warning that one PDU from the SMSC caused, or counts it when many like it came
    /// in the last minute.
    fn warn_odd(&mut self, kind: Odd, message: std::fmt::Arguments<'_>) {
        let (ended, verdict) = self.odd.note(kind, Instant::now());
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

    /// Rows claimed for us but not taken yet go back to the queue, so that their leases do
    /// not run out while we reconnect (another esmed could then send them too).
    fn release_claimed(&mut self) {
        while let Ok(row) = self.links.outbound.try_recv() {
            let outcome = crate::handoff::TxOutcome::Release;
            self.send_result(crate::handoff::TxResult {
                id: row.id,
                outcome,
                attempts: 0,
                resends: 0,
            });
        }
    }

    fn event_loop(&mut self, events: &Receiver<Vec<ReaderEvent>>, stop: &Receiver<()>) -> Ending {
        let never_rows = never();
        let never_stop = never();
        let never_events = never();
        // A handle of our own, so the select below can borrow it while the arms borrow self.
        let acks = self.acks.1.clone();
        loop {
            if let Some(ending) = self.check_drained() {
                return ending;
            }
            let rows = if self.wants_rows() {
                &self.links.outbound
            } else {
                &never_rows
            };
            let stop_rx = if self.stopping { &never_stop } else { stop };
            // While this many received PDUs wait for their commit, stop reading: the reader
            // blocks, TCP pushes back, and an SMSC that ignores windowing cannot fill memory.
            let events_rx = if self.awaiting_commit < MAX_AWAITING_COMMIT {
                events
            } else {
                &never_events
            };
            let timeout = self
                .timers
                .next_deadline()
                .map_or(crossbeam_channel::never(), crossbeam_channel::at);
            let step = select! {
                recv(events_rx) -> batch => match batch {
                    Ok(batch) => self.on_reader_events(batch),
                    Err(_) => Err(Ending::Lost("the reader thread ended".into())),
                },
                recv(acks) -> ack => {
                    if let Ok(ack) = ack { self.on_committed(ack); }
                    Ok(())
                },
                recv(stop_rx) -> _ => { self.begin_stop(); Ok(()) },
                recv(rows) -> row => {
                    if let Ok(row) = row {
                        self.take_row(row);
                        self.take_more_rows();
                    }
                    Ok(())
                },
                recv(timeout) -> _ => self.on_timers(),
            };
            if let Err(ending) = step.and_then(|()| self.take_ready(events, &acks)) {
                return ending;
            }
            self.pump();
            self.sample_window();
            if let Err(e) = self.flush() {
                return self.write_failed(&e);
            }
        }
    }

    /// Handles the reader events and commit acks already waiting, so that the submits they
    /// make room for go out together, in one write, rather than one write per response.
    fn take_ready(
        &mut self,
        events: &Receiver<Vec<ReaderEvent>>,
        acks: &Receiver<Committed>,
    ) -> Result<(), Ending> {
        let mut handled = 0;
        while handled < READY_BATCH {
            let batch = if self.awaiting_commit < MAX_AWAITING_COMMIT {
                events.try_recv().ok()
            } else {
                None
            };
            let ack = acks.try_recv().ok();
            if batch.is_none() && ack.is_none() {
                break;
            }
            handled += 1;
            if let Some(ack) = ack {
                self.on_committed(ack);
            }
            if let Some(batch) = batch {
                handled += batch.len();
                self.on_reader_events(batch)?;
            }
        }
        Ok(())
    }

    /// While stopping: done once nothing is in flight and the unbind is answered.
    fn check_drained(&mut self) -> Option<Ending> {
        if !self.stopping {
            return None;
        }
        if self.outbox.in_flight() > 0 || self.awaiting_commit > 0 {
            return None;
        }
        if !self.unbind_sent {
            let sequence_number = self.sequence.next();
            self.pending.insert(sequence_number, Request::Unbind);
            self.timers.arm(
                Timer::Response(sequence_number),
                Instant::now() + self.params.timers.response.min(crate::session::UNBIND_WAIT),
            );
            self.queue_pdu(&Pdu::new(sequence_number, Body::Unbind));
            self.unbind_sent = true;
            if self.flush().is_err() {
                return Some(Ending::Stopped);
            }
        }
        None
    }

    fn wants_rows(&self) -> bool {
        self.params.bind.can_submit()
            && !self.stopping
            && !self.outbox.has_queued_parts()
            && self
                .at_risk()
                .room_for_rows(self.congestion.window(), self.answered_window())
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

    /// With strict_resend_bound the answered segments share the submits' window (one window
    /// at risk, but each submit then waits for earlier commits); without, they get a window
    /// of their own (at most two at risk).
    fn answered_window(&self) -> Option<usize> {
        (!self.params.strict_resend_bound).then_some(self.params.window)
    }

    /// Takes further claimed rows while the window has room for their parts, submitting as
    /// it goes, so that the submits of one turn leave in one write (one row per turn cost a
    /// turn of the event loop and a write per message).
    fn take_more_rows(&mut self) {
        self.pump();
        while self.wants_rows() {
            let Ok(row) = self.links.outbound.try_recv() else {
                break;
            };
            self.take_row(row);
            self.pump();
        }
    }

    fn take_row(&mut self, row: TxRow) {
        let id = row.id;
        if let Some(result) = self.outbox.add_row(row) {
            if let crate::handoff::TxOutcome::Failed { info, .. } = &result.outcome {
                warn!(
                    "{}: row {id} cannot be sent: {info}; marking it failed",
                    self.params.label
                );
            }
            self.send_result(result);
        }
    }

    /// Submits queued parts while the window, the rate cap and any throttle pause allow.
    fn pump(&mut self) {
        let now = Instant::now();
        if self.paused_until.is_some_and(|until| now < until) {
            return;
        }
        self.paused_until = None;
        while self.has_room() {
            let Some((id, part, sm)) = self.outbox.next_part() else {
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
            if let Err(e) = encode_submit_sm(sequence_number, sm, &mut self.out) {
                // build_parts validated the row; this is a bug, not input
                error!(
                    "{}: row {id} part {}: cannot encode submit_sm: {e}",
                    self.params.label,
                    part + 1
                );
            }
            self.outbox.mark_sent(sequence_number);
            self.timers.arm(
                Timer::Response(sequence_number),
                now + self.params.timers.response,
            );
            self.links
                .stats
                .submitted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// For the heartbeat row: one relaxed store per loop turn, no lock.
    fn sample_window(&self) {
        if self.params.bind.can_submit() {
            let in_flight = self.outbox.in_flight() as u64;
            let window = &self.links.stats.session.window_in_use;
            window.store(in_flight, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn on_timers(&mut self) -> Result<(), Ending> {
        let now = Instant::now();
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
                self.queue_pdu(&Pdu::new(sequence_number, Body::EnquireLink));
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
                    self.send_result(result);
                }
                Ok(())
            }
        }
    }

    /// What one read of the reader brought in, in order; the inactivity timer restarts once.
    fn on_reader_events(&mut self, batch: Vec<ReaderEvent>) -> Result<(), Ending> {
        let now = Instant::now();
        self.timers
            .arm(Timer::Inactivity, now + self.params.timers.inactivity);
        batch
            .into_iter()
            .try_for_each(|event| self.on_reader_event(event))
    }

    fn on_reader_event(&mut self, event: ReaderEvent) -> Result<(), Ending> {
        match event {
            ReaderEvent::Pdu(pdu, raw) => self.on_pdu(pdu, raw),
            ReaderEvent::Undecodable(error, _raw) => {
                self.warn_odd(
                    Odd::Undecodable,
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
                let mut nack = Pdu::new(sequence_number, Body::GenericNack);
                nack.command_status = CommandStatus::ESME_RINVCMDLEN;
                self.queue_pdu(&nack);
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

    fn on_pdu(&mut self, pdu: Pdu, raw: Vec<u8>) -> Result<(), Ending> {
        let sequence_number = pdu.sequence_number;
        if pdu.command_id().is_response() {
            return self.on_response(pdu);
        }
        match pdu.body {
            Body::EnquireLink => self.queue_pdu(&Pdu::new(sequence_number, Body::EnquireLinkResp)),
            Body::Unbind => {
                self.queue_pdu(&Pdu::new(sequence_number, Body::UnbindResp));
                return Err(Ending::Lost("the SMSC unbound the session".into()));
            }
            Body::DeliverSm(_) | Body::DataSm(_) => self.on_message(pdu, raw),
            Body::AlertNotification(alert) => {
                info!(
                    "{}: alert_notification: {} is reachable again",
                    self.params.label, alert.source.addr
                );
            }
            Body::Other { command_id, .. } => {
                self.warn_odd(
                    Odd::UnknownCommand,
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
    fn on_response(&mut self, pdu: Pdu) -> Result<(), Ending> {
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
                self.on_submit_resp(sequence_number, status, &message_id);
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
                self.on_submit_effect(sequence_number, status, "", part, effect);
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
            Answer::Stray { sent } => self.log_stray(&pdu, sent),
        }
        Ok(())
    }

    fn log_stray(&mut self, pdu: &Pdu, sent: Option<Request>) {
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
                format_args!("{command} for unknown seq {seq} ({status}{message_id}) ignored"),
            ),
            Some(request) => {
                let part = match self.outbox.part_of(seq) {
                    Some((id, part)) => format!(" (row {id} part {})", part + 1),
                    None => String::new(),
                };
                self.warn_odd(
                    Odd::StrayResponse,
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

    fn on_submit_resp(&mut self, sequence_number: u32, status: CommandStatus, message_id: &str) {
        let part = self.outbox.part_of(sequence_number);
        let effect = self.outbox.on_response(sequence_number, status, message_id);
        self.on_submit_effect(sequence_number, status, message_id, part, effect);
    }

    fn on_submit_effect(
        &mut self,
        sequence_number: u32,
        status: CommandStatus,
        message_id: &str,
        part: Option<(i64, usize)>,
        effect: ResponseEffect,
    ) {
        match effect {
            ResponseEffect::UnknownSequence => self.warn_odd(
                Odd::StrayResponse,
                format_args!(
                    "submit_sm_resp for unknown seq {sequence_number} ({status}, message_id \
                     '{message_id}') ignored"
                ),
            ),
            ResponseEffect::Throttled => {
                self.links
                    .stats
                    .throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let now = Instant::now();
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
                    self.send_result(result);
                }
            }
        }
    }

    /// deliver_sm / data_sm: store, and answer once the row is committed.
    fn on_message(&mut self, pdu: Pdu, raw: Vec<u8>) {
        let command = pdu.command_id();
        if !self.params.bind.can_receive() {
            self.warn_odd(
                Odd::WrongBindState,
                format_args!("{command} on a transmitter bind; answering ESME_RINVBNDSTS"),
            );
            self.answer_error(command, pdu.sequence_number, CommandStatus::ESME_RINVBNDSTS);
            return;
        }
        let row = rx_row(&pdu, &raw);
        let ack = AckTo {
            to: self.acks.0.clone(),
            sequence_number: pdu.sequence_number,
            command,
        };
        self.awaiting_commit += 1;
        self.links
            .stats
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self
            .links
            .db
            .send(DbOp::Rx {
                row: Box::new(row),
                ack: Some(ack),
            })
            .is_err()
        {
            self.awaiting_commit -= 1;
            error!("{}: the DB writer is gone; {command} seq {} left unanswered (the SMSC will redeliver)", self.params.label, pdu.sequence_number);
        }
    }

    fn on_committed(&mut self, committed: Committed) {
        let Committed::Received {
            sequence_number,
            command,
            status,
        } = committed
        else {
            if let Committed::Results(segments) = committed {
                self.uncommitted_segments = self.uncommitted_segments.saturating_sub(segments);
            }
            return;
        };
        self.awaiting_commit = self.awaiting_commit.saturating_sub(1);
        let body = match command {
            CommandId::DataSm => Body::DataSmResp(MessageIdResp::default()),
            _ => Body::DeliverSmResp(MessageIdResp::default()),
        };
        let mut resp = Pdu::new(sequence_number, body);
        resp.command_status = status;
        self.queue_pdu(&resp);
    }

    fn begin_stop(&mut self) {
        info!(
            "{}: stopping: no new rows; waiting for {} outstanding submit_sm",
            self.params.label,
            self.outbox.in_flight()
        );
        self.stopping = true;
        for result in self.outbox.release_idle() {
            self.send_result(result);
        }
        let grace = (self.params.timers.response + Duration::from_secs(1))
            .min(self.params.shutdown_timeout);
        self.timers
            .arm(Timer::ShutdownDeadline, Instant::now() + grace);
    }

    /// Answers a request we cannot serve: its own _resp when it has one, else generic_nack.
    fn answer_error(&mut self, request: CommandId, sequence_number: u32, status: CommandStatus) {
        if request.is_response()
            || matches!(request, CommandId::AlertNotification | CommandId::Outbind)
        {
            return;
        }
        let body = match request {
            CommandId::DeliverSm => Body::DeliverSmResp(MessageIdResp::default()),
            CommandId::DataSm => Body::DataSmResp(MessageIdResp::default()),
            CommandId::EnquireLink => Body::EnquireLinkResp,
            CommandId::Unbind => Body::UnbindResp,
            _ => Body::GenericNack,
        };
        let mut pdu = Pdu::new(sequence_number, body);
        pdu.command_status = status;
        self.queue_pdu(&pdu);
    }

    fn queue_pdu(&mut self, pdu: &Pdu) {
        if let Err(e) = encode(pdu, &mut self.out) {
            error!(
                "{}: cannot encode {}: {e}",
                self.params.label,
                pdu.command_id()
            );
        }
    }

    fn send_result(&mut self, result: crate::handoff::TxResult) {
        let segments = window_share(&result);
        let ack = Some(ResultAck {
            to: self.acks.0.clone(),
            segments,
        });
        self.uncommitted_segments += segments;
        if let Err(e) = self.links.db.send(DbOp::Result { result, ack }) {
            self.uncommitted_segments -= segments;
            error!("{}: the DB writer is gone; the result of row {} is lost to this run (its lease will expire and it will be retried)", self.params.label, e.0.row_id());
        }
    }

    /// The session ends as a lost connection would: what was in flight has an unknown
    /// outcome, and esmed binds again.
    fn write_failed(&self, e: &std::io::Error) -> Ending {
        if e.kind() == std::io::ErrorKind::TimedOut {
            return Ending::Lost(format!(
                "the SMSC has stopped reading: what esmed wrote was not taken within {} s \
                 (smpp_response_timer)",
                self.params.timers.response.as_secs()
            ));
        }
        Ending::Lost(format!("write error: {e}"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result
    }
}
