use singer_core::testing::{judge_target, prepare_batch_files, run_target, stream_cases};

use crate::target;

/// Valid streams whose values no typed column holds: a plain `number` with 65 significant
/// digits (a double would round it) and an unbounded `integer` beyond 64 bits. Parquet columns
/// have one exact type each, so the target refuses them with an error naming the column
/// instead of rounding (see the README).
const REFUSED: [(&str, &str); 1] = [("exact_numbers", "column `amount`")];

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
            if let Some((_, column)) = REFUSED.iter().find(|(name, _)| *name == case.name) {
                if outcome.success || !outcome.stderr.contains(column) || !outcome.echoed.is_empty()
                {
                    failures.push(format!("{}: must fail naming {column}", case.name));
                }
                continue;
            }
            if let Err(why) = judge_target(&case, &outcome) {
                failures.push(format!(
                    "{} (rows {rows}, validate {validate}): {why}",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
