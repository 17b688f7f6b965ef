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

pub mod bind;
pub mod flow;
mod id_hash;
pub mod inbound;
pub mod outbox;
pub mod reader;
mod requests;
pub mod runner;
mod state;
pub mod submit;
pub mod timers;
pub mod transport;
pub mod writer;

use std::time::Duration;

use crate::config::Secret;
use crate::handoff::BindKind;
pub use crate::handoff::SubmitWindows;
use submit::SubmitSettings;

/// The protocol timers of SMPP 3.4 §7.2, from the server row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimers {
    /// Connect plus bind must finish within this.
    pub session_init: Duration,
    /// Idle time after which we send enquire_link.
    pub enquire_link: Duration,
    /// Silence from the SMSC after which the link is considered dead.
    pub inactivity: Duration,
    /// Bound on every request's wait for its response.
    pub response: Duration,
    /// A PDU that has started arriving must be complete within this.
    pub pdu_read: Duration,
}

/// At a stop, how long the unbind waits for its unbind_resp (or the response timer, if
/// shorter) before the connection is closed anyway.
pub const UNBIND_WAIT: Duration = Duration::from_secs(5);

/// Everything one session needs to know about its server.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// For logs: the server row's name or id, and which bind.
    pub label: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: Secret,
    pub system_type: String,
    pub bind: BindKind,
    pub timers: SessionTimers,
    pub window: usize,
    /// Segments per second; 0 = no cap.
    pub rate_limit: u32,
    pub max_pdu_len: u32,
    pub submit: SubmitSettings,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// At stop, the longest wait for outstanding responses before unbinding anyway.
    pub shutdown_timeout: Duration,
    /// Count uncommitted results inside the window (see `[daemon] strict_resend_bound`).
    pub strict_resend_bound: bool,
    /// SMPP over TLS; None = plain TCP.
    pub tls: Option<crate::tls::TlsParams>,
}
