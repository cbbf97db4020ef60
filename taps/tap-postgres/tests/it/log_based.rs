//! LOG_BASED with pgoutput on a private server with `wal_level=logical`: the exported
//! snapshot meets the change stream exactly, the slot is acknowledged only up to the state
//! passed back, and faults are clear errors that lose nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use singer_core::testing::tap::TapRun;

use crate::{Db, Server, discover, parse_lines, run_tap, select, tap_command, tempdir};

/// The stream's WAL position in a state.
fn lsn(state: &Value, stream: &str) -> u64 {
    state["bookmarks"][stream]["lsn"]
        .as_u64()
        .unwrap_or_else(|| panic!("no lsn for {stream} in {state}"))
}

/// The slot's confirmed position.
fn confirmed(db: &Db) -> u64 {
    db.scalar(&format!(
        "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots \
         WHERE slot_name = 'singer_{}'",
        db.name
    ))
    .parse()
    .unwrap()
}

/// Discovers `db`, selects `streams` as LOG_BASED and runs the tap once (the snapshots);
/// returns the catalog and that run, which must have succeeded.
fn first_run(db: &Db, dir: &Path, streams: &[&str]) -> (Value, TapRun) {
    let catalog = select(&discover(dir, &db.config()), streams, "LOG_BASED", None);
    let first = run_tap(dir, &db.config(), Some(&catalog), None);
    assert!(first.ok, "{}", first.stderr);
    (catalog, first)
}

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn snapshot_then_changes_with_deletes_and_acknowledged_state() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lb");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text, amount numeric(10, 2));
         INSERT INTO t SELECT i, 'v' || i, i / 4.0 FROM generate_series(1, 20) i;",
    );
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t"]);
    assert_eq!(
        ids(&first.records("public-t")),
        (1..=20).collect::<Vec<_>>()
    );
    let s1 = first.last_state();
    assert_eq!(
        s1["bookmarks"]["public-t"]["initial_snapshot_complete"],
        json!(true)
    );
    // A new slot's position is where its snapshot was taken; nothing was acknowledged past it.
    assert_eq!(confirmed(&db), lsn(&s1, "public-t"));
    let schema = first.of_type("SCHEMA")[0]["schema"].clone();
    assert!(schema["properties"].get("_sdc_deleted_at").is_some());

    db.exec(
        "INSERT INTO t VALUES (21, 'new', 1.25);
         UPDATE t SET v = 'changed', amount = 99999999.99 WHERE id = 2;
         DELETE FROM t WHERE id = 3;
         BEGIN; INSERT INTO t VALUES (22, 'a', 0); UPDATE t SET v = 'b' WHERE id = 22; COMMIT;
         UPDATE t SET id = 100 WHERE id = 5;",
    );
    let second = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&s1));
    assert!(second.ok, "{}", second.stderr);
    let recs = second.records("public-t");
    assert_eq!(
        ids(&recs),
        [21, 2, 3, 22, 22, 5, 100],
        "{recs:?} {}",
        second.stderr
    );
    // A changed key: the old key's row is deleted, the new one upserted.
    assert!(recs[5]["_sdc_deleted_at"].is_string(), "{:?}", recs[5]);
    assert_eq!(recs[6]["_sdc_deleted_at"], json!(null));
    assert_eq!(recs[6]["v"], json!("v5"));
    assert_eq!(recs[0]["_sdc_deleted_at"], json!(null));
    assert_eq!(recs[1]["v"], json!("changed"));
    let line = String::from_utf8(second.stdout.clone()).unwrap();
    assert!(line.contains("\"amount\":99999999.99"), "{line}");
    assert!(recs[2]["_sdc_deleted_at"].is_string(), "{:?}", recs[2]);
    assert_eq!(recs[4]["v"], json!("b"));
    let s2 = second.last_state();
    assert!(lsn(&s2, "public-t") > lsn(&s1, "public-t"));
    // Only what the state passed in says was committed is acknowledged.
    assert!(
        confirmed(&db) <= lsn(&s1, "public-t"),
        "slot ran ahead of the state"
    );

    // Nothing new: no records; the acknowledged position is now the second state's.
    let third = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&s2));
    assert!(third.ok, "{}", third.stderr);
    assert!(third.records("public-t").is_empty());
    assert!(confirmed(&db) <= lsn(&s2, "public-t"));
}

#[test]
fn changes_during_the_snapshot_are_neither_missed_nor_doubled() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbsnap");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, repeat('x', 200) FROM generate_series(1, 60000) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "LOG_BASED",
        None,
    );
    let cfg = db.config();
    let writer = {
        let (host, port, name) = (db.host.clone(), db.port, db.name.clone());
        std::thread::spawn(move || {
            for i in 0..150 {
                let sql = format!("INSERT INTO t VALUES ({}, 'late')", 100_000 + i);
                let st = std::process::Command::new("psql")
                    .args([
                        "-X",
                        "-q",
                        "-h",
                        &host,
                        "-p",
                        &port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .args(["-d", &name, "-c", &sql])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        })
    };
    let first = run_tap(dir.path(), &cfg, Some(&catalog), None);
    writer.join().unwrap();
    assert!(first.ok, "{}", first.stderr);
    let second = run_tap(dir.path(), &cfg, Some(&catalog), Some(&first.last_state()));
    assert!(second.ok, "{}", second.stderr);
    let mut seen: BTreeMap<i64, u32> = BTreeMap::new();
    for id in ids(&first.records("public-t"))
        .into_iter()
        .chain(ids(&second.records("public-t")))
    {
        *seen.entry(id).or_default() += 1;
    }
    for i in 0..150 {
        assert_eq!(
            seen.get(&(100_000 + i)),
            Some(&1),
            "row {} seen {:?} times",
            100_000 + i,
            seen.get(&(100_000 + i))
        );
    }
    assert_eq!(seen.len(), 60_150);
}

#[test]
fn toasted_values_are_never_null_and_alter_table_sends_a_new_schema() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbtoast");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, big text, n int);
         CREATE TABLE f (id int PRIMARY KEY, big text, n int);
         ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO t SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 2000) i;
         INSERT INTO f SELECT * FROM t;",
    );
    let big = db.scalar("SELECT big FROM t");
    assert!(big.len() > 60_000);
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t", "public-f"]);
    db.exec(
        "UPDATE t SET n = 1; UPDATE f SET n = 1;
         ALTER TABLE t ADD COLUMN extra numeric(5, 1);
         UPDATE t SET n = 2, extra = 1.5;",
    );
    let second = run_tap(
        dir.path(),
        &db.config(),
        Some(&catalog),
        Some(&first.last_state()),
    );
    assert!(second.ok, "{}", second.stderr);
    let t = second.records("public-t");
    assert_eq!(t.len(), 2);
    // REPLICA IDENTITY DEFAULT: the unchanged TOASTed value is left out, never null.
    assert!(t[0].get("big").is_none(), "{:?}", t[0].get("big"));
    assert_eq!(t[0]["n"], json!(1));
    let f = second.records("public-f");
    assert_eq!(
        f[0]["big"],
        json!(big),
        "REPLICA IDENTITY FULL gives the whole row"
    );
    // The column added by ALTER TABLE: a new SCHEMA, then records that carry it.
    let schemas: Vec<&Value> = second
        .of_type("SCHEMA")
        .into_iter()
        .filter(|m| m["stream"] == "public-t")
        .collect();
    assert!(schemas.len() >= 2);
    assert!(schemas.last().unwrap()["schema"]["properties"]["extra"].is_object());
    assert_eq!(t[1]["extra"].to_string(), "1.5");
}

#[test]
fn a_table_added_to_the_selection_gets_its_own_snapshot() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbadd");
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO b VALUES (1), (2);",
    );
    let dir = tempdir();
    let discovered = discover(dir.path(), &db.config());
    let only_a = select(&discovered, &["public-a"], "LOG_BASED", None);
    let first = run_tap(dir.path(), &db.config(), Some(&only_a), None);
    assert!(first.ok, "{}", first.stderr);
    db.exec("INSERT INTO a VALUES (2); INSERT INTO b VALUES (3);");
    let both = select(&discovered, &["public-a", "public-b"], "LOG_BASED", None);
    let second = run_tap(
        dir.path(),
        &db.config(),
        Some(&both),
        Some(&first.last_state()),
    );
    assert!(second.ok, "{}", second.stderr);
    assert_eq!(ids(&second.records("public-a")), [2]);
    // b's snapshot has all three rows; its change stream starts after them.
    assert_eq!(ids(&second.records("public-b")), [1, 2, 3]);
    db.exec("INSERT INTO b VALUES (4); DELETE FROM a WHERE id = 1;");
    let third = run_tap(
        dir.path(),
        &db.config(),
        Some(&both),
        Some(&second.last_state()),
    );
    assert!(third.ok, "{}", third.stderr);
    assert_eq!(ids(&third.records("public-b")), [4]);
    assert_eq!(ids(&third.records("public-a")), [1]);
}

#[test]
fn a_dropped_slot_and_a_missing_wal_level_are_clear_errors() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbdrop");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t"]);
    db.exec(&format!(
        "SELECT pg_drop_replication_slot('singer_{}')",
        db.name
    ));
    let again = run_tap(
        dir.path(),
        &db.config(),
        Some(&catalog),
        Some(&first.last_state()),
    );
    assert!(!again.ok);
    assert!(
        again.stderr.contains("does not exist") && again.stderr.contains("to recover"),
        "{}",
        again.stderr
    );
    assert!(again.records("public-t").is_empty());

    let shared = Server::shared();
    let sdb = Db::create(&shared, "lbwal");
    if sdb.scalar("SHOW wal_level") != "logical" {
        sdb.exec("CREATE TABLE t (id int PRIMARY KEY);");
        let cat = select(
            &discover(dir.path(), &sdb.config()),
            &["public-t"],
            "LOG_BASED",
            None,
        );
        let run = run_tap(dir.path(), &sdb.config(), Some(&cat), None);
        assert!(!run.ok);
        assert!(run.stderr.contains("wal_level = logical"), "{}", run.stderr);
    }
}

/// Reads a child's stdout lines until `stop` says so; returns the lines read.
fn read_until(child: &mut Child, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let out = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(out);
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return lines;
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        let done = stop(&v);
        lines.push(v);
        if done {
            return lines;
        }
    }
}

#[test]
fn kill_9_during_cdc_then_resume_loses_nothing() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbkill");
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text);");
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t"]);
    let mut sql = String::new();
    for t in 0..300 {
        sql.push_str(&format!(
            "INSERT INTO t SELECT i, repeat('y', 300) FROM generate_series({}, {}) i;",
            t * 100 + 1,
            t * 100 + 100
        ));
    }
    db.exec(&sql);
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(100);
    let mut child = tap_command(dir.path(), &cfg, Some(&catalog), Some(&first.last_state()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut states = 0;
    let seen = read_until(&mut child, |m| {
        if m["type"] == "STATE" {
            states += 1;
        }
        states == 20
    });
    // The tap is blocked on its full pipe, mid-stream: kill it hard.
    child.kill().unwrap();
    child.wait().unwrap();
    let cut = seen.last().unwrap()["value"].clone();
    assert_eq!(states, 20, "the tap ended before 20 states");
    // Acknowledged no further than the state it was given.
    assert!(confirmed(&db) <= lsn(&first.last_state(), "public-t"));
    let before: Vec<Value> = seen
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"].clone())
        .collect();
    let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(&cut));
    assert!(resumed.ok, "{}", resumed.stderr);
    let mut all: Vec<i64> = ids(&before);
    all.extend(ids(&resumed.records("public-t")));
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (1..=30_000).collect::<Vec<_>>());
    assert!(
        ids(&resumed.records("public-t")).len() < 30_000,
        "resumed from the cut, not the start"
    );
    assert!(confirmed(&db) <= lsn(&cut, "public-t"));
}

#[test]
fn a_dropped_replication_connection_fails_naming_the_stream() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbconn");
    db.exec("CREATE TABLE t (id int PRIMARY KEY);");
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t"]);
    let mut cfg = db.config();
    cfg["continuous"] = json!(true);
    cfg["max_run_seconds"] = json!(60);
    let child = tap_command(dir.path(), &cfg, Some(&catalog), Some(&first.last_state()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let killed = db.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication \
             WHERE application_name = 'tap-postgres'",
        );
        if killed != "0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no walsender appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public-t"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(50));
    let _ = parse_lines(&String::from_utf8_lossy(&out.stdout));
}

#[test]
fn partitioned_tables_stream_under_their_own_name() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbpart");
    db.exec(
        "CREATE TABLE p (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
         CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);
         INSERT INTO p VALUES (1, 1), (2, 15);",
    );
    let dir = tempdir();
    let discovered = discover(dir.path(), &db.config());
    let streams: Vec<&str> = discovered["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tap_stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        ["public-p"],
        "partitions are read through their parent"
    );
    let catalog = select(&discovered, &["public-p"], "LOG_BASED", None);
    let first = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(ids(&first.records("public-p")), [1, 2]);
    db.exec("INSERT INTO p VALUES (3, 5), (4, 19); UPDATE p SET k = 12 WHERE id = 1;");
    let second = run_tap(
        dir.path(),
        &db.config(),
        Some(&catalog),
        Some(&first.last_state()),
    );
    assert!(second.ok, "{}", second.stderr);
    let recs = second.records("public-p");
    assert_eq!(ids(&recs), [3, 4, 1, 1], "{recs:?}");
}

#[test]
fn log_based_works_over_tls() {
    let server = Server::logical();
    let db = Db::create(&server, "lbtls");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "LOG_BASED",
        None,
    );
    let ca = server.ca_cert();
    for mode in ["require", "verify-ca", "verify-full"] {
        let mut cfg = db.config();
        cfg["sslmode"] = json!(mode);
        if mode != "require" {
            cfg["ssl_root_cert"] = json!(ca);
        }
        if mode == "verify-full" {
            // The replication client checks names only for DNS hosts, not IP addresses.
            cfg["host"] = json!("localhost");
        }
        cfg["slot_name"] = json!(format!("tls_{}", mode.replace('-', "_")));
        let first = run_tap(dir.path(), &cfg, Some(&catalog), None);
        assert!(first.ok, "{mode}: {}", first.stderr);
        db.exec("UPDATE t SET id = id + 1;");
        let second = run_tap(dir.path(), &cfg, Some(&catalog), Some(&first.last_state()));
        assert!(second.ok, "{mode}: {}", second.stderr);
        assert_eq!(
            second.records("public-t").len(),
            2,
            "{mode}: a delete and an insert"
        );
        let ssl = db.scalar(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'tap-postgres'",
        );
        assert_ne!(ssl, "f", "{mode}: a connection without TLS");
    }
}

#[test]
fn wal_removed_under_the_slot_is_a_clear_error() {
    let server = Server::logical();
    let db = Db::create(&server, "lblost");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    let dir = tempdir();
    let (catalog, first) = first_run(&db, dir.path(), &["public-t"]);
    // Let the server drop WAL the slot still needs: a tiny keep size, several segments, a
    // checkpoint.
    db.exec("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'; SELECT pg_reload_conf();");
    for i in 0..4 {
        db.exec(&format!(
            "INSERT INTO t VALUES ({}); SELECT pg_switch_wal();",
            i + 2
        ));
    }
    db.exec("CHECKPOINT;");
    let status = db.scalar(&format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'singer_{}'",
        db.name
    ));
    assert_eq!(status, "lost");
    let again = run_tap(
        dir.path(),
        &db.config(),
        Some(&catalog),
        Some(&first.last_state()),
    );
    assert!(!again.ok);
    assert!(
        again.stderr.contains("removed the WAL") && again.stderr.contains("to recover"),
        "{}",
        again.stderr
    );
    assert!(again.records("public-t").is_empty());
}

#[test]
fn a_stream_switched_to_log_based_copies_everything_from_its_new_snapshot() {
    let server = Server::for_logical();
    let db = Db::create(&server, "lbswitch");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY);
         INSERT INTO t SELECT i FROM generate_series(1, 100) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "LOG_BASED",
        None,
    );
    // What an interrupted FULL_TABLE copy of the same stream left behind.
    let stale = json!({"bookmarks": {"public-t": {
        "version": 1, "max_pk_values": {"id": 100}, "last_pk_fetched": {"id": 50}}}});
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&stale));
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(ids(&run.records("public-t")), (1..=100).collect::<Vec<_>>());
}
