//! Schema evolution: a changed SCHEMA closes the file; new files carry the new columns (and
//! the old ones); DuckDB reads them together with `union_by_name`.

use serde_json::json;

use crate::{duckdb, echoed, parquet_files, python, record, run_ok, schema, state};

#[test]
fn a_new_schema_starts_a_new_file_read_together_with_union_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = json!({
        "id": {"type": "integer", "minimum": 0, "maximum": 2147483647},
        "amount": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 99999999.99, "minimum": -99999999.99},
        "gone": {"type": ["null", "string"]},
    });
    let v2 = json!({
        "id": {"type": "integer"},
        "amount": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 999999999999999999.99, "minimum": -999999999999999999.99},
        "flag": {"type": ["null", "boolean"]},
    });
    let lines = vec![
        schema("s", v1.clone(), &["id"]),
        record("s", json!({"id": 1, "amount": 1.25, "gone": "a"}), None),
        schema("s", v1, &["id"]), // unchanged: the same file goes on
        record("s", json!({"id": 2, "amount": -3, "gone": "b"}), None),
        schema("s", v2, &["id"]),
        record(
            "s",
            json!({"id": 3000000000u64, "amount": serde_json::Number::from_string_unchecked("123456789012345678.90".into()), "flag": true}),
            None,
        ),
        record("s", json!({"id": 4, "gone": "still sent"}), None),
        state(json!({"n": 4})),
    ];
    let out = run_ok(dir.path(), json!({}), &lines);
    assert_eq!(echoed(&out), vec![json!({"n": 4})]);
    let folder = dir.path().join("out/s");
    assert_eq!(parquet_files(&folder).len(), 2);
    let rows = duckdb(
        "SELECT id, CAST(amount AS VARCHAR), gone, flag FROM read_parquet('{dir}/*.parquet', union_by_name=true) ORDER BY id",
        &folder,
    );
    assert_eq!(
        rows,
        vec![
            json!([1, "1.25", "a", null]),
            json!([2, "-3.00", "b", null]),
            json!([4, null, "still sent", null]),
            json!([3000000000u64, "123456789012345678.90", null, true]),
        ]
    );
    let types = duckdb(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{dir}/*.parquet', union_by_name=true)) WHERE column_name IN ('id', 'amount')",
        &folder,
    );
    // The new maximum reaches JSON as 1e18: 19 integer digits and 2 after the point.
    assert_eq!(
        types,
        vec![json!(["id", "BIGINT"]), json!(["amount", "DECIMAL(21,2)"])]
    );
    // The newer file holds every column of the older one (`gone` kept).
    let schemas = python(
        "import json, sys, pyarrow.parquet as pq\nprint(json.dumps([pq.read_schema(p).names for p in sys.argv[1:]]))",
        &parquet_files(&folder)
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>(),
    );
    let first: Vec<String> = serde_json::from_value(schemas[0].clone()).unwrap();
    let second: Vec<String> = serde_json::from_value(schemas[1].clone()).unwrap();
    assert!(
        first.iter().all(|c| second.contains(c)),
        "{first:?} {second:?}"
    );
    assert!(second.contains(&"flag".to_string()));
}
