#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! target-jsonl as a process: the conformance corpus, file semantics, and interop with the
//! Python Singer ecosystem.

mod batch;
mod conformance;
mod files;
mod interop;

use std::path::Path;
use std::process::Command;

/// A `target-jsonl` command writing into `dir` with extra config members.
pub fn target(dir: &Path, extra: serde_json::Value) -> Command {
    let mut config = serde_json::json!({"destination_path": dir});
    if let serde_json::Value::Object(m) = extra {
        config.as_object_mut().unwrap().extend(m);
    }
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_target-jsonl"));
    cmd.arg("--config").arg(cfg);
    cmd
}

pub use singer_core::testing::run_with_stdin as run_with_input;
