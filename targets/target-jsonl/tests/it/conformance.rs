use singer_core::testing::{judge_target, prepare_batch_files, run_target, stream_cases};

use crate::target;

#[test]
fn corpus_streams_in_every_batch_mode() {
    prepare_batch_files();
    let mut failures = Vec::new();
    for (rows, validate) in [(1, false), (100_000, false), (100_000, true)] {
        for case in stream_cases() {
            let dir = tempfile::tempdir().unwrap();
            let cmd = target(
                dir.path(),
                serde_json::json!({"batch_size_rows": rows, "validate_records": validate}),
            );
            let outcome = run_target(cmd, &case);
            if let Err(why) = judge_target(&case, &outcome) {
                failures.push(format!(
                    "{} (rows {rows}, validate {validate}): {why}",
                    case.name
                ));
            }
            let must_fail_if_validating = case.name == "record_invalid";
            if validate && must_fail_if_validating && outcome.success {
                failures.push(format!("{}: a validating target must fail", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
