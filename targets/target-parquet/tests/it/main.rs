#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! target-parquet as a process: files and their durability, every column type read back with
//! pyarrow and DuckDB, schema evolution, table versions, failures, BATCH input, and the
//! conformance corpus.

mod batch;
mod conformance;
mod evolution;
mod failures;
mod files;
mod types;
mod versions;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A `target-parquet` command writing into `<dir>/out` with extra config members.
pub fn target(dir: &Path, extra: Value) -> Command {
    let mut config = serde_json::json!({"destination_path": dir.join("out")});
    if let Value::Object(m) = extra {
        config.as_object_mut().unwrap().extend(m);
    }
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_target-parquet"));
    cmd.arg("--config").arg(cfg);
    cmd
}

pub use singer_core::testing::run_with_stdin as run_with_input;

/// Runs the target on `lines` (joined by newlines) and asserts it succeeded.
pub fn run_ok(dir: &Path, extra: Value, lines: &[String]) -> Output {
    let out = run_with_input(target(dir, extra), lines.join("\n").as_bytes());
    assert!(
        out.status.success(),
        "target failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The states echoed on stdout.
pub fn echoed(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A SCHEMA message.
pub fn schema(stream: &str, properties: Value, keys: &[&str]) -> String {
    serde_json::json!({"type": "SCHEMA", "stream": stream, "schema": {"properties": properties}, "key_properties": keys}).to_string()
}

/// A RECORD message.
pub fn record(stream: &str, record: Value, version: Option<i64>) -> String {
    let mut m = serde_json::json!({"type": "RECORD", "stream": stream, "record": record});
    if let Some(v) = version {
        m["version"] = v.into();
    }
    m.to_string()
}

/// A STATE message.
pub fn state(value: Value) -> String {
    serde_json::json!({"type": "STATE", "value": value}).to_string()
}

/// An ACTIVATE_VERSION message.
pub fn activate(stream: &str, version: i64) -> String {
    serde_json::json!({"type": "ACTIVATE_VERSION", "stream": stream, "version": version})
        .to_string()
}

/// The names of the entries of a folder, sorted (hidden ones too).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The published Parquet files of a folder, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        .map(|n| dir.join(n))
        .collect()
}

/// Runs a Python script with pyarrow and DuckDB (the `venv-parquet` interop venv) and parses
/// its stdout as JSON. `args` follow the script as `sys.argv[1:]`.
pub fn python(script: &str, args: &[&str]) -> Value {
    let python = singer_core::testing::interop_path("python_parquet");
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Rows of a DuckDB query as JSON arrays (values through Python's `json` with `str` for
/// anything else); `{dir}` in the query is replaced by `dir`.
pub fn duckdb(query: &str, dir: &Path) -> Vec<Value> {
    const SCRIPT: &str = r#"
import duckdb, json, sys
rows = duckdb.sql(sys.argv[1].replace("{dir}", sys.argv[2])).fetchall()
print(json.dumps([list(r) for r in rows], default=str))
"#;
    let v = python(SCRIPT, &[query, &dir.to_string_lossy()]);
    v.as_array().unwrap().clone()
}
