//! BATCH messages that cannot load: the run fails naming the stream and the file, echoes no
//! state past the failing message and commits none of its rows.

use std::path::Path;

use serde_json::{Value, json};

use crate::batch::{batch_files, schema_msg};
use crate::{fresh_schema, load, sql, stream};

const STREAM: &str = "stream `t`";

fn state(n: u64) -> Value {
    json!({"type": "STATE", "value": {"n": n}})
}

fn props() -> Value {
    json!({"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}})
}

fn rows(ids: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    ids.map(|id| json!({"id": id, "n": id * 10})).collect()
}

/// A good BATCH (ids 1-3) and STATE 1, then `bad` and STATE 2: the run fails with an error
/// naming the line of `bad` and `names`; nothing of `bad` is loaded and STATE 2 is not echoed.
fn assert_fails(dir: &Path, bad: Value, names: &[&str]) {
    let s = fresh_schema("batch_bad");
    let mut input = vec![schema_msg("t", &props(), &["id"])];
    input.extend(batch_files(
        dir,
        "t",
        &props(),
        &rows(1..=3),
        ("parquet", "zstd", 10),
        None,
    ));
    input.push(state(1));
    input.push(bad);
    input.push(state(2));
    let out = load(&s, json!({"max_batch_age_seconds": 0.01}), &stream(&input));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    for name in ["line 4"].iter().chain(names) {
        assert!(err.contains(name), "`{name}` not in: {err}");
    }
    let echoed = String::from_utf8_lossy(&out.stdout);
    assert!(!echoed.contains(r#""n":2"#), "{echoed}");
    // Only the first BATCH may have loaded, and wholly if its state was echoed.
    let ids = sql(&format!("SELECT id FROM \"{s}\".t WHERE id > 3"));
    assert!(ids.is_empty(), "rows of the failed BATCH loaded: {ids:?}");
    if echoed.contains(r#""n":1"#) {
        let n = sql(&format!("SELECT count(*) FROM \"{s}\".t"));
        assert_eq!(n[0][0].as_deref(), Some("3"));
    }
}

/// The BATCH message of a file with ids 4-6.
fn good_batch(dir: &Path, format: &str, compression: &str) -> Value {
    let enc = (format, compression, 10);
    batch_files(dir, "t", &props(), &rows(4..=6), enc, None).remove(0)
}

fn file_of(batch: &Value) -> String {
    batch["manifest"][0].as_str().unwrap().to_string()
}

fn path_of(batch: &Value) -> std::path::PathBuf {
    file_of(batch).strip_prefix("file://").unwrap().into()
}

#[test]
fn a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = good_batch(dir.path(), "parquet", "zstd");
    std::fs::remove_file(path_of(&bad)).unwrap();
    assert_fails(
        dir.path(),
        bad.clone(),
        &[STREAM, &file_of(&bad), "cannot open"],
    );
}

#[test]
fn a_truncated_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = good_batch(dir.path(), "parquet", "zstd");
    let bytes = std::fs::read(path_of(&bad)).unwrap();
    std::fs::write(path_of(&bad), &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        dir.path(),
        bad.clone(),
        &[STREAM, &file_of(&bad), "Parquet"],
    );
}

#[test]
fn an_unknown_format_or_compression() {
    let dir = tempfile::tempdir().unwrap();
    // Formats and compressions outside the spec are refused as the message is read, before
    // any file is opened: the error names the line, the stream and the file.
    let mut csv = good_batch(dir.path(), "jsonl", "none");
    csv["encoding"]["format"] = json!("csv");
    assert_fails(
        dir.path(),
        csv.clone(),
        &[
            STREAM,
            &file_of(&csv),
            "format `csv` (jsonl, parquet or arrow)",
        ],
    );
    let mut lz4 = good_batch(dir.path(), "jsonl", "none");
    lz4["encoding"]["compression"] = json!("lz4");
    assert_fails(
        dir.path(),
        lz4.clone(),
        &[
            STREAM,
            &file_of(&lz4),
            "compression `lz4` (gzip, zstd or none)",
        ],
    );
    // A format in the spec that this target does not read.
    let mut arrow = good_batch(dir.path(), "parquet", "zstd");
    arrow["encoding"]["format"] = json!("arrow");
    assert_fails(
        dir.path(),
        arrow.clone(),
        &[STREAM, &file_of(&arrow), "`arrow`"],
    );
    // A plain file said to be gzip, and a Parquet file said to be JSONL.
    let mut gzip = good_batch(dir.path(), "jsonl", "none");
    gzip["encoding"]["compression"] = json!("gzip");
    assert_fails(dir.path(), gzip.clone(), &[STREAM, &file_of(&gzip), "gzip"]);
    let mut jsonl = good_batch(dir.path(), "parquet", "zstd");
    jsonl["encoding"] = json!({"format": "jsonl", "compression": "none"});
    assert_fails(dir.path(), jsonl.clone(), &[STREAM, &file_of(&jsonl)]);
}

#[test]
fn a_parquet_file_that_does_not_match_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    // `n` is text in the file, an integer in the SCHEMA.
    let text = json!({"id": {"type": "integer"}, "n": {"type": ["null", "string"]}});
    let rows = vec![json!({"id": 4, "n": "four"})];
    let bad = batch_files(dir.path(), "t", &text, &rows, ("parquet", "zstd", 10), None).remove(0);
    assert_fails(
        dir.path(),
        bad.clone(),
        &[STREAM, &file_of(&bad), "column `n` is Utf8"],
    );
}

#[test]
fn a_null_key_or_a_value_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let nokey = vec![json!({"id": 4, "n": 1}), json!({"id": null, "n": 2})];
    let bad = batch_files(
        dir.path(),
        "t",
        &props(),
        &nokey,
        ("parquet", "zstd", 10),
        None,
    )
    .remove(0);
    assert_fails(
        dir.path(),
        bad.clone(),
        &[STREAM, &file_of(&bad), "row 2", "key property `id`"],
    );
    // A date-time Arrow holds but PostgreSQL does not, in the 3rd row of the file.
    let at = json!({"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}, "at": {"type": "string", "format": "date-time"}});
    let rows: Vec<Value> = [
        "2024-01-01T00:00:00Z",
        "2024-01-02T00:00:00Z",
        "-5000-01-01T00:00:00Z",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| json!({"id": 4 + i, "at": t}))
    .collect();
    let bad = batch_files(dir.path(), "t", &at, &rows, ("parquet", "zstd", 10), None).remove(0);
    let s = fresh_schema("batch_range");
    let mut input = vec![schema_msg("t", &at, &["id"])];
    input.push(bad.clone());
    input.push(state(1));
    let out = load(&s, json!({}), &stream(&input));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for part in [
        "line 2",
        "stream `t`",
        &file_of(&bad),
        "row 3",
        "column `at`",
        "key {id=6}",
        "out of range",
    ] {
        assert!(err.contains(part), "`{part}` not in: {err}");
    }
    assert!(out.stdout.is_empty());
    assert!(sql(&format!("SELECT id FROM \"{s}\".t")).is_empty());
}

/// With `validate_records`, rows of Parquet files are validated as their records would be.
#[test]
fn a_row_that_fails_validation() {
    let dir = tempfile::tempdir().unwrap();
    let capped =
        json!({"id": {"type": "integer"}, "n": {"type": ["null", "integer"], "maximum": 10}});
    let rows = vec![json!({"id": 1, "n": 10}), json!({"id": 2, "n": 11})];
    let bad = batch_files(
        dir.path(),
        "t",
        &capped,
        &rows,
        ("parquet", "zstd", 10),
        None,
    )
    .remove(0);
    let s = fresh_schema("batch_valid");
    let input = stream(&[schema_msg("t", &capped, &["id"]), bad, state(1)]);
    let out = load(&s, json!({"validate_records": true}), &input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 2") && err.contains("/n"), "{err}");
    assert!(out.stdout.is_empty());
    let out = load(&s, json!({}), &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
