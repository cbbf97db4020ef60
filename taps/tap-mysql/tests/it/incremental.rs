//! INCREMENTAL: `>=` the bookmark, ordered, bounded by the maximum at start.

use serde_json::{Value, json};

use crate::{Db, discover, run_tap, select};

fn col(records: &[Value], key: &str) -> Vec<String> {
    records.iter().map(|r| r[key].to_string()).collect()
}

#[test]
fn reads_from_the_bookmark_and_resumes_without_loss() {
    let db = Db::shared("inc");
    db.exec(
        "CREATE TABLE e (id INT PRIMARY KEY, at DATETIME(6), amount DECIMAL(30,10)); \
         INSERT INTO e VALUES (1, '2024-01-01 00:00:00.000001', 1), (2, '2024-01-01 00:00:00.000002', 2), \
         (3, '2024-01-01 00:00:00.000002', 3), (4, '2024-01-03', 4), (5, NULL, 5)",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(2);
    let id = db.stream("e");
    let catalog = select(
        &discover(dir.path(), &cfg),
        &[&id],
        "INCREMENTAL",
        Some("at"),
    );
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    // Ordered by the key; rows without a key value are not part of an incremental stream.
    assert_eq!(col(&run.records(&id), "id"), vec!["1", "2", "3", "4"]);
    let schema = &run.of_type("SCHEMA")[0];
    assert_eq!(schema["bookmark_properties"], json!(["at"]));
    let end = run.last_state();
    assert_eq!(end["bookmarks"][&id]["replication_key"], "at");
    assert_eq!(
        end["bookmarks"][&id]["replication_key_value"],
        "2024-01-03 00:00:00.000000"
    );

    // Resuming from the mid-run state re-reads the boundary (>=), never skips.
    let mid = &run.states()[0];
    assert_eq!(
        mid["bookmarks"][&id]["replication_key_value"],
        "2024-01-01 00:00:00.000002"
    );
    let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(mid));
    assert_eq!(col(&resumed.records(&id), "id"), vec!["2", "3", "4"]);

    // New and updated rows since the last run arrive; the boundary row repeats.
    db.exec("INSERT INTO e VALUES (6, '2024-01-04', 6); UPDATE e SET at = '2024-01-05', amount = 0.5 WHERE id = 1");
    let next = run_tap(dir.path(), &cfg, Some(&catalog), Some(&end));
    assert_eq!(col(&next.records(&id), "id"), vec!["4", "6", "1"]);
    assert_eq!(next.records(&id)[2]["amount"].to_string(), "0.5000000000");

    // A PipelineWise-style ISO bookmark is understood.
    let iso = json!({"bookmarks": {id.clone(): {"replication_key": "at", "replication_key_value": "2024-01-04T00:00:00+00:00"}}});
    let run = run_tap(dir.path(), &cfg, Some(&catalog), Some(&iso));
    assert_eq!(col(&run.records(&id), "id"), vec!["6", "1"]);
}

#[test]
fn decimal_and_integer_keys_compare_exactly() {
    let db = Db::shared("incdec");
    db.exec(
        "CREATE TABLE m (id BIGINT UNSIGNED PRIMARY KEY, k DECIMAL(40,20)); \
         INSERT INTO m VALUES (1, '12345678901234567890.00000000000000000001'), \
         (18446744073709551615, '12345678901234567890.00000000000000000002')",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = db.config();
    let id = db.stream("m");
    let catalog = select(
        &discover(dir.path(), &cfg),
        &[&id],
        "INCREMENTAL",
        Some("k"),
    );
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    let state = run.last_state();
    assert_eq!(
        state["bookmarks"][&id]["replication_key_value"].to_string(),
        "12345678901234567890.00000000000000000002"
    );
    // As floats both keys are equal; compared exactly only the second is >= the bookmark.
    let again = run_tap(dir.path(), &cfg, Some(&catalog), Some(&state));
    assert_eq!(col(&again.records(&id), "id"), vec!["18446744073709551615"]);

    let by_id = select(
        &discover(dir.path(), &cfg),
        &[&id],
        "INCREMENTAL",
        Some("id"),
    );
    let state = json!({"bookmarks": {id.clone(): {"replication_key": "id", "replication_key_value": 18446744073709551615u64}}});
    let run = run_tap(dir.path(), &cfg, Some(&by_id), Some(&state));
    assert_eq!(col(&run.records(&id), "id"), vec!["18446744073709551615"]);
}
