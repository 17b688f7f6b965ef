//! What an operator sees of a running esmed, each part named for what it holds:
//!
//! - [`counters`]: running totals the threads bump (rows done, PDUs written and received),
//!   for the periodic info line and the heartbeat's rates.
//! - [`session_state`]: what the sessions are doing now (the server in use, each bind's
//!   state, the window in use, the last error), kept by the sessions.
//! - [`heartbeat`]: the thread that writes both into this instance's `esmed_status` row.
//! - [`status_table`]: that row's columns, as written and read back.
//! - [`report`]: `esmed status`, which reads every instance's row and the queue views.

pub(crate) mod counters;
pub mod heartbeat;
pub mod report;
pub(crate) mod session_state;
pub mod status_table;
