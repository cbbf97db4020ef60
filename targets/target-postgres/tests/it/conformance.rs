use singer_core::testing::{judge_target, prepare_batch_files, run_target, stream_cases};

use crate::{config, fresh_schema, target};

#[test]
fn corpus_streams_in_two_batch_modes() {
    prepare_batch_files();
    let mut failures = Vec::new();
    for rows in [1, 100_000] {
        for case in stream_cases() {
            let schema = fresh_schema("conf");
            let (_dir, cfg) = config(&schema, serde_json::json!({"batch_size_rows": rows}));
            let outcome = run_target(target(&cfg), &case);
            if let Err(why) = judge_target(&case, &outcome) {
                failures.push(format!("{} (rows {rows}): {why}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
