//! esmed: an SMPP 3.4 ESME daemon.
//!
//! Applications queue SMS by inserting rows into PostgreSQL; esmed binds to an SMSC, submits
//! them, writes each result back to its row, and stores what the SMSC sends back.
//!
//! The modules, in reading order:
//! - [`smpp`]: the protocol itself — PDU types, codec, framing, text codings, long messages,
//!   delivery receipts. Pure functions, no I/O.
//! - [`config`]: esmed.conf, its defaults, warnings and one-line errors.
//! - [`logging`]: simplelog to a file and/or stderr, re-opened on SIGHUP.
//! - [`cli`]: the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod logging;
pub mod smpp;
