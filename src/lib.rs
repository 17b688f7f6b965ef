//! esmed: an SMPP 3.4 ESME daemon.
//!
//! Applications queue SMS by inserting rows into PostgreSQL; esmed binds to an SMSC, submits
//! them, writes each result back to its row, and stores what the SMSC sends back.
//!
//! The modules, in reading order:
//! - [`smpp`]: the protocol itself — PDU types, codec, framing, text codings, long messages,
//!   delivery receipts. Pure functions, no I/O.
//! - [`db`]: the storage layer — every query the daemon runs against PostgreSQL.
//! - [`testkit`]: support for tests, the demo and benchmarks (a throwaway PostgreSQL cluster).
#![forbid(unsafe_code)]

pub mod db;
pub mod smpp;
pub mod testkit;
