use std::io::Read;

use crate::{run_with_input, target};

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"db-t","schema":{"properties":{"id":{"type":"integer"},"d":{"type":"number"}}},"key_properties":["id"]}"#;

fn rec(id: u32, version: Option<i64>) -> String {
    let v = version
        .map(|v| format!(r#","version":{v}"#))
        .unwrap_or_default();
    format!(
        r#"{{"type":"RECORD","stream":"db-t","record":{{"id":{id},"d":12345678901234567890123456789012345.123456789012345678901234567890}}{v}}}"#
    )
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn records_land_byte_exact_and_state_is_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "{SCHEMA}\n{}\n{}\n{{\"type\":\"STATE\",\"value\":{{\"n\":1}}}}\n",
        rec(1, None),
        rec(2, None)
    );
    let out = run_with_input(target(dir.path(), serde_json::json!({})), input.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "{\"n\":1}\n");
    let got = lines(&dir.path().join("db-t.jsonl"));
    assert_eq!(
        got,
        vec![
            r#"{"id":1,"d":12345678901234567890123456789012345.123456789012345678901234567890}"#,
            r#"{"id":2,"d":12345678901234567890123456789012345.123456789012345678901234567890}"#,
        ]
    );
}

#[test]
fn activate_version_replaces_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let av = |v: i64| format!(r#"{{"type":"ACTIVATE_VERSION","stream":"db-t","version":{v}}}"#);
    // First full sync: version 1 with three rows.
    let first = [
        SCHEMA.to_string(),
        av(1),
        rec(1, Some(1)),
        rec(2, Some(1)),
        rec(3, Some(1)),
        av(1),
    ]
    .join("\n");
    let out = run_with_input(
        target(dir.path(), serde_json::json!({"batch_size_rows": 1})),
        first.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&dir.path().join("db-t.jsonl")).len(), 3);
    // Second sync, interrupted after one row of version 2: the file still holds version 1.
    let partial = [SCHEMA.to_string(), av(2), rec(9, Some(2))].join("\n");
    let out = run_with_input(
        target(dir.path(), serde_json::json!({})),
        partial.as_bytes(),
    );
    assert!(out.status.success());
    assert_eq!(lines(&dir.path().join("db-t.jsonl")).len(), 3);
    // Resumed with the same version: the staging file keeps the earlier row.
    let resumed = [SCHEMA.to_string(), rec(10, Some(2)), av(2)].join("\n");
    let out = run_with_input(
        target(dir.path(), serde_json::json!({})),
        resumed.as_bytes(),
    );
    assert!(out.status.success());
    let got = lines(&dir.path().join("db-t.jsonl"));
    assert_eq!(got.len(), 2);
    assert!(got[0].starts_with(r#"{"id":9,"#) && got[1].starts_with(r#"{"id":10,"#));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn empty_full_table_version_empties_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let av = |v: i64| format!(r#"{{"type":"ACTIVATE_VERSION","stream":"db-t","version":{v}}}"#);
    let first = [SCHEMA.to_string(), rec(1, None), av(5), av(5)].join("\n");
    let out = run_with_input(target(dir.path(), serde_json::json!({})), first.as_bytes());
    assert!(out.status.success());
    assert_eq!(lines(&dir.path().join("db-t.jsonl")).len(), 0);
}

#[test]
fn gzip_and_zstd_files_hold_every_batch() {
    for (compression, name) in [("gzip", "db-t.jsonl.gz"), ("zstd", "db-t.jsonl.zst")] {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<String> = std::iter::once(SCHEMA.to_string())
            .chain((1..=5).map(|i| rec(i, None)))
            .collect();
        let cfg = serde_json::json!({"compression": compression, "batch_size_rows": 2});
        let out = run_with_input(target(dir.path(), cfg), input.join("\n").as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = std::fs::File::open(dir.path().join(name)).unwrap();
        let mut text = String::new();
        if compression == "gzip" {
            flate2::read::MultiGzDecoder::new(file)
                .read_to_string(&mut text)
                .unwrap();
        } else {
            zstd::Decoder::new(file)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
        }
        assert_eq!(text.lines().count(), 5, "{compression}");
    }
}

#[test]
fn bad_config_and_bad_input_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_input(
        target(dir.path(), serde_json::json!({"destinaton_path": "x"})),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `destinaton_path`"), "{err}");

    let input = format!(
        "{SCHEMA}\n{}\n{{\"type\":\"RECORD\",\"stream\":\"db-t\",\"record\":{{\"id\":2}}\n",
        rec(1, None)
    );
    let out = run_with_input(target(dir.path(), serde_json::json!({})), input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("malformed JSON"),
        "{err}"
    );
}

#[test]
fn about_lists_settings() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_target-jsonl"))
        .args(["--about", "--format", "markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("| `destination_path` |") && text.contains("| `compression` |"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_target-jsonl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("target-jsonl ")
    );
}
