#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! tap-mysql against real MariaDB servers: the shared one (`SINGER_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`) for snapshots, and a private instance with a row-based
//! binlog (see [`PrivateServer`], shared with other crates' tests in
//! `singer_core::testing::mariadb`) for LOG_BASED. Every test works in a database of its own.

mod batch;
mod discovery;
mod full_table;
mod incremental;
mod interop;
mod log_based;
mod signals;
mod tls;
mod types;

use std::path::Path;

use serde_json::Value;
pub use singer_core::testing::mariadb::{Db, PrivateServer};
use singer_core::testing::tap::{self, TapRun};
pub use singer_core::testing::tap::{metadata, select, stream};

/// The tap-mysql executable Cargo built for these tests.
const TAP: &str = env!("CARGO_BIN_EXE_tap-mysql");

/// Runs `tap-mysql` with the given files (written into `dir`).
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
