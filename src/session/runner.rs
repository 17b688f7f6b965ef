//! A session's life across connections: connect and bind, run the bound connection with its
//! reader and writer threads, and on failure reconnect with capped exponential backoff, until
//! asked to stop. Every failure gets one log line saying what happened and when it retries.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use log::{error, info, warn};

use crate::backoff::Backoff;
use crate::handoff::Links;
use crate::observe::session_state::LinkState;
use crate::session::bind::{connect_and_bind, BindError};
use crate::session::reader;
use crate::session::state::Ending;
use crate::session::writer::Writer;
use crate::session::SessionParams;
use crate::smpp::status::StatusClass;
use crate::tls::Verify;

/// A running session thread; dropping `stop` (or calling `stop`) ends it after the drain.
pub(crate) struct SessionHandle {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub(crate) label: String,
}

impl SessionHandle {
    /// Asks the session to drain and unbind, and waits for it.
    pub(crate) fn stop(mut self) {
        self.stop_and_join();
    }

    /// Asks the session to drain and unbind, without waiting for it.
    pub(crate) fn ask_to_stop(&mut self) {
        drop(self.stop.take());
    }

    fn stop_and_join(&mut self) {
        self.ask_to_stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                error!("{}: the session thread panicked", self.label);
            }
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

pub(crate) fn spawn(params: SessionParams, links: Links) -> std::io::Result<SessionHandle> {
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let label = params.label.clone();
    let thread = std::thread::Builder::new()
        .name(format!("esmed-session-{}", params.bind))
        .spawn(move || {
            run(&params, &links, &stop_rx);
            links.stats.session.forget(params.bind);
        })?;
    Ok(SessionHandle {
        stop: Some(stop_tx),
        thread: Some(thread),
        label,
    })
}

fn run(params: &SessionParams, links: &Links, stop: &Receiver<()>) {
    warn_if_unverified(params);
    let mut backoff = Backoff::new(params.reconnect_min, params.reconnect_max);
    loop {
        links
            .stats
            .session
            .set_link(params.bind, LinkState::Connecting);
        let delay = match connect_and_bind(params) {
            Ok(bound) => {
                let unverified = bound.transport.is_tls() && tls_unverified(params);
                let status = &links.stats.session;
                status.set_tls_unverified(params.bind, unverified);
                status.set_link(params.bind, LinkState::Bound);
                info!(
                    "{}: bound as {} to {}:{}{} (SMSC system_id '{}')",
                    params.label,
                    params.bind,
                    params.host,
                    params.port,
                    match (bound.transport.is_tls(), unverified) {
                        (true, false) => " over TLS",
                        (true, true) => " over TLS WITHOUT CERTIFICATE CHECK",
                        (false, _) => "",
                    },
                    bound.smsc_system_id
                );
                backoff.reset();
                match run_bound(params, links, bound, stop) {
                    Ending::Stopped => {
                        info!("{}: unbound and closed", params.label);
                        return;
                    }
                    Ending::Lost(why) => {
                        let delay = backoff.next_delay();
                        let error = format!("{}: session lost: {why}", params.label);
                        links.stats.session.set_error(error);
                        warn!(
                            "{}: session lost: {why}; reconnecting in {:.1} s",
                            params.label,
                            delay.as_secs_f64()
                        );
                        delay
                    }
                }
            }
            Err(e) => {
                let delay = bind_failure_delay(&e, &mut backoff, params.reconnect_max);
                let error = format!("{}: {}:{}: {e}", params.label, params.host, params.port);
                links.stats.session.set_error(error);
                error!(
                    "{}: {}:{} as '{}': {e}; retrying in {:.1} s",
                    params.label,
                    params.host,
                    params.port,
                    params.credentials.system_id,
                    delay.as_secs_f64()
                );
                delay
            }
        };
        match stop.recv_timeout(delay) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// smpp_tls_verify = false: TLS without a check of the SMSC's certificate.
fn tls_unverified(params: &SessionParams) -> bool {
    params
        .tls
        .as_ref()
        .is_some_and(|tls| tls.verify == Verify::Off)
}

fn warn_if_unverified(params: &SessionParams) {
    if tls_unverified(params) {
        warn!(
            "{}: smpp_tls_verify is OFF: the SMSC's certificate is NOT checked, so anyone on the \
             path can pose as the SMSC and read the bind password and every message. Use this \
             only for testing.",
            params.label
        );
    }
}

/// Credentials the SMSC rejected will not get better soon: wait the longest backoff.
fn bind_failure_delay(e: &BindError, backoff: &mut Backoff, max: Duration) -> Duration {
    match e {
        BindError::Refused(status) if status.class() == StatusClass::Session => {
            let _ = backoff.next_delay();
            max
        }
        _ => backoff.next_delay(),
    }
}

fn run_bound(
    params: &SessionParams,
    links: &Links,
    bound: crate::session::bind::Bound,
    stop: &Receiver<()>,
) -> Ending {
    let (read_half, mut write_half) = bound.transport.split();
    // An SMSC that has not taken a write within the response timer will not answer it in
    // time either; without a bound, one that stops reading would hold the writer thread, its
    // timers and any stop for ever.
    if let Err(e) = write_half.set_send_timeout(Some(params.timers.response)) {
        return Ending::Lost(format!("cannot set the send timeout: {e}"));
    }
    let (events_tx, events_rx) = bounded(reader::QUEUED_BATCHES);
    let reader = match reader::spawn(read_half, bound.buffer, params.timers.pdu_read, events_tx) {
        Ok(handle) => handle,
        Err(e) => return Ending::Lost(format!("cannot start the reader thread: {e}")),
    };
    let ending = Writer::new(params, links, write_half).run(events_rx, stop);
    if reader.join().is_err() {
        error!("{}: the reader thread panicked", params.label);
    }
    ending
}
