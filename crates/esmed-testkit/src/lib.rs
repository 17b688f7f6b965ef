//! Support for tests, the demo and benchmarks: throwaway services on loopback and the esmed
//! process run against them.
//!
//! Not part of the daemon: its tests, the demo and the benchmark depend on this crate.
//! [`pg::PgCluster`] starts a private PostgreSQL cluster in a temporary directory on a free
//! port (never 5432) and removes it again on drop; [`process::Process`] runs esmed (or any
//! program) as a child process, waited for within a timeout and killed on drop.

pub mod pg;
pub mod process;

pub use pg::{PgCluster, PgClusterOptions, PgError, ServerTls};
pub use process::{Process, ProcessError};
