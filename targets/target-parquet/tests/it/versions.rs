//! ACTIVATE_VERSION: versioned rows go to `_versions/<v>/`, `current` is swapped atomically,
//! older versions are removed, and an interrupted sync resumes into its version.

use std::path::Path;

use serde_json::json;

use crate::{activate, duckdb, parquet_files, python, record, run_ok, schema, state};

fn props() -> serde_json::Value {
    json!({"id": {"type": "integer"}})
}

/// Ids under `current`, read by DuckDB and by pyarrow through the plain path.
fn current_ids(folder: &Path) -> Vec<i64> {
    let current = folder.join("current");
    let duck: Vec<i64> = duckdb(
        "SELECT id FROM read_parquet('{dir}/*.parquet') ORDER BY id",
        &current,
    )
    .iter()
    .map(|r| r[0].as_i64().unwrap())
    .collect();
    let arrow = python(
        "import json, sys, pyarrow.dataset as ds\nprint(json.dumps(sorted(ds.dataset(sys.argv[1]).to_table().column('id').to_pylist())))",
        &[&current.to_string_lossy()],
    );
    let arrow: Vec<i64> = serde_json::from_value(arrow).unwrap();
    assert_eq!(duck, arrow);
    duck
}

#[test]
fn activate_version_swaps_current_and_removes_older_versions() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("out/s");
    let rec = |id: i64, v: i64| record("s", json!({"id": id}), Some(v));
    // First full sync: version 1.
    let first = vec![
        schema("s", props(), &["id"]),
        activate("s", 1),
        rec(1, 1),
        rec(2, 1),
        rec(3, 1),
        activate("s", 1),
        state(json!({"sync": 1})),
    ];
    run_ok(dir.path(), json!({"batch_size_rows": 2}), &first);
    assert_eq!(
        std::fs::read_link(folder.join("current")).unwrap(),
        Path::new("_versions/1")
    );
    assert_eq!(current_ids(&folder), vec![1, 2, 3]);
    // Second sync, interrupted: version 2 is written but `current` still shows version 1.
    let partial = vec![schema("s", props(), &["id"]), activate("s", 2), rec(10, 2)];
    run_ok(dir.path(), json!({}), &partial);
    assert_eq!(current_ids(&folder), vec![1, 2, 3]);
    assert_eq!(parquet_files(&folder.join("_versions/2")).len(), 1);
    // Resumed with the same version, then activated: version 1 is gone.
    let resumed = vec![schema("s", props(), &["id"]), rec(11, 2), activate("s", 2)];
    run_ok(dir.path(), json!({}), &resumed);
    assert_eq!(
        std::fs::read_link(folder.join("current")).unwrap(),
        Path::new("_versions/2")
    );
    assert_eq!(current_ids(&folder), vec![10, 11]);
    assert!(!folder.join("_versions/1").exists());
    let tables = duckdb(
        "SELECT DISTINCT _sdc_table_version FROM read_parquet('{dir}/*.parquet')",
        &folder.join("current"),
    );
    assert_eq!(tables, vec![json!([2])]);
    // Rows without a version go to the stream folder itself.
    run_ok(
        dir.path(),
        json!({}),
        &[
            schema("s", props(), &["id"]),
            record("s", json!({"id": 99}), None),
        ],
    );
    assert_eq!(parquet_files(&folder).len(), 1);
    assert_eq!(current_ids(&folder), vec![10, 11]);
}
