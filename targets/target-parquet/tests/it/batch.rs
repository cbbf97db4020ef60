//! BATCH input: Parquet files written by `singer_core::batch::BatchWriter` are re-encoded
//! from Arrow (columns the file lacks become nulls), JSONL files go through the records path.

use serde_json::{Value, json};
use singer_core::StreamSchema;
use singer_core::batch::{BatchConfig, BatchWriter};
use singer_core::message::Message;

use crate::{duckdb, echoed, parquet_files, run_ok, schema, state};

fn props(extra: bool) -> Value {
    let mut p = json!({
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "ts": {"type": ["null", "string"], "format": "date-time"},
        "amount": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1000000, "minimum": -1000000},
        "tags": {"type": ["null", "object"]},
    });
    if extra {
        p["extra"] = json!({"type": ["null", "string"]});
    }
    p
}

/// BATCH messages for `rows` records of `stream` written in `format`.
fn batch_files(
    dir: &std::path::Path,
    stream: &str,
    format: &str,
    rows: u32,
    version: Option<i64>,
) -> Vec<String> {
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": format},
        "storage": {"root": dir.join("batches").to_string_lossy(), "prefix": format!("{stream}-")},
        "batch_size": 12000,
    }))
    .unwrap();
    // The tap's files lack the `extra` column the target's SCHEMA has.
    let tap_schema =
        StreamSchema::compile(stream, &json!({"properties": props(false)}), &[]).unwrap();
    let mut writer = BatchWriter::new(stream, &tap_schema, &config).unwrap();
    writer.set_version(version);
    let mut messages = Vec::new();
    for i in 1..=rows {
        let rec = format!(
            r#"{{"id":{i},"name":"n\u00e9{i}","ts":"2024-01-01T00:00:{:02}.{i:06}Z","amount":{}.{:02},"tags":{{"k":[{i}]}}}}"#,
            i % 60,
            i % 1000,
            i % 100
        );
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&rec).unwrap();
        if let Some(m) = writer.write(&raw).unwrap() {
            messages.push(Message::Batch(m).to_line());
        }
    }
    if let Some(m) = writer.flush().unwrap() {
        messages.push(Message::Batch(m).to_line());
    }
    messages
}

#[test]
fn batch_files_in_parquet_and_jsonl_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let mut lines = vec![
        schema("pq", props(true), &["id"]),
        schema("js", props(true), &["id"]),
        schema("pv", props(true), &["id"]),
    ];
    lines.extend(batch_files(dir.path(), "pq", "parquet", n, None));
    lines.extend(batch_files(dir.path(), "js", "jsonl", n, None));
    lines.extend(batch_files(dir.path(), "pv", "parquet", 10, Some(5)));
    lines.push(state(json!({"done": 1})));
    let out = run_ok(dir.path(), json!({"file_rows": 15000}), &lines);
    assert_eq!(echoed(&out), vec![json!({"done": 1})]);
    for stream in ["pq", "js"] {
        let folder = dir.path().join("out").join(stream);
        assert_eq!(parquet_files(&folder).len(), 2, "{stream}");
        let got = duckdb(
            "SELECT count(*), sum(id), count(DISTINCT _sdc_sequence), count(extra), count(_sdc_extracted_at), \
             min(epoch_us(ts)), max(epoch_us(ts)) FROM read_parquet('{dir}/*.parquet')",
            &folder,
        );
        let n = i64::from(n);
        let micros = |s: &str| singer_core::moment::unix_micros(s).unwrap();
        assert_eq!(
            got,
            vec![json!([
                n,
                n * (n + 1) / 2,
                n,
                0,
                0,
                micros("2024-01-01T00:00:00.000060Z"),
                micros("2024-01-01T00:00:59.019979Z")
            ])],
            "{stream}"
        );
        let first = duckdb(
            "SELECT name, CAST(amount AS VARCHAR), tags FROM read_parquet('{dir}/*.parquet') WHERE id = 1234",
            &folder,
        );
        assert_eq!(
            first,
            vec![json!(["n\u{e9}1234", "234.34", r#"{"k":[1234]}"#])],
            "{stream}"
        );
        let ordered = duckdb(
            "SELECT bool_and(ok) FROM (SELECT id > lag(id) OVER (ORDER BY _sdc_sequence) AS ok FROM read_parquet('{dir}/*.parquet'))",
            &folder,
        );
        assert_eq!(
            ordered,
            vec![json!([true])],
            "{stream}: sequence follows input order"
        );
    }
    let versioned = dir.path().join("out/pv/_versions/5");
    let got = duckdb(
        "SELECT count(*), min(_sdc_table_version), max(_sdc_table_version) FROM read_parquet('{dir}/*.parquet')",
        &versioned,
    );
    assert_eq!(got, vec![json!([10, 5, 5])]);
}
