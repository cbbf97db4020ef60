//! BATCH messages: JSONL files pass their records through as they are, Parquet files come
//! back as records through the SDK; either way the stream's file is the one RECORD messages
//! give.

use std::path::Path;

use serde_json::json;
use serde_json::value::RawValue;
use singer_core::StreamSchema;
use singer_core::batch::{BatchConfig, BatchWriter};
use singer_core::message::Message;

use crate::{run_with_input, target};

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"db-t","schema":{"properties":{"id":{"type":"integer"},"name":{"type":["null","string"]},"at":{"type":["null","string"],"format":"date-time"},"day":{"type":["null","string"],"format":"date"},"amount":{"type":["null","number"],"multipleOf":0.01},"ratio":{"type":["null","number"]},"flag":{"type":["null","boolean"]},"blob":{"type":["null","string"],"contentEncoding":"base64"},"doc":{}}},"key_properties":["id"]}"#;

/// Records as Parquet gives them back: every column in schema order, decimals with their
/// scale, date-times in UTC with `Z`.
const RECORDS: [&str; 3] = [
    r#"{"id":1,"name":"Ünï \"q\" 🚀","at":"2024-03-01T10:34:56.123456Z","day":"2024-02-29","amount":1234567890.10,"ratio":0.1428571428571428,"flag":true,"blob":"AAEC/w==","doc":{"a":[1,2,{"b":null}],"n":1.50}}"#,
    r#"{"id":2,"name":"","at":"-0043-03-15T00:00:00Z","day":"+10000-01-01","amount":-0.05,"ratio":-2.5,"flag":false,"blob":"","doc":"text"}"#,
    r#"{"id":3,"name":null,"at":null,"day":null,"amount":null,"ratio":null,"flag":null,"blob":null,"doc":null}"#,
];

/// The BATCH messages of `RECORDS` written as `format`/`compression` files under `dir`.
fn batches(dir: &Path, format: &str, compression: &str) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let schema = StreamSchema::compile("db-t", &schema["schema"], &["id".into()]).unwrap();
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": format, "compression": compression},
        "storage": {"root": dir},
        "batch_size": 2,
    }))
    .unwrap();
    let mut writer = BatchWriter::new("db-t", &schema, &config).unwrap();
    let mut messages = Vec::new();
    for r in RECORDS {
        let raw = RawValue::from_string(r.to_string()).unwrap();
        messages.extend(writer.write(&raw).unwrap());
    }
    messages.extend(writer.flush().unwrap());
    messages
        .into_iter()
        .map(|m| Message::Batch(m).to_line())
        .collect()
}

fn run(body: &[String]) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "{SCHEMA}\n{}\n{{\"type\":\"STATE\",\"value\":{{\"n\":1}}}}\n",
        body.join("\n")
    );
    let out = run_with_input(target(dir.path(), json!({})), input.as_bytes());
    let file = std::fs::read_to_string(dir.path().join("db-t.jsonl")).unwrap_or_default();
    (out, file)
}

#[test]
fn batch_files_land_as_their_records() {
    let records: Vec<String> = RECORDS
        .iter()
        .map(|r| format!(r#"{{"type":"RECORD","stream":"db-t","record":{r}}}"#))
        .collect();
    let (out, want) = run(&records);
    assert!(out.status.success());
    assert_eq!(want.lines().collect::<Vec<_>>(), RECORDS);
    let files = tempfile::tempdir().unwrap();
    for (format, compression) in [("parquet", "zstd"), ("jsonl", "gzip")] {
        let (out, got) = run(&batches(files.path(), format, compression));
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "{\"n\":1}\n");
        assert_eq!(got, want, "{format}/{compression}");
    }
}

#[test]
fn a_missing_batch_file_fails_naming_it() {
    let files = tempfile::tempdir().unwrap();
    for (format, compression) in [("parquet", "zstd"), ("jsonl", "gzip")] {
        let body = batches(files.path(), format, compression);
        let last: serde_json::Value = serde_json::from_str(body.last().unwrap()).unwrap();
        let file = last["manifest"][0].as_str().unwrap().to_string();
        std::fs::remove_file(file.strip_prefix("file://").unwrap()).unwrap();
        let (out, _) = run(&body);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&file) && err.contains("stream `db-t`") && err.contains("cannot open"),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "a state was echoed past the failed BATCH"
        );
    }
}
