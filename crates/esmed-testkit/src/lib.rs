//! Support for tests, the demo and benchmarks: throwaway services on loopback.
//!
//! Not part of the daemon: its tests, the demo and the benchmark depend on this crate.
//! [`pg::PgCluster`] starts a private PostgreSQL cluster in a temporary directory on a free
//! port (never 5432) and removes it again on drop.

pub mod pg;

pub use pg::{PgCluster, PgClusterOptions, PgError, ServerTls};
