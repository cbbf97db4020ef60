//! The singer-sdk standard target test streams, with the outcomes its suite expects, and a
//! tap written with singer-python.

use serde_json::json;
use singer_core::testing::interop_path;

use crate::{fresh_schema, load, ok, scalar, sql};

const MUST_FAIL: [&str; 3] = [
    "invalid_schema",
    "record_before_schema",
    "record_missing_key_property",
];

#[test]
fn singer_sdk_target_test_streams() {
    let dir = interop_path("target_test_streams");
    let mut failures = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "singer"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let input = std::fs::read_to_string(&path).unwrap();
        let s = fresh_schema("sdk");
        let out = load(&s, json!({"validate_records": true}), &input);
        let must_fail =
            MUST_FAIL.contains(&name.as_str()) || name == "record_missing_required_property";
        if must_fail == out.status.success() {
            failures.push(format!(
                "{name}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
            continue;
        }
        let count = |table: &str| {
            scalar(&format!("SELECT count(*) FROM \"{s}\".\"{table}\"")).unwrap_or_default()
        };
        let check = |ok: bool, what: &str, failures: &mut Vec<String>| {
            if !ok {
                failures.push(format!("{name}: {what}"))
            }
        };
        match name.as_str() {
            "duplicate_records" => {
                let v = sql(&format!(
                    "SELECT count(*), max(metric) FROM \"{s}\".test_duplicate_records WHERE id = 1"
                ));
                check(
                    v[0][0].as_deref() == Some("1"),
                    "duplicate ids must collapse to one row",
                    &mut failures,
                );
            }
            "encoded_string_data" => {
                let n = count("test_strings");
                check(n != "0", "strings loaded", &mut failures);
            }
            "schema_updates" => check(count("test_schema_updates") == "6", "6 rows", &mut failures),
            "camelcase" => check(
                count("TestCamelcase") == "2",
                "2 rows in \"TestCamelcase\"",
                &mut failures,
            ),
            "special_chars_in_attributes" => check(
                count("test:SpecialChars!in?attributes") == "1",
                "1 row",
                &mut failures,
            ),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn accepts_a_singer_python_tap() {
    let tap_stdout = singer_core::testing::singer_python_tap_output();
    let s = fresh_schema("pytap");
    let states = ok(&load(
        &s,
        json!({}),
        &String::from_utf8(tap_stdout).unwrap(),
    ));
    assert_eq!(
        states.last().unwrap()["bookmarks"]["users"]["updated_at"],
        "2024-01-02T00:00:00Z"
    );
    let rows = sql(&format!(
        "SELECT id, name, amount::text, updated_at::text, _sdc_extracted_at::text FROM \"{s}\".users ORDER BY id"
    ));
    assert_eq!(rows[0][1].as_deref(), Some("h\u{e9}llo \u{2603} \u{1F600}"));
    assert_eq!(
        rows[0][2].as_deref(),
        Some("12345678901234567890.123456789")
    );
    assert_eq!(rows[1][2].as_deref(), Some("1180591620717411303424"));
    assert_eq!(rows[1][3].as_deref(), Some("2024-01-01 19:00:00+00"));
    assert_eq!(rows[1][4].as_deref(), Some("2024-01-02 03:04:05.123456+00"));
}
