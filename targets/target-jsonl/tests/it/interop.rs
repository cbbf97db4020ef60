//! target-jsonl with the Python ecosystem: the singer-sdk standard target test streams, and
//! a tap written with singer-python.

use serde_json::Value;
use singer_core::testing::{Case, TargetOutcome, interop_path};

use crate::{run_with_input, target};

/// Fixtures the singer-sdk suite expects a target to reject.
const MUST_FAIL: [&str; 3] = [
    "invalid_schema",
    "record_before_schema",
    "record_missing_key_property",
];

#[test]
fn singer_sdk_standard_target_streams() {
    let dir = interop_path("target_test_streams");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "expected the SDK fixtures in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "singer"))
    {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        for validate in [false, true] {
            let out_dir = tempfile::tempdir().unwrap();
            let out = run_with_input(
                target(
                    out_dir.path(),
                    serde_json::json!({"validate_records": validate}),
                ),
                &bytes,
            );
            let must_fail = MUST_FAIL.contains(&name.as_str())
                || (validate && name == "record_missing_required_property");
            if must_fail {
                if out.status.success() {
                    failures.push(format!("{name} (validate {validate}): accepted, must fail"));
                }
                continue;
            }
            if !out.status.success() {
                failures.push(format!(
                    "{name} (validate {validate}): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                continue;
            }
            // Every echoed state comes from the input, in order, and the last is the last STATE.
            let case = Case {
                name: name.clone(),
                path: path.clone(),
                bytes: bytes.clone(),
                expect: serde_json::json!({
                    "valid": true, "final_state": singer_core::testing::states_in(&bytes).last().map(|(_, v)| v.clone()).unwrap_or(Value::Null)
                }),
            };
            let echoed = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let outcome = TargetOutcome {
                success: true,
                echoed,
                stderr: String::new(),
            };
            if let Err(why) = singer_core::testing::judge_target(&case, &outcome) {
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn accepts_a_singer_python_tap() {
    let tap_stdout = singer_core::testing::singer_python_tap_output();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_input(
        target(dir.path(), serde_json::json!({"validate_records": true})),
        &tap_stdout,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        r#"{"bookmarks":{"users":{"updated_at":"2024-01-02T00:00:00Z"}}}"#
    );
    let text = std::fs::read_to_string(dir.path().join("users.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "h\u{e9}llo \u{2603} \u{1F600}");
    assert_eq!(
        rows[0]["amount"].to_string(),
        "12345678901234567890.123456789"
    );
    assert_eq!(rows[1]["amount"].to_string(), "1180591620717411303424");
}
