use serde_json::Value;
use singer_core::check::check_stream;
use singer_core::testing::stream_cases;

#[test]
fn stream_checker_verdicts_match_the_corpus() {
    let cases = stream_cases();
    assert!(cases.len() >= 25, "corpus looks empty: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let valid = case.get("valid").and_then(Value::as_bool).unwrap_or(true);
        match (check_stream(case.bytes.as_slice(), true), valid) {
            (Ok(report), true) => {
                if let Some(want) = case.get("records")
                    && *want != Value::Object(report.records.clone())
                {
                    failures.push(format!(
                        "{}: records {:?}, expected {want}",
                        case.name, report.records
                    ));
                }
                let want_state = case.get("final_state").cloned().unwrap_or(Value::Null);
                if report.final_state.clone().unwrap_or(Value::Null) != want_state {
                    failures.push(format!(
                        "{}: final state {:?}, expected {want_state}",
                        case.name, report.final_state
                    ));
                }
            }
            (Ok(_), false) => failures.push(format!(
                "{}: accepted, expected {}",
                case.name, case.expect["error"]
            )),
            (Err(v), true) => failures.push(format!("{}: rejected: {v}", case.name)),
            (Err(v), false) => {
                let want = &case.expect["error"];
                if want["kind"] != v.kind || want["line"] != v.line {
                    failures.push(format!(
                        "{}: got {} at line {}, expected {want}",
                        case.name, v.kind, v.line
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn conformance_cli_checks_a_stream() {
    let bin = env!("CARGO_BIN_EXE_singer-conformance");
    let good = singer_core::testing::corpus_dir().join("streams/simple_single_stream.singer");
    let out = std::process::Command::new(bin)
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bad = singer_core::testing::corpus_dir().join("streams/record_before_schema.singer");
    let out = std::process::Command::new(bin)
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("record_before_schema"));
}
