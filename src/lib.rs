//! esmed: an SMPP 3.4 ESME daemon.
//!
//! Applications queue SMS by inserting rows into PostgreSQL; esmed binds to an SMSC, submits
//! them, writes each result back to its row, and stores what the SMSC sends back.
//!
//! The modules, in reading order:
//! - [`smpp`]: the protocol itself — PDU types, codec, framing, text codings, long messages,
//!   delivery receipts. Pure functions, no I/O; the `esmed-smpp` crate (crates/esmed-smpp).
//! - [`config`]: esmed.conf, its defaults, warnings and one-line errors.
//! - [`db`]: the storage layer — every query the daemon runs against PostgreSQL — and the two
//!   threads that own a connection: the poller (claims rows) and the DB writer (commits
//!   results and received messages in batches).
//! - `handoff`: every message that crosses a thread, and its channel.
//! - `server_settings`: the enabled server row turned into the sessions' settings.
//! - [`session`]: one SMPP session: bind, the socket reader and writer threads, the window,
//!   the timer wheel, reconnects.
//! - [`daemon`]: the supervisor that starts the threads, follows smpp_servers and handles
//!   signals.
//! - [`observe`]: what an operator sees of a running esmed: counters, the sessions' state,
//!   the heartbeat row and `esmed status`.
//! - `backoff`: capped exponential backoff for reconnects and retries.
//! - [`logging`]: simplelog to a file and/or stderr, re-opened on SIGHUP.
//! - [`cli`]: the command line.
//!
//! The test SMSC (`esmed-smsc`), the test kit (`esmed-testkit`: throwaway PostgreSQL clusters)
//! and the benchmark (`esmed-bench`) are crates of their own under crates/, used by the tests,
//! the examples and `make bench`: the daemon's library and binary contain none of them.
#![forbid(unsafe_code)]

pub(crate) mod backoff;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub(crate) mod handoff;
pub mod logging;
pub mod observe;
pub(crate) mod server_settings;
pub mod session;
/// The protocol lives in its own crate; re-exported under its old name so that `crate::smpp::…`
/// inside the daemon and `esmed::smpp::…` in tests, examples and tools keep working.
pub use esmed_smpp as smpp;
pub mod tls;
