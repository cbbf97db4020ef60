//! BATCH messages: Parquet files load through Arrow columns, JSONL files as records; either
//! way a table ends up exactly as the same records sent as RECORD messages leave it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use singer_core::StreamSchema;
use singer_core::batch::{BatchConfig, BatchWriter};
use singer_core::message::Message;

use crate::{config, fresh_schema, load, ok, scalar, sql, stream, target};

/// A SCHEMA message.
pub(crate) fn schema_msg(name: &str, props: &Value, keys: &[&str]) -> Value {
    json!({"type": "SCHEMA", "stream": name, "schema": {"type": "object", "properties": props}, "key_properties": keys})
}

/// Writes `records` of stream `name` into batch files under `dir` (`format`, `compression`,
/// `rows` per file) and returns their BATCH messages.
pub(crate) fn batch_files(
    dir: &Path,
    name: &str,
    props: &Value,
    records: &[Value],
    (format, compression, rows): (&str, &str, usize),
    version: Option<i64>,
) -> Vec<Value> {
    let schema =
        StreamSchema::compile(name, &json!({"type": "object", "properties": props}), &[]).unwrap();
    let config = BatchConfig::from_value(&json!({
        "encoding": {"format": format, "compression": compression},
        "storage": {"root": dir, "prefix": format!("{name}-")},
        "batch_size": rows,
    }))
    .unwrap();
    let mut writer = BatchWriter::new(name, &schema, &config).unwrap();
    writer.set_version(version);
    let mut messages = Vec::new();
    for r in records {
        let raw = RawValue::from_string(r.to_string()).unwrap();
        messages.extend(writer.write(&raw).unwrap());
    }
    messages.extend(writer.flush().unwrap());
    messages
        .into_iter()
        .map(|m| serde_json::from_str(&Message::Batch(m).to_line()).unwrap())
        .collect()
}

fn records(name: &str, rows: &[Value], version: Option<i64>) -> Vec<Value> {
    rows.iter()
        .map(|r| match version {
            Some(v) => json!({"type": "RECORD", "stream": name, "record": r, "version": v}),
            None => json!({"type": "RECORD", "stream": name, "record": r}),
        })
        .collect()
}

fn state(n: u64) -> Value {
    json!({"type": "STATE", "value": {"n": n}})
}

/// Every column of a table as text, with its type, ordered by `id`; metadata that differs
/// by nature (arrival times, sequence) left out.
fn table(schema: &str, table: &str) -> Vec<Vec<Option<String>>> {
    let columns = sql(&format!(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = '{table}' AND column_name NOT IN ('_sdc_received_at', '_sdc_batched_at', '_sdc_sequence') ORDER BY ordinal_position"
    ));
    let header: Vec<Option<String>> = columns
        .iter()
        .map(|c| {
            Some(format!(
                "{}:{}",
                c[0].as_deref().unwrap(),
                c[1].as_deref().unwrap()
            ))
        })
        .collect();
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"::text", c[0].as_deref().unwrap()))
        .collect();
    let mut rows = vec![header];
    rows.extend(sql(&format!(
        "SELECT {} FROM \"{schema}\".\"{table}\" ORDER BY id",
        select.join(", ")
    )));
    rows
}

fn every_type() -> (Value, Vec<Value>) {
    let props = json!({
        "id": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64},
        "small": {"type": ["null", "integer"], "minimum": -32768, "maximum": 32767},
        "int": {"type": ["null", "integer"], "minimum": -2147483648i64, "maximum": 2147483647},
        "big": {"type": ["null", "integer"]},
        "narrow": {"type": ["null", "integer"], "x-sql-datatype": "smallint"},
        "price": {"type": ["null", "number"], "multipleOf": 0.01},
        "wide": {"type": ["null", "number"], "multipleOf": 0.001, "maximum": 1e60},
        "ratio": {"type": ["null", "number"]},
        "flag": {"type": ["null", "boolean"]},
        "name": {"type": ["null", "string"], "maxLength": 3},
        "note": {"type": ["null", "string"]},
        "dec": {"type": ["null", "string"], "format": "singer.decimal"},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "clock": {"type": ["null", "string"], "format": "time"},
        "uid": {"type": ["null", "string"], "format": "uuid"},
        "blob": {"type": ["null", "string"], "contentEncoding": "base64"},
        "hex": {"type": ["null", "string"], "contentEncoding": "base16"},
        "doc": {"type": ["null", "object"]},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "any": {},
        "mixed": {"type": ["null", "integer", "string"]},
        "d65": {"type": ["null", "string"], "format": "x-singer.decimal", "x-sql-datatype": "numeric(65,30)"}
    });
    let rows = vec![
        json!({"id": 18446744073709551615u64, "small": -32768, "int": 2147483647, "big": -9223372036854775808i64,
               "narrow": 7, "price": "1234567890.12", "wide": "-123456789012345678901234567890123456789012345.678",
               "ratio": 0.1428571428571428, "flag": true, "name": "Ünï", "note": "a\u{0}b \"q\" 🚀",
               "dec": "12345678901234567890.123456789", "at": "2024-03-01T12:34:56.123456+02:00",
               "day": "2024-02-29", "clock": "23:59:59.999999", "uid": "123e4567-e89b-12d3-a456-426614174000",
               "blob": "AAEC/w==", "hex": "00ff10", "doc": {"a": [1, 2, {"b": null}], "n": 1.50},
               "tags": ["x", "y"], "any": 42, "mixed": "text",
               "d65": "12345678901234567890123456789012345.123456789012345678901234567890"}),
        json!({"id": 2, "small": 0, "int": 0, "big": 0, "narrow": 100000, "price": "-0.50", "wide": "0.001",
               "ratio": 1e-7, "flag": false, "name": "abcdef", "note": "", "dec": "-0.000",
               "at": "-4713-11-24T00:00:00Z", "day": "-0043-03-15", "clock": "00:00:00",
               "uid": "00000000-0000-0000-0000-000000000000", "blob": "", "hex": "", "doc": {},
               "tags": [], "any": {"k": "x\u{0}y"}, "mixed": 5, "d65": "-1"}),
        json!({"id": 3, "at": "+294246-12-31T23:59:59.999999Z", "day": "+5874897-12-31", "clock": "24:00:00",
               "price": "0.00", "ratio": -2.5, "any": "s", "mixed": null}),
        json!({"id": 4}),
    ];
    (props, rows)
}

#[test]
fn every_type_loads_from_batch_files_as_from_records() {
    let s = fresh_schema("batch_types");
    let dir = tempfile::tempdir().unwrap();
    let (props, rows) = every_type();
    let mut input = Vec::new();
    input.push(schema_msg("rec", &props, &["id"]));
    input.extend(records("rec", &rows, Some(3)));
    for (name, format, compression, per_file) in [
        ("pq", "parquet", "zstd", 3),
        ("jn", "jsonl", "none", 10),
        ("jg", "jsonl", "gzip", 2),
        ("jz", "jsonl", "zstd", 10),
    ] {
        input.push(schema_msg(name, &props, &["id"]));
        let enc = (format, compression, per_file);
        input.extend(batch_files(dir.path(), name, &props, &rows, enc, Some(3)));
    }
    input.push(state(1));
    let states = ok(&load(&s, json!({}), &stream(&input)));
    assert_eq!(states, vec![json!({"n": 1})]);
    let want = table(&s, "rec");
    assert_eq!(want.len(), rows.len() + 1);
    // Data outgrew `narrow` and `name`: both widened, in every table alike.
    assert!(
        want[0].contains(&Some("narrow:numeric".into())),
        "{:?}",
        want[0]
    );
    assert!(want[0].contains(&Some("name:text".into())), "{:?}", want[0]);
    for name in ["pq", "jn", "jg", "jz"] {
        let got = table(&s, name);
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(g, w, "table {name}");
        }
        assert_eq!(got.len(), want.len(), "table {name}");
        let meta = sql(&format!(
            "SELECT count(*) FROM \"{s}\".{name} WHERE _sdc_sequence > 0 AND _sdc_received_at IS NOT NULL AND _sdc_batched_at IS NOT NULL AND _sdc_extracted_at IS NULL AND _sdc_table_version = 3 AND _sdc_deleted_at IS NULL"
        ));
        assert_eq!(meta[0][0].as_deref(), Some("4"), "table {name}");
    }
    // Spot checks of what "the same" is.
    let row = &sql(&format!(
        "SELECT price::text, wide::text, note, encode(blob, 'hex'), doc::text, \"any\"::text, d65::text FROM \"{s}\".pq WHERE id = 2"
    ))[0];
    let row: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    assert_eq!(
        row,
        [
            "-0.50",
            "0.001",
            "",
            "",
            "{}",
            r#"{"k": "x�y"}"#,
            "-1.000000000000000000000000000000"
        ]
    );
}

#[test]
fn batches_upsert_on_keys_over_several_connections() {
    let s = fresh_schema("batch_upsert");
    let dir = tempfile::tempdir().unwrap();
    let props =
        json!({"id": {"type": "integer"}, "v": {"type": "string"}, "pad": {"type": "string"}});
    let pad = "p".repeat(100);
    let first: Vec<Value> = (0..20_000)
        .map(|i| json!({"id": i, "v": "a", "pad": pad}))
        .chain([json!({"id": 1, "v": "a-last", "pad": pad})])
        .collect();
    let second: Vec<Value> = (10_000..30_000)
        .map(|i| json!({"id": i, "v": "b", "pad": pad}))
        .collect();
    let enc = ("parquet", "zstd", 100_000);
    let mut input = vec![schema_msg("t", &props, &["id"])];
    input.extend(batch_files(dir.path(), "t", &props, &first, enc, None));
    input.push(state(1));
    input.extend(batch_files(dir.path(), "t", &props, &second, enc, None));
    input.push(state(2));
    let states = ok(&load(
        &s,
        json!({"stream_connections": 2, "batch_size_rows": 15_000}),
        &stream(&input),
    ));
    assert_eq!(states.last(), Some(&json!({"n": 2})));
    let counts = sql(&format!(
        "SELECT v, count(*)::text FROM \"{s}\".t GROUP BY v ORDER BY v"
    ));
    assert_eq!(
        counts,
        vec![
            vec![Some("a".into()), Some("9999".into())],
            vec![Some("a-last".into()), Some("1".into())],
            vec![Some("b".into()), Some("20000".into())],
        ]
    );
}

#[test]
fn activate_version_retires_rows_of_older_batches() {
    let s = fresh_schema("batch_version");
    let dir = tempfile::tempdir().unwrap();
    let props = json!({"id": {"type": "integer"}});
    let av = |v: i64| json!({"type": "ACTIVATE_VERSION", "stream": "t", "version": v});
    let ids = |r: std::ops::RangeInclusive<i64>| r.map(|id| json!({"id": id})).collect::<Vec<_>>();
    let enc = ("parquet", "zstd", 2);
    let sch = schema_msg("t", &props, &["id"]);
    let mut first = vec![sch.clone(), av(1)];
    first.extend(batch_files(
        dir.path(),
        "t",
        &props,
        &ids(1..=3),
        enc,
        Some(1),
    ));
    first.push(av(1));
    ok(&load(&s, json!({}), &stream(&first)));
    let mut second = vec![sch, av(2)];
    second.extend(batch_files(
        dir.path(),
        "t",
        &props,
        &ids(2..=3),
        enc,
        Some(2),
    ));
    second.push(av(2));
    ok(&load(&s, json!({"batch_size_rows": 1}), &stream(&second)));
    let rows = sql(&format!(
        "SELECT id, _sdc_table_version, _sdc_deleted_at IS NOT NULL FROM \"{s}\".t ORDER BY id"
    ));
    let row = |id: &str, v: &str, deleted: &str| {
        vec![Some(id.into()), Some(v.into()), Some(deleted.into())]
    };
    assert_eq!(
        rows,
        // Ids 2 and 3 came again unchanged: they keep version 1, and are not retired.
        vec![row("1", "1", "t"), row("2", "1", "f"), row("3", "1", "f")]
    );
}

#[test]
fn a_new_column_between_batches_and_columns_a_file_lacks() {
    let s = fresh_schema("batch_evolve");
    let dir = tempfile::tempdir().unwrap();
    let v1 = json!({"id": {"type": "integer"}, "a": {"type": "string"}});
    let v2 = json!({"id": {"type": "integer"}, "a": {"type": "string"}, "b": {"type": "number", "multipleOf": 0.1}});
    let enc = ("parquet", "zstd", 10);
    let mut input = vec![schema_msg("t", &v1, &["id"])];
    input.extend(batch_files(
        dir.path(),
        "t",
        &v1,
        &[json!({"id": 1, "a": "x"})],
        enc,
        None,
    ));
    input.push(schema_msg("t", &v2, &["id"]));
    input.extend(batch_files(
        dir.path(),
        "t",
        &v2,
        &[json!({"id": 2, "a": "y", "b": 2.5})],
        enc,
        None,
    ));
    // A file written before the new column: `b` loads as NULL.
    input.extend(batch_files(
        dir.path(),
        "t",
        &v1,
        &[json!({"id": 3, "a": "z"})],
        enc,
        None,
    ));
    ok(&load(&s, json!({}), &stream(&input)));
    let rows = sql(&format!("SELECT id, a, b::text FROM \"{s}\".t ORDER BY id"));
    let row = |id: &str, a: &str, b: Option<&str>| {
        vec![Some(id.into()), Some(a.into()), b.map(Into::into)]
    };
    assert_eq!(
        rows,
        vec![
            row("1", "x", None),
            row("2", "y", Some("2.5")),
            row("3", "z", None)
        ]
    );
}

/// The state after a BATCH is echoed only once its rows are committed: read while the
/// target still runs, the rows are already there.
#[test]
fn the_state_after_a_batch_is_echoed_once_it_committed() {
    let s = fresh_schema("batch_state");
    let dir = tempfile::tempdir().unwrap();
    let props = json!({"id": {"type": "integer"}});
    let rows: Vec<Value> = (1..=5000).map(|id| json!({"id": id})).collect();
    let mut input = vec![schema_msg("t", &props, &["id"])];
    input.extend(batch_files(
        dir.path(),
        "t",
        &props,
        &rows,
        ("parquet", "zstd", 100_000),
        None,
    ));
    input.push(state(1));
    let (_cfg_dir, cfg) = config(&s, json!({"max_batch_age_seconds": 0.05}));
    let mut child = target(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(stream(&input).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let committed = scalar(&format!("SELECT count(*) FROM \"{s}\".t"));
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_eq!(first.trim(), r#"{"n":1}"#);
    assert_eq!(committed.as_deref(), Some("5000"));
}
