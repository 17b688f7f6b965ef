//! One SMPP session with the SMSC: connect, bind, submit with a window, answer the SMSC,
//! keep the link alive, unbind. Per connection a socket reader thread (`reader`) and a socket
//! writer thread (`writer`); the writer owns the session's core (`state`: the protocol rules,
//! the timer wheel and the window, without I/O) and does its I/O. `runner` reconnects with
//! backoff.
//!
//! ```text
//!  CLOSED --connect--> OPEN --bind_resp OK--> BOUND --stop / unbind--> CLOSED
//!     ^                  |  bind_resp error,       | lost link, enquire_link
//!     +----backoff-------+  session_init_timer     | unanswered, inactivity
//!     +----------------------------------------------+
//! ```

pub(crate) mod bind;
pub(crate) mod flow;
mod handshake;
mod id_hash;
pub(crate) mod inbound;
pub(crate) mod outbox;
pub(crate) mod reader;
mod requests;
pub(crate) mod runner;
mod state;
pub(crate) mod submit;
pub(crate) mod timers;
pub mod transport;
pub(crate) mod writer;

use std::time::Duration;

use crate::handoff::BindKind;
pub(crate) use crate::handoff::SubmitWindows;
use crate::smpp::pdu::{Password, SystemId, SystemType};
use submit::SubmitSettings;

/// The protocol timers of SMPP 3.4 §7.2, from the server row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimers {
    /// Connect plus bind must finish within this.
    pub(crate) session_init: Duration,
    /// Idle time after which we send enquire_link.
    pub(crate) enquire_link: Duration,
    /// Silence from the SMSC after which the link is considered dead.
    pub(crate) inactivity: Duration,
    /// Bound on every request's wait for its response.
    pub(crate) response: Duration,
    /// A PDU that has started arriving must be complete within this.
    pub(crate) pdu_read: Duration,
}

/// At a stop, how long the unbind waits for its unbind_resp (or the response timer, if
/// shorter) before the connection is closed anyway.
pub(crate) const UNBIND_WAIT: Duration = Duration::from_secs(5);

/// What our bind_* says: the server row's values, checked once against SMPP's sizes when the
/// row is read (`ServerRow::credentials`). The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) system_id: SystemId,
    pub(crate) password: Password,
    pub(crate) system_type: SystemType,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("system_id", &self.system_id.to_string())
            .field("password", &"***")
            .field("system_type", &self.system_type.to_string())
            .finish()
    }
}

/// Everything one session needs to know about its server.
#[derive(Debug, Clone)]
pub(crate) struct SessionParams {
    /// For logs: the server row's name or id, and which bind.
    pub(crate) label: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Credentials,
    pub(crate) bind: BindKind,
    pub(crate) timers: SessionTimers,
    pub(crate) window: usize,
    /// Segments per second; 0 = no cap.
    pub(crate) rate_limit: u32,
    pub(crate) max_pdu_len: u32,
    pub(crate) submit: SubmitSettings,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    /// At stop, the longest wait for outstanding responses before unbinding anyway.
    pub(crate) shutdown_timeout: Duration,
    /// Segments answered whose results are not committed yet allowed besides the window
    /// (`[daemon] max_uncommitted_results`).
    pub(crate) max_uncommitted: usize,
    /// Count uncommitted results inside the window instead (see `[daemon]
    /// strict_resend_bound`).
    pub(crate) strict_resend_bound: bool,
    /// SMPP over TLS; None = plain TCP.
    pub(crate) tls: Option<crate::tls::TlsParams>,
}
