#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! tap-postgres against real PostgreSQL servers: the shared one (`SINGER_PG_URL`) for
//! snapshots, and a private instance with `wal_level=logical` (see [`server::Server`]) for
//! LOG_BASED. Every test works in a database of its own.

mod discovery;
mod full_table;
mod incremental;
mod interop;
mod log_based;
mod server;
mod signals;
mod types;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
pub use server::{Db, Server};
use singer_core::testing::tap::{self, TapRun};
pub use singer_core::testing::tap::{metadata, parse_lines, select, stream};

/// The tap-postgres executable Cargo built for these tests.
const TAP: &str = env!("CARGO_BIN_EXE_tap-postgres");

/// The tap command with its files written into `dir`.
pub fn tap_command(
    dir: &Path,
    config: &Value,
    catalog: Option<&Value>,
    state: Option<&Value>,
) -> Command {
    tap::tap_command(Path::new(TAP), dir, config, catalog, state)
}

/// Runs `tap-postgres` with the given files (written into `dir`).
pub fn run_tap(
    dir: &Path,
    config: &Value,
    catalog: Option<&Value>,
    state: Option<&Value>,
) -> TapRun {
    tap::run_tap(Path::new(TAP), dir, config, catalog, state)
}

/// Discovers and returns the catalog.
pub fn discover(dir: &Path, config: &Value) -> Value {
    tap::discover(Path::new(TAP), dir, config)
}

/// A temporary directory for a test's files.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
