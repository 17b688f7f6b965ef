//! esmed: an SMPP 3.4 ESME daemon.
//!
//! Applications queue SMS by inserting rows into PostgreSQL; esmed binds to an SMSC, submits
//! them, writes each result back to its row, and stores what the SMSC sends back.
//!
//! The modules, in reading order:
//! - [`smpp`]: the protocol itself — PDU types, codec, framing, text codings, long messages,
//!   delivery receipts. Pure functions, no I/O.
//! - [`smsc`]: a test SMSC (SMPP server) for the end-to-end tests, the benchmark and demos.
#![forbid(unsafe_code)]

pub mod smpp;
pub mod smsc;
