//! What a Meltano SDK target (meltanolabs-target-csv on singer-sdk 0.54.9) takes from our
//! BATCH writer: JSONL files, gzip or uncompressed, load like RECORDs. It cannot read zstd
//! JSONL (it reads the bytes as text) nor Parquet (`NotImplementedError: Unsupported batch
//! encoding format: parquet`): a tap feeding an SDK target uses `jsonl` with `gzip` or `none`.

use std::process::{Command, Stdio};

use serde_json::json;
use serde_json::value::RawValue;
use singer_core::StreamSchema;
use singer_core::batch::{BatchConfig, BatchWriter};
use singer_core::message::{Message, SchemaMessage, StateMessage};
use singer_core::testing::{interop_path, run_with_stdin};

fn input(dir: &std::path::Path, encoding: serde_json::Value) -> String {
    let schema = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
        "price": {"type": ["null", "number"], "multipleOf": 0.01},
        "at": {"type": ["null", "string"], "format": "date-time"}
    }});
    let keys = vec!["id".to_string()];
    let compiled = StreamSchema::compile("items", &schema, &keys).unwrap();
    let mut config = json!({"encoding": encoding, "batch_size": 2});
    config["storage"] = json!({"root": dir.to_str().unwrap()});
    let mut w = BatchWriter::new(
        "items",
        &compiled,
        &BatchConfig::from_value(&config).unwrap(),
    )
    .unwrap();
    let mut lines = vec![
        Message::Schema(SchemaMessage {
            stream: "items".into(),
            schema,
            key_properties: keys,
            bookmark_properties: None,
        })
        .to_line(),
    ];
    for i in 1..=3 {
        let r = json!({"id": i, "name": format!("n,\"{i}\""), "price": "1.50", "at": "2024-01-02T03:04:05+00:00"});
        let raw = RawValue::from_string(r.to_string()).unwrap();
        lines.extend(w.write(&raw).unwrap().map(|b| Message::Batch(b).to_line()));
    }
    lines.extend(w.flush().unwrap().map(|b| Message::Batch(b).to_line()));
    lines.push(
        Message::State(StateMessage {
            value: json!({"done": true}),
        })
        .to_line(),
    );
    lines.join("\n") + "\n"
}

#[test]
fn a_meltano_sdk_target_loads_our_jsonl_batches_only() {
    for compression in ["gzip", "none", "zstd", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let cfg = dir.path().join("csv.json");
        std::fs::write(
            &cfg,
            json!({"output_path": out.to_str().unwrap()}).to_string(),
        )
        .unwrap();
        let enc = if compression == "parquet" {
            json!({"format": "parquet"})
        } else {
            json!({"format": "jsonl", "compression": compression})
        };
        let text = input(&dir.path().join("b"), enc);
        let mut cmd = Command::new(interop_path("target_csv_py"));
        cmd.arg("--config").arg(&cfg).stderr(Stdio::piped());
        let res = run_with_stdin(cmd, text.as_bytes());
        let err = String::from_utf8_lossy(&res.stderr);
        if compression == "zstd" || compression == "parquet" {
            assert!(
                !res.status.success(),
                "{compression} is now read: update the docs"
            );
            assert!(
                err.contains("UnicodeDecodeError") || err.contains("Unsupported batch encoding"),
                "{err}"
            );
            continue;
        }
        assert!(res.status.success(), "{err}");
        assert_eq!(
            String::from_utf8_lossy(&res.stdout).trim(),
            r#"{"done": true}"#
        );
        let csv = std::fs::read_to_string(out.join("items.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4, "{compression}: {csv}");
        assert!(csv.contains(r#""n,""2""""#), "{csv}");
    }
}
