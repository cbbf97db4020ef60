//! LOG_BASED against private MariaDB servers with a row-based binlog.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::types::{TYPES_ROWS, TYPES_TABLE, assert_records, expected_records};
use crate::{Db, PrivateServer, discover, run_tap, select};

fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["id"].to_string()).collect()
}

/// Every type read from the binlog equals what the snapshot reads, with and without the
/// column metadata (signedness, names) that `binlog_row_metadata=FULL` adds.
#[test]
fn binlog_rows_match_snapshot_rows_for_every_type() {
    for full in [false, true] {
        let server = PrivateServer::start(full);
        let db = server.db("types");
        db.exec(TYPES_TABLE);
        let dir = tempfile::tempdir().unwrap();
        let id = db.stream("t");
        let catalog = select(
            &discover(dir.path(), &db.config()),
            &[&id],
            "LOG_BASED",
            None,
        );
        let first = run_tap(dir.path(), &db.config(), Some(&catalog), None);
        assert!(first.ok, "{}", first.stderr);
        assert!(first.records(&id).is_empty());
        db.exec(TYPES_ROWS);
        let run = run_tap(
            dir.path(),
            &db.config(),
            Some(&catalog),
            Some(&first.last_state()),
        );
        assert!(run.ok, "{}", run.stderr);
        let records = run.records(&id);
        assert_records(&records, &expected_records());
        assert!(records.iter().all(|r| r["_sdc_deleted_at"].is_null()));
        // Deletes carry the whole old row and the time of the change.
        db.exec("DELETE FROM t WHERE id = 1");
        let del = run_tap(
            dir.path(),
            &db.config(),
            Some(&catalog),
            Some(&run.last_state()),
        );
        let records = del.records(&id);
        assert_records(&records, &expected_records()[..1]);
        assert!(
            records[0]["_sdc_deleted_at"]
                .as_str()
                .unwrap()
                .ends_with("+00:00")
        );
    }
}

#[test]
fn snapshot_then_changes_then_idle_runs_advance_the_bookmark() {
    let server = PrivateServer::start(true);
    let db = server.db("cdc");
    db.exec(
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO a VALUES (1, 'one'), (2, 'two'); \
         CREATE TABLE other (id INT PRIMARY KEY)",
    );
    let (dir, id, catalog) = log_based(&db, "a");
    let snap = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(snap.ok, "{}", snap.stderr);
    assert_eq!(ids(&snap.records(&id)), vec!["1", "2"]);
    assert_eq!(snap.of_type("ACTIVATE_VERSION").len(), 2);
    let s1 = snap.last_state();
    let bm = &s1["bookmarks"][&id];
    assert_eq!(bm["initial_binlog_complete"], json!(true));
    assert!(bm["log_file"].is_string() && bm["log_pos"].is_u64() && bm["gtid"].is_string());

    db.exec("INSERT INTO a VALUES (3, 'three'); UPDATE a SET v = 'uno' WHERE id = 1; DELETE FROM a WHERE id = 2");
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&s1));
    assert!(run.ok, "{}", run.stderr);
    let recs = run.records(&id);
    assert_eq!(ids(&recs), vec!["3", "1", "2"]);
    assert_eq!(recs[1]["v"], "uno");
    assert!(recs[2]["_sdc_deleted_at"].is_string());
    assert_eq!(run.of_type("ACTIVATE_VERSION").len(), 0);
    // Binlog records keep the snapshot's table version.
    let version = snap.of_type("ACTIVATE_VERSION")[0]["version"].clone();
    assert!(
        run.of_type("RECORD")
            .iter()
            .all(|m| m["version"] == version)
    );
    let s2 = run.last_state();

    // Changes to an unselected table still move the bookmark, so old binlogs can expire.
    db.exec("INSERT INTO other VALUES (1), (2)");
    let idle = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&s2));
    assert!(idle.ok, "{}", idle.stderr);
    assert!(idle.records(&id).is_empty());
    let s3 = idle.last_state();
    assert!(s3["bookmarks"][&id]["log_pos"].as_u64() > s2["bookmarks"][&id]["log_pos"].as_u64());
    assert_ne!(s3["bookmarks"][&id]["gtid"], s2["bookmarks"][&id]["gtid"]);
    let status = db.query("SHOW MASTER STATUS");
    let pos: u64 = status[0].split('\t').nth(1).unwrap().parse().unwrap();
    assert_eq!(s3["bookmarks"][&id]["log_pos"], json!(pos));

    // Resuming by GTID reads the same changes as resuming by file and position.
    let mut gcfg = db.config();
    gcfg["use_gtid"] = json!(true);
    let by_gtid = run_tap(dir.path(), &gcfg, Some(&catalog), Some(&s1));
    assert!(by_gtid.ok, "{}", by_gtid.stderr);
    assert!(by_gtid.stderr.contains("gtid=true"), "{}", by_gtid.stderr);
    assert_eq!(ids(&by_gtid.records(&id)), vec!["3", "1", "2"]);
    assert_eq!(
        by_gtid.last_state()["bookmarks"][&id]["gtid"],
        s3["bookmarks"][&id]["gtid"]
    );
}

#[test]
fn a_run_resumed_from_any_state_loses_nothing() {
    let server = PrivateServer::start(false);
    let db = server.db("resume");
    db.exec("CREATE TABLE r (id INT PRIMARY KEY, n INT)");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(3);
    let id = db.stream("r");
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "LOG_BASED", None);
    let s0 = run_tap(dir.path(), &cfg, Some(&catalog), None).last_state();
    // Ten transactions of two rows each, then a multi-row transaction.
    for i in 0..10 {
        db.exec(&format!(
            "INSERT INTO r VALUES ({}, 0), ({}, 0)",
            2 * i,
            2 * i + 1
        ));
    }
    db.exec("UPDATE r SET n = 1");
    let full = run_tap(dir.path(), &cfg, Some(&catalog), Some(&s0));
    assert!(full.ok, "{}", full.stderr);
    assert_eq!(full.records(&id).len(), 40);
    let states = full.states();
    assert!(states.len() > 3, "{states:?}");
    for state in &states {
        // Everything after the state is delivered again; at worst some rows repeat.
        let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(state));
        let got = resumed.records(&id);
        let before: usize = full
            .messages
            .iter()
            .take_while(|m| m["type"] != "STATE" || m["value"] != *state)
            .filter(|m| m["type"] == "RECORD")
            .count();
        assert_eq!(got.len(), 40 - before, "resumed from {state}");
        assert_eq!(got, full.records(&id)[before..].to_vec());
    }
}

#[test]
fn purged_binlogs_fail_with_a_recovery_hint() {
    let server = PrivateServer::start(false);
    let db = server.db("purge");
    db.exec("CREATE TABLE p (id INT PRIMARY KEY)");
    let (dir, id, catalog) = log_based(&db, "p");
    let state = run_tap(dir.path(), &db.config(), Some(&catalog), None).last_state();
    db.exec(
        "INSERT INTO p VALUES (1); FLUSH BINARY LOGS; INSERT INTO p VALUES (2); FLUSH BINARY LOGS",
    );
    let current = db.query("SHOW MASTER STATUS")[0]
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    db.exec(&format!("PURGE BINARY LOGS TO '{current}'"));
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&state));
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is no longer on the server"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("remove the stream's bookmark (bookmarks.{id})")),
        "{}",
        run.stderr
    );
    // The documented recovery: without the bookmark a new snapshot is taken.
    let fresh = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(fresh.ok, "{}", fresh.stderr);
    assert_eq!(ids(&fresh.records(&id)), vec!["1", "2"]);
}

#[test]
fn servers_without_a_row_binlog_are_refused() {
    // The shared server runs without log_bin (or with MIXED format): LOG_BASED must say so.
    let db = Db::shared("nobinlog");
    let log_bin = db.query("SELECT @@log_bin, @@binlog_format");
    if log_bin[0] == "1\tROW" {
        return; // this machine's shared server writes a row binlog; nothing to refuse
    }
    db.exec("CREATE TABLE x (id INT PRIMARY KEY)");
    let (dir, _, catalog) = log_based(&db, "x");
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("binary logging is off") || run.stderr.contains("not ROW"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("binlog_format=ROW"), "{}", run.stderr);
    assert!(run.messages.iter().all(|m| m["type"] != "RECORD"));
}

/// With `continuous`, a column added while the tap follows the binlog yields a new SCHEMA
/// before the first record that has it.
#[test]
fn a_column_added_mid_binlog_yields_a_new_schema() {
    for full in [true, false] {
        let server = PrivateServer::start(full);
        let db = server.db("alter");
        db.exec("CREATE TABLE c (id INT PRIMARY KEY, a INT)");
        let dir = tempfile::tempdir().unwrap();
        let id = db.stream("c");
        let catalog = select(
            &discover(dir.path(), &db.config()),
            &[&id],
            "LOG_BASED",
            None,
        );
        let state = run_tap(dir.path(), &db.config(), Some(&catalog), None).last_state();
        db.exec("INSERT INTO c VALUES (1, 1)");

        let mut cfg = db.config();
        cfg["continuous"] = json!(true);
        std::fs::write(dir.path().join("c.json"), cfg.to_string()).unwrap();
        std::fs::write(dir.path().join("cat.json"), catalog.to_string()).unwrap();
        std::fs::write(dir.path().join("st.json"), state.to_string()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tap-mysql"))
            .current_dir(dir.path())
            .args([
                "--config",
                "c.json",
                "--catalog",
                "cat.json",
                "--state",
                "st.json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen: Vec<Value> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut altered = false;
        while let Some(Ok(line)) = lines.next() {
            let m: Value = serde_json::from_str(&line).unwrap();
            seen.push(m.clone());
            if m["type"] == "RECORD" && m["record"]["id"] == 1 && !altered {
                db.exec("ALTER TABLE c ADD COLUMN b VARCHAR(3) DEFAULT 'new'; INSERT INTO c VALUES (2, 2, 'bb')");
                altered = true;
            }
            if m["type"] == "RECORD" && m["record"]["id"] == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no record for the new row: {seen:?}"
            );
        }
        let _ = child.kill();
        let _ = child.wait();
        let schemas: Vec<&Value> = seen.iter().filter(|m| m["type"] == "SCHEMA").collect();
        assert_eq!(schemas.len(), 2, "{seen:?}");
        assert!(schemas[0]["schema"]["properties"].get("b").is_none());
        assert_eq!(
            schemas[1]["schema"]["properties"]["b"]["maxLength"],
            json!(3)
        );
        let last = seen.last().unwrap();
        assert_eq!(
            last["record"],
            json!({"id": 2, "a": 2, "b": "bb", "_sdc_deleted_at": null})
        );
        let schema_at = seen
            .iter()
            .position(|m| m["type"] == "SCHEMA" && m["schema"]["properties"].get("b").is_some());
        assert!(schema_at < Some(seen.len() - 1));
    }
}

#[test]
fn a_minimal_row_image_is_refused_before_any_row_is_read() {
    let server = PrivateServer::start_with(false, &["--binlog-row-image=MINIMAL"]);
    let db = server.db("minimal");
    db.exec("CREATE TABLE m (id INT PRIMARY KEY); INSERT INTO m VALUES (1)");
    let (dir, _, catalog) = log_based(&db, "m");
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("binlog_row_image is MINIMAL, not FULL"),
        "{}",
        run.stderr
    );
    assert!(run.messages.iter().all(|m| m["type"] != "RECORD"));
}

/// A work directory, the stream id of `table`, and a catalog selecting it LOG_BASED.
fn log_based(db: &Db, table: &str) -> (tempfile::TempDir, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let id = db.stream(table);
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &[&id],
        "LOG_BASED",
        None,
    );
    (dir, id, catalog)
}

/// A stream switched to LOG_BASED after an interrupted FULL_TABLE copy copies every row from
/// its new position, instead of resuming the old copy (whose rows predate the position).
#[test]
fn a_stream_switched_to_log_based_copies_everything_again() {
    let server = PrivateServer::start(true);
    let db = server.db("switch");
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_100;");
    let dir = tempfile::tempdir().unwrap();
    let id = db.stream("t");
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &[&id],
        "LOG_BASED",
        None,
    );
    let mut stale = json!({"bookmarks": {}});
    stale["bookmarks"][&id] =
        json!({"version": 1, "max_pk_values": {"id": 100}, "last_pk_fetched": {"id": 50}});
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&stale));
    assert!(run.ok, "{}", run.stderr);
    let got: Vec<String> = ids(&run.records(&id));
    assert_eq!(got, (1..=100).map(|i| i.to_string()).collect::<Vec<_>>());
}
