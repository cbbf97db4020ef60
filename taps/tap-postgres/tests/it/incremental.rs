//! INCREMENTAL: rows at or after the bookmark, compared in the column's own type.

use serde_json::json;

use crate::{Db, Server, discover, run_tap, select, tempdir};

#[test]
fn incremental_reads_from_the_bookmark_with_exact_comparison() {
    let server = Server::shared();
    let db = Db::create(&server, "inc");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, at timestamptz, amount numeric(30, 20));
         INSERT INTO t VALUES (1, '2024-01-01 00:00:00.000001+00', 0.00000000000000000001),
                              (2, '2024-01-01 00:00:00.000002+00', 0.00000000000000000002),
                              (3, '2024-01-01 00:00:00.000003+00', 0.00000000000000000003);",
    );
    let dir = tempdir();
    let discovered = discover(dir.path(), &db.config());
    for (key, second) in [("at", "2024-01-01 00:00:00.000004+00"), ("amount", "0")] {
        let catalog = select(&discovered, &["public-t"], "INCREMENTAL", Some(key));
        let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
        assert!(run.ok, "{}", run.stderr);
        assert_eq!(run.records("public-t").len(), 3);
        let state = run.last_state();
        let bm = &state["bookmarks"]["public-t"];
        assert_eq!(bm["replication_key"], json!(key));
        // Nothing new: only the bookmark row again (>=).
        let again = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&state));
        assert!(again.ok, "{}", again.stderr);
        let ids: Vec<i64> = again
            .records("public-t")
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [3], "key {key}: {bm}");
        let _ = second;
    }
    let catalog = select(&discovered, &["public-t"], "INCREMENTAL", Some("at"));
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    db.exec("INSERT INTO t VALUES (4, '2024-01-01 00:00:00.000004+00', 1), (5, NULL, 1);");
    let next = run_tap(
        dir.path(),
        &db.config(),
        Some(&catalog),
        Some(&run.last_state()),
    );
    let ids: Vec<i64> = next
        .records("public-t")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(
        next.last_state()["bookmarks"]["public-t"]["replication_key_value"],
        json!("2024-01-01T00:00:00.000004+00:00")
    );
}
