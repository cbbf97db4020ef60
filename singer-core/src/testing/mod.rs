//! The conformance kit (feature `testing`): loads the corpus in `specs/conformance` and runs
//! its stream cases against any target executable; [`tap`] runs a tap executable for
//! integration tests; [`mariadb`] gives tests a database of their own, or a private MariaDB
//! server with a row-based binlog.
//!
//! See specs/conformance/README.md for the format.

pub mod mariadb;
pub mod tap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::io::LineReader;
use crate::message::{Message, MessageRef, parse_line};

/// Environment variable overriding the corpus location.
pub const CORPUS_ENV: &str = "SINGER_CONFORMANCE_DIR";

/// Where BATCH manifests in the corpus point.
pub const BATCH_DIR: &str = "/tmp/singer-conformance/batch";

/// The corpus directory: `$SINGER_CONFORMANCE_DIR`, else `specs/conformance` of this repo.
pub fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var(CORPUS_ENV) {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/conformance")
}

/// One file of the corpus with its sidecar.
#[derive(Debug, Clone)]
pub struct Case {
    /// File stem.
    pub name: String,
    /// The data file.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The sidecar (`Value::Null` when absent).
    pub expect: Value,
}

impl Case {
    /// A sidecar member.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.expect.get(key)
    }
}

/// Loads every `<name>.<ext>` in `dir` with its `<name>.expect.json`, sorted by name.
pub fn load_cases(dir: &Path, ext: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        if file.ends_with(".expect.json") || !file.ends_with(&format!(".{ext}")) {
            continue;
        }
        let name = file.trim_end_matches(&format!(".{ext}")).to_string();
        let sidecar = dir.join(format!("{name}.expect.json"));
        let expect = std::fs::read_to_string(&sidecar)
            .ok()
            .map(|t| {
                serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()))
            })
            .unwrap_or(Value::Null);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cases.push(Case {
            name,
            path,
            bytes,
            expect,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// The stream cases.
pub fn stream_cases() -> Vec<Case> {
    load_cases(&corpus_dir().join("streams"), "singer")
}

/// Copies the BATCH files of the corpus to [`BATCH_DIR`].
pub fn prepare_batch_files() {
    let src = corpus_dir().join("streams/batch");
    std::fs::create_dir_all(BATCH_DIR).unwrap_or_else(|e| panic!("{BATCH_DIR}: {e}"));
    for entry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
        let to = Path::new(BATCH_DIR).join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    }
}

/// The STATE values of a stream with their lines, ignoring lines that do not parse.
pub fn states_in(bytes: &[u8]) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let mut lines = LineReader::new(bytes);
    while let Ok(Some(l)) = lines.next_line() {
        if let Ok(MessageRef::Other(Message::State(s))) = parse_line(l.bytes) {
            out.push((l.number, s.value));
        }
    }
    out
}

/// What a target did with a case.
#[derive(Debug)]
pub struct TargetOutcome {
    /// Exit success.
    pub success: bool,
    /// Parsed stdout lines.
    pub echoed: Vec<Value>,
    /// stderr, for messages.
    pub stderr: String,
}

/// Runs a command with `input` on stdin (written from a thread, so large inputs cannot
/// deadlock against a full stdout pipe) and collects its output.
pub fn run_with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit early (a failing target): a broken pipe here is expected.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the child");
    let _ = writer.join();
    out
}

/// Runs a target command with the case on stdin.
pub fn run_target(cmd: Command, case: &Case) -> TargetOutcome {
    let out = run_with_stdin(cmd, &case.bytes);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let echoed = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("target printed a non-JSON line {l:?}: {e}"))
        })
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    TargetOutcome {
        success: out.status.success(),
        echoed,
        stderr,
    }
}

/// Checks a target's outcome against the case's expectations; `Err` explains the mismatch.
pub fn judge_target(case: &Case, outcome: &TargetOutcome) -> Result<(), String> {
    let states = states_in(&case.bytes);
    let must_fail = case
        .get("target_must_fail")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let valid = case.get("valid").and_then(Value::as_bool).unwrap_or(true);
    let limit = case
        .get("echo_allowed_after_line")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let allowed: Vec<&Value> = states
        .iter()
        .filter(|(l, _)| *l < limit)
        .map(|(_, v)| v)
        .collect();
    // Every echoed state must be an allowed input state, in input order.
    let mut pos = 0;
    for e in &outcome.echoed {
        match allowed[pos..].iter().position(|s| *s == e) {
            Some(i) => pos += i + 1,
            None => {
                return Err(format!(
                    "echoed a state that is not allowed here or out of order: {e}"
                ));
            }
        }
    }
    if must_fail {
        if outcome.success {
            return Err("target exited 0 but this stream must fail".into());
        }
        return Ok(());
    }
    if !valid && !outcome.success {
        return Ok(()); // record_invalid: a validating target may fail.
    }
    if !outcome.success {
        return Err(format!(
            "target failed on a valid stream: {}",
            outcome.stderr.trim()
        ));
    }
    let expected = case.get("final_state").cloned().unwrap_or(Value::Null);
    match (outcome.echoed.last(), expected) {
        (None, Value::Null) => Ok(()),
        (Some(last), exp) if *last == exp => Ok(()),
        (last, exp) => Err(format!("last echoed state {last:?}, expected {exp}")),
    }
}

/// Environment variable naming the interop description written by `cargo xtask interop`.
pub const INTEROP_ENV: &str = "SINGER_INTEROP_ENV";

/// Paths of the Python Singer tools installed by `cargo xtask interop` (`target/interop/env.json`).
///
/// Panics with a hint when they are missing: interop tests never skip silently.
pub fn interop_env() -> Value {
    let path = std::env::var(INTEROP_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop/env.json")
        });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask interop` (or `cargo xtask test`) first",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One member of [`interop_env`] as a path.
pub fn interop_path(key: &str) -> PathBuf {
    let env = interop_env();
    let v = env
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("interop env has no `{key}`"));
    PathBuf::from(v)
}

/// A small tap written with singer-python (run it with the interop venv's `python -c`): one
/// stream with exact decimals, an integer beyond 2^64, non-ASCII text, a non-UTC offset,
/// `time_extracted`, and a final STATE.
pub const SINGER_PYTHON_TAP: &str = r#"
import datetime, decimal, singer
schema = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
    "amount": {"type": ["null", "number"]}, "updated_at": {"type": "string", "format": "date-time"}}}
singer.write_schema("users", schema, ["id"], bookmark_properties=["updated_at"])
singer.write_record("users", {"id": 1, "name": "h\u00e9llo \u2603 \U0001F600", "amount": decimal.Decimal("12345678901234567890.123456789"), "updated_at": "2024-01-01T00:00:00Z"})
singer.write_record("users", {"id": 2, "name": None, "amount": 2**70, "updated_at": "2024-01-02T00:00:00+05:00"},
                    time_extracted=datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc))
singer.write_state({"bookmarks": {"users": {"updated_at": "2024-01-02T00:00:00Z"}}})
"#;

/// Runs [`SINGER_PYTHON_TAP`] with the interop venv's Python and returns its stdout; panics
/// with the tap's stderr when it fails.
pub fn singer_python_tap_output() -> Vec<u8> {
    let out = Command::new(interop_path("python_jsonl"))
        .arg("-c")
        .arg(SINGER_PYTHON_TAP)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the singer-python tap: {e}"));
    assert!(
        out.status.success(),
        "singer-python tap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
