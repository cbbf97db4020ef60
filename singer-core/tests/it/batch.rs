//! BATCH files: every column kind written as Parquet and JSONL reads back as the records that
//! went in; bad files are errors naming the stream and the file.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use singer_core::StreamSchema;
use singer_core::batch::{
    BatchConfig, BatchError, BatchSchema, BatchWriter, Rows, for_each_rows, to_json,
};
use singer_core::message::BatchMessage;

fn schema() -> StreamSchema {
    StreamSchema::compile(
        "shop-orders",
        &json!({"type": "object", "properties": {
            "id": {"type": "integer", "minimum": -9223372036854775808i64, "maximum": 9223372036854775807i64},
            "small": {"type": ["null", "integer"], "minimum": -32768, "maximum": 32767},
            "ubig": {"type": ["null", "integer"], "minimum": 0, "maximum": 18446744073709551615u64},
            "price": {"type": ["null", "number"], "multipleOf": 0.01},
            "wide": {"type": ["null", "number"], "multipleOf": 1e-30, "maximum": 1e40},
            "exact": {"type": ["null", "number"], "x-sql-datatype": "numeric"},
            "ratio": {"type": ["null", "number"]},
            "ok": {"type": ["null", "boolean"]},
            "at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"type": ["null", "string"], "format": "date"},
            "tod": {"type": ["null", "string"], "format": "time"},
            "blob": {"type": ["null", "string"], "contentEncoding": "base64"},
            "name": {"type": ["null", "string"]},
            "doc": {"type": ["null", "object"]},
            "tags": {"type": ["null", "array"], "items": {"type": "string"}},
            "any": {}
        }}),
        &["id".to_string()],
    )
    .unwrap()
}

fn records() -> Vec<Value> {
    vec![
        json!({"id": 1, "small": -32768, "ubig": 18446744073709551615u64, "price": 12.5,
               "wide": "12345678901.000000000000000000000000000001",
               "exact": 1234567890123456789012345678901234567890.5,
               "ratio": 0.1, "ok": true, "at": "2024-02-29T23:59:59.999999+01:00",
               "day": "-0043-03-15", "tod": "23:59:59.5", "blob": "AAEC/w==",
               "name": "naïve \"quoted\"\n\u{1F600}", "doc": {"a": [1, {"b": null}]},
               "tags": ["x", "y"], "any": 3}),
        json!({"id": 9223372036854775807i64, "small": null, "ubig": 0, "price": -0.01,
               "wide": null, "exact": null, "ratio": 1e300, "ok": false,
               "at": "-4713-11-24T00:00:00Z", "day": "+5874897-12-31", "tod": "00:00:00",
               "blob": "", "name": "", "doc": {}, "tags": [], "any": "s"}),
        json!({"id": -5}),
    ]
}

/// The record as a target should see it: the same values, spelled canonically.
fn canonical(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in v.as_object().unwrap() {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

fn write(config: Value, rows: &[Value]) -> (tempfile::TempDir, Vec<BatchMessage>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config;
    config["storage"] = json!({"root": dir.path().join("out").to_str().unwrap(), "prefix": "t-"});
    let config = BatchConfig::from_value(&config).unwrap();
    let mut w = BatchWriter::new("shop-orders", &schema(), &config).unwrap();
    let mut msgs = Vec::new();
    for r in rows {
        let raw = RawValue::from_string(r.to_string()).unwrap();
        msgs.extend(w.write(&raw).unwrap());
    }
    msgs.extend(w.flush().unwrap());
    (dir, msgs)
}

fn read(msgs: &[BatchMessage]) -> Result<Vec<Value>, BatchError> {
    let bs = BatchSchema::new(&schema());
    let mut out = Vec::new();
    for m in msgs {
        for_each_rows(m, &bs, |_file, rows| {
            match rows {
                Rows::Json(raw) => out.push(serde_json::from_str(raw.get()).unwrap()),
                Rows::Arrow { batch, positions } => {
                    to_json::for_each_row(batch, &bs, positions, |j| {
                        out.push(serde_json::from_str(j).unwrap());
                        Ok::<(), BatchError>(())
                    })?;
                }
            }
            Ok::<(), BatchError>(())
        })?;
    }
    Ok(out)
}

/// Same numbers (by exact decimal value), same instants, same bytes.
fn same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                same(v, y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"));
            }
            for (k, v) in y {
                if !x.contains_key(k) {
                    assert!(v.is_null(), "{path}.{k}: extra {v}");
                }
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            assert_eq!(decimal(&x.to_string()), decimal(&y.to_string()), "{path}");
        }
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => {
            assert_eq!(decimal(x), decimal(&y.to_string()), "{path}");
        }
        (Value::String(x), Value::String(y)) if x != y => {
            use singer_core::moment::{parse_time_of_day, unix_days, unix_micros};
            let t = |s: &str| {
                unix_micros(s)
                    .or_else(|| unix_days(s).map(|d| d * 86_400_000_000))
                    .or_else(|| parse_time_of_day(s))
            };
            assert!(t(x).is_some() && t(x) == t(y), "{path}: {x} != {y}");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// A decimal text normalised: sign, significant digits and exponent.
fn decimal(t: &str) -> (bool, String, i64) {
    let neg = t.starts_with('-');
    let t = t.trim_start_matches(['-', '+']);
    let (m, e) = t
        .split_once(['e', 'E'])
        .map_or((t, 0), |(m, e)| (m, e.parse().unwrap()));
    let (i, f) = m.split_once('.').unwrap_or((m, ""));
    let digits: String = i.chars().chain(f.chars()).collect();
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let d = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    if d.is_empty() {
        return (false, d, 0);
    }
    (neg, d, i.len() as i64 - lead as i64 + e)
}

#[test]
fn parquet_and_jsonl_read_back_exactly() {
    for config in [
        json!({"encoding": {"format": "parquet"}, "batch_size": 2}),
        json!({"encoding": {"format": "parquet", "compression": "gzip"}}),
        json!({"encoding": {"format": "parquet", "compression": "none"}}),
        json!({"encoding": {"format": "jsonl", "compression": "none"}}),
        json!({"encoding": {"format": "jsonl", "compression": "gzip"}}),
        json!({"encoding": {"format": "jsonl", "compression": "zstd"}, "batch_size": 1}),
    ] {
        let input = records();
        let (_dir, msgs) = write(config.clone(), &input);
        let expected_files = if config["batch_size"] == 2 {
            2
        } else if config["batch_size"] == 1 {
            3
        } else {
            1
        };
        assert_eq!(msgs.len(), expected_files, "{config}");
        for m in &msgs {
            assert_eq!(m.manifest.len(), 1);
            assert!(m.manifest[0].starts_with("file:///"), "{}", m.manifest[0]);
        }
        let back = read(&msgs).unwrap();
        assert_eq!(back.len(), input.len(), "{config}");
        for (a, b) in input.iter().zip(&back) {
            same(&canonical(a), b, &config.to_string());
        }
    }
}

#[test]
fn values_that_do_not_fit_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": "parquet"}, "storage": {"root": dir.path().to_str().unwrap()}
    }))
    .unwrap();
    for (record, column) in [
        (json!({"id": 1, "small": 40000}), "small"),
        (json!({"id": 1, "price": 1.005}), "price"),
        (json!({"id": 1, "at": "infinity"}), "at"),
        (json!({"id": 1, "ratio": 12345678901234567891u64}), "ratio"),
        (json!({"id": 1, "blob": "not base64!"}), "blob"),
        (json!({"id": 1, "name": 5}), "name"),
    ] {
        let mut w = BatchWriter::new("shop-orders", &schema(), &config).unwrap();
        let raw = RawValue::from_string(record.to_string()).unwrap();
        let e = w.write(&raw).unwrap_err().to_string();
        assert!(
            e.contains("shop-orders") && e.contains(&format!("`{column}`")),
            "{e}"
        );
    }
    // A failed writer leaves no file behind, partial or not.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let (dir, msgs) = write(json!({"encoding": {"format": "parquet"}}), &records());
    let url = msgs[0].manifest[0].clone();
    let path = singer_core::batch::location::local_path(&url).unwrap();
    let check = |m: &BatchMessage, says: &str| {
        let e = read(std::slice::from_ref(m)).unwrap_err().to_string();
        assert!(e.contains("shop-orders") && e.contains(says), "{e}");
    };
    // Wrong format and compression names.
    let mut m = msgs[0].clone();
    m.encoding.format = "csv".into();
    check(&m, "csv");
    let mut m = msgs[0].clone();
    m.encoding.format = "jsonl".into();
    m.encoding.compression = Some("zstd".into());
    check(&m, &url);
    // A Parquet schema that does not match the SCHEMA.
    let other = StreamSchema::compile(
        "shop-orders",
        &json!({"properties": {"id": {"type": "string"}}}),
        &[],
    )
    .unwrap();
    let e = for_each_rows(&msgs[0], &BatchSchema::new(&other), |_, _| {
        Ok::<(), BatchError>(())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("`id`") && e.contains(&url), "{e}");
    // Truncated, then missing.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    check(&msgs[0], &url);
    std::fs::remove_file(&path).unwrap();
    check(&msgs[0], "cannot open");
    drop(dir);
}

/// An object-store root: files are staged, uploaded, named by their object URL, and read back
/// from the store (`memory://` here; `s3://` works the same with the `s3` feature).
#[test]
fn object_store_roots_upload_and_read_back() {
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": "parquet"},
        "storage": {"root": "memory:///bucket/batches/", "prefix": "o-"},
        "batch_size": 2
    }))
    .unwrap();
    let mut w = BatchWriter::new("shop-orders", &schema(), &config).unwrap();
    let mut msgs = Vec::new();
    for r in records() {
        let raw = RawValue::from_string(r.to_string()).unwrap();
        msgs.extend(w.write(&raw).unwrap());
    }
    msgs.extend(w.flush().unwrap());
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        assert!(
            m.manifest[0].starts_with("memory:///bucket/batches/o-shop-orders-"),
            "{m:?}"
        );
    }
    // Staged files are removed once uploaded.
    let staged = std::fs::read_dir(&config.root).map_or(0, |d| d.count());
    assert_eq!(staged, 0);
    let back = read(&msgs).unwrap();
    assert_eq!(back.len(), 3);
    same(&records()[0], &back[0], "memory");
    let mut missing = msgs[0].clone();
    missing.manifest = vec!["memory:///bucket/batches/none.parquet".into()];
    let e = read(&[missing]).unwrap_err().to_string();
    assert!(
        e.contains("none.parquet") && e.contains("cannot open"),
        "{e}"
    );
}

/// Two writers of one stream made at once (same millisecond, same process) name different
/// files.
#[test]
fn writers_never_share_a_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": dir.path().to_str().unwrap()}
    }))
    .unwrap();
    let mut names = std::collections::HashSet::new();
    for _ in 0..50 {
        let mut w = BatchWriter::new("shop-orders", &schema(), &config).unwrap();
        w.write(&RawValue::from_string(r#"{"id":1}"#.into()).unwrap())
            .unwrap();
        let m = w.flush().unwrap().unwrap();
        assert!(
            names.insert(m.manifest[0].clone()),
            "{} twice",
            m.manifest[0]
        );
    }
}

#[test]
fn arrow_schema_is_shared() {
    let bs = Arc::new(BatchSchema::new(&schema()));
    assert_eq!(bs.arrow.fields().len(), 16);
}
