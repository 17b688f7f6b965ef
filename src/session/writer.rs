//! The socket writer thread of one bound connection. The session's rules live in its core
//! (`state`); this thread does the I/O around it: it waits for one event (`select!` over the
//! reader, the DB writer's commits, the stop channel, claimed rows when the core wants them,
//! and the core's next timer), hands it to the core with the time, sends what the core asks
//! of the DB writer, and writes everything the core queued in one `write_all` (coalesced
//! writes).

use std::io::Write;
use std::net::Shutdown;
use std::time::Instant;

use crossbeam_channel::{never, select, Receiver, Sender};

use crate::handoff::{AckTo, Committed, DbOp, Links, ReaderEvent, ResultAck, TxRow};
use crate::session::state::{Action, Ending, Session};
use crate::session::transport::WriteHalf;
use crate::session::SessionParams;

/// At most this many waiting events are handled before submitting, writing and looking at
/// the timers again.
const READY_BATCH: usize = 256;

pub(crate) struct Writer<'a> {
    params: &'a SessionParams,
    links: &'a Links,
    stream: WriteHalf,
    core: Session<'a>,
    acks: (Sender<Committed>, Receiver<Committed>),
}

impl<'a> Writer<'a> {
    pub(crate) fn new(params: &'a SessionParams, links: &'a Links, stream: WriteHalf) -> Self {
        Writer {
            params,
            links,
            stream,
            core: Session::new(params, &links.stats, Instant::now()),
            // One message per result batch and per received PDU handed over, both counted
            // by the core; no capacity, so that the DB writer never waits on the session,
            // which may be waiting for it.
            acks: crossbeam_channel::unbounded(),
        }
    }

    /// Runs the bound connection until it ends; every row it held is handed back to the DB
    /// writer before it returns.
    pub(crate) fn run(mut self, events: Receiver<Vec<ReaderEvent>>, stop: &Receiver<()>) -> Ending {
        let submits = self.params.bind.can_submit();
        if submits {
            self.links.submit_windows.open(self.params.window);
        }
        let ending = self.event_loop(&events, stop);
        if submits {
            self.links.submit_windows.close(self.params.window);
        }
        self.hand_over();
        let _ = self.flush();
        let _ = self.stream.shutdown(Shutdown::Both);
        self.core.on_connection_lost();
        if submits {
            self.release_claimed();
        }
        self.hand_over();
        self.core.finish(Instant::now());
        ending
    }

    /// Rows claimed for us but not taken yet go back to the queue.
    fn release_claimed(&mut self) {
        while let Ok(row) = self.links.outbound.try_recv() {
            self.core.hand_back(&row);
        }
    }

    fn event_loop(&mut self, events: &Receiver<Vec<ReaderEvent>>, stop: &Receiver<()>) -> Ending {
        let never_rows = never();
        let never_stop = never();
        let never_events = never();
        // A handle of our own, so the select below can borrow it while the arms borrow self.
        let acks = self.acks.1.clone();
        loop {
            // The clock is read only while stopping: a turn otherwise costs no extra read.
            if self.core.is_stopping()
                && self.core.check_drained(Instant::now())
                && self.flush().is_err()
            {
                return Ending::Stopped;
            }
            let rows = if self.core.wants_rows() {
                &self.links.outbound
            } else {
                &never_rows
            };
            let stop_rx = if self.core.is_stopping() {
                &never_stop
            } else {
                stop
            };
            let events_rx = if self.core.reads_wanted() {
                events
            } else {
                &never_events
            };
            let timeout = self
                .core
                .next_deadline()
                .map_or(crossbeam_channel::never(), crossbeam_channel::at);
            let step = select! {
                recv(events_rx) -> batch => match batch {
                    Ok(batch) => self.core.on_reader_events(batch, Instant::now()),
                    Err(_) => Err(Ending::Lost("the reader thread ended".into())),
                },
                recv(acks) -> ack => {
                    if let Ok(ack) = ack { self.on_committed(ack); }
                    Ok(())
                },
                recv(stop_rx) -> _ => { self.core.on_stop(Instant::now()); Ok(()) },
                recv(rows) -> row => {
                    if let Ok(row) = row {
                        self.take_rows(row);
                    }
                    Ok(())
                },
                recv(timeout) -> _ => self.core.on_timeout(Instant::now()),
            };
            self.hand_over();
            if let Err(ending) = step.and_then(|()| self.take_ready(events, &acks)) {
                return ending;
            }
            self.core.pump(Instant::now());
            self.hand_over();
            self.sample_window();
            if let Err(e) = self.flush() {
                return self.write_failed(&e);
            }
        }
    }

    /// Takes `row` and further claimed rows while the core wants them, so that the submits
    /// of one turn leave in one write (one row per turn cost a turn of the event loop and a
    /// write per message).
    fn take_rows(&mut self, row: TxRow) {
        self.core.on_row(row, Instant::now());
        self.hand_over();
        while self.core.wants_rows() {
            let Ok(row) = self.links.outbound.try_recv() else {
                break;
            };
            self.core.on_row(row, Instant::now());
            self.hand_over();
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
            let batch = if self.core.reads_wanted() {
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
                let step = self.core.on_reader_events(batch, Instant::now());
                self.hand_over();
                step?;
            }
        }
        Ok(())
    }

    /// What the DB writer reports, for the core.
    fn on_committed(&mut self, committed: Committed) {
        match committed {
            Committed::Received {
                sequence_number,
                command,
                status,
            } => self.core.on_stored(sequence_number, command, status),
            Committed::Results(segments) => self.core.on_results_committed(segments),
        }
    }

    /// Sends the DB writer what the core asked for, each with where to report its commit.
    fn hand_over(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Commit { result, segments } => {
                    let ack = Some(ResultAck {
                        to: self.acks.0.clone(),
                        segments,
                    });
                    if let Err(e) = self.links.db.send(DbOp::Result { result, ack }) {
                        self.core.commit_lost(e.0.row_id(), segments);
                    }
                }
                Action::Store {
                    row,
                    sequence_number,
                    command,
                } => {
                    let ack = Some(AckTo {
                        to: self.acks.0.clone(),
                        sequence_number,
                        command,
                    });
                    if self.links.db.send(DbOp::Rx { row, ack }).is_err() {
                        self.core.store_lost(sequence_number, command);
                    }
                }
            }
        }
    }

    /// For the heartbeat row: one relaxed store per loop turn, no lock.
    fn sample_window(&self) {
        if self.params.bind.can_submit() {
            let in_flight = self.core.in_flight() as u64;
            let window = &self.links.stats.session.window_in_use;
            window.store(in_flight, std::sync::atomic::Ordering::Relaxed);
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
        if self.core.output().is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(self.core.output());
        self.core.clear_output();
        result
    }
}
