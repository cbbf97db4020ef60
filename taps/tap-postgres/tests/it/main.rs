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
mod types;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
pub use server::{Db, Server};

/// The output of one tap run.
pub struct Run {
    pub messages: Vec<Value>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub ok: bool,
}

impl Run {
    /// RECORD payloads of a stream, in order.
    pub fn records(&self, stream: &str) -> Vec<Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
            .map(|m| m["record"].clone())
            .collect()
    }

    /// Messages of one type.
    pub fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == ty).collect()
    }

    /// Every STATE value, in order.
    pub fn states(&self) -> Vec<Value> {
        self.of_type("STATE")
            .into_iter()
            .map(|m| m["value"].clone())
            .collect()
    }

    /// The last STATE value.
    pub fn last_state(&self) -> Value {
        self.states().pop().unwrap_or(Value::Null)
    }
}

/// The tap command with its files written into `dir`.
pub fn tap_command(
    dir: &Path,
    config: &Value,
    catalog: Option<&Value>,
    state: Option<&Value>,
) -> Command {
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tap-postgres"));
    cmd.arg("--config").arg(&cfg);
    match catalog {
        Some(c) => {
            let p = dir.join("catalog.json");
            std::fs::write(&p, c.to_string()).unwrap();
            cmd.arg("--catalog").arg(p);
        }
        None => {
            cmd.arg("--discover");
        }
    }
    if let Some(s) = state {
        let p = dir.join("state.json");
        std::fs::write(&p, s.to_string()).unwrap();
        cmd.arg("--state").arg(p);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `tap-postgres` with the given files (written into `dir`).
pub fn run_tap(dir: &Path, config: &Value, catalog: Option<&Value>, state: Option<&Value>) -> Run {
    finish(tap_command(dir, config, catalog, state).output().unwrap())
}

fn finish(out: Output) -> Run {
    let text = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    let messages = if text.trim_start().starts_with("{\n") {
        vec![serde_json::from_str(&text).expect("catalog is JSON")]
    } else {
        parse_lines(&text)
    };
    Run {
        messages,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// Singer messages, one per line.
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON: {e}: {l}"))
        })
        .collect()
}

/// Discovers and returns the catalog.
pub fn discover(dir: &Path, config: &Value) -> Value {
    let run = run_tap(dir, config, None, None);
    assert!(run.ok, "discovery failed: {}", run.stderr);
    run.messages[0].clone()
}

/// Selects every stream of `catalog` whose id is in `ids` with `method` (and `key` for
/// INCREMENTAL); everything else is left unselected.
pub fn select(catalog: &Value, ids: &[&str], method: &str, key: Option<&str>) -> Value {
    let mut c = catalog.clone();
    for s in c["streams"].as_array_mut().unwrap() {
        let chosen = ids.contains(&s["tap_stream_id"].as_str().unwrap());
        for m in s["metadata"].as_array_mut().unwrap() {
            if m["breadcrumb"] == json!([]) {
                m["metadata"]["selected"] = json!(chosen);
                m["metadata"]["replication-method"] = json!(method);
                if let Some(k) = key {
                    m["metadata"]["replication-key"] = json!(k);
                }
            }
        }
    }
    c
}

/// The stream of `catalog` with this id.
pub fn stream<'a>(catalog: &'a Value, id: &str) -> &'a Value {
    catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tap_stream_id"] == id)
        .unwrap_or_else(|| panic!("no stream {id} in {catalog}"))
}

/// Metadata at a breadcrumb of a catalog stream.
pub fn metadata(stream: &Value, breadcrumb: Value) -> Value {
    stream["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["breadcrumb"] == breadcrumb)
        .unwrap()["metadata"]
        .clone()
}

/// A temporary directory for a test's files.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
