//! FULL_TABLE: one copy in key order, resumable from the last key emitted, with table
//! versions.

use serde_json::json;

use crate::{Db, Server, discover, run_tap, select, tempdir};

#[test]
fn full_table_copies_in_key_order_with_versions() {
    let server = Server::shared();
    let db = Db::create(&server, "ft");
    db.exec(
        "CREATE TABLE t (a int, b text, v numeric, PRIMARY KEY (a, b));
         INSERT INTO t SELECT i % 7, 'k' || i, i / 3.0 FROM generate_series(1, 50) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "FULL_TABLE",
        None,
    );
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(10);
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    let recs = run.records("public-t");
    assert_eq!(recs.len(), 50);
    let keys: Vec<(i64, String)> = recs
        .iter()
        .map(|r| {
            (
                r["a"].as_i64().unwrap(),
                r["b"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let av = run.of_type("ACTIVATE_VERSION");
    assert_eq!(av.len(), 2, "first-ever copy: one before, one after");
    let states = run.states();
    assert!(states.len() >= 5);
    let mid = &states[2]["bookmarks"]["public-t"];
    assert!(mid["last_pk_fetched"]["a"].is_number(), "{mid}");
    let last = run.last_state();
    assert_eq!(
        last["bookmarks"]["public-t"]["initial_full_table_complete"],
        json!(true)
    );
    assert!(
        last["bookmarks"]["public-t"]
            .get("last_pk_fetched")
            .is_none()
    );
}

#[test]
fn interrupted_full_table_resumes_after_the_last_key() {
    let server = Server::shared();
    let db = Db::create(&server, "ftres");
    db.exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "FULL_TABLE",
        None,
    );
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(25);
    let first = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(first.ok, "{}", first.stderr);
    // The state after 50 rows, as if the run had stopped there.
    let cut = first
        .states()
        .into_iter()
        .find(|s| s["bookmarks"]["public-t"]["last_pk_fetched"]["id"] == json!(50))
        .expect("a state at id 50");
    // Rows beyond the recorded maximum are not read by the resumed copy.
    db.exec("INSERT INTO t VALUES (1000, 'late'); UPDATE t SET v = 'changed' WHERE id = 60;");
    let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(&cut));
    assert!(resumed.ok, "{}", resumed.stderr);
    let ids: Vec<i64> = resumed
        .records("public-t")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (51..=100).collect::<Vec<_>>());
    let v60 = &resumed.records("public-t")[9];
    assert_eq!(v60["v"], json!("changed"));
    // The same version as the interrupted copy, and one ACTIVATE_VERSION at the end.
    let version = cut["bookmarks"]["public-t"]["version"].clone();
    let av = resumed.of_type("ACTIVATE_VERSION");
    assert_eq!(av.len(), 1);
    assert_eq!(av[0]["version"], version);
}

#[test]
fn a_missing_table_and_a_bad_password_are_clear_errors() {
    let server = Server::shared();
    let db = Db::create(&server, "fterr");
    db.exec("CREATE TABLE t (id int PRIMARY KEY);");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "FULL_TABLE",
        None,
    );
    db.exec("DROP TABLE t;");
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(!run.ok);
    assert!(run.stderr.contains("public-t"), "{}", run.stderr);
    let mut cfg = db.config();
    cfg["port"] = json!(1);
    cfg["password"] = json!("s3cret-pw");
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(!run.ok);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret-pw"));
}

#[test]
fn a_connection_dropped_mid_snapshot_fails_naming_the_stream() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let server = Server::shared();
    let db = Db::create(&server, "ftdrop");
    db.exec(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT i, repeat('z', 500) FROM generate_series(1, 200000) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-big"],
        "FULL_TABLE",
        None,
    );
    let mut child = crate::tap_command(dir.path(), &db.config(), Some(&catalog), None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Wait for the first record: the copy is under way (and blocked on the full pipe).
    while !line.contains("\"RECORD\"") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the tap ended early");
    }
    let killed = db.scalar(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'tap-postgres' AND datname = '{}'",
        db.name
    ));
    assert_eq!(killed, "1");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("stream `public-big`"), "{stderr}");
    // No state claims the copy finished.
    assert!(!rest.contains("initial_full_table_complete\":true"));
}
