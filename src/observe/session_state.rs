//! What the daemon is doing right now, for the heartbeat row: the server in use, each
//! session's state, the window in use and the last error.
//!
//! Sessions write it only when something changes (connect, bind, loss, stop), and the window
//! as one relaxed atomic store per writer loop turn, so the per-PDU path takes no lock. The
//! heartbeat thread reads it every few seconds and turns it into one `session_state` text.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::handoff::BindKind;

/// Where one session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    Connecting,
    Bound,
}

/// The shared live status; lives in `Stats`, so every session already has it.
#[derive(Debug, Default)]
pub(crate) struct SessionStatus {
    inner: Mutex<Inner>,
    /// submit_sm awaiting their response, sampled by the submitting session.
    pub(crate) window_in_use: AtomicU64,
    /// Set once the daemon began its shutdown.
    pub(crate) stopping: AtomicBool,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    server: Option<ServerInUse>,
    sessions: Vec<(BindKind, LinkState)>,
    /// The sessions whose connection is TLS without a check of the SMSC's certificate.
    tls_unverified: Vec<BindKind>,
    last_error: Option<(String, SystemTime)>,
}

/// The smpp_servers row the sessions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerInUse {
    pub(crate) id: i32,
    pub(crate) name: Option<String>,
    pub(crate) window: i32,
}

/// A copy of the status at one moment, for the heartbeat row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusSnapshot {
    pub(crate) server: Option<ServerInUse>,
    pub(crate) state: String,
    pub(crate) window_in_use: u64,
    /// A bound session runs TLS without checking the SMSC's certificate.
    pub(crate) tls_unverified: bool,
    pub(crate) last_error: Option<(String, SystemTime)>,
}

impl SessionStatus {
    /// A poisoned lock only means a thread panicked while holding it; the data is still
    /// usable for a status line.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_server(&self, server: Option<ServerInUse>) {
        self.lock().server = server;
    }

    /// Records a session's state; a session that ended is `forget`-ten instead.
    pub(crate) fn set_link(&self, kind: BindKind, state: LinkState) {
        let mut inner = self.lock();
        match inner.sessions.iter_mut().find(|(k, _)| *k == kind) {
            Some(entry) => entry.1 = state,
            None => inner.sessions.push((kind, state)),
        }
    }

    /// Records whether `kind`'s connection is TLS whose certificate was not checked
    /// (smpp_tls_verify = false); shown while that session is bound.
    pub(crate) fn set_tls_unverified(&self, kind: BindKind, unverified: bool) {
        let mut inner = self.lock();
        inner.tls_unverified.retain(|k| *k != kind);
        if unverified {
            inner.tls_unverified.push(kind);
        }
    }

    pub(crate) fn forget(&self, kind: BindKind) {
        let mut inner = self.lock();
        inner.sessions.retain(|(k, _)| *k != kind);
        inner.tls_unverified.retain(|k| *k != kind);
        drop(inner);
        if kind.can_submit() {
            self.window_in_use.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_error(&self, error: impl Into<String>) {
        self.lock().last_error = Some((error.into(), SystemTime::now()));
    }

    /// Logs a problem at `level` and makes it the last error (esmed_status.last_error), so
    /// that `esmed status` shows database trouble as well as session trouble.
    pub(crate) fn report(&self, level: log::Level, message: String) {
        log::log!(level, "{message}");
        self.set_error(message);
    }

    pub(crate) fn snapshot(&self) -> StatusSnapshot {
        let inner = self.lock().clone();
        let stopping = self.stopping.load(Ordering::Relaxed);
        let tls_unverified = inner
            .sessions
            .iter()
            .any(|(kind, state)| *state == LinkState::Bound && inner.tls_unverified.contains(kind));
        StatusSnapshot {
            state: describe_state(&inner.sessions, stopping),
            tls_unverified,
            server: inner.server,
            window_in_use: self.window_in_use.load(Ordering::Relaxed),
            last_error: inner.last_error,
        }
    }
}

/// `idle`, `connecting`, `bound transceiver`, `bound transmitter+receiver`,
/// `bound receiver (transmitter connecting)`, `stopping`.
pub(crate) fn describe_state(sessions: &[(BindKind, LinkState)], stopping: bool) -> String {
    if stopping {
        return "stopping".into();
    }
    let names = |wanted: LinkState| {
        let mut kinds: Vec<BindKind> = sessions
            .iter()
            .filter(|(_, state)| *state == wanted)
            .map(|(kind, _)| *kind)
            .collect();
        kinds.sort_by_key(|kind| *kind as u8);
        kinds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("+")
    };
    let (bound, connecting) = (names(LinkState::Bound), names(LinkState::Connecting));
    match (bound.is_empty(), connecting.is_empty()) {
        (true, true) => "idle".into(),
        (true, false) => "connecting".into(),
        (false, true) => format!("bound {bound}"),
        (false, false) => format!("bound {bound} ({connecting} connecting)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BindKind::{Receiver, Transceiver, Transmitter};
    use LinkState::{Bound, Connecting};

    #[test]
    fn states_read_as_operators_expect() {
        assert_eq!(describe_state(&[], false), "idle");
        assert_eq!(
            describe_state(&[(Transceiver, Connecting)], false),
            "connecting"
        );
        assert_eq!(
            describe_state(&[(Transceiver, Bound)], false),
            "bound transceiver"
        );
        assert_eq!(
            describe_state(&[(Receiver, Bound), (Transmitter, Bound)], false),
            "bound transmitter+receiver"
        );
        assert_eq!(
            describe_state(&[(Transmitter, Connecting), (Receiver, Bound)], false),
            "bound receiver (transmitter connecting)"
        );
        assert_eq!(describe_state(&[(Transceiver, Bound)], true), "stopping");
    }

    #[test]
    fn links_errors_and_window_are_kept() {
        let status = SessionStatus::default();
        status.set_link(Transmitter, Connecting);
        status.set_link(Transmitter, Bound);
        status.window_in_use.store(3, Ordering::Relaxed);
        status.set_error("session lost: reset");
        status.set_server(Some(ServerInUse {
            id: 7,
            name: Some("main".into()),
            window: 10,
        }));
        let snap = status.snapshot();
        assert_eq!(snap.state, "bound transmitter");
        assert_eq!(snap.window_in_use, 3);
        assert_eq!(snap.server.map(|s| s.id), Some(7));
        assert_eq!(
            snap.last_error.map(|e| e.0).as_deref(),
            Some("session lost: reset")
        );
        status.forget(Transmitter);
        let snap = status.snapshot();
        assert_eq!((snap.state.as_str(), snap.window_in_use), ("idle", 0));
    }

    #[test]
    fn unverified_tls_shows_while_its_session_is_bound() {
        let status = SessionStatus::default();
        status.set_link(Transmitter, Bound);
        status.set_link(Receiver, Connecting);
        status.set_tls_unverified(Receiver, true);
        assert!(!status.snapshot().tls_unverified, "not bound yet");
        status.set_link(Receiver, Bound);
        assert!(status.snapshot().tls_unverified);
        status.set_link(Receiver, Connecting);
        assert!(!status.snapshot().tls_unverified, "reconnecting");
        status.set_link(Receiver, Bound);
        status.set_tls_unverified(Receiver, false);
        assert!(!status.snapshot().tls_unverified, "bound again, checked");
        status.set_tls_unverified(Receiver, true);
        status.forget(Receiver);
        assert!(!status.snapshot().tls_unverified, "ended");
    }
}
