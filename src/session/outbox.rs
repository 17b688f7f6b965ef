//! The rows a session is submitting: turns each claimed row into submit_sm parts, tracks every
//! part through the window, and decides each row's outcome once all its parts are answered.
//!
//! Pure bookkeeping, no I/O: the session's core (`state`) feeds it responses, timeouts and
//! connection loss, and hands the `TxResult`s it returns to the DB writer. The rules:
//! - a row is done when every part is accepted; its message id is part 1's;
//! - a permanent status fails the row with the status's name and meaning;
//! - a transient status or an unknown outcome (timeout, lost connection) retries the row later
//!   with backoff and costs an attempt; attempts reaching the server's maximum fail it;
//! - ESME_RTHROTTLED / ESME_RMSGQFUL put the part back at the head of the queue without
//!   costing an attempt (the session pauses submitting);
//! - parts already accepted are never sent again: a retried row carries them along.

use std::collections::VecDeque;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::handoff::{AcceptedPart, TxOutcome, TxResult, TxRow};
use crate::session::id_hash::IdMap;
use crate::session::submit::{build_parts, SubmitSettings};
use crate::smpp::codec::CheckedSm;
use crate::smpp::status::StatusClass;
use crate::smpp::CommandStatus;

/// Why a part ended without being accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PartFailure {
    Permanent(CommandStatus),
    Transient(CommandStatus),
    /// No response (timer or lost connection): the SMSC may have accepted it.
    Unknown(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PartState {
    Queued,
    InFlight(u32),
    Accepted(String),
    Failed(PartFailure),
}

struct RowInFlight {
    row: TxRow,
    pdus: Vec<CheckedSm>,
    states: Vec<PartState>,
    /// Parts accepted in this claim (not those accepted on an earlier attempt).
    accepted_now: usize,
}

/// What a submit_sm_resp meant for the session.
#[derive(Debug, PartialEq)]
pub(crate) enum ResponseEffect {
    /// No request with that sequence number is outstanding (late or bogus): log and drop.
    UnknownSequence,
    /// The SMSC asked us to slow down; the part is queued again.
    Throttled,
    /// The part is settled; when that finished its row, here is the row's result.
    Settled(Option<TxResult>),
}

pub(crate) struct Outbox {
    settings: SubmitSettings,
    rows: IdMap<i64, RowInFlight>,
    queue: VecDeque<(i64, usize)>,
    in_flight: IdMap<u32, (i64, usize)>,
    /// Parts accepted in this claim whose rows are not finished yet, summed over the rows.
    accepted_open: usize,
}

impl Outbox {
    pub(crate) fn new(settings: SubmitSettings) -> Self {
        Outbox {
            settings,
            rows: IdMap::default(),
            queue: VecDeque::new(),
            in_flight: IdMap::default(),
            accepted_open: 0,
        }
    }

    /// Takes a claimed row. A row that cannot be sent at all (bad destination, empty or
    /// oversized text) comes straight back as a failed result.
    pub(crate) fn add_row(&mut self, row: TxRow) -> Option<TxResult> {
        let pdus = match build_parts(&row, &self.settings) {
            Ok(pdus) => pdus,
            Err(why) => {
                return Some(TxResult {
                    id: row.id,
                    insert_timestamp: row.insert_timestamp,
                    outcome: TxOutcome::Failed {
                        info: why.to_string(),
                        parts: Vec::new(),
                    },
                    attempts: 0,
                    resends: 0,
                })
            }
        };
        let states = initial_states(&row, pdus.len());
        for (part, state) in states.iter().enumerate() {
            if *state == PartState::Queued {
                self.queue.push_back((row.id, part));
            }
        }
        let id = row.id;
        let row = RowInFlight {
            row,
            pdus,
            states,
            accepted_now: 0,
        };
        self.rows.insert(id, row);
        // every part was accepted on an earlier attempt: nothing to send
        self.finish_if_settled(id)
    }

    /// Rows held (queued or in flight).
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Parts the SMSC accepted whose rows are not finished: a kill before their rows'
    /// results are committed sends them again, so they count against the window.
    pub(crate) fn accepted_open(&self) -> usize {
        self.accepted_open
    }

    pub(crate) fn has_queued_parts(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next part to submit, if any: its row id, part index and PDU body.
    pub(crate) fn next_part(&self) -> Option<(i64, usize, &CheckedSm)> {
        let &(id, part) = self.queue.front()?;
        let row = self.rows.get(&id)?;
        Some((id, part, row.pdus.get(part)?))
    }

    /// The part returned by `next_part` went out with this sequence number.
    pub(crate) fn mark_sent(&mut self, sequence_number: u32) {
        if let Some((id, part)) = self.queue.pop_front() {
            if let Some(row) = self.rows.get_mut(&id) {
                row.states[part] = PartState::InFlight(sequence_number);
                self.in_flight.insert(sequence_number, (id, part));
            }
        }
    }

    /// The row and part a sequence number belongs to (for logging).
    pub(crate) fn part_of(&self, sequence_number: u32) -> Option<(i64, usize)> {
        self.in_flight.get(&sequence_number).copied()
    }

    /// A submit_sm_resp (or a generic_nack for a submit_sm) arrived.
    pub(crate) fn on_response(
        &mut self,
        sequence_number: u32,
        status: CommandStatus,
        message_id: &str,
    ) -> ResponseEffect {
        let Some((id, part)) = self.in_flight.remove(&sequence_number) else {
            return ResponseEffect::UnknownSequence;
        };
        if is_throttle(status) {
            self.set_state(id, part, PartState::Queued);
            self.queue.push_front((id, part));
            return ResponseEffect::Throttled;
        }
        let state = match self.classify(status) {
            StatusClass::Ok => {
                self.accepted_open += 1;
                if let Some(row) = self.rows.get_mut(&id) {
                    row.accepted_now += 1;
                }
                PartState::Accepted(message_id.to_string())
            }
            StatusClass::Permanent => PartState::Failed(PartFailure::Permanent(status)),
            StatusClass::Transient | StatusClass::Session => {
                PartState::Failed(PartFailure::Transient(status))
            }
        };
        self.set_state(id, part, state);
        ResponseEffect::Settled(self.finish_if_settled(id))
    }

    /// A generic_nack for a submit_sm: never an acceptance, since it says the SMSC could not
    /// process the PDU. With an error status the part ends as that status says (throttling
    /// included: some SMSCs throttle with generic_nack). With status 0 the SMSC contradicts
    /// itself and may have taken the message after all, so its outcome is unknown: the row
    /// goes again, counted as a possible duplicate.
    pub(crate) fn on_nack(
        &mut self,
        sequence_number: u32,
        status: CommandStatus,
    ) -> ResponseEffect {
        if status != CommandStatus::ESME_ROK {
            return self.on_response(sequence_number, status, "");
        }
        let Some((id, part)) = self.in_flight.remove(&sequence_number) else {
            return ResponseEffect::UnknownSequence;
        };
        let failure = PartFailure::Unknown("generic_nack with status 0 for the submit_sm");
        self.set_state(id, part, PartState::Failed(failure));
        ResponseEffect::Settled(self.finish_if_settled(id))
    }

    /// The response timer of an outstanding submit_sm fired.
    pub(crate) fn on_timeout(&mut self, sequence_number: u32) -> Option<TxResult> {
        let (id, part) = self.in_flight.remove(&sequence_number)?;
        let failure = PartFailure::Unknown("no submit_sm_resp within the response timer");
        self.set_state(id, part, PartState::Failed(failure));
        self.finish_if_settled(id)
    }

    /// The connection is gone: parts in flight have an unknown outcome, rows with nothing in
    /// flight and nothing settled are handed back untouched. Returns every row's result.
    pub(crate) fn on_connection_lost(&mut self) -> Vec<TxResult> {
        for (_, (id, part)) in self.in_flight.drain() {
            if let Some(row) = self.rows.get_mut(&id) {
                row.states[part] = PartState::Failed(PartFailure::Unknown(
                    "connection lost before submit_sm_resp",
                ));
            }
        }
        self.release_all()
    }

    /// Hands every row that is not in flight back (shutdown): rows with nothing sent are
    /// released, rows with parts settled keep what they achieved. Rows in flight stay.
    pub(crate) fn release_idle(&mut self) -> Vec<TxResult> {
        let idle: Vec<i64> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.states.iter().any(|s| matches!(s, PartState::InFlight(_))))
            .map(|(id, _)| *id)
            .collect();
        self.queue.retain(|(id, _)| !idle.contains(id));
        idle.into_iter()
            .filter_map(|id| self.close_row(id))
            .collect()
    }

    fn release_all(&mut self) -> Vec<TxResult> {
        self.queue.clear();
        let ids: Vec<i64> = self.rows.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.close_row(id))
            .collect()
    }

    /// Ends a row whatever its parts' states: queued parts count as not sent.
    fn close_row(&mut self, id: i64) -> Option<TxResult> {
        let mut row = self.remove_row(id)?;
        let any_failed = row.states.iter().any(|s| matches!(s, PartState::Failed(_)));
        if !any_failed {
            let parts = take_accepted_parts(&mut row);
            let outcome = if parts.is_empty() {
                TxOutcome::Release
            } else {
                TxOutcome::Retry {
                    info: "interrupted".into(),
                    delay: Duration::ZERO,
                    parts,
                }
            };
            return Some(TxResult {
                id,
                insert_timestamp: row.row.insert_timestamp,
                outcome,
                attempts: 0,
                resends: 0,
            });
        }
        Some(self.outcome_of(row))
    }

    fn set_state(&mut self, id: i64, part: usize, state: PartState) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.states[part] = state;
        }
    }

    fn finish_if_settled(&mut self, id: i64) -> Option<TxResult> {
        let row = self.rows.get(&id)?;
        let settled = row
            .states
            .iter()
            .all(|s| matches!(s, PartState::Accepted(_) | PartState::Failed(_)));
        if !settled {
            return None;
        }
        let row = self.remove_row(id)?;
        Some(self.outcome_of(row))
    }

    /// A row ends: its accepted parts leave the open count (its result carries them on).
    fn remove_row(&mut self, id: i64) -> Option<RowInFlight> {
        let row = self.rows.remove(&id)?;
        self.accepted_open = self.accepted_open.saturating_sub(row.accepted_now);
        Some(row)
    }

    fn outcome_of(&self, mut row: RowInFlight) -> TxResult {
        let parts = take_accepted_parts(&mut row);
        let failures: Vec<&PartFailure> = row
            .states
            .iter()
            .filter_map(|s| match s {
                PartState::Failed(f) => Some(f),
                _ => None,
            })
            .collect();
        let resends = failures
            .iter()
            .filter(|f| matches!(f, PartFailure::Unknown(_)))
            .count();
        let resends = i32::try_from(resends).unwrap_or(i32::MAX);
        let (id, insert_timestamp) = (row.row.id, row.row.insert_timestamp);
        if failures.is_empty() {
            return TxResult {
                id,
                insert_timestamp,
                outcome: TxOutcome::Done { parts },
                attempts: 1,
                resends: 0,
            };
        }
        let attempts_so_far = row.row.attempts.saturating_add(1);
        let info = describe_failures(&failures, row.pdus.len(), &row.states);
        let permanent = failures
            .iter()
            .any(|f| matches!(f, PartFailure::Permanent(_)));
        let outcome = if permanent {
            TxOutcome::Failed { info, parts }
        } else if attempts_so_far >= self.settings.max_attempts {
            let info = format!("{info}; giving up after {attempts_so_far} attempts");
            TxOutcome::Failed { info, parts }
        } else {
            let failures_before = u32::try_from(row.row.attempts).unwrap_or(0);
            let delay = Backoff::delay_for(
                self.settings.retry_min,
                self.settings.retry_max,
                failures_before,
            );
            TxOutcome::Retry { info, delay, parts }
        };
        TxResult {
            id,
            insert_timestamp,
            outcome,
            attempts: 1,
            resends,
        }
    }

    fn classify(&self, status: CommandStatus) -> StatusClass {
        if status.is_vendor_specific() && self.settings.permanent_statuses.contains(&status.0) {
            return StatusClass::Permanent;
        }
        status.class()
    }
}

/// What a kill would leave with an unknown outcome, in segments (submit_sm): esmed sends it
/// again after the restart. The window bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtRisk {
    /// submit_sm waiting for their response.
    pub(crate) in_flight: usize,
    /// Parts accepted whose rows are not finished ([`Outbox::accepted_open`]).
    pub(crate) accepted: usize,
    /// Segments of the results handed to the DB writer and not committed yet
    /// ([`window_share`]).
    pub(crate) uncommitted: usize,
}

impl AtRisk {
    /// Room to take another row. With `answered_window` None (strict_resend_bound) the
    /// answered segments share `window` with those in flight: at most one window at risk;
    /// with Some (max_uncommitted_results), they have that bound of their own: at most the
    /// window plus it, less one, at risk (a submit goes out only while the answered are
    /// below it, and then moves from in flight to answered).
    pub(crate) fn room_for_rows(&self, window: usize, answered_window: Option<usize>) -> bool {
        let answered = self.accepted + self.uncommitted;
        match answered_window {
            None => self.in_flight + answered < window,
            Some(answered_window) => self.in_flight < window && answered < answered_window,
        }
    }

    /// Room to submit another part of the rows taken. Besides the window's room: while
    /// nothing is in flight and every result is committed, nothing else would ever make
    /// room, so the open rows' parts go one at a time (a message with more parts than the
    /// window is sent whole, and a kill during it may send that message's parts again).
    pub(crate) fn room_for_a_part(&self, window: usize, answered_window: Option<usize>) -> bool {
        self.room_for_rows(window, answered_window)
            || (self.in_flight == 0 && self.uncommitted == 0)
    }
}

/// The segments a result stands for until it is committed: its accepted parts, which a kill
/// before the commit would send again (parts accepted on an earlier attempt too, erring on
/// the safe side), and at least one.
pub(crate) fn window_share(result: &TxResult) -> usize {
    let parts = match &result.outcome {
        TxOutcome::Done { parts }
        | TxOutcome::Failed { parts, .. }
        | TxOutcome::Retry { parts, .. } => parts.len(),
        TxOutcome::Release => 0,
    };
    parts.max(1)
}

fn is_throttle(status: CommandStatus) -> bool {
    status == CommandStatus::ESME_RTHROTTLED || status == CommandStatus::ESME_RMSGQFUL
}

/// Parts accepted on an earlier attempt start as accepted; the rest are queued.
fn initial_states(row: &TxRow, count: usize) -> Vec<PartState> {
    let mut states = vec![PartState::Queued; count];
    let consistent = row
        .accepted_parts
        .iter()
        .all(|p| p.part_no >= 1 && (p.part_no as usize) <= count);
    if !consistent {
        return states;
    }
    for part in &row.accepted_parts {
        states[part.part_no as usize - 1] = PartState::Accepted(part.message_id.clone());
    }
    states
}

/// The accepted parts of a row that is ending, their message ids moved out (the states keep
/// saying which parts were accepted).
fn take_accepted_parts(row: &mut RowInFlight) -> Vec<AcceptedPart> {
    let part_count = i16::try_from(row.states.len()).unwrap_or(i16::MAX);
    row.states
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| match s {
            PartState::Accepted(id) => Some(AcceptedPart {
                part_no: i16::try_from(i + 1).unwrap_or(i16::MAX),
                part_count,
                message_id: std::mem::take(id),
            }),
            _ => None,
        })
        .collect()
}

fn describe_failures(failures: &[&PartFailure], parts: usize, states: &[PartState]) -> String {
    let first = failures.first().map_or(String::new(), |f| match f {
        PartFailure::Permanent(s) | PartFailure::Transient(s) => s.to_string(),
        PartFailure::Unknown(why) => format!("outcome unknown: {why}"),
    });
    if parts == 1 {
        return first;
    }
    let part_no = states
        .iter()
        .position(|s| matches!(s, PartState::Failed(_)))
        .map_or(0, |p| p + 1);
    format!("part {part_no}/{parts}: {first}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::RegisteredDelivery;
    use crate::session::submit::{ReceiptPolicy, SubmitSettings};
    use crate::smpp::concat::LongMode;
    use crate::smpp::text::CodingPolicy;

    fn settings() -> SubmitSettings {
        SubmitSettings {
            source_addr: None,
            source_ton_npi: None,
            dest_ton: 1,
            dest_npi: 1,
            receipts: ReceiptPolicy::Never,
            coding: CodingPolicy::Gsm7,
            long_mode: LongMode::Udh8,
            max_segments: 10,
            max_attempts: 3,
            permanent_statuses: vec![0x401],
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
        }
    }

    fn row(id: i64, text: &str, attempts: i32) -> TxRow {
        TxRow {
            id,
            destination: "447700900123".into(),
            source_override: None,
            priority: 0,
            registered_delivery: RegisteredDelivery::NotRequested,
            short_message: text.into(),
            attempts,
            accepted_parts: Vec::new(),
            insert_timestamp: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    /// Row 5, a two-part text on its second attempt whose part 1 the SMSC already accepted.
    fn retried_row() -> TxRow {
        let mut retried = row(5, &"x".repeat(300), 1);
        retried.accepted_parts = vec![AcceptedPart {
            part_no: 1,
            part_count: 2,
            message_id: "A".into(),
        }];
        retried
    }

    /// Sends every queued part, numbering from `first_seq`.
    fn send_all(outbox: &mut Outbox, first_seq: u32) -> Vec<u32> {
        let mut seqs = Vec::new();
        while outbox.next_part().is_some() {
            let seq = first_seq + seqs.len() as u32;
            outbox.mark_sent(seq);
            seqs.push(seq);
        }
        seqs
    }

    fn settled(effect: ResponseEffect) -> Option<TxResult> {
        match effect {
            ResponseEffect::Settled(result) => result,
            other => panic!("expected Settled, got {other:?}"),
        }
    }

    #[test]
    fn a_row_is_done_when_every_part_is_accepted() {
        let mut outbox = Outbox::new(settings());
        assert!(outbox.add_row(row(7, &"x".repeat(300), 0)).is_none());
        let seqs = send_all(&mut outbox, 10);
        assert_eq!(seqs.len(), 2);
        assert!(settled(outbox.on_response(11, CommandStatus::ESME_ROK, "B")).is_none());
        let result = settled(outbox.on_response(10, CommandStatus::ESME_ROK, "A")).unwrap();
        match result.outcome {
            TxOutcome::Done { parts } => {
                let ids: Vec<_> = parts
                    .iter()
                    .map(|p| (p.part_no, p.message_id.as_str()))
                    .collect();
                assert_eq!(ids, vec![(1, "A"), (2, "B")]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            (result.attempts, outbox.rows(), outbox.in_flight()),
            (1, 0, 0)
        );
    }

    #[test]
    fn permanent_status_fails_the_row_with_its_name() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        send_all(&mut outbox, 2);
        let result = settled(outbox.on_response(2, CommandStatus::ESME_RINVDSTADR, "")).unwrap();
        assert_eq!(
            result.outcome,
            TxOutcome::Failed {
                info: "ESME_RINVDSTADR (0x0000000B): invalid destination address".into(),
                parts: vec![]
            }
        );
    }

    #[test]
    fn transient_status_retries_until_attempts_run_out() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        send_all(&mut outbox, 2);
        let result = settled(outbox.on_response(2, CommandStatus::ESME_RSYSERR, "")).unwrap();
        assert!(
            matches!(result.outcome, TxOutcome::Retry { .. }),
            "{result:?}"
        );
        outbox.add_row(row(2, "Hi", 2));
        send_all(&mut outbox, 3);
        let result = settled(outbox.on_response(3, CommandStatus::ESME_RSYSERR, "")).unwrap();
        match result.outcome {
            TxOutcome::Failed { info, .. } => {
                assert!(info.ends_with("giving up after 3 attempts"), "{info}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn configured_vendor_statuses_are_permanent_others_transient() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        outbox.add_row(row(2, "Hi", 0));
        send_all(&mut outbox, 2);
        let first = settled(outbox.on_response(2, CommandStatus(0x401), "")).unwrap();
        let second = settled(outbox.on_response(3, CommandStatus(0x402), "")).unwrap();
        assert!(matches!(first.outcome, TxOutcome::Failed { .. }));
        assert!(matches!(second.outcome, TxOutcome::Retry { .. }));
    }

    #[test]
    fn throttling_requeues_the_part_without_an_attempt() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        send_all(&mut outbox, 2);
        assert_eq!(
            outbox.on_response(2, CommandStatus::ESME_RTHROTTLED, ""),
            ResponseEffect::Throttled
        );
        assert_eq!(send_all(&mut outbox, 3), vec![3]);
        let result = settled(outbox.on_response(3, CommandStatus::ESME_ROK, "id")).unwrap();
        assert_eq!(result.attempts, 1);
        assert!(matches!(result.outcome, TxOutcome::Done { .. }));
    }

    #[test]
    fn timeouts_and_lost_connections_resend_and_count_it() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        outbox.add_row(row(2, "Hi", 0));
        outbox.add_row(row(3, "Hi", 0));
        outbox.mark_sent(2);
        outbox.mark_sent(3);
        let timed_out = outbox.on_timeout(2).unwrap();
        assert_eq!(timed_out.resends, 1);
        assert!(matches!(timed_out.outcome, TxOutcome::Retry { .. }));
        assert_eq!(
            outbox.on_response(2, CommandStatus::ESME_ROK, "late"),
            ResponseEffect::UnknownSequence
        );
        let mut lost = outbox.on_connection_lost();
        lost.sort_by_key(|r| r.id);
        assert_eq!(lost.len(), 2);
        assert_eq!((lost[0].id, lost[0].resends), (2, 1));
        assert_eq!(
            (lost[1].id, lost[1].outcome.clone()),
            (3, TxOutcome::Release)
        );
    }

    #[test]
    fn a_generic_nack_is_never_an_acceptance() {
        let mut outbox = Outbox::new(settings());
        for id in 1..=3 {
            outbox.add_row(row(id, "Hi", 0));
        }
        send_all(&mut outbox, 2);
        // Status 0: the outcome is unknown, the row goes again and the resend is counted.
        let unknown = settled(outbox.on_nack(2, CommandStatus::ESME_ROK)).unwrap();
        assert_eq!(unknown.resends, 1);
        match &unknown.outcome {
            TxOutcome::Retry { info, parts, .. } => {
                assert!(info.contains("generic_nack"), "{info}");
                assert!(parts.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // An error status: a failed attempt as that status says, not a possible duplicate.
        let failed = settled(outbox.on_nack(3, CommandStatus::ESME_RSYSERR)).unwrap();
        assert!(matches!(failed.outcome, TxOutcome::Retry { .. }));
        assert_eq!(failed.resends, 0);
        // Throttling by generic_nack is throttling.
        assert_eq!(
            outbox.on_nack(4, CommandStatus::ESME_RTHROTTLED),
            ResponseEffect::Throttled
        );
        assert_eq!(
            outbox.on_nack(99, CommandStatus::ESME_ROK),
            ResponseEffect::UnknownSequence
        );
    }

    #[test]
    fn accepted_parts_count_until_their_row_ends() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, &"x".repeat(400), 0));
        outbox.add_row(row(2, &"x".repeat(400), 0));
        let seqs = send_all(&mut outbox, 10);
        assert_eq!(seqs.len(), 6, "three parts each");
        for seq in [10, 11, 13] {
            assert!(settled(outbox.on_response(seq, CommandStatus::ESME_ROK, "id")).is_none());
        }
        assert_eq!((outbox.accepted_open(), outbox.in_flight()), (3, 3));
        let done = settled(outbox.on_response(12, CommandStatus::ESME_ROK, "id")).unwrap();
        assert_eq!(
            window_share(&done),
            3,
            "the result carries its three parts on"
        );
        assert_eq!(outbox.accepted_open(), 1);
        // Row 2: one part accepted, one refused, one lost with the connection.
        let _ = outbox.on_response(14, CommandStatus::ESME_RSYSERR, "");
        let lost = outbox.on_connection_lost();
        assert_eq!(outbox.accepted_open(), 0);
        assert_eq!(window_share(&lost[0]), 1);
    }

    #[test]
    fn a_retried_row_counts_its_earlier_parts_as_well() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(retried_row());
        assert_eq!(outbox.accepted_open(), 0, "part 1 is committed already");
        send_all(&mut outbox, 9);
        let done = settled(outbox.on_response(9, CommandStatus::ESME_ROK, "B")).unwrap();
        assert_eq!(window_share(&done), 2);
        let release = TxResult {
            id: 6,
            insert_timestamp: std::time::SystemTime::UNIX_EPOCH,
            outcome: TxOutcome::Release,
            attempts: 0,
            resends: 0,
        };
        assert_eq!(window_share(&release), 1);
    }

    #[test]
    fn the_window_bounds_every_segment_at_risk() {
        let at_risk = |in_flight, accepted, uncommitted| AtRisk {
            in_flight,
            accepted,
            uncommitted,
        };
        // strict: in flight, accepted and uncommitted share the window
        assert!(at_risk(2, 1, 1).room_for_rows(5, None));
        assert!(!at_risk(2, 2, 1).room_for_rows(5, None));
        assert!(!at_risk(0, 5, 0).room_for_rows(5, None));
        assert!(!at_risk(0, 3, 2).room_for_a_part(5, None));
        // not strict: the answered get a window of their own
        assert!(at_risk(4, 4, 0).room_for_rows(5, Some(5)));
        assert!(!at_risk(4, 3, 2).room_for_rows(5, Some(5)));
        assert!(!at_risk(5, 0, 0).room_for_rows(5, Some(5)));
        // A message longer than the window: once nothing else can make room, its parts go
        // one at a time; new rows wait.
        assert!(at_risk(0, 7, 0).room_for_a_part(5, None));
        assert!(!at_risk(0, 7, 0).room_for_rows(5, None));
        assert!(!at_risk(1, 7, 0).room_for_a_part(5, None));
        assert!(!at_risk(0, 7, 1).room_for_a_part(5, None));
    }

    /// A session's accounting driven as the session's core drives it, with an SMSC that answers
    /// everything in flight at each step and a DB writer one step behind: the segments at
    /// risk never exceed the window, and every row ends.
    #[test]
    fn what_a_kill_would_resend_stays_within_one_window() {
        const WINDOW: usize = 5;
        let mut outbox = Outbox::new(settings());
        for id in 1..=20 {
            // one, two and three parts in turn
            let text = "x".repeat(150 * (id as usize % 3) + 100);
            outbox.add_row(row(id, &text, 0));
        }
        let (mut seq, mut uncommitted, mut committing, mut done) = (1u32, 0, 0, 0);
        while done < 20 {
            let risk = |outbox: &Outbox, uncommitted| AtRisk {
                in_flight: outbox.in_flight(),
                accepted: outbox.accepted_open(),
                uncommitted,
            };
            while risk(&outbox, uncommitted).room_for_a_part(WINDOW, None)
                && outbox.next_part().is_some()
            {
                outbox.mark_sent(seq);
                seq += 1;
                let at_risk = risk(&outbox, uncommitted);
                let total = at_risk.in_flight + at_risk.accepted + at_risk.uncommitted;
                assert!(total <= WINDOW, "{at_risk:?}");
            }
            uncommitted -= committing;
            committing = 0;
            let answered: Vec<u32> = outbox.in_flight.keys().copied().collect();
            for s in answered {
                if let ResponseEffect::Settled(Some(result)) =
                    outbox.on_response(s, CommandStatus::ESME_ROK, "id")
                {
                    assert!(matches!(result.outcome, TxOutcome::Done { .. }));
                    uncommitted += window_share(&result);
                    committing += window_share(&result);
                    done += 1;
                }
            }
            assert!(seq < 1000, "stuck");
        }
    }

    #[test]
    fn accepted_parts_of_a_retried_row_are_not_sent_again() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(retried_row());
        assert_eq!(
            outbox.next_part().map(|(id, part, _)| (id, part)),
            Some((5, 1))
        );
        assert_eq!(send_all(&mut outbox, 9), vec![9]);
        let result = settled(outbox.on_response(9, CommandStatus::ESME_ROK, "B")).unwrap();
        match result.outcome {
            TxOutcome::Done { parts } => assert_eq!(parts.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stopping_hands_back_rows_not_in_flight() {
        let mut outbox = Outbox::new(settings());
        outbox.add_row(row(1, "Hi", 0));
        outbox.add_row(row(2, "Hi", 0));
        outbox.mark_sent(2);
        let released = outbox.release_idle();
        assert_eq!(released.len(), 1);
        assert_eq!(
            (released[0].id, released[0].outcome.clone()),
            (2, TxOutcome::Release)
        );
        assert_eq!(outbox.in_flight(), 1);
        assert!(!outbox.has_queued_parts());
    }

    #[test]
    fn a_bad_row_fails_at_once() {
        let mut outbox = Outbox::new(settings());
        let result = outbox.add_row(row(1, "", 0)).unwrap();
        assert!(matches!(result.outcome, TxOutcome::Failed { .. }));
        assert_eq!(outbox.rows(), 0);
    }
}
