//! Files: rolling, naming, atomic publication, and states echoed only for published rows.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use serde_json::json;

use crate::{
    duckdb, echoed, entries, parquet_files, record, run_ok, run_with_input, schema, state, target,
};

fn props() -> serde_json::Value {
    json!({"id": {"type": "integer"}, "name": {"type": ["null", "string"]}})
}

fn rows(stream: &str, ids: std::ops::RangeInclusive<u32>) -> Vec<String> {
    ids.map(|i| record(stream, json!({"id": i, "name": format!("n{i}")}), None))
        .collect()
}

/// Rows per published file, in file-name order.
fn rows_per_file(dir: &std::path::Path) -> Vec<i64> {
    duckdb(
        "SELECT count(*) FROM read_parquet('{dir}/*.parquet', filename=true) GROUP BY filename ORDER BY filename",
        dir,
    )
    .iter()
    .map(|r| r[0].as_i64().unwrap())
    .collect()
}

#[test]
fn files_roll_by_rows_within_and_across_batches() {
    for (batch_rows, label) in [(None, "a batch per file"), (Some(100), "one batch")] {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = vec![schema("db-t", props(), &["id"])];
        lines.extend(rows("db-t", 1..=10));
        lines.push(state(json!({"n": 10})));
        let mut cfg = json!({"file_rows": 3});
        if let Some(b) = batch_rows {
            cfg["batch_size_rows"] = b.into();
        }
        let out = run_ok(dir.path(), cfg, &lines);
        assert_eq!(echoed(&out), vec![json!({"n": 10})], "{label}");
        let folder = dir.path().join("out/db-t");
        let files = parquet_files(&folder);
        assert_eq!(files.len(), 4, "{label}");
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            assert!(name.starts_with("part-00000"), "{name}");
        }
        assert_eq!(rows_per_file(&folder), vec![3, 3, 3, 1], "{label}");
        assert_eq!(entries(&folder.join(".staging")), Vec::<String>::new());
        let ids = duckdb(
            "SELECT id FROM read_parquet('{dir}/*.parquet') ORDER BY _sdc_sequence",
            &folder,
        );
        let ids: Vec<i64> = ids.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "{label}");
    }
}

#[test]
fn a_state_is_echoed_only_once_its_rows_are_in_published_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = target(dir.path(), json!({"max_batch_age_seconds": 2}))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = vec![schema("s", props(), &["id"])];
    lines.extend(rows("s", 1..=5));
    lines.push(state(json!({"n": 5})));
    for l in &lines {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let folder = dir.path().join("out/s");
    // The rows wait for their batch (cut by age): nothing is published, nothing echoed.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!folder.exists() || parquet_files(&folder).is_empty());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The moment the state appears, its rows are in a published, complete file.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&first).unwrap(),
        json!({"n": 5})
    );
    let files = parquet_files(&folder);
    assert_eq!(files.len(), 1);
    assert_eq!(rows_per_file(&folder), vec![5]);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn stream_names_become_safe_folder_names() {
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![
        schema("sch/a b", props(), &["id"]),
        record("sch/a b", json!({"id": 1}), None),
        schema("..", props(), &["id"]),
        record("..", json!({"id": 2}), None),
    ];
    run_ok(dir.path(), json!({}), &lines);
    let out = dir.path().join("out");
    assert_eq!(entries(&out), vec!["%2E.", "sch%2Fa%20b"]);
    assert_eq!(parquet_files(&out.join("sch%2Fa%20b")).len(), 1);
}

#[test]
fn metadata_columns_can_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![schema("s", props(), &["id"])];
    lines.extend(rows("s", 1..=2));
    run_ok(dir.path(), json!({"add_sdc_columns": false}), &lines);
    let cols = duckdb(
        "SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet('{dir}/*.parquet'))",
        &dir.path().join("out/s"),
    );
    assert_eq!(cols, vec![json!(["id"]), json!(["name"])]);
}

#[test]
fn gzip_and_uncompressed_files_read_back() {
    for compression in ["gzip", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = vec![schema("s", props(), &["id"])];
        lines.extend(rows("s", 1..=3));
        run_ok(dir.path(), json!({"compression": compression}), &lines);
        let got = duckdb(
            "SELECT DISTINCT compression FROM parquet_metadata('{dir}/*.parquet')",
            &dir.path().join("out/s"),
        );
        let want = if compression == "gzip" {
            "GZIP"
        } else {
            "UNCOMPRESSED"
        };
        assert_eq!(got, vec![json!([want])]);
    }
}

#[test]
fn bad_settings_fail_with_status_2_without_echoing_values() {
    for (cfg, says) in [
        (json!({"file_rows": 0}), "file_rows must be at least 1"),
        (
            json!({"compression": "lz9-secret"}),
            "compression must be zstd, gzip or none",
        ),
        (
            json!({"destinaton_path": "x"}),
            "unknown field `destinaton_path`",
        ),
        (
            json!({"max_batch_age_seconds": -1}),
            "max_batch_age_seconds",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_with_input(target(dir.path(), cfg.clone()), b"");
        assert_eq!(out.status.code(), Some(2), "{cfg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{cfg}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
}

#[test]
fn about_lists_settings() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_target-parquet"))
        .args(["--about", "--format", "markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for setting in [
        "destination_path",
        "file_rows",
        "file_bytes",
        "row_group_rows",
        "compression",
        "add_record_metadata",
        "batch_size_rows",
        "max_batch_age_seconds",
    ] {
        assert!(
            text.contains(&format!("| `{setting}` |")),
            "{setting}: {text}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_target-parquet"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("target-parquet ")
    );
}

#[test]
fn the_readme_dedup_query_keeps_the_latest_row_of_each_key_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = json!({
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
    });
    let first = vec![
        schema("users", p.clone(), &["id"]),
        record("users", json!({"id": 1, "name": "a"}), None),
        record("users", json!({"id": 2, "name": "b"}), None),
        record("users", json!({"id": 3, "name": "c"}), None),
    ];
    run_ok(dir.path(), json!({}), &first);
    let second = vec![
        schema("users", p, &["id"]),
        record("users", json!({"id": 1, "name": "a2"}), None),
        record(
            "users",
            json!({"id": 2, "_sdc_deleted_at": "2024-01-01T00:00:00Z"}),
            None,
        ),
        record("users", json!({"id": 1, "name": "a3"}), None),
    ];
    run_ok(dir.path(), json!({}), &second);
    let latest = duckdb(
        "SELECT id, name FROM (
            SELECT * EXCLUDE (rn) FROM (
                SELECT *, row_number() OVER (PARTITION BY id ORDER BY _sdc_sequence DESC) AS rn
                FROM read_parquet('{dir}/*.parquet', union_by_name = true)
            )
            WHERE rn = 1 AND _sdc_deleted_at IS NULL
        ) ORDER BY id",
        &dir.path().join("out/users"),
    );
    assert_eq!(latest, vec![json!([1, "a3"]), json!([3, "c"])]);
}
