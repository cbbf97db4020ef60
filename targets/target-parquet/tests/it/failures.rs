//! Failures stop the run with an error naming the stream (and column), and no state is echoed
//! for rows that are not in published files.

use serde_json::json;

use crate::{echoed, entries, parquet_files, record, run_with_input, schema, state, target};

#[test]
fn an_unwritable_destination_fails_naming_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    // The stream's folder cannot be created: a file holds its name.
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/users"), b"not a folder").unwrap();
    let lines = [
        schema("users", json!({"id": {"type": "integer"}}), &["id"]),
        record("users", json!({"id": 1}), None),
        state(json!({"n": 1})),
    ];
    let out = run_with_input(target(dir.path(), json!({})), lines.join("\n").as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(echoed(&out).is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CRITICAL") && err.contains("stream `users`"),
        "{err}"
    );
}

#[test]
fn a_failed_publish_echoes_only_the_states_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("out/s");
    std::fs::create_dir_all(&folder).unwrap();
    // Versioned files cannot be published: `_versions` is a file.
    std::fs::write(folder.join("_versions"), b"").unwrap();
    let lines = [
        schema("s", json!({"id": {"type": "integer"}}), &["id"]),
        record("s", json!({"id": 1}), None),
        state(json!({"n": 1})),
        record("s", json!({"id": 2}), Some(7)),
        state(json!({"n": 2})),
    ];
    let out = run_with_input(
        target(dir.path(), json!({"batch_size_rows": 1})),
        lines.join("\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(echoed(&out), vec![json!({"n": 1})]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream `s`: cannot publish") && err.contains("_versions"),
        "{err}"
    );
    assert_eq!(parquet_files(&folder).len(), 1);
    assert_eq!(entries(&folder.join(".staging")), Vec::<String>::new());
}

#[test]
fn values_that_do_not_fit_fail_naming_stream_and_column() {
    let props = json!({
        "id": {"type": "integer"},
        "small": {"type": ["null", "integer"], "minimum": 0, "maximum": 100},
        "ts": {"type": ["null", "string"], "format": "date-time"},
        "ratio": {"type": ["null", "number"]},
    });
    for (bad, column, says) in [
        (
            json!({"id": 2, "small": 40000}),
            "small",
            "out of range for smallint",
        ),
        (json!({"id": 2, "ts": "infinity"}), "ts", "not a date-time"),
        (
            json!({"id": 2, "ratio": serde_json::Number::from_string_unchecked("12345678901234567890.5".into())}),
            "ratio",
            "cannot be held exactly by a double",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            schema("db-t", props.clone(), &["id"]),
            record("db-t", json!({"id": 1, "small": 5}), None),
            state(json!({"n": 1})),
            record("db-t", bad.clone(), None),
            state(json!({"n": 2})),
        ];
        let out = run_with_input(target(dir.path(), json!({})), lines.join("\n").as_bytes());
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(echoed(&out).is_empty(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("line 4: stream `db-t`")
                && err.contains(&format!("column `{column}`"))
                && err.contains(says),
            "{bad}: {err}"
        );
        let folder = dir.path().join("out/db-t");
        assert!(parquet_files(&folder).is_empty());
        assert_eq!(entries(&folder.join(".staging")), Vec::<String>::new());
    }
}

#[test]
fn a_malformed_time_extracted_fails_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        schema("s", json!({"id": {"type": "integer"}}), &["id"]),
        r#"{"type":"RECORD","stream":"s","record":{"id":1},"time_extracted":"yesterday"}"#
            .to_string(),
    ];
    let out = run_with_input(target(dir.path(), json!({})), lines.join("\n").as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream `s`") && err.contains("column `_sdc_extracted_at`"),
        "{err}"
    );
}

/// Values are converted on the encoder's thread, a chunk at a time, while the input goes on:
/// a bad value in the middle of a chunk still stops the run naming its line, the states of
/// batches published before it are echoed, and none after.
#[test]
fn a_bad_value_in_the_middle_of_a_chunk_stops_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![schema("s", json!({"id": {"type": "integer"}}), &["id"])];
    for id in 0..5_000 {
        lines.push(record("s", json!({"id": id}), None));
    }
    lines.push(state(json!({"n": 1})));
    for id in 5_000..6_000 {
        lines.push(record("s", json!({"id": id}), None));
    }
    lines.push(record("s", json!({"id": "seven"}), None));
    let bad_line = lines.len();
    for id in 6_000..20_000 {
        lines.push(record("s", json!({"id": id}), None));
    }
    lines.push(state(json!({"n": 2})));
    let out = run_with_input(
        target(dir.path(), json!({"batch_size_rows": 5_000})),
        lines.join("\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(echoed(&out), vec![json!({"n": 1})]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("line {bad_line}: stream `s`"))
            && err.contains("column `id`")
            && err.contains("expected a number"),
        "{err}"
    );
    assert_eq!(parquet_files(&dir.path().join("out/s")).len(), 1);
}
