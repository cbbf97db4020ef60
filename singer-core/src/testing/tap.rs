//! Running a tap executable in integration tests: its config, catalog and state written into a
//! directory, its stdout parsed into messages, and the catalog edits tests make on the JSON a
//! tap discovered (selection, looking up a stream and its metadata).
//!
//! The functions that run a tap take the executable's path; a tap's own tests pass the one
//! Cargo built for them, e.g. `Path::new(env!("CARGO_BIN_EXE_tap-mysql"))`. Every helper panics
//! on failure, as tests do.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// The output of one tap run.
#[derive(Debug)]
pub struct TapRun {
    /// The messages on stdout, in order (a discovery run: the catalog alone).
    pub messages: Vec<Value>,
    /// stdout as written.
    pub stdout: Vec<u8>,
    /// stderr, for messages.
    pub stderr: String,
    /// Exit success.
    pub ok: bool,
}

impl TapRun {
    /// Parses a finished tap's output. stdout holds either a pretty-printed catalog (discovery)
    /// or Singer messages, one per line; panics if it holds neither.
    pub fn from_output(out: Output) -> Self {
        let text = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
        let start = text.trim_start();
        let messages = if start.starts_with("{\n") || start.starts_with("{\"streams\"") {
            vec![serde_json::from_str(&text).expect("catalog is JSON")]
        } else {
            parse_lines(&text)
        };
        Self {
            messages,
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ok: out.status.success(),
        }
    }

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

    /// The last STATE value (`null` when there is none).
    pub fn last_state(&self) -> Value {
        self.states().pop().unwrap_or(Value::Null)
    }
}

/// The command running the tap at `tap` with `config`, and `catalog` (else `--discover`) and
/// `state` when given, their files written into `dir`; stdin is closed.
pub fn tap_command(
    tap: &Path,
    dir: &Path,
    config: &Value,
    catalog: Option<&Value>,
    state: Option<&Value>,
) -> Command {
    let mut cmd = Command::new(tap);
    cmd.arg("--config").arg(write(dir, "config.json", config));
    match catalog {
        Some(c) => {
            cmd.arg("--catalog").arg(write(dir, "catalog.json", c));
        }
        None => {
            cmd.arg("--discover");
        }
    }
    if let Some(s) = state {
        cmd.arg("--state").arg(write(dir, "state.json", s));
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn write(dir: &Path, name: &str, value: &Value) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Runs the tap at `tap` (see [`tap_command`]) to the end.
pub fn run_tap(
    tap: &Path,
    dir: &Path,
    config: &Value,
    catalog: Option<&Value>,
    state: Option<&Value>,
) -> TapRun {
    let mut cmd = tap_command(tap, dir, config, catalog, state);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tap.display()));
    TapRun::from_output(out)
}

/// Singer messages, one per line.
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON: {e}: {l}"))
        })
        .collect()
}

/// What a tap stopped by a signal left behind.
#[derive(Debug)]
pub struct StoppedTap {
    /// The messages on stdout, in order: every line was whole (checked).
    pub messages: Vec<Value>,
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// stderr, for messages.
    pub stderr: String,
    /// How many messages had been read when the signal was sent.
    pub read_before_signal: usize,
}

impl StoppedTap {
    /// RECORD payloads of a stream, in order.
    pub fn records(&self, stream: &str) -> Vec<Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
            .map(|m| m["record"].clone())
            .collect()
    }

    /// Every STATE value, in order.
    pub fn states(&self) -> Vec<Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "STATE")
            .map(|m| m["value"].clone())
            .collect()
    }
}

/// Starts `cmd` (a tap in sync mode), reads its stdout until `ready` says yes to a message,
/// sends it `signal` (`TERM` or `INT`, as `kill -s` takes them), reads the rest and waits for
/// it. Panics unless stdout ends at a line end with every line a JSON object with a `type`:
/// a stopped tap must leave its reader whole messages.
pub fn stop_tap_when(
    mut cmd: Command,
    signal: &str,
    mut ready: impl FnMut(&Value) -> bool,
) -> StoppedTap {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tap starts");
    let mut err = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut bytes = Vec::new();
    let mut parsed = 0; // bytes of `bytes` already split into lines
    let mut messages: Vec<Value> = Vec::new();
    let mut signalled = None;
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = out.read(&mut chunk).expect("reading the tap's stdout");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        while let Some(end) = bytes[parsed..].iter().position(|b| *b == b'\n') {
            let line = &bytes[parsed..parsed + end];
            let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "a stdout line is not JSON ({e}): {}",
                    String::from_utf8_lossy(line)
                )
            });
            assert!(v["type"].is_string(), "not a Singer message: {v}");
            parsed += end + 1;
            if signalled.is_none() && ready(&v) {
                let status = Command::new("kill")
                    .args(["-s", signal, &child.id().to_string()])
                    .status()
                    .expect("kill runs");
                assert!(status.success(), "kill -s {signal} failed");
                signalled = Some(messages.len() + 1);
            }
            messages.push(v);
        }
    }
    let status = child.wait().expect("the tap is waited for");
    let stderr = stderr.join().unwrap_or_default();
    let read_before_signal =
        signalled.unwrap_or_else(|| panic!("the tap ended before it was signalled: {stderr}"));
    assert_eq!(
        parsed,
        bytes.len(),
        "stdout ends in the middle of a line: {:?}",
        String::from_utf8_lossy(&bytes[parsed..])
    );
    StoppedTap {
        messages,
        status,
        stderr,
        read_before_signal,
    }
}

/// Runs the tap's discovery and returns the catalog; panics when it fails.
pub fn discover(tap: &Path, dir: &Path, config: &Value) -> Value {
    let run = run_tap(tap, dir, config, None, None);
    assert!(run.ok, "discovery failed: {}", run.stderr);
    run.messages[0].clone()
}

/// Selects every stream of `catalog` whose id is in `ids` with `method` (and `key` for
/// INCREMENTAL); everything else is left unselected.
pub fn select(catalog: &Value, ids: &[&str], method: &str, key: Option<&str>) -> Value {
    let mut c = catalog.clone();
    for s in streams_mut(&mut c) {
        let chosen = ids.contains(&s["tap_stream_id"].as_str().unwrap_or_default());
        for m in entries_mut(s) {
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

fn streams_mut(catalog: &mut Value) -> &mut Vec<Value> {
    catalog["streams"]
        .as_array_mut()
        .expect("the catalog has a `streams` list")
}

fn entries_mut(stream: &mut Value) -> &mut Vec<Value> {
    stream["metadata"]
        .as_array_mut()
        .expect("a catalog stream has a `metadata` list")
}

/// The stream of `catalog` with this id.
pub fn stream<'a>(catalog: &'a Value, id: &str) -> &'a Value {
    catalog["streams"]
        .as_array()
        .expect("the catalog has a `streams` list")
        .iter()
        .find(|s| s["tap_stream_id"] == id)
        .unwrap_or_else(|| panic!("no stream {id} in {catalog}"))
}

/// The metadata at a breadcrumb (`json!([])` for the stream's own) of a catalog stream.
pub fn metadata(stream: &Value, breadcrumb: Value) -> Value {
    stream["metadata"]
        .as_array()
        .expect("a catalog stream has a `metadata` list")
        .iter()
        .find(|m| m["breadcrumb"] == breadcrumb)
        .unwrap_or_else(|| panic!("no metadata at {breadcrumb} in {stream}"))["metadata"]
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Value {
        json!({"streams": [
            {"tap_stream_id": "db-a", "metadata": [
                {"breadcrumb": [], "metadata": {"selected": false}},
                {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}}
            ]},
            {"tap_stream_id": "db-b", "metadata": [{"breadcrumb": [], "metadata": {}}]}
        ]})
    }

    #[test]
    fn select_sets_the_stream_metadata_of_each_stream() {
        let c = select(&catalog(), &["db-a"], "INCREMENTAL", Some("id"));
        let a = metadata(stream(&c, "db-a"), json!([]));
        assert_eq!(
            a,
            json!({"selected": true, "replication-method": "INCREMENTAL", "replication-key": "id"})
        );
        let b = metadata(stream(&c, "db-b"), json!([]));
        assert_eq!(
            b,
            json!({"selected": false, "replication-method": "INCREMENTAL", "replication-key": "id"})
        );
        let id = metadata(stream(&c, "db-a"), json!(["properties", "id"]));
        assert_eq!(id["inclusion"], "automatic");
    }

    #[test]
    fn run_reads_records_and_states() {
        let lines = concat!(
            r#"{"type":"RECORD","stream":"s","record":{"id":1}}"#,
            "\n",
            r#"{"type":"STATE","value":{"n":1}}"#,
            "\n",
            r#"{"type":"RECORD","stream":"t","record":{"id":2}}"#,
            "\n",
            r#"{"type":"STATE","value":{"n":2}}"#,
            "\n"
        );
        let run = TapRun {
            messages: parse_lines(lines),
            stdout: lines.as_bytes().to_vec(),
            stderr: String::new(),
            ok: true,
        };
        assert_eq!(run.records("s"), [json!({"id": 1})]);
        assert_eq!(run.of_type("RECORD").len(), 2);
        assert_eq!(run.states(), [json!({"n": 1}), json!({"n": 2})]);
        assert_eq!(run.last_state(), json!({"n": 2}));
    }
}
